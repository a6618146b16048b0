//! Data follows ownership with real processes: while nodes join or leave,
//! a client keeps writing at `quorum` and another keeps reading, at
//! `quorum`, keys written at `all` beforehand and keys the writer had
//! acknowledged. Not one of those reads may miss its key, at any moment;
//! afterwards every key reads back, the new owners received data and the
//! old ones cleaned up what they no longer own.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quorra_client::protocol::{AdminCommand, MovesStatus};
use quorra_client::{Client, Consistency, Context};
use quorra_e2e::TestCluster;

/// Keys written at `all` before the change.
const FIXED: usize = 400;

/// What the load saw while membership changed.
#[derive(Debug, Default)]
struct Seen {
    /// Reads that succeeded.
    reads: u64,
    /// Successful reads that did not return the key's value: lost or
    /// hidden acknowledged writes.
    misses: Vec<String>,
    /// Reads or writes that failed (timeouts while a node stops): not a
    /// loss, since nothing was acknowledged or returned.
    errors: u64,
    /// Keys the writer wrote at `quorum` and had acknowledged.
    acked: Vec<String>,
}

fn value_of(key: &str) -> String {
    format!("value-of-{key}")
}

fn holds(response: &quorra_client::Response, key: &str) -> bool {
    response
        .values
        .iter()
        .any(|v| v.as_ref() == value_of(key).as_bytes())
}

/// Writes `key` with its value, without context.
async fn put(client: &Client, key: &str, consistency: Consistency) -> Result<(), String> {
    client
        .put(
            key.to_owned(),
            value_of(key),
            &Context::empty(),
            consistency,
        )
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn write_fixed(client: &Client) {
    for i in 0..FIXED {
        let key = format!("fixed-{i}");
        put(client, &key, Consistency::ALL)
            .await
            .unwrap_or_else(|e| panic!("put {key} at all: {e}"));
    }
}

/// Writes new keys at `quorum` until `stop`, noting the acknowledged ones.
async fn writer(client: Client, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("live-{i}");
        i += 1;
        match put(&client, &key, Consistency::QUORUM).await {
            Ok(()) => seen.lock().unwrap().acked.push(key),
            Err(_) => seen.lock().unwrap().errors += 1,
        }
    }
}

/// Reads at `consistency` until `stop`, noting every successful read that
/// misses its key: the fixed keys and, at `quorum` (R + W > N with the
/// writer's quorum), the acknowledged live ones in turn.
async fn reader(client: Client, consistency: Consistency, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let live_too = consistency == Consistency::QUORUM;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let key = {
            let s = seen.lock().unwrap();
            if live_too && i.is_multiple_of(2) && !s.acked.is_empty() {
                s.acked[(i / 2 * 7919) % s.acked.len()].clone()
            } else {
                format!("fixed-{}", i % FIXED)
            }
        };
        match client.get(key.clone(), consistency).await {
            Ok(r) => {
                let mut s = seen.lock().unwrap();
                s.reads += 1;
                if !holds(&r, &key) {
                    s.misses.push(key);
                }
            }
            Err(_) => seen.lock().unwrap().errors += 1,
        }
    }
}

/// Runs the load while `change` changes membership; asserts that no read
/// missed its key and that the load ran; returns what it saw.
async fn under_load(cluster: &mut TestCluster, change: impl AsyncFnOnce(&mut TestCluster)) -> Seen {
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Seen::default());
    let (write_client, read_client) = (cluster.client().await, cluster.client().await);
    let load = async {
        tokio::join!(
            writer(write_client, &stop, &seen),
            reader(read_client, Consistency::QUORUM, &stop, &seen)
        )
    };
    let changing = async {
        change(cluster).await;
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(load, changing);
    let seen = seen.into_inner().unwrap();
    eprintln!(
        "under load: {} reads, {} misses, {} errors, {} writes acknowledged",
        seen.reads,
        seen.misses.len(),
        seen.errors,
        seen.acked.len()
    );
    assert!(
        seen.misses.is_empty(),
        "reads missed acknowledged keys: {:?}",
        seen.misses
    );
    assert!(seen.reads > 0 && !seen.acked.is_empty(), "{seen:?}");
    seen
}

/// Every fixed and acknowledged key reads back at `consistency` through
/// node `via`.
async fn all_read_back(cluster: &TestCluster, via: usize, consistency: Consistency, seen: &Seen) {
    let client = cluster.client_of(via).await;
    let keys = (0..FIXED)
        .map(|i| format!("fixed-{i}"))
        .chain(seen.acked.iter().cloned());
    let mut missing = Vec::new();
    for key in keys {
        let r = client
            .get(key.clone(), consistency)
            .await
            .unwrap_or_else(|e| panic!("get {key} through node {}: {e}", via + 1));
        if !holds(&r, &key) {
            missing.push(key);
        }
    }
    assert!(
        missing.is_empty(),
        "{} keys missing through node {}: {:?}",
        missing.len(),
        via + 1,
        &missing[..missing.len().min(20)]
    );
}

