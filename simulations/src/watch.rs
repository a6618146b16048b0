//! `--watch-key K`: every change of one key on any node's disk, as it
//! happens, with the input that caused it.
//!
//! The checker says *that* a promise broke and shows the client's view; to
//! learn *how*, one needs the replicas' view: which message wrote which
//! dots where, which crash rolled what back. After every node input (and
//! every crash) the watch reads the key's stored state and its hints on that
//! node and prints a line to stderr when they differ from what it printed
//! last. It reads through the same [`Store`] as the checker and changes
//! nothing, so a watched run is the same run.

use std::collections::BTreeMap;
use std::time::Duration;

use quorra_node::storage::Store;
use quorra_ring::{NodeId, Ring};

use crate::sim::SimNode;
use crate::workload::key_name;

/// Longest description of the causing input printed.
const CAUSE_CHARS: usize = 400;

/// The watch on one key.
#[derive(Debug)]
pub struct Watch {
    key: usize,
    /// What was last printed per node index.
    last: BTreeMap<usize, String>,
}

impl Watch {
    /// A watch on key `key` (its index, as in `k5`).
    pub fn new(key: usize) -> Self {
        Self {
            key,
            last: BTreeMap::new(),
        }
    }

    /// Prints node `i`'s state of the key if it changed, blaming `cause`.
    pub fn observe(
        &mut self,
        now: Duration,
        ring: &Ring,
        nodes: &[SimNode],
        i: usize,
        cause: &dyn std::fmt::Debug,
    ) {
        let key = key_name(self.key);
        let partition = ring.partition_of_key(&key);
        let store = Store::new(nodes[i].engine.clone());
        let mut state = match store.get(partition, &key) {
            Ok(Some(object)) => format!("{object:?}"),
            Ok(None) => "absent".to_string(),
            Err(e) => format!("unreadable: {e}"),
        };
        for owner in nodes.iter().map(|n| n.id) {
            if let Ok(Some(hint)) = store.get_hint(owner, partition, &key) {
                state += &format!(" | hint for {owner}: {hint:?}");
            }
        }
        if self.last.get(&i) == Some(&state) {
            return;
        }
        let mut cause = format!("{cause:?}");
        if cause.len() > CAUSE_CHARS {
            let mut end = CAUSE_CHARS;
            while !cause.is_char_boundary(end) {
                end -= 1;
            }
            cause.truncate(end);
            cause.push_str("...");
        }
        eprintln!(
            "[{:>10.3}ms] k{} on node {}: {state}\n               after {cause}",
            now.as_secs_f64() * 1e3,
            self.key,
            NodeId(i as u64 + 1),
        );
        self.last.insert(i, state);
    }
}
