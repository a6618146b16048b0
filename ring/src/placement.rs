//! Placement while ownership moves: the rings that are still active, and
//! the one reads use.
//!
//! When members join or leave, a partition's primaries change from an *old*
//! set to a *new* one, and both must stay in use until the new one holds
//! the data and no node reads the old one any more. A [`Placement`] is the
//! list of rings still active, oldest first, and which of them reads use
//! (the newest whose data every member holds). Which rings those are is
//! decided elsewhere, from gossiped state (the node crate's membership);
//! this type only answers, for one partition:
//!
//! - its **owners**: the primaries of every active ring, the read ring's
//!   first. Every owner stores the partition, votes on its purges and takes
//!   writes as a primary;
//! - its **write groups** ([`Placement::write_replicas`]): one per distinct
//!   primary set among the active rings. A write succeeds only when it has
//!   its quorum in every group, so every ring a node may read from holds it;
//! - whether it is **moving** (the active rings disagree on its primaries).
//!
//! With one active ring all of this is the ring's own answer: one group of
//! its primaries, the same sloppy replicas as [`Ring::sloppy_replicas`].

use crate::member::NodeId;
use crate::partition::PartitionId;
use crate::ring::{Replica, ReplicaRole, Ring};

/// The active rings and the one reads use.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Oldest first, never empty, all of the same settings.
    rings: Vec<Ring>,
    /// Index into `rings` of the ring reads use.
    read: usize,
}

/// The replicas of a write while rings may disagree, and who counts for
/// which ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteReplicas {
    /// Every node the write goes to, once: owners believed up, then a
    /// fallback for each owner believed down.
    pub replicas: Vec<Replica>,
    /// One group per distinct primary set, each needing its own quorum.
    pub groups: Vec<WriteGroup>,
}

/// The replicas that count for one ring's primaries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteGroup {
    /// Its primaries believed up, and the fallbacks of those believed down.
    pub members: Vec<NodeId>,
    /// How many primaries the ring gives the partition (its N).
    pub replicas: usize,
}

impl Placement {
    /// A placement with one ring: nothing is moving.
    pub fn stable(ring: Ring) -> Self {
        Self {
            rings: vec![ring],
            read: 0,
        }
    }

    /// The placement of the active `rings` (oldest first), reads using
    /// `rings[read]`. Returns `None` when `rings` is empty or `read` is out
    /// of range.
    pub fn new(rings: Vec<Ring>, read: usize) -> Option<Self> {
        (read < rings.len()).then_some(Self { rings, read })
    }

    /// The ring reads use.
    pub fn read_ring(&self) -> &Ring {
        &self.rings[self.read]
    }

    /// The newest ring: where ownership is going.
    pub fn newest(&self) -> &Ring {
        self.rings.last().expect("a placement has a ring")
    }

    /// Every active ring, oldest first.
    pub fn rings(&self) -> &[Ring] {
        &self.rings
    }

    /// Whether only one ring is active.
    pub fn is_stable(&self) -> bool {
        self.rings.len() == 1
    }

    /// The distinct primary sets of partition `p` among the active rings,
    /// the read ring's first, each in its ring's preference order, with the
    /// ring's N.
    fn primary_sets(&self, p: PartitionId) -> Vec<(Vec<NodeId>, usize)> {
        let order =
            std::iter::once(self.read).chain((0..self.rings.len()).filter(|&i| i != self.read));
        let mut sets: Vec<(Vec<NodeId>, usize)> = Vec::with_capacity(self.rings.len());
        for i in order {
            let ring = &self.rings[i];
            let set: Vec<NodeId> = ring.primaries(p).collect();
            if set.is_empty() {
                // A layout with no tokens yet (a cluster being founded).
                continue;
            }
            let same = |other: &Vec<NodeId>| {
                other.len() == set.len() && set.iter().all(|n| other.contains(n))
            };
            if !sets.iter().any(|(s, _)| same(s)) {
                sets.push((set, ring.effective_replicas()));
            }
        }
        sets
    }

    /// Whether the active rings disagree on the primaries of `p`.
    pub fn moving(&self, p: PartitionId) -> bool {
        !self.is_stable() && self.primary_sets(p).len() > 1
    }

    /// The owners of `p`: the primaries of every active ring, once each,
    /// the read ring's first in its preference order.
    pub fn owners(&self, p: PartitionId) -> Vec<NodeId> {
        owners_of(&self.primary_sets(p))
    }

    /// Whether `node` owns `p` in some active ring.
    pub fn is_owner(&self, p: PartitionId, node: NodeId) -> bool {
        self.rings.iter().any(|r| r.is_primary(p, node))
    }

    /// Whether `node` gains `p`: it owns it in a ring newer than the read
    /// ring and not in the read ring. (Owning it only in an older ring is
    /// losing it: nothing to pull.)
    pub fn gains(&self, p: PartitionId, node: NodeId) -> bool {
        !self.read_ring().is_primary(p, node)
            && self.rings[self.read + 1..]
                .iter()
                .any(|r| r.is_primary(p, node))
    }