async fn moves_of(cluster: &TestCluster, i: usize) -> MovesStatus {
    let client = cluster.client_of(i).await;
    client
        .status_of(cluster.nodes[i].addr)
        .await
        .unwrap_or_else(|e| panic!("status of node {}: {e}", i + 1))
        .moves
}

#[tokio::test(flavor = "current_thread")]
async fn two_nodes_join_at_once_under_load_and_no_read_misses() {
    let mut cluster = TestCluster::start(3, &[]).await;
    write_fixed(&cluster.client().await).await;

    let seen = under_load(&mut cluster, async |c: &mut TestCluster| {
        c.add_node_unready(&[]);
        c.add_node_unready(&[]);
        c.wait_converged(5).await;
    })
    .await;

    // The newcomers received their share by moves, and serve reads at
    // `one` from what they hold.
    for i in [3, 4] {
        let m = moves_of(&cluster, i).await;
        assert!(
            m.keys_received > 0,
            "node {} received nothing: {m:?}",
            i + 1
        );
        assert_eq!(m.layouts, 1, "{m:?}");
    }
    all_read_back(&cluster, 0, Consistency::QUORUM, &seen).await;
    all_read_back(&cluster, 3, Consistency::ONE, &seen).await;
    // The old owners dropped what they no longer own.
    let mut cleaned = 0;
    for i in 0..3 {
        cleaned += moves_of(&cluster, i).await.keys_cleaned;
    }
    assert!(cleaned > 0, "no old owner cleaned up");
    eprintln!("old owners cleaned {cleaned} keys");
}

#[tokio::test(flavor = "current_thread")]
async fn a_node_joins_and_reads_at_one_through_it_miss_nothing_from_when_it_serves() {
    let mut cluster = TestCluster::start(3, &[]).await;
    write_fixed(&cluster.client().await).await;

    let seen = under_load(&mut cluster, async |c: &mut TestCluster| {
        let new = c.add_node_unready(&[]);
        c.wait_ready(new).await;
        // From the moment it serves until its moves are over, reads at
        // `one` through it of keys written at `all`: it must not answer
        // from partitions it has not received yet.
        let stop = AtomicBool::new(false);
        let at_one = Mutex::new(Seen::default());
        let client = c.client_of(new).await;
        let c = &*c;
        tokio::join!(reader(client, Consistency::ONE, &stop, &at_one), async {
            c.wait_converged(4).await;
            stop.store(true, Ordering::Relaxed);
        });
        let at_one = at_one.into_inner().unwrap();
        eprintln!(
            "at one through node 4: {} reads, {} misses, {} errors",
            at_one.reads,
            at_one.misses.len(),
            at_one.errors
        );
        assert!(
            at_one.misses.is_empty(),
            "reads at one through the newcomer missed keys written at all: {:?}",
            at_one.misses
        );
        assert!(at_one.reads > 0, "{at_one:?}");
    })
    .await;

    let m = moves_of(&cluster, 3).await;
    assert!(m.keys_received > 0, "the newcomer received nothing: {m:?}");
    all_read_back(&cluster, 3, Consistency::QUORUM, &seen).await;
}

