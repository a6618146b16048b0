//! Group-commit benchmark of the storage engines.
//!
//! Each engine receives `--writes` puts of `--value-size`-byte values under
//! random keys, in groups of `--batch` puts followed by one flush (what the
//! node does with `--fsync always`: apply a batch of requests, flush once,
//! acknowledge them all). Prints durable writes per second, the latency of a
//! whole group (apply + flush) as p50/p99/p999, the flush alone, CPU time
//! per write (all threads of the process, so background compaction counts)
//! and disk bytes afterwards.
//!
//! ```text
//! cargo bench -p quorra-node --bench storage -- [--engines fjall,sled,memory]
//!     [--value-size 1024] [--batch 64] [--writes 64000] [--dir PATH]
//! ```

// A benchmark prints its figures: that is its output, not logging.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use quorra_node::storage::{EngineKind, Store, open_engine};
use quorra_node::version::{Actor, Object, Sibling, VersionVector};
use quorra_ring::{NodeId, Partitioner};

#[derive(Parser, Debug)]
#[command(about = "Group-commit benchmark of Quorra's storage engines")]
struct Args {
    /// Engines to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "fjall,sled,memory")]
    engines: Vec<EngineKind>,
    /// Bytes per value.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Puts per flush.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Total puts per engine.
    #[arg(long, default_value_t = 64_000)]
    writes: usize,
    /// Directory for the databases (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// cargo bench passes --bench; accepted and ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let args = Args::parse();
    println!(
        "{} puts of {} B values, {} puts per flush",
        args.writes, args.value_size, args.batch
    );
    println!(
        "{:<7} {:>11} {:>28} {:>20} {:>10} {:>12}  durability",
        "engine",
        "writes/s",
        "group p50/p99/p999 (us)",
        "flush p50/p99 (us)",
        "cpu us/w",
        "disk MiB"
    );
    for kind in &args.engines {
        let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::tempdir_in(base).expect("temporary directory");
        run(*kind, dir.path(), &args);
    }
}

fn run(kind: EngineKind, dir: &Path, args: &Args) {
    let store = Store::new(open_engine(kind, dir).expect("open engine"));
    let partitioner = Partitioner::new(1024).unwrap();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let objects: Vec<Object> = (0..16)
        .map(|_| {
            let value: Vec<u8> = (0..args.value_size).map(|_| next() as u8).collect();
            let mut o = Object::new();
            o.update(
                &VersionVector::new(),
                Actor::new(NodeId(1), 0),
                Sibling::Value(Bytes::from(value)),
            )
            .unwrap();
            o
        })
        .collect();
    let mut group_us = Vec::new();
    let mut flush_us = Vec::new();
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut written = 0;
    while written < args.writes {
        let group = Instant::now();
        for _ in 0..args.batch.min(args.writes - written) {
            let key = format!("user:{:016x}", next());
            let partition = partitioner.of_key(key.as_bytes());
            store
                .put(partition, key.as_bytes(), &objects[written % objects.len()])
                .expect("put");
            written += 1;
        }
        let flush = Instant::now();
        store.flush().expect("flush");
        flush_us.push(flush.elapsed().as_micros() as u64);
        group_us.push(group.elapsed().as_micros() as u64);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let durability = store.durability();
    drop(store);
    group_us.sort_unstable();
    flush_us.sort_unstable();
    println!(
        "{:<7} {:>11.0} {:>28} {:>20} {:>10.1} {:>12.1}  {}",
        kind.name(),
        written as f64 / elapsed.as_secs_f64(),
        format!(
            "{}/{}/{}",
            pct(&group_us, 50.0),
            pct(&group_us, 99.0),
            pct(&group_us, 99.9)
        ),
        format!("{}/{}", pct(&flush_us, 50.0), pct(&flush_us, 99.0)),
        cpu.as_secs_f64() * 1e6 / written as f64,
        dir_bytes(dir) as f64 / (1024.0 * 1024.0),
        durability,
    );
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// User + system CPU time of the whole process, from /proc (Linux).
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    let Some(after_comm) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are utime and stime; after the comm field
    // they are at 11 and 12 (0-based). Ticks are 1/100 s on Linux.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
