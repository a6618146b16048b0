//! A node whose disk fills up: it refuses writes with a clear error and
//! says so in `quorra status`, the cluster goes on around it, its log does
//! not flood, and once space is freed it recovers in place, without a
//! restart of its process, with every write it had acknowledged.
//!
//! The node's data directory is a small tmpfs (mounting one needs root, as
//! CI has; elsewhere the test says it is skipped).

use std::time::{Duration, Instant};

use bytes::Bytes;
use quorra_client::{Client, Consistency, Context};
use quorra_e2e::{TestCluster, Tmpfs};
use quorra_node::storage::{EngineKind, Store, open_engine};

/// Size of the full node's disk: a few hundred large writes fill it.
const SMALL_MIB: u64 = 40;
/// What it grows to when space is freed (room for the recovery's check).
const LARGE_MIB: u64 = 512;

/// `len` bytes that do not compress (the engine's journal compresses).
fn noise(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

async fn storage_failure(client: &Client, node: std::net::SocketAddr) -> Option<String> {
    client
        .status_of(node)
        .await
        .ok()
        .and_then(|s| s.storage.failure)
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_disk_refuses_writes_and_recovers_in_place_once_space_is_freed() {
    let mut mount = None;
    let mut refused = None;
    let mut cluster = TestCluster::start_prepared(3, &[], |i, data| {
        if i == 2 {
            match Tmpfs::mount(data, SMALL_MIB) {
                Ok(m) => mount = Some(m),
                Err(e) => refused = Some(e),
            }
        }
    })
    .await;
    if let Some(why) = refused {
        eprintln!("skipped: cannot make a small disk for the node ({why})");
        return;
    }
    let full = 2;
    let full_addr = cluster.nodes[full].addr;
    let client = cluster.client().await;

    // Written at `all`: node 3 acknowledged each one after its flush.
    let before: Vec<String> = (0..100).map(|i| format!("before-{i}")).collect();
    for key in &before {
        client
            .put(
                key.clone(),
                "acknowledged by all",
                &Context::empty(),
                Consistency::ALL,
            )
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }
    let replica_writes = |body: &str| -> f64 {
        let scrape = quorra_e2e::prom::Scrape::parse(body).expect("a valid scrape");
        scrape
            .value("quorra_replica_writes_total", &[])
            .expect("the counter")
    };
    let admin = cluster.nodes[full].admin;
    let stored_before = replica_writes(
        &quorra_e2e::http::get(admin, "/metrics", None)
            .await
            .unwrap()
            .body,
    );
    assert!(stored_before >= 100.0, "{stored_before}");

    // Fill node 3's disk with large values at quorum; nodes 1 and 2 go on
    // acknowledging them.
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut i = 0u64;
    while storage_failure(&client, full_addr).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "node 3's storage never failed:\n{}",
            cluster.log_of(full)
        );
        let key = format!("fill-{i}");
        i += 1;

        if client
            .put(
                key.clone(),
                noise(i, 256 * 1024),
                &Context::empty(),
                Consistency::QUORUM,
            )
            .await
            .is_ok()
        {
            acknowledged.push(key);
        }
    }
    let failure = storage_failure(&client, full_addr).await.expect("failing");
    eprintln!("node 3 failed after {i} large writes: {failure}");

    // The others learn it by gossip; writes go on around it, also those
    // sent to it (it forwards them to a healthy primary), and it still
    // serves reads.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = client
            .status_of(cluster.nodes[0].addr)
            .await
            .expect("status");
        if status
            .members
            .iter()
            .any(|m| m.id == 3 && m.storage_failing)
        {
            break;
        }
        assert!(Instant::now() < deadline, "node 1 never saw node 3 failing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let direct = cluster.client_of(full).await;
    for i in 0..20 {
        let key = format!("during-{i}");
        let written = direct
            .put(key.clone(), "small", &Context::empty(), Consistency::QUORUM)
            .await
            .unwrap_or_else(|e| panic!("a write sent to the full node failed: {e}"));
        assert!(
            written.receipt.answered.iter().all(|a| a.node != 3),
            "the full node acknowledged a write: {:?}",
            written.receipt
        );
        acknowledged.push(key);
    }
    let read = direct
        .get("before-0", Consistency::ONE)
        .await
        .expect("the full node serves reads");
    assert_eq!(read.values.len(), 1);

    // Some seconds of failing: a handful of log lines, not a flood.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let lines = cluster.log_of(full).lines().count();
    assert!(
        lines < 200,
        "node 3 wrote {lines} log lines while failing:\n{}",
        quorra_e2e::log_tail(&cluster.nodes[full].log, 20)
    );

    // Space is freed: the node recovers by itself, in the same process.
    let pid = cluster.nodes[full].pid();
    mount.as_ref().expect("mounted").resize(LARGE_MIB);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client.status_of(full_addr).await;
        if let Ok(s) = &status
            && s.storage.failure.is_none()
            && s.storage.recoveries == 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 did not recover within 60 s of space being freed ({status:?}):\n{}",
            quorra_e2e::log_tail(&cluster.nodes[full].log, 20)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        cluster.nodes[full].pid(),
        pid,
        "recovered without a restart"
    );
    assert!(cluster.running(full));
    // Its counters went on from where they were (a new core, the same
    // process: Prometheus must not see them reset).
    let stored_after = replica_writes(
        &quorra_e2e::http::get(admin, "/metrics", None)
            .await
            .unwrap()
            .body,
    );
    assert!(
        stored_after >= stored_before,
        "replica writes went from {stored_before} to {stored_after} across the recovery"
    );

    // It takes writes again, at `all`.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..20 {
        let key = format!("after-{i}");
        loop {
            match client
                .put(key.clone(), "after", &Context::empty(), Consistency::ALL)
                .await
            {
                Ok(r) => {
                    assert!(r.receipt.answered.iter().any(|a| a.node == 3));
                    break;
                }
                // Until the others believe the new incarnation up.
                Err(e) => assert!(Instant::now() < deadline, "put {key} at all: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        acknowledged.push(key);
    }

    // Nothing acknowledged is lost: every quorum write reads back...
    for key in &acknowledged {
        let read = client
            .get(key.clone(), Consistency::QUORUM)
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e}"));
        assert!(!read.values.is_empty(), "acknowledged {key} is missing");
    }
    // ...and node 3's own disk still holds every write it acknowledged
    // before the failure (read from its data directory once it stopped).
    cluster.stop(full);
    let engine = open_engine(EngineKind::Fjall, &cluster.nodes[full].data.join("fjall"))
        .expect("the full node's store opens");
    let store = Store::new(engine);
    let table = client.routing().expect("routing");
    for key in &before {
        let partition = quorra_ring::PartitionId(quorra_client::routing::partition_of(
            key.as_bytes(),
            table.partitions,
        ));
        let held = store.get(partition, key.as_bytes()).expect("readable");
        assert!(
            held.is_some_and(|o| o.live_values().count() == 1),
            "node 3 lost {key}, which it had acknowledged"
        );
    }
    drop(store);
    drop(cluster);
    drop(mount);
}
