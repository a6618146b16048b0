//! Anti-entropy efficiency: two replicas of `--keys` keys that differ in d
//! keys (the second lacks them, as a replica that missed writes), for each
//! d of `--differ`. Two real [`Node`] cores exchange trees over an
//! instantaneous in-process network (no latency, no loss), so what is
//! measured is what anti-entropy itself costs:
//!
//! - bytes: every anti-entropy message encoded as the runtime encodes it
//!   (rmp-serde; QUIC framing not counted), split into tree (roots,
//!   branches, segments), key lists, and states;
//! - the tree rebuild of all keys from storage;
//! - time: when the second replica had every key, in schedule time (each
//!   partition is compared once per `--interval-secs`, the default 30), and
//!   the CPU time the exchanges took.
//!
//! ```text
//! cargo bench -p quorra-node --bench anti_entropy -- [--keys 1000000]
//!     [--value-size 100] [--differ 1,100,10000] [--interval-secs 30]
//! ```

// A benchmark prints its figures: that is its output, not logging.
#![allow(clippy::print_stdout)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use quorra_node::core::{AeAnswer, AeStep, Node, Options, PeerMessage};
use quorra_node::storage::memory::MemoryEngine;
use quorra_node::storage::store::Change;
use quorra_node::storage::{Store, SyncMode};
use quorra_node::version::{Actor, Object, Sibling, VersionVector};
use quorra_ring::{Member, NodeId, Ring, RingConfig, Token};

#[derive(Parser, Debug)]
#[command(about = "Bytes and time Quorra's anti-entropy takes to repair d keys")]
struct Args {
    /// Keys each replica should hold.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Numbers of keys the second replica lacks, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,10000")]
    differ: Vec<usize>,
    /// Anti-entropy interval, in seconds of schedule time.
    #[arg(long, default_value_t = 30)]
    interval_secs: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:010}").into_bytes()
}

/// Fills a store with `keys` keys, skipping those `skip` says.
fn fill(store: &Store, ring: &Ring, args: &Args, skip: impl Fn(usize) -> bool) {
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let actor = Actor::new(NodeId(1), Actor::epoch_of(1, 1));
    let mut batch: Vec<(quorra_ring::PartitionId, Vec<u8>, Object)> = Vec::new();
    for i in (0..args.keys).filter(|&i| !skip(i)) {
        let k = key(i);
        let mut o = Object::new();
        o.update(
            &VersionVector::default(),
            actor,
            Sibling::Value(value.clone()),
        )
        .expect("a first dot");
        batch.push((ring.partition_of_key(&k), k, o));
        if batch.len() == 4096 {
            apply(store, &mut batch);
        }
    }
    apply(store, &mut batch);
}

fn apply(store: &Store, batch: &mut Vec<(quorra_ring::PartitionId, Vec<u8>, Object)>) {
    let changes: Vec<Change<'_>> = batch
        .iter()
        .map(|(p, k, o)| Change::Put {
            partition: *p,
            key: k,
            object: o,
            encoded: None,
        })
        .collect();
    store.apply(&changes).expect("memory store");
    batch.clear();
}

#[derive(Default, Debug)]
struct Bytes3 {
    tree: usize,
    keys: usize,
    states: usize,
    messages: usize,
}

fn count(bytes: &mut Bytes3, message: &PeerMessage) {
    let size = rmp_serde::to_vec(message).expect("encodes").len();
    bytes.messages += 1;
    match message {
        PeerMessage::AntiEntropy { step, .. } => match step {
            AeStep::Root(_) | AeStep::Branches(_) => bytes.tree += size,
            AeStep::Keys { .. } => bytes.keys += size,
            AeStep::Push(_) => bytes.states += size,
        },
        PeerMessage::AntiEntropyReply { result, .. } => match result {
            Ok(AeAnswer::Delta { .. }) => bytes.states += size,
            _ => bytes.tree += size,
        },
        _ => bytes.messages -= 1,
    }
}

