//! `GET /ready`: whether a load balancer should send this node traffic.
//!
//! A node is ready when three things hold, checked in this order so the
//! reason given is the first an operator must fix:
//!
//! 1. its own member state is `normal` (not joining, leaving or left);
//! 2. its storage is not failing (a full disk or an I/O error: it would
//!    refuse every write);
//! 3. for every partition it replicates, a quorum of that partition's
//!    primaries is believed up, itself included, in every active ring:
//!    during a move a write must reach a quorum of the old owners and of
//!    the new ones. The quorum is the coordinator's: ⌊N/2⌋ + 1 of the
//!    largest active ring, capped at a smaller ring's size (a cluster
//!    growing to N has smaller rings behind it).
//!
//! A node that fails (3) can still coordinate requests for keys whose
//! quorum is reachable, and `one` requests for the others; it is "not
//! ready" because a client sent there at the default `quorum` may fail.
//! The check is a pure function of what the node already knows (the rings
//! and its failure detector), computed on demand: nothing is tracked for
//! it. It allocates only for the partitions that fail it.

use quorra_ring::{NodeId, Ring};
use serde::Serialize;

/// The answer of `/ready`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// Whether the node should get traffic.
    pub ready: bool,
    /// This node's member state (`normal`, `joining`, ...).
    pub state: String,
    /// Whether its storage is failing.
    pub storage_failing: bool,
    /// Partitions this node replicates.
    pub partitions: u32,
    /// Of those, how many have fewer than a quorum of primaries up.
    pub partitions_without_quorum: u32,
    /// The first such partition, with the primaries believed down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<NoQuorum>,
    /// Why it is not ready; empty when it is.
    pub reason: String,
}

/// One partition whose quorum is not reachable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoQuorum {
    /// The partition.
    pub partition: u32,
    /// Its primaries believed down, in preference order.
    pub down: Vec<u64>,
    /// Primaries up, and how many a quorum needs.
    pub up: u32,
    /// A quorum.
    pub needed: u32,
}

