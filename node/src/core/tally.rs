//! Counting answers towards a quorum.
//!
//! One shared helper for reads and writes (as garage has one quorum-call
//! helper): a [`Tally`] knows the replicas a request went to, their roles,
//! and who has answered. It says when the quorum is reached (total and
//! primaries), when it has become impossible, and when every replica has
//! answered, so the coordinator can reply at quorum and keep tracking the
//! stragglers for read repair and statistics.
//!
//! While ownership moves, a write's replicas form several **groups**, one
//! per distinct primary set among the active rings
//! ([`quorra_ring::Placement::write_replicas`]); a replica may be in more
//! than one. The quorum is then needed in every group: the request
//! succeeds once each has its own, and fails as soon as one cannot. A
//! tally made with [`Tally::new`] has one group of all its replicas.
//!
//! A replica may be held back ([`Tally::hold_back`]): a read asks only as
//! many replicas as its quorum needs and keeps the others in reserve
//! ([`super::read`]). A held-back replica still counts as one that could
//! answer (so the quorum is not impossible while reserves remain), is never
//! waited for (the tally settles without it) and is not blamed when the
//! request times out.

use quorra_client::{Quorum, Receipt, ReplicaAnswer, RequestError};
use quorra_ring::{NodeId, Replica, ReplicaRole};

/// Where one replica of a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Not answered yet.
    Pending,
    /// Answered successfully.
    Ok,
    /// Answered with an error, or timed out.
    Failed,
    /// Not asked (yet): a reserve.
    Unasked,
}

/// The answers of one request's replicas.
#[derive(Clone, Debug)]
pub struct Tally {
    /// Each group's members (indices into `replicas`) and quorum.
    groups: Vec<(Vec<usize>, Quorum)>,
    /// Whether the request's outcome has been given.
    decided: bool,
    replicas: Vec<(Replica, Answer)>,
    /// Order in which successful answers arrived (indices into `replicas`).
    arrivals: Vec<usize>,
}

impl Tally {
    /// A tally over `replicas` needing `quorum`.
    pub fn new(replicas: Vec<Replica>, quorum: Quorum) -> Self {
        let all = (0..replicas.len()).collect();
        Self {
            groups: vec![(all, quorum)],
            decided: false,
            replicas: replicas.into_iter().map(|r| (r, Answer::Pending)).collect(),
            arrivals: Vec::new(),
        }
    }

    /// A tally over `replicas` needing, in each group (its members' nodes,
    /// each among `replicas`), that group's quorum.
    pub fn grouped(replicas: Vec<Replica>, groups: Vec<(Vec<NodeId>, Quorum)>) -> Self {
        let groups = groups
            .into_iter()
            .map(|(members, quorum)| {
                let members = members
                    .iter()
                    .filter_map(|n| replicas.iter().position(|r| r.node == *n))
                    .collect();
                (members, quorum)
            })
            .collect();
        Self {
            groups,
            decided: false,
            replicas: replicas.into_iter().map(|r| (r, Answer::Pending)).collect(),
            arrivals: Vec::new(),
        }
    }

