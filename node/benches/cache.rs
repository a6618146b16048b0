//! What the object cache really holds in memory, against the estimate its
//! bound uses.
//!
//! Fills an [`ObjectCache`] of `--capacity` bytes with four times as many
//! objects of `--value-size` bytes as its estimate admits (so it evicts),
//! and prints the estimate it keeps and how much the process's resident
//! memory grew, under the allocator the `quorra` binary uses. The ratio is
//! what `storage::cache`'s per-entry overhead is set from.
//!
//! ```text
//! cargo bench -p quorra-node --bench cache -- [--value-size 1024] [--capacity-mib 256]
//! ```

// A benchmark prints its figures: that is its output, not logging.
#![allow(clippy::print_stdout)]

use clap::Parser;
use quorra_node::storage::cache::ObjectCache;
use quorra_node::version::{Actor, Object, Sibling, VersionVector};
use quorra_ring::NodeId;

/// The allocator of the `quorra` binary, so the figures are its figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Memory of Quorra's object cache against its estimate")]
struct Args {
    /// Bytes per cached value.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// The cache's bound, MiB.
    #[arg(long, default_value_t = 256)]
    capacity_mib: usize,
    /// Ignored (cargo bench passes it).
    #[arg(long)]
    bench: bool,
}

/// The process's resident memory, bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * rustix::param::page_size() as u64
}

fn main() {
    let args = Args::parse();
    let capacity = args.capacity_mib << 20;
    let before = resident();
    let cache = ObjectCache::new(capacity);
    let entries = 4 * capacity / args.value_size.max(1);
    for i in 0..entries as u64 {
        let mut object = Object::new();
        let value: Vec<u8> = (0..args.value_size)
            .map(|j| (i as usize).wrapping_add(j) as u8)
            .collect();
        object
            .update(
                &VersionVector::default(),
                Actor::new(NodeId(1), 7),
                Sibling::Value(bytes::Bytes::from(value)),
            )
            .expect("a first write");
        let mut key = vec![b'D', 0, 1, 2];
        key.extend_from_slice(format!("bench:{i:016x}").as_bytes());
        cache.insert(key, Some(object));
    }
    let grew = resident().saturating_sub(before);
    println!(
        "values of {} B, {} inserted: estimate {:.1} MiB (bound {} MiB), resident memory grew {:.1} MiB: {:.2}x the estimate",
        args.value_size,
        entries,
        cache.bytes() as f64 / (1 << 20) as f64,
        args.capacity_mib,
        grew as f64 / (1 << 20) as f64,
        grew as f64 / cache.bytes().max(1) as f64
    );
}