fn run(args: &Args, ring: &Ring, d: usize) {
    let every = (args.keys / d.max(1)).max(1);
    let missing = |i: usize| i.is_multiple_of(every) && i / every < d;
    let stores: Vec<Store> = (0..2)
        .map(|_| Store::new(Arc::new(MemoryEngine::new())))
        .collect();
    fill(&stores[0], ring, args, |_| false);
    fill(&stores[1], ring, args, missing);
    let options = Options {
        anti_entropy_interval: Duration::from_secs(args.interval_secs),
        anti_entropy_bytes_per_sec: 0,
        sync: SyncMode::Periodic {
            interval: Duration::from_millis(10),
        },
        ..Options::default()
    };
    let mut now = Duration::ZERO;
    let mut nodes: Vec<Node> = (0..2)
        .map(|i| {
            Node::new(
                NodeId(i + 1),
                ring.clone(),
                stores[i as usize].clone(),
                options.clone(),
                now,
            )
            .expect("node starts")
        })
        .collect();
    let started = Instant::now();
    let scanned = nodes[0].build_anti_entropy_trees().expect("trees");
    let rebuild = started.elapsed();

    let mut bytes = Bytes3::default();
    let mut cpu = Duration::ZERO;
    let mut converged_at = None;
    let horizon = Duration::from_secs(args.interval_secs * 2 + 10);
    while now < horizon {
        let tick = Instant::now();
        let mut queue: VecDeque<(usize, usize, PeerMessage)> = VecDeque::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            node.handle_timeout(now);
            while let Some((to, m)) = node.poll_transmit() {
                queue.push_back((i, to.0 as usize - 1, m));
            }
        }
        while let Some((from, to, message)) = queue.pop_front() {
            count(&mut bytes, &message);
            nodes[to].handle_message(now, NodeId(from as u64 + 1), message);
            while let Some((next, m)) = nodes[to].poll_transmit() {
                queue.push_back((to, next.0 as usize - 1, m));
            }
        }
        for node in &mut nodes {
            if node.poll_flush(now) {
                node.store().flush().expect("memory flush");
                node.handle_flushed(now);
            }
        }
        cpu += tick.elapsed();
        if converged_at.is_none() && nodes[1].stats().ae_keys_repaired >= d as u64 {
            converged_at = Some(now);
        }
        now = nodes
            .iter()
            .map(Node::poll_timeout)
            .min()
            .expect("two nodes")
            .max(now + Duration::from_micros(1));
    }
    let held = (0..args.keys)
        .filter(|&i| {
            let k = key(i);
            stores[1]
                .get(ring.partition_of_key(&k), &k)
                .expect("reads")
                .is_some()
        })
        .count();
    assert_eq!(held, args.keys, "the second replica has every key");
    let pairs = ring.partitioner().count() as usize;
    let payload = d * (key(0).len() + args.value_size);
    let total = bytes.tree + bytes.keys + bytes.states;
    println!(
        "d = {d:>6}: {total:>10} bytes in {} messages: tree {} ({:.0} B per partition pair, goal < 64 KiB), \
         key lists {}, states {}; keys+states = {:.2} x d x (key+value) (goal <= 4); \
         repaired after {:.1} s of schedule, {:.0} ms of CPU over {} s of schedule",
        bytes.messages,
        bytes.tree,
        bytes.tree as f64 / pairs as f64,
        bytes.keys,
        bytes.states,
        (bytes.keys + bytes.states) as f64 / payload.max(1) as f64,
        converged_at.map_or(f64::NAN, |t| t.as_secs_f64()),
        cpu.as_secs_f64() * 1e3,
        horizon.as_secs(),
    );
    if d == args.differ[0] {
        println!(
            "tree rebuild from storage: {scanned} keys in {:.2} s ({:.0} keys/s)",
            rebuild.as_secs_f64(),
            scanned as f64 / rebuild.as_secs_f64()
        );
    }
}

fn main() {
    let args = Args::parse();
    let config = RingConfig {
        partitions: quorra_ring::DEFAULT_PARTITIONS,
        replicas: 2,
    };
    let ring = Ring::new(
        config,
        [
            Member::new(NodeId(1), "a", vec![Token(0)]),
            Member::new(NodeId(2), "b", vec![Token(u64::MAX / 2)]),
        ],
    )
    .expect("a ring of two");
    println!(
        "two replicas of {} keys ({}-byte keys, {}-byte values), {} partitions, interval {} s",
        args.keys,
        key(0).len(),
        args.value_size,
        config.partitions,
        args.interval_secs
    );
    for &d in &args.differ {
        run(&args, &ring, d);
    }
}
