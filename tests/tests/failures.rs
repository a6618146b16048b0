//! Nodes dying: quorums go on, hints reach a node that comes back, a
//! cluster killed with SIGKILL in the middle of a write load keeps every
//! write it acknowledged, and a node whose disk takes seconds to sync
//! slows nothing that does not need it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quorra_client::routing::partition_of;
use quorra_client::{Consistency, Context};
use quorra_e2e::TestCluster;

fn values(r: &quorra_client::Response) -> Vec<String> {
    r.values
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn quorum_reads_and_writes_go_on_with_one_node_killed() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let client = cluster.client().await;
    cluster.kill9(2);
    for i in 0..20 {
        let key = format!("k{i}");
        client
            .put(key.clone(), "v", &Context::empty(), Consistency::QUORUM)
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        let read = client.get(key.clone(), Consistency::QUORUM).await.unwrap();
        assert_eq!(values(&read), ["v"]);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn writes_for_a_dead_node_are_hinted_and_reach_it_after_restart() {
    // N = 2 on 3 nodes: every key has a node that is not one of its owners,
    // the fallback that holds hints.
    let mut cluster = TestCluster::start(3, &["--replicas", "2"]).await;
    cluster.wait_converged(3).await;
    let client = cluster.client().await;
    let table = client.routing().expect("routing table");
    assert_eq!(table.replicas, 2);
    let key = "hinted-key";
    let owners: Vec<u64> = table
        .owners_of(partition_of(key.as_bytes(), table.partitions))
        .map(|m| m.id)
        .collect();
    let (alive_owner, dead) = ((owners[0] - 1) as usize, (owners[1] - 1) as usize);
    let fallback = (0..3).find(|i| *i != alive_owner && *i != dead).unwrap();
    cluster.kill9(dead);

    // The first writes wait for the dead owner and time out; once the
    // coordinator believes it down, a fallback takes the write as a hint.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client
            .put(key, "for-the-dead", &Context::empty(), Consistency::QUORUM)
            .await
        {
            Ok(r) if r.receipt.used_fallback() => {
                let f = r
                    .receipt
                    .answered
                    .iter()
                    .find(|a| a.fallback_for.is_some())
                    .unwrap();
                assert_eq!(f.fallback_for, Some(dead as u64 + 1));
                assert_eq!(f.node, fallback as u64 + 1);
                break;
            }
            _ => assert!(Instant::now() < deadline, "no fallback was used"),
        }
    }

    cluster.restart(dead).await;
    // The hint reaches its owner: poll the owner alone until it has it.
    let owner = cluster.client_of(dead).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = owner.get(key, Consistency::ONE).await
            && values(&r).contains(&"for-the-dead".to_string())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hint never reached its owner"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Only that node is left: it answers from what it received as a hint.
    cluster.kill9(alive_owner);
    cluster.kill9(fallback);
    let read = owner.get(key, Consistency::ONE).await.unwrap();
    assert!(values(&read).contains(&"for-the-dead".to_string()));
}

#[tokio::test(flavor = "current_thread")]
async fn sigkill_of_every_node_during_writes_loses_nothing_acknowledged() {
    let mut cluster = TestCluster::start(3, &["--fsync", "always"]).await;
    let client = cluster.client().await;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("load-{w}-{i}");
                match client
                    .put(
                        key.clone(),
                        key.clone(),
                        &Context::empty(),
                        Consistency::QUORUM,
                    )
                    .await
                {
                    Ok(_) => {
                        acked.lock().unwrap().insert(key);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..3 {
        cluster.kill9(i);
    }
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the load barely ran: {} writes",
        acked.len()
    );

    for i in 0..3 {
        cluster.restart(i).await;
    }
    let client = cluster.client().await;
    for key in &acked {
        let read = client.get(key.clone(), Consistency::QUORUM).await.unwrap();
        assert_eq!(
            values(&read),
            vec![key.to_string()],
            "acknowledged write {key} lost"
        );
    }
}

/// How long every `fsync`/`fdatasync` of the slow node takes.
const SLOW_SYNC: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "current_thread")]
#[allow(clippy::print_stdout)]
async fn a_node_whose_disk_takes_seconds_to_sync_does_not_stall_quorum_requests() {
    // Node 3's flushes take SLOW_SYNC each (an LD_PRELOAD shim around the
    // real calls: the binary and its durability are unchanged). The
    // client's timeout is below that, so a request that waited for node
    // 3's disk anywhere (as coordinator, or as one of the W or R replicas
    // counted) fails the test; with W = R = 2 of N = 3, nodes 1 and 2 are
    // enough for every request.
    let mut cluster = TestCluster::start(3, &["--fsync", "always"]).await;
    let slow = 2;
    let shim = quorra_e2e::slow_sync_shim(cluster.dir.path());
    let control = cluster.dir.path().join("slow-sync-ms");
    std::fs::write(&control, "0").unwrap();
    cluster.stop(slow);
    cluster.nodes[slow].env = vec![
        ("LD_PRELOAD".into(), shim.display().to_string()),
        (
            "QUORRA_SLOW_SYNC_FILE".into(),
            control.display().to_string(),
        ),
    ];
    cluster.restart(slow).await;
    std::fs::write(&control, SLOW_SYNC.as_millis().to_string()).unwrap();

    let mut config = cluster.client_config();
    config.timeout = SLOW_SYNC * 3 / 4;
    let client = quorra_client::Client::connect(config).await.unwrap();
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = Vec::new();
            let mut i = 0;
            while started.elapsed() < Duration::from_secs(10) {
                let key = format!("slow-{w}-{i}");
                i += 1;
                let t = Instant::now();
                if let Err(e) = client
                    .put(
                        key.clone(),
                        key.clone(),
                        &Context::empty(),
                        Consistency::QUORUM,
                    )
                    .await
                {
                    failures.push(format!("put {key}: {e}"));
                    continue;
                }
                latencies.push(t.elapsed());
                let t = Instant::now();
                match client.get(key.clone(), Consistency::QUORUM).await {
                    Ok(read) if values(&read) == [key.clone()] => latencies.push(t.elapsed()),
                    Ok(read) => failures.push(format!("get {key}: {:?}", values(&read))),
                    Err(e) => failures.push(format!("get {key}: {e}")),
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for w in workers {
        let (l, f) = w.await.unwrap();
        latencies.extend(l);
        failures.extend(f);
    }
    // The disk really was that slow: node 3's own flush histogram.
    let metrics = quorra_e2e::http::get(cluster.nodes[slow].admin, "/metrics", None)
        .await
        .expect("node 3's metrics");
    let scrape = quorra_e2e::prom::Scrape::parse(&metrics.body).expect("metrics parse");
    let flushes = scrape
        .value("quorra_storage_flush_duration_seconds_count", &[])
        .unwrap_or(0.0);
    let flushed_for = scrape
        .value("quorra_storage_flush_duration_seconds_sum", &[])
        .unwrap_or(0.0);
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "node {} syncing in {SLOW_SYNC:?} ({flushes} flushes, {flushed_for:.1} s): {} requests ok, \
         {} failed; p50 {:?}, p99 {:?}, max {:?}",
        slow + 1,
        latencies.len(),
        failures.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    assert!(
        flushes >= 3.0 && flushed_for >= flushes * SLOW_SYNC.as_secs_f64() * 0.5,
        "node 3's disk was not slow: {flushes} flushes in {flushed_for} s (is the shim loaded?)"
    );
    assert!(
        cluster.log_of(slow).contains("slow disk: a flush"),
        "node 3 did not say its disk is slow:\n{}",
        quorra_e2e::log_tail(&cluster.nodes[slow].log, 30)
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests waited for the slow disk: {:?}\n{}",
        failures.len(),
        failures.len() + latencies.len(),
        &failures[..failures.len().min(10)],
        quorra_e2e::log_tail(&cluster.nodes[slow].log, 30)
    );
    assert!(latencies.len() > 100, "the load barely ran");
    std::fs::write(&control, "0").unwrap();
}