#[tokio::test(flavor = "current_thread")]
async fn two_nodes_leave_one_after_another_under_load_and_no_read_misses() {
    let mut cluster = TestCluster::start(5, &[]).await;
    write_fixed(&cluster.client().await).await;

    let seen = under_load(&mut cluster, async |c: &mut TestCluster| {
        for i in [4, 3] {
            let answer = c
                .client_of(0)
                .await
                .admin(c.nodes[i].addr, AdminCommand::Leave)
                .await
                .unwrap();
            assert!(answer.contains("leaving"), "{answer}");
            let deadline = Instant::now() + Duration::from_secs(40);
            while c.running(i) {
                assert!(
                    Instant::now() < deadline,
                    "node {} did not finish leaving",
                    i + 1
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
    .await;

    // Nodes 4 and 5 are gone: their data now lives on nodes 1 to 3 alone.
    all_read_back(&cluster, 0, Consistency::ALL, &seen).await;
    let mut received = 0;
    for i in 0..3 {
        received += moves_of(&cluster, i).await.keys_received;
    }
    assert!(received > 0, "the remaining nodes received nothing");
}

/// Node `i`'s share as node `via` sees it.
async fn share_of(cluster: &TestCluster, via: usize, i: usize) -> f64 {
    let client = cluster.client_of(via).await;
    let status = client
        .status_of(cluster.nodes[via].addr)
        .await
        .unwrap_or_else(|e| panic!("status of node {}: {e}", via + 1));
    let id = cluster.nodes[i].id;
    status
        .members
        .iter()
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("node {id} not in {status:?}"))
        .share
}

/// The state node `via` gives node `i`.
async fn state_of(cluster: &TestCluster, via: usize, i: usize) -> String {
    let client = cluster.client_of(via).await;
    let status = client.status_of(cluster.nodes[via].addr).await.unwrap();
    let id = cluster.nodes[i].id;
    status
        .members
        .iter()
        .find(|m| m.id == id)
        .map_or("forgotten".into(), |m| m.state.clone())
}

#[tokio::test(flavor = "current_thread")]
async fn a_dead_node_is_replaced_under_load_and_only_its_partitions_move() {
    let mut cluster = TestCluster::start(4, &[]).await;
    write_fixed(&cluster.client().await).await;
    let share = share_of(&cluster, 0, 3).await;

    let seen = under_load(&mut cluster, async |c: &mut TestCluster| {
        c.kill9(3);
        let dead = c.nodes[3].id.to_string();
        let started = Instant::now();
        let new = c.add_node_unready(&["--replace", &dead]);
        // Normal once it believes node 4 down and took its tokens.
        c.wait_ready(new).await;
        eprintln!("the replacement was normal after {:?}", started.elapsed());
        c.wait_converged(4).await;
    })
    .await;

    // Node 5 holds node 4's tokens, received its partitions, and nothing
    // else moved: the survivors received nothing.
    assert_eq!(share_of(&cluster, 0, 4).await, share);
    assert_eq!(state_of(&cluster, 0, 3).await, "removed");
    let m = moves_of(&cluster, 4).await;
    assert!(
        m.keys_received > 0,
        "the replacement received nothing: {m:?}"
    );
    for i in 0..3 {
        let m = moves_of(&cluster, i).await;
        assert_eq!(m.keys_received, 0, "node {} received data: {m:?}", i + 1);
    }
    all_read_back(&cluster, 0, Consistency::ALL, &seen).await;
    all_read_back(&cluster, 4, Consistency::ONE, &seen).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_dead_node_is_removed_then_a_new_one_joins_under_load_and_no_read_misses() {
    let mut cluster = TestCluster::start(4, &[]).await;
    write_fixed(&cluster.client().await).await;

    let seen = under_load(&mut cluster, async |c: &mut TestCluster| {
        c.kill9(3);
        let dead = c.nodes[3].id;
        let deadline = Instant::now() + Duration::from_secs(30);
        // Refused while node 1 still believes it up.
        loop {
            let answer = c
                .client_of(0)
                .await
                .admin(c.nodes[0].addr, AdminCommand::Remove { node: dead })
                .await;
            match answer {
                Ok(a) => {
                    eprintln!("remove: {a}");
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "removal refused: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        c.wait_converged(3).await;
        let new = c.add_node_unready(&[]);
        c.wait_ready(new).await;
        c.wait_converged(4).await;
    })
    .await;

    assert_eq!(state_of(&cluster, 0, 3).await, "removed");
    let m = moves_of(&cluster, 4).await;
    assert!(m.keys_received > 0, "the new node received nothing: {m:?}");
    all_read_back(&cluster, 0, Consistency::ALL, &seen).await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_pull_limits_change_on_a_running_node() {
    let cluster = TestCluster::start(1, &["--transfer-bytes-per-sec", "0"]).await;
    let client = cluster.client_of(0).await;
    let addr = cluster.nodes[0].addr;
    let throttle = |bytes_per_sec, streams| AdminCommand::Throttle {
        bytes_per_sec,
        streams,
    };
    let shown = client.admin(addr, throttle(None, None)).await.unwrap();
    assert!(shown.contains("unlimited, 4 partitions"), "{shown}");
    let set = client
        .admin(addr, throttle(Some(1 << 20), Some(2)))
        .await
        .unwrap();
    assert!(set.contains("1048576 bytes/s, 2 partitions"), "{set}");
    let refused = client.admin(addr, throttle(None, Some(0))).await;
    assert!(refused.is_err(), "{refused:?}");
    let kept = client.admin(addr, throttle(None, None)).await.unwrap();
    assert!(kept.contains("1048576 bytes/s, 2 partitions"), "{kept}");
}
