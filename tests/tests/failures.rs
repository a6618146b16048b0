//! Nodes dying: quorums go on, hints reach a node that comes back, and a
//! cluster killed with SIGKILL in the middle of a write load keeps every
//! write it acknowledged.

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