/// Judges readiness from the node's state, its storage, and the active
/// `rings` (oldest first, as [`quorra_ring::Placement::rings`] gives them)
/// with what the failure detector believes (`is_up` of this node is not
/// asked).
pub fn readiness(
    me: NodeId,
    state: &str,
    storage_failing: bool,
    rings: &[Ring],
    is_up: impl Fn(NodeId) -> bool,
) -> Readiness {
    let largest = rings
        .iter()
        .map(Ring::effective_replicas)
        .max()
        .unwrap_or(0);
    let quorum = largest / 2 + 1;
    let mut partitions = 0;
    let mut without = 0;
    let mut example = None;
    let all = rings.first().map(|r| r.partitioner().iter());
    for p in all.into_iter().flatten() {
        if !rings.iter().any(|r| r.is_primary(p, me)) {
            continue;
        }
        partitions += 1;
        let mut failed = false;
        for ring in rings {
            let needed = quorum.min(ring.effective_replicas());
            let up = ring.primaries(p).filter(|&n| n == me || is_up(n)).count();
            if up >= needed {
                continue;
            }
            failed = true;
            example.get_or_insert_with(|| NoQuorum {
                partition: p.0,
                down: ring
                    .primaries(p)
                    .filter(|&n| n != me && !is_up(n))
                    .map(|n| n.0)
                    .collect(),
                up: up as u32,
                needed: needed as u32,
            });
        }
        without += u32::from(failed);
    }
    let reason = if state != "normal" {
        format!("this node is {state}, not normal")
    } else if storage_failing {
        "this node's storage is failing (see `quorra status`)".to_string()
    } else if partitions == 0 {
        "this node replicates no partition yet".to_string()
    } else if let Some(e) = &example {
        format!(
            "{without} of the {partitions} partitions this node replicates have fewer than a \
             quorum of primaries up (partition {}: {} of {} needed up; down: {:?})",
            e.partition, e.up, e.needed, e.down
        )
    } else {
        String::new()
    };
    Readiness {
        ready: reason.is_empty(),
        state: state.to_string(),
        storage_failing,
        partitions,
        partitions_without_quorum: without,
        example,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use quorra_ring::{Member, RingConfig, Token};

    use super::*;

    fn ring(nodes: u64) -> Ring {
        let config = RingConfig {
            partitions: 64,
            replicas: 3,
        };
        let members = (1..=nodes).map(|i| {
            let tokens = (0..8)
                .map(|t| Token(i * 1_000_003 + t * (u64::MAX / 8)))
                .collect();
            Member::new(NodeId(i), "z", tokens)
        });
        Ring::new(config, members).unwrap()
    }

    #[test]
    fn a_normal_node_with_every_peer_up_is_ready() {
        let r = readiness(NodeId(1), "normal", false, &[ring(3)], |_| true);
        assert!(r.ready, "{r:?}");
        assert_eq!(r.partitions, 64);
        assert_eq!(r.partitions_without_quorum, 0);
        assert!(r.reason.is_empty());
    }

    #[test]
    fn one_peer_down_of_three_leaves_every_quorum() {
        let r = readiness(NodeId(1), "normal", false, &[ring(3)], |n| n != NodeId(2));
        assert!(r.ready, "{r:?}");
    }

    #[test]
    fn two_peers_down_of_three_is_not_ready_and_says_which() {
        let r = readiness(NodeId(1), "normal", false, &[ring(3)], |_| false);
        assert!(!r.ready);
        assert_eq!(r.partitions_without_quorum, 64);
        let e = r.example.as_ref().unwrap();
        assert_eq!((e.up, e.needed), (1, 2));
        let mut down = e.down.clone();
        down.sort_unstable();
        assert_eq!(down, vec![2, 3]);
        assert!(r.reason.contains("fewer than a quorum"), "{}", r.reason);
    }

    #[test]
    fn in_a_larger_ring_only_the_partitions_shared_with_the_dead_fail() {
        // Six nodes: nodes 2 and 3 down breaks the partitions whose
        // primaries include both, not the others.
        let ring = ring(6);
        let r = readiness(
            NodeId(1),
            "normal",
            false,
            std::slice::from_ref(&ring),
            |n| n != NodeId(2) && n != NodeId(3),
        );
        let expected = ring
            .partitioner()
            .iter()
            .filter(|&p| {
                ring.is_primary(p, NodeId(1))
                    && ring.is_primary(p, NodeId(2))
                    && ring.is_primary(p, NodeId(3))
            })
            .count() as u32;
        assert_eq!(r.partitions_without_quorum, expected);
        assert_eq!(r.ready, expected == 0);
    }

    #[test]
    fn a_move_is_judged_on_every_ring_it_writes() {
        // Growing from one node to two: writes need both (a quorum of the
        // larger ring), so with node 2 down node 1 is not ready, although
        // the old ring alone (node 1) would be.
        let (old, new) = (ring(1), ring(2));
        let r = readiness(
            NodeId(1),
            "normal",
            false,
            std::slice::from_ref(&old),
            |_| false,
        );
        assert!(r.ready, "{r:?}");
        let r = readiness(NodeId(1), "normal", false, &[old, new], |_| false);
        assert!(!r.ready);
        assert_eq!(r.partitions_without_quorum, r.partitions);
        let e = r.example.unwrap();
        assert_eq!((e.up, e.needed, e.down), (1, 2, vec![2]));
    }

    #[test]
    fn state_and_storage_come_first() {
        let r = readiness(NodeId(1), "joining", false, &[ring(3)], |_| true);
        assert!(!r.ready);
        assert!(r.reason.contains("joining"));
        let r = readiness(NodeId(1), "normal", true, &[ring(3)], |_| true);
        assert!(!r.ready);
        assert!(r.reason.contains("storage"));
    }
}
