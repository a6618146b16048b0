//! Cleanup: once the liveness phase is quiet (every move finished), every
//! partition is held by exactly its primaries in the ring the members
//! agree on. A member that is not a primary of a partition keeps none of
//! its keys, tombstone marks or Merkle tree: an old owner that kept them
//! would waste its disk and, worse, bring back purged deletes if it ever
//! regained the partition. (Hints are covered by quiet: none is left.)

use quorra_node::storage::Store;
use quorra_ring::PartitionId;

use super::{Check, Violation};
use crate::sim::Sim;

/// Checks that no member keeps anything of a partition it does not own.
pub fn check(sim: &Sim) -> Vec<Violation> {
    let mut out = Vec::new();
    let ring = &sim.ring;
    for n in sim.nodes.iter().filter(|n| !n.departed) {
        let store = Store::new(n.engine.clone());
        let trees = n
            .node
            .as_ref()
            .map(|core| core.tree_partitions())
            .unwrap_or_default();
        let marks: Vec<PartitionId> = store
            .scan_tomb_marks(None, usize::MAX)
            .unwrap_or_default()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        for p in (0..ring.config().partitions).map(PartitionId) {
            if ring.primaries(p).any(|id| id == n.id) {
                continue;
            }
            let keys = store.scan_partition(p, None, 3).unwrap_or_default();
            let mut kept = Vec::new();
            if !keys.is_empty() {
                let names: Vec<String> = keys
                    .iter()
                    .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                    .collect();
                kept.push(format!("keys [{}]", names.join(", ")));
            }
            if marks.contains(&p) {
                kept.push("tombstone marks".to_string());
            }
            if trees.contains(&p) {
                kept.push("its Merkle tree".to_string());
            }
            if !kept.is_empty() {
                let owners: Vec<String> = ring.primaries(p).map(|id| id.to_string()).collect();
                out.push(Violation {
                    check: Check::Cleanup,
                    key: None,
                    record: None,
                    detail: format!(
                        "node {} keeps {} of partition {p}, whose primaries are [{}]",
                        n.id,
                        kept.join(", "),
                        owners.join(", ")
                    ),
                });
            }
        }
    }
    out
}