    /// The replicas of a write on `p`: every owner `is_up` accepts, and,
    /// for each owner it rejects, the next node of the newest ring's
    /// preference list that is up, owns nothing of `p` and is not yet
    /// chosen, as a fallback for that owner; grouped per primary set.
    pub fn write_replicas(&self, p: PartitionId, is_up: impl Fn(NodeId) -> bool) -> WriteReplicas {
        let sets = self.primary_sets(p);
        let owners = owners_of(&sets);
        let mut replicas: Vec<Replica> = Vec::with_capacity(owners.len());
        let mut down = Vec::new();
        for &node in &owners {
            if is_up(node) {
                replicas.push(Replica {
                    node,
                    role: ReplicaRole::Primary,
                });
            } else {
                down.push(node);
            }
        }
        let mut down = down.into_iter().peekable();
        if down.peek().is_some() {
            for node in self.newest().preference_list(p) {
                if owners.contains(&node) || !is_up(node) {
                    continue;
                }
                let Some(for_node) = down.next() else { break };
                replicas.push(Replica {
                    node,
                    role: ReplicaRole::Fallback { for_node },
                });
                if down.peek().is_none() {
                    break;
                }
            }
        }
        let groups = sets
            .into_iter()
            .map(|(set, n)| WriteGroup {
                members: replicas
                    .iter()
                    .filter(|r| match r.role {
                        ReplicaRole::Primary => set.contains(&r.node),
                        ReplicaRole::Fallback { for_node } => set.contains(&for_node),
                    })
                    .map(|r| r.node)
                    .collect(),
                replicas: n,
            })
            .collect();
        WriteReplicas { replicas, groups }
    }
}

/// Every node of `sets`, once, in the order met.
fn owners_of(sets: &[(Vec<NodeId>, usize)]) -> Vec<NodeId> {
    let mut owners = Vec::new();
    for &n in sets.iter().flat_map(|(set, _)| set) {
        if !owners.contains(&n) {
            owners.push(n);
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{Member, Token};
    use crate::ring::RingConfig;

    fn config() -> RingConfig {
        RingConfig {
            partitions: 8,
            replicas: 2,
        }
    }

    fn ring(members: &[(u64, &[u64])]) -> Ring {
        Ring::new(
            config(),
            members.iter().map(|(id, tokens)| {
                Member::new(NodeId(*id), "z", tokens.iter().map(|&t| Token(t)).collect())
            }),
        )
        .unwrap()
    }

    const Q: u64 = u64::MAX / 8 + 1;

    #[test]
    fn one_ring_answers_as_the_ring() {
        let r = ring(&[(1, &[0]), (2, &[2 * Q]), (3, &[4 * Q])]);
        let placement = Placement::stable(r.clone());
        for p in 0..8 {
            let p = PartitionId(p);
            assert!(!placement.moving(p));
            assert_eq!(placement.owners(p), r.primaries(p).collect::<Vec<_>>());
            let up = |n: NodeId| n != NodeId(2);
            let w = placement.write_replicas(p, up);
            assert_eq!(w.replicas, r.sloppy_replicas(p, up));
            assert_eq!(w.groups.len(), 1);
            assert_eq!(w.groups[0].members.len(), 2);
        }
    }

    #[test]
    fn a_join_gives_two_groups_where_primaries_change() {
        let old = ring(&[(1, &[0]), (2, &[4 * Q])]);
        let new = ring(&[(1, &[0]), (2, &[4 * Q]), (3, &[2 * Q])]);
        let placement = Placement::new(vec![old.clone(), new.clone()], 0).unwrap();
        // Partition 1 (start Q): old primaries 2 then 1; new 3 then 2.
        let p = PartitionId(1);
        assert!(placement.moving(p));
        assert_eq!(placement.owners(p), vec![NodeId(2), NodeId(1), NodeId(3)]);
        let w = placement.write_replicas(p, |_| true);
        assert_eq!(w.replicas.len(), 3);
        assert_eq!(w.groups.len(), 2);
        assert_eq!(w.groups[0].members, vec![NodeId(2), NodeId(1)]);
        assert_eq!(w.groups[1].members, vec![NodeId(2), NodeId(3)]);
        // Node 3 gains partition 1; node 1 loses it and gains nothing.
        assert!(placement.gains(p, NodeId(3)));
        assert!(!placement.gains(p, NodeId(1)) && !placement.gains(p, NodeId(2)));
        // Once reads use the new ring, nobody gains it: node 1, owner in
        // the old ring only, has nothing to pull.
        let switched = Placement::new(vec![old.clone(), new.clone()], 1).unwrap();
        assert!((1..=3).all(|n| !switched.gains(p, NodeId(n))));
        // Partition 3 (start 3Q): 2 then 1 in both rings.
        assert!(!placement.moving(PartitionId(3)));
        assert_eq!(
            placement
                .write_replicas(PartitionId(3), |_| true)
                .groups
                .len(),
            1
        );
    }

    #[test]
    fn a_down_owner_gets_a_fallback_that_owns_nothing_there() {
        let old = ring(&[(1, &[0]), (2, &[4 * Q]), (4, &[6 * Q])]);
        let new = ring(&[(1, &[0]), (2, &[4 * Q]), (3, &[2 * Q]), (4, &[6 * Q])]);
        let placement = Placement::new(vec![old, new], 1).unwrap();
        let p = PartitionId(1);
        // Old: 2, 4; new: 3, 2. Node 3 is down.
        let w = placement.write_replicas(p, |n| n != NodeId(3));
        let fallback = w
            .replicas
            .iter()
            .find(|r| matches!(r.role, ReplicaRole::Fallback { .. }))
            .unwrap();
        assert_eq!(fallback.node, NodeId(1));
        assert_eq!(
            fallback.role,
            ReplicaRole::Fallback {
                for_node: NodeId(3)
            }
        );
        // The read ring (the new one) comes first; the fallback counts for it.
        assert_eq!(w.groups[0].members, vec![NodeId(2), NodeId(1)]);
        assert_eq!(w.groups[1].members, vec![NodeId(2), NodeId(4)]);
    }
}
