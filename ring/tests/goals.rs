//! The balance and movement goals of the foundation issue, at default
//! settings (Q = 1024, N = 3, T = 64, one zone): for every cluster size from
//! 3 to 64 the largest node holds at most 10% more partition-replicas than
//! the mean, and each join moves at most 1.2× the ideal 1/(S+1), all of it
//! onto the joining node. Allocation is deterministic, so this is a
//! regression test of the allocator, not a statistical one.

use quorra_ring::plan::{join, movement, plan_zone};
use quorra_ring::{DEFAULT_TOKENS_PER_NODE, NodeId, Ring, RingConfig};

#[test]
fn default_rings_from_3_to_64_nodes_are_balanced_and_joins_move_little() {
    let mut ring = Ring::new(RingConfig::default(), Vec::new()).unwrap();
    for id in 1..=64u64 {
        let next = join(
            &ring,
            NodeId(id),
            &plan_zone(id, 1),
            DEFAULT_TOKENS_PER_NODE,
        )
        .unwrap();
        let size = id;
        if size >= 3 {
            assert!(
                next.balance() <= 1.10,
                "{size} nodes: balance {:.3}",
                next.balance()
            );
        }
        if size >= 4 {
            let moved = movement(&ring, &next);
            let ideal = 1.0 / size as f64;
            assert_eq!(moved.onto_existing_nodes, 0, "{size} nodes");
            assert!(
                moved.fraction() <= 1.2 * ideal,
                "{size} nodes: moved {:.4}, ideal {:.4}",
                moved.fraction(),
                ideal
            );
        }
        ring = next;
    }
}
