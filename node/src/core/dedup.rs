//! Executing a forwarded request at most once.
//!
//! A forwarded write must not be executed twice when the network delivers
//! its `Forward` twice: that would write the value under two dots, and a
//! later write that replaced the first would leave the second behind. A
//! table pruned by age is not enough, because a paused node can receive a
//! duplicate long after the original. Instead, per sender, ids above a
//! floor are remembered exactly and ids at or below it are treated as seen.
//! Request ids grow within a sender's life and jump at every restart (they
//! start from its life count, [`super::life`]), so the floor only ever
//! discards old ids; a sender restarted on an empty disk starts low again,
//! and its forwards are refused until it takes its place back at a higher
//! one. When more than [`WINDOW`] ids of
//! one sender are remembered, the floor rises to the oldest; a first copy
//! arriving below it afterwards is refused (the sender sees a timeout),
//! never executed twice.

use std::collections::{BTreeMap, BTreeSet};

use quorra_ring::NodeId;

use super::messages::RequestId;

/// Ids remembered per sender above its floor.
pub const WINDOW: usize = 1024;

#[derive(Debug, Default)]
struct Sender {
    floor: RequestId,
    seen: BTreeSet<RequestId>,
}

/// Which requests of each sender have been started.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    senders: BTreeMap<NodeId, Sender>,
}

impl Dedup {
    /// Records `(from, id)`; true if it was not seen before.
    pub(crate) fn first_time(&mut self, from: NodeId, id: RequestId) -> bool {
        let sender = self.senders.entry(from).or_default();
        if id <= sender.floor || !sender.seen.insert(id) {
            return false;
        }
        while sender.seen.len() > WINDOW {
            if let Some(oldest) = sender.seen.pop_first() {
                sender.floor = oldest;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_however_late() {
        let mut d = Dedup::default();
        let a = NodeId(1);
        assert!(d.first_time(a, 10));
        assert!(!d.first_time(a, 10));
        assert!(d.first_time(NodeId(2), 10), "senders are independent");
        for id in 11..11 + WINDOW as u64 {
            assert!(d.first_time(a, id));
        }
        assert!(!d.first_time(a, 10), "still refused after the window moved");
        assert!(!d.first_time(a, 5), "below the floor: refused");
        assert!(
            d.first_time(a, 1 << 33),
            "a new incarnation's ids are fresh"
        );
    }
}