    /// The replicas, in the order they were chosen.
    pub fn replicas(&self) -> impl Iterator<Item = (Replica, Answer)> + '_ {
        self.replicas.iter().copied()
    }

    fn slot(&self, node: NodeId) -> Option<usize> {
        self.replicas.iter().position(|(r, _)| r.node == node)
    }

    /// The replica entry for `node`, if it is one of this request's.
    pub fn replica(&self, node: NodeId) -> Option<Replica> {
        self.slot(node).map(|i| self.replicas[i].0)
    }

    /// Records an answer from `node`. Returns false if `node` is not a
    /// replica of this request or has already answered (duplicates).
    pub fn record(&mut self, node: NodeId, ok: bool) -> bool {
        let Some(i) = self.slot(node) else {
            return false;
        };
        if self.replicas[i].1 != Answer::Pending {
            return false;
        }
        self.replicas[i].1 = if ok { Answer::Ok } else { Answer::Failed };
        if ok {
            self.arrivals.push(i);
        }
        true
    }

    /// Holds `node` back: it is not asked until [`Tally::ask`].
    pub fn hold_back(&mut self, node: NodeId) {
        if let Some(i) = self.slot(node)
            && self.replicas[i].1 == Answer::Pending
        {
            self.replicas[i].1 = Answer::Unasked;
        }
    }

    /// Takes the first held-back replica (in the order given at creation)
    /// into the request: from now on its answer is waited for.
    pub fn ask(&mut self) -> Option<Replica> {
        let (replica, answer) = self
            .replicas
            .iter_mut()
            .find(|(_, a)| *a == Answer::Unasked)?;
        *answer = Answer::Pending;
        Some(*replica)
    }

    /// Records every replica that has not answered as failed (the request
    /// timed out) and returns them.
    pub fn give_up(&mut self) -> Vec<NodeId> {
        let late: Vec<NodeId> = self.pending().collect();
        for &node in &late {
            self.record(node, false);
        }
        late
    }

    /// Nodes that have not answered yet.
    pub fn pending(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.replicas
            .iter()
            .filter(|(_, a)| *a == Answer::Pending)
            .map(|(r, _)| r.node)
    }

    fn count(&self, group: &[usize], answer: Answer, primaries_only: bool) -> usize {
        group
            .iter()
            .map(|&i| self.replicas[i])
            .filter(|(r, a)| *a == answer && (!primaries_only || r.role == ReplicaRole::Primary))
            .count()
    }

    fn group_reached(&self, (group, quorum): &(Vec<usize>, Quorum)) -> bool {
        self.count(group, Answer::Ok, false) >= quorum.total
            && self.count(group, Answer::Ok, true) >= quorum.primaries
    }

    fn group_impossible(&self, (group, quorum): &(Vec<usize>, Quorum)) -> bool {
        let could = |primaries| {
            self.count(group, Answer::Ok, primaries)
                + self.count(group, Answer::Pending, primaries)
                + self.count(group, Answer::Unasked, primaries)
        };
        could(false) < quorum.total || could(true) < quorum.primaries
    }

    /// Whether the outcome has been given.
    pub fn decided(&self) -> bool {
        self.decided
    }

    /// The outcome, the first time it is known: `Some(Ok(receipt))` once the
    /// quorum is reached, `Some(Err(..))` once it cannot be; `None` before,
    /// and ever after (the outcome is given once).
    pub fn decide(&mut self) -> Option<Result<Receipt, RequestError>> {
        if self.decided {
            return None;
        }
        let outcome = if self.reached() {
            Ok(self.receipt())
        } else if self.impossible() {
            Err(self.failure())
        } else {
            return None;
        };
        self.decided = true;
        Some(outcome)
    }

    /// The outcome at the deadline, unless it was already given: every
    /// silent replica counts as failed. Returns the silent replicas too.
    pub fn expire(&mut self) -> (Option<RequestError>, Vec<NodeId>) {
        let late = self.give_up();
        let failure = (!self.decided).then(|| {
            self.decided = true;
            self.failure()
        });
        (failure, late)
    }

    /// Whether enough replicas (and primaries) answered successfully.
    pub fn reached(&self) -> bool {
        self.groups.iter().all(|g| self.group_reached(g))
    }

    /// Whether the quorum can no longer be reached, even if every pending
    /// or held-back replica answers successfully.
    pub fn impossible(&self) -> bool {
        self.groups.iter().any(|g| self.group_impossible(g))
    }

    /// Whether every replica asked has answered or failed.
    pub fn settled(&self) -> bool {
        self.replicas.iter().all(|(_, a)| *a != Answer::Pending)
    }

    /// The error to give when the quorum was not reached.
    /// Names the counts of the group that cannot reach its quorum, or
    /// else of the first that has not reached it.
    pub fn failure(&self) -> RequestError {
        let (group, quorum) = self
            .groups
            .iter()
            .find(|g| self.group_impossible(g))
            .or_else(|| self.groups.iter().find(|g| !self.group_reached(g)))
            .unwrap_or(&self.groups[0]);
        RequestError::QuorumNotReached {
            required: quorum.total,
            succeeded: self.count(group, Answer::Ok, false),
            primaries_required: quorum.primaries,
            primaries_succeeded: self.count(group, Answer::Ok, true),
        }
    }

    /// The successful answers so far, in arrival order.
    pub fn receipt(&self) -> Receipt {
        Receipt {
            answered: self
                .arrivals
                .iter()
                .map(|&i| {
                    let r = self.replicas[i].0;
                    ReplicaAnswer {
                        node: r.node.0,
                        fallback_for: match r.role {
                            ReplicaRole::Primary => None,
                            ReplicaRole::Fallback { for_node } => Some(for_node.0),
                        },
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas() -> Vec<Replica> {
        vec![
            Replica {
                node: NodeId(1),
                role: ReplicaRole::Primary,
            },
            Replica {
                node: NodeId(2),
                role: ReplicaRole::Primary,
            },
            Replica {
                node: NodeId(4),
                role: ReplicaRole::Fallback {
                    for_node: NodeId(3),
                },
            },
        ]
    }

    #[test]
    fn reaches_quorum_and_tracks_stragglers() {
        let mut t = Tally::new(
            replicas(),
            Quorum {
                total: 2,
                primaries: 0,
            },
        );
        assert!(t.record(NodeId(4), true));
        assert!(!t.record(NodeId(4), true), "duplicates are ignored");
        assert!(!t.record(NodeId(9), true), "strangers are ignored");
        assert!(!t.reached());
        assert!(t.record(NodeId(1), true));
        assert!(t.reached() && !t.settled());
        assert_eq!(t.pending().collect::<Vec<_>>(), vec![NodeId(2)]);
        assert!(t.receipt().used_fallback());
        assert_eq!(t.receipt().answered[0].node, 4);
    }

    #[test]
    fn held_back_replicas_are_reserves_not_stragglers() {
        // Quorum 2 of {1, 2, 4}, with 4 held in reserve.
        let with_reserve = || {
            let quorum = Quorum {
                total: 2,
                primaries: 0,
            };
            let mut t = Tally::new(replicas(), quorum);
            t.hold_back(NodeId(4));
            t
        };
        let mut t = with_reserve();
        assert!(
            !t.record(NodeId(4), true),
            "a reserve's answer is not expected"
        );
        assert!(t.record(NodeId(1), true));
        assert!(t.record(NodeId(2), false));
        assert!(!t.impossible(), "the reserve can still make the quorum");
        assert!(t.settled(), "nothing asked is outstanding");
        assert_eq!(t.ask().map(|r| r.node), Some(NodeId(4)));
        assert_eq!(t.ask(), None);
        assert!(!t.settled());
        assert!(t.record(NodeId(4), true));
        assert!(t.reached() && t.settled());

        // Timed out with the reserve never asked: only the asked are late.
        let mut t = with_reserve();
        t.record(NodeId(1), true);
        let (failure, late) = t.expire();
        assert!(failure.is_some());
        assert_eq!(late, vec![NodeId(2)]);
    }

    #[test]
    fn every_group_needs_its_quorum() {
        // Old primaries {1, 2}, new {2, 3}: W = 2 in each.
        let replicas: Vec<Replica> = [1, 2, 3]
            .map(|n| Replica {
                node: NodeId(n),
                role: ReplicaRole::Primary,
            })
            .to_vec();
        let w2 = Quorum {
            total: 2,
            primaries: 0,
        };
        let groups = vec![
            (vec![NodeId(1), NodeId(2)], w2),
            (vec![NodeId(2), NodeId(3)], w2),
        ];
        let mut t = Tally::grouped(replicas.clone(), groups.clone());
        t.record(NodeId(1), true);
        t.record(NodeId(2), true);
        assert!(!t.reached(), "the new set has one copy of two");
        t.record(NodeId(3), true);
        assert!(t.reached());

        let mut t = Tally::grouped(replicas, groups);
        t.record(NodeId(1), true);
        t.record(NodeId(2), true);
        t.record(NodeId(3), false);
        assert!(t.impossible(), "the new set can no longer hold two copies");
        assert_eq!(
            t.failure(),
            RequestError::QuorumNotReached {
                required: 2,
                succeeded: 1,
                primaries_required: 0,
                primaries_succeeded: 1
            }
        );
    }

    #[test]
    fn primary_requirement_and_impossibility() {
        let mut t = Tally::new(
            replicas(),
            Quorum {
                total: 2,
                primaries: 2,
            },
        );
        t.record(NodeId(4), true);
        t.record(NodeId(1), true);
        assert!(!t.reached(), "a fallback does not count as a primary");
        t.record(NodeId(2), false);
        assert!(t.impossible());
        assert_eq!(
            t.failure(),
            RequestError::QuorumNotReached {
                required: 2,
                succeeded: 2,
                primaries_required: 2,
                primaries_succeeded: 1
            }
        );
    }
}
