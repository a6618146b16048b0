//! A node whose data directory is deleted comes back under its id, takes
//! its place (same tokens) and gets every key back from anti-entropy alone,
//! with its progress in `quorra status`.
//!
//! The 100,000-key version, at the default settings, is `--ignored` (CI
//! runs it in release); the ordinary run uses 5,000 keys and compares each
//! partition every 5 s instead of 30.

use std::time::{Duration, Instant};

use quorra_client::{Consistency, Context};
use quorra_e2e::TestCluster;
use tokio::task::JoinSet;

/// Concurrent writers while loading.
const LOADERS: usize = 64;

fn value_of(i: usize) -> String {
    format!("value-{i:08}-{}", "x".repeat(80))
}

/// Writes keys 0..`keys` at `all` from [`LOADERS`] concurrent writers.
async fn load(client: &quorra_client::Client, keys: usize) {
    let mut tasks = JoinSet::new();
    for w in 0..LOADERS {
        let client = client.clone();
        tasks.spawn(async move {
            for i in (w..keys).step_by(LOADERS) {
                client
                    .put(
                        format!("key-{i:08}"),
                        value_of(i),
                        &Context::empty(),
                        Consistency::ALL,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("put {i}: {e}"));
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("loader");
    }
}

async fn wiped_node_is_refilled(keys: usize, extra: &[&str]) {
    // Nothing is written while the node is away (no hints), and nothing is
    // read before it is full (no read repair): anti-entropy does it all.
    let mut args = vec!["--fsync", "periodic"];
    args.extend_from_slice(extra);
    let mut cluster = TestCluster::start(3, &args).await;
    let client = cluster.client().await;
    let started = Instant::now();
    load(&client, keys).await;
    eprintln!("loaded {keys} keys at `all` in {:.1?}", started.elapsed());

    let lost = 2;
    cluster.wipe(lost);
    let restarted = Instant::now();
    cluster.restart(lost).await;
    eprintln!(
        "node {} is normal again after {:.1?}",
        lost + 1,
        restarted.elapsed()
    );

    // Every key has all three nodes as replicas (N = 3 on 3 nodes). A new
    // client: the old one's connection to the node died with it.
    let client = cluster.client().await;
    let addr = cluster.nodes[lost].addr;
    let deadline = restarted + Duration::from_secs(60);
    loop {
        let status = client.status_of(addr).await.expect("status");
        let ae = &status.anti_entropy;
        eprintln!(
            "{:>5.1}s: {} keys repaired, {} trees, {} exchanges ({} in sync)",
            restarted.elapsed().as_secs_f64(),
            ae.keys_repaired,
            ae.trees,
            ae.exchanges,
            ae.in_sync
        );
        if ae.keys_repaired >= keys as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "anti-entropy repaired {} of {keys} keys within 60 s:\n{}",
            ae.keys_repaired,
            cluster.log_of(lost)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("all {keys} keys back after {:.1?}", restarted.elapsed());

    // Read at `one` from that node alone: the coordinator answers from its
    // own copy, so a key it lacked would read as absent.
    let direct = cluster.client_of(lost).await;
    for i in 0..keys {
        let r = direct
            .get(format!("key-{i:08}"), Consistency::ONE)
            .await
            .unwrap_or_else(|e| panic!("get {i}: {e}"));
        assert_eq!(r.values, [value_of(i)], "key {i}");
    }
    let log = cluster.log_of(lost);
    assert!(
        log.contains("takes its place back"),
        "the node did not say it took its place back:\n{log}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_wiped_node_gets_its_keys_back_from_anti_entropy() {
    wiped_node_is_refilled(5_000, &["--anti-entropy-interval-secs", "5"]).await;
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "100,000 keys: run in release by .ci/run"]
async fn a_wiped_node_gets_100_000_keys_back_within_a_minute() {
    wiped_node_is_refilled(100_000, &[]).await;
}

/// One `quorra bench` run against the cluster: (ops/s, read p99 µs, write p99 µs).
fn bench(cluster: &TestCluster, ops: usize) -> (f64, f64, f64) {
    let peers: Vec<String> = cluster.nodes.iter().map(|n| n.addr.to_string()).collect();
    let out = std::process::Command::new(quorra_e2e::quorra_bin())
        .args([
            "bench",
            "--json",
            "--concurrency",
            "64",
            "--read-ratio",
            "0.5",
        ])
        .args(["--ops", &ops.to_string(), "--keys", "100000"])
        .args(["--peer", &peers.join(",")])
        .args(["--tls-dir", &cluster.tls.display().to_string()])
        .output()
        .expect("quorra bench runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> f64 {
        let at = text.find(&format!("\"{name}\":")).expect(name) + name.len() + 3;
        let rest = &text[at..];
        let end = rest.find([',', '}']).expect("field end");
        rest[..end].trim().parse().expect("a number")
    };
    assert_eq!(field("errors"), 0.0, "{text}");
    (
        field("ops_per_sec"),
        field("read_p99_us"),
        field("write_p99_us"),
    )
}

/// The cost of anti-entropy to foreground traffic, printed, not asserted:
/// `quorra bench` on a 3-node cluster with anti-entropy on (defaults) and
/// off, alternating, first with replicas in sync, then while a wiped node
/// is being refilled (with it off, nothing refills it).
///
/// `cargo test --release -p quorra-e2e --test anti_entropy -- --ignored --nocapture cost`
#[tokio::test(flavor = "current_thread")]
#[ignore = "a benchmark: prints figures"]
async fn cost_of_anti_entropy_to_foreground_throughput() {
    let keys = 100_000;
    for round in 0..2 {
        for mode in ["on", "off"] {
            let mut cluster =
                TestCluster::start(3, &["--fsync", "periodic", "--anti-entropy", mode]).await;
            let client = cluster.client().await;
            load(&client, keys).await;
            let steady = bench(&cluster, 200_000);
            cluster.wipe(2);
            cluster.restart(2).await;
            let repairing = bench(&cluster, 200_000);
            let status = cluster
                .client()
                .await
                .status_of(cluster.nodes[2].addr)
                .await
                .expect("status");
            eprintln!(
                "round {round} anti-entropy {mode:>3}: in sync {:>7.0} ops/s (p99 read {:.0} us, write {:.0} us); \
                 wiped node refilling {:>7.0} ops/s (p99 read {:.0} us, write {:.0} us), {} keys repaired by then",
                steady.0,
                steady.1,
                steady.2,
                repairing.0,
                repairing.1,
                repairing.2,
                status.anti_entropy.keys_repaired
            );
        }
    }
}
