//! Reachability of peers, from two opinions.
//!
//! - The failure detector of gossip (phi accrual), given by the driver with
//!   [`Peers::set_suspected`]: a peer whose heartbeats stopped is down.
//! - Timeouts of this node's own requests: a peer that failed to answer
//!   `down_after_failures` requests in a row is down until any message from
//!   it arrives (catching what heartbeats cannot, such as a one-way link).
//!
//! A peer is believed up when neither opinion says down. Down peers are
//! probed periodically so they can come back. "Down" is a local opinion
//! used to pick replicas (sloppy quorum); it never changes ownership.

use std::collections::BTreeMap;
use std::time::Duration;

use quorra_ring::NodeId;

#[derive(Clone, Debug)]
struct Peer {
    /// Up as far as this node's own requests tell.
    up: bool,
    /// Down in the failure detector's opinion.
    suspected: bool,
    failures: u32,
    last_heard: Option<Duration>,
}

/// What this node believes about every other member.
#[derive(Clone, Debug)]
pub struct Peers {
    me: NodeId,
    peers: BTreeMap<NodeId, Peer>,
}

impl Peers {
    /// Every member but `me` starts up (optimistically, as after a restart
    /// the first timeouts correct it).
    pub fn new(me: NodeId, members: impl IntoIterator<Item = NodeId>) -> Self {
        let peers = members
            .into_iter()
            .filter(|&n| n != me)
            .map(|n| {
                (
                    n,
                    Peer {
                        up: true,
                        suspected: false,
                        failures: 0,
                        last_heard: None,
                    },
                )
            })
            .collect();
        Self { me, peers }
    }

    /// Follows a membership change: new members start believed up,
    /// departed ones are forgotten.
    pub fn set_members(&mut self, members: impl IntoIterator<Item = NodeId>) {
        let members: std::collections::BTreeSet<NodeId> =
            members.into_iter().filter(|&n| n != self.me).collect();
        self.peers.retain(|n, _| members.contains(n));
        for n in members {
            self.peers.entry(n).or_insert(Peer {
                up: true,
                suspected: false,
                failures: 0,
                last_heard: None,
            });
        }
    }

    /// Whether `node` is believed reachable (this node always is; unknown
    /// nodes never are).
    pub fn is_up(&self, node: NodeId) -> bool {
        node == self.me || self.peers.get(&node).is_some_and(|p| p.up && !p.suspected)
    }

    /// Records the failure detector's opinion of `node`.
    pub fn set_suspected(&mut self, node: NodeId, suspected: bool) {
        if let Some(p) = self.peers.get_mut(&node) {
            p.suspected = suspected;
        }
    }

    /// Records a message from `node`. Returns true if it was believed down.
    pub fn heard_from(&mut self, node: NodeId, now: Duration) -> bool {
        let Some(peer) = self.peers.get_mut(&node) else {
            return false;
        };
        let was_down = !peer.up;
        peer.up = true;
        peer.failures = 0;
        peer.last_heard = Some(now);
        was_down
    }

    /// Records a timeout of a request to `node`. Returns true if it is now
    /// believed down and was not before.
    pub fn timed_out(&mut self, node: NodeId, threshold: u32) -> bool {
        let Some(peer) = self.peers.get_mut(&node) else {
            return false;
        };
        peer.failures = peer.failures.saturating_add(1);
        if peer.up && peer.failures >= threshold.max(1) {
            peer.up = false;
            return true;
        }
        false
    }

    /// Peers believed down, in id order.
    pub fn down(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| !p.up || p.suspected)
            .map(|(&n, _)| n)
    }

    /// Every peer (not this node), in id order.
    pub fn all(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_threshold_up_on_any_message() {
        let mut p = Peers::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
        assert!(p.is_up(NodeId(1)) && p.is_up(NodeId(2)));
        assert!(!p.is_up(NodeId(9)));
        assert!(!p.timed_out(NodeId(2), 2));
        assert!(p.timed_out(NodeId(2), 2));
        assert!(!p.is_up(NodeId(2)));
        assert_eq!(p.down().collect::<Vec<_>>(), vec![NodeId(2)]);
        assert!(p.heard_from(NodeId(2), Duration::from_secs(1)));
        assert!(p.is_up(NodeId(2)));
        assert!(!p.heard_from(NodeId(2), Duration::from_secs(2)));
    }
}
