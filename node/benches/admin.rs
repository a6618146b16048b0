//! What one `/metrics` scrape costs on a large node: 1,024 partitions, 64
//! members (63 peers, each with a phi, a heartbeat age and a QUIC path), every request and RESP family populated. Timed:
//! the readiness check over every partition (what the driver computes
//! per scrape besides copying its counters) and the encoding of the whole
//! page; printed: the page's size and the time's percentiles.
//!
//! ```text
//! cargo bench -p quorra-node --bench admin -- [--iterations 500]
//! ```

// A benchmark prints its figures: that is its output, not logging.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use clap::Parser;
use quorra_client::protocol::{ClusterStatus, MemberStatus};
use quorra_client::{Consistency, Level, Request, RequestError, Response};
use quorra_node::admin::Metrics;
use quorra_node::admin::metrics::{RequestKind, Source};
use quorra_node::admin::ready::readiness;
use quorra_node::admin::snapshot::{Process, Snapshot};
use quorra_node::runtime::transport::PeerPath;
use quorra_ring::{Member, NodeId, Ring, RingConfig, Token};

#[derive(Parser, Debug)]
#[command(about = "The cost of one /metrics scrape of a 1,024-partition, 64-member node")]
struct Args {
    /// Scrapes to time.
    #[arg(long, default_value_t = 500)]
    iterations: usize,
    /// Members of the cluster.
    #[arg(long, default_value_t = 64)]
    members: u64,
    /// Partitions (Q).
    #[arg(long, default_value_t = 1024)]
    partitions: u32,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn ring(members: u64, partitions: u32) -> Ring {
    let config = RingConfig {
        partitions,
        replicas: 3,
    };
    let members = (1..=members).map(|i| {
        let tokens = (0..64u64)
            .map(|t| {
                let h = blake3::hash(&[i.to_le_bytes(), t.to_le_bytes()].concat());
                Token(u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()))
            })
            .collect();
        Member::new(NodeId(i), format!("zone-{}", i % 3), tokens)
    });
    Ring::new(config, members).expect("a ring")
}

fn populated_metrics() -> Metrics {
    let metrics = Metrics::new();
    let ok = Ok(Response {
        values: vec!["v".into()],
        context: Default::default(),
        receipt: Default::default(),
        answer: None,
    });
    let failed = Err(RequestError::QuorumNotReached {
        required: 2,
        succeeded: 1,
        primaries_required: 0,
        primaries_succeeded: 0,
    });
    let levels = [Level::One, Level::Two, Level::Quorum, Level::All];
    for level in levels {
        let c = Consistency::both(level);
        let requests = [
            Request::Get {
                key: "k".into(),
                consistency: c,
            },
            Request::Put {
                key: "k".into(),
                value: "v".into(),
                context: Default::default(),
                consistency: c,
            },
            Request::Delete {
                key: "k".into(),
                context: Default::default(),
                consistency: c,
            },
        ];
        for r in &requests {
            for source in [Source::Sdk, Source::Resp] {
                for outcome in [&ok, &failed] {
                    metrics.record_request(
                        RequestKind::of(r),
                        source,
                        outcome,
                        Duration::from_millis(2),
                    );
                }
            }
        }
    }
    for command in [
        "get", "set", "del", "mget", "mset", "incrby", "expire", "ttl", "ping", "info",
    ] {
        metrics.record_command(command, true, Duration::from_micros(800));
        metrics.record_command(command, false, Duration::from_millis(20));
    }
    metrics.record_flush(Duration::from_millis(1));
    metrics
}

fn snapshot(members: u64) -> Snapshot {
    let peers = 2..=members;
    Snapshot {
        status: ClusterStatus {
            node: 1,
            cluster: "bench".into(),
            members: (1..=members)
                .map(|i| MemberStatus {
                    id: i,
                    address: format!("10.0.{}.{}:7401", i / 250, i % 250),
                    zone: format!("zone-{}", i % 3),
                    state: if i % 17 == 0 { "down" } else { "normal" }.into(),
                    share: 1.0 / members as f64,
                    storage_failing: false,
                    phi: 0.5,
                    heartbeat_age_secs: Some(0.7),
                })
                .collect(),
            ..ClusterStatus::default()
        },
        paths: peers
            .map(|p| PeerPath {
                peer: NodeId(p),
                rtt: Duration::from_micros(300),
                sent_packets: 1_000_000,
                lost_packets: 12,
            })
            .collect(),
        ..Snapshot::default()
    }
}

fn main() {
    let args = Args::parse();
    let ring = ring(args.members, args.partitions);
    let metrics = populated_metrics();
    let snapshot = snapshot(args.members);
    let mut times = Vec::with_capacity(args.iterations);
    let mut bytes = 0;
    for _ in 0..args.iterations {
        let started = Instant::now();
        let ready = readiness(
            NodeId(1),
            "normal",
            false,
            std::slice::from_ref(&ring),
            |n| n.0 % 17 != 0,
        );
        let mut s = snapshot.clone();
        s.ready = ready.ready;
        s.partitions_without_quorum = ready.partitions_without_quorum;
        let page = metrics.render(s, Process::read()).expect("encoded");
        times.push(started.elapsed());
        bytes = page.len();
        std::hint::black_box(page);
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "scrape of a node with {} partitions and {} members: {} bytes ({:.1} KiB), \
         {} series lines; time p50 {:?}, p99 {:?}, max {:?} over {} scrapes",
        args.partitions,
        args.members,
        bytes,
        bytes as f64 / 1024.0,
        metrics
            .render(snapshot.clone(), Process::read())
            .expect("encoded")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count(),
        at(0.5),
        at(0.99),
        times[times.len() - 1],
        times.len()
    );
}
