//! Coordinated reads and read repair.
//!
//! A read goes to the key's sloppy replica set; the reply goes out as soon
//! as R replicas (PR of them primaries) answered, with every live sibling of
//! the merged answers. The read keeps tracking the stragglers until all
//! answered or the request timeout, then sends the merged state to every
//! primary that answered with less (**read repair**), so repair also happens
//! after the client has its answer.
//!
//! **Whom a read asks** ([`ReadFanout`]). By default a read asks only the
//! R replicas its quorum needs: primaries before fallbacks, this node first
//! when it is one (its answer costs no message), the others taking turns
//! read after read so the load spreads. The rest are reserves: one is asked at
//! once for each asked replica that fails, and all of them when the quorum
//! has not answered after [`Options::speculative_read_after`]
//! (Cassandra's speculative retry). A reserve is never waited for once the
//! quorum answered, and never blamed for a timeout.
//!
//! Two cases are deliberately not repaired:
//! - a merged tombstone is not sent to a primary that has nothing: the two
//!   read the same, and that primary may have just purged it;
//! - a read older than the request timeout (its coordinator was paused) is
//!   not used for repair: its states may predate a delete that has been
//!   purged since, and would bring deleted values back.

use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Consistency, Quorum};
use quorra_ring::{NodeId, PartitionId, Replica, ReplicaRole};
use tracing::debug;

use super::coordinator::{Op, ReplyTo, WriteOf, response};
use super::messages::{PeerMessage, ReplicaError, RequestId};
use super::node::Node;
use super::options::{Options, ReadFanout};
use super::tally::Tally;
use crate::version::Object;

/// A read in flight.
#[derive(Debug)]
pub(crate) struct ReadOp {
    reply_to: ReplyTo,
    partition: PartitionId,
    key: Bytes,
    tally: Tally,
    /// Successful answers: who, and what they hold.
    answers: Vec<(NodeId, Option<Object>)>,
    merged: Object,
    /// When the read started, by this node's clock.
    started: Duration,
    /// For an update that reads first: the write to start with what was
    /// read, instead of replying ([`super::update`]).
    then: Option<(WriteOf, Consistency)>,
    /// When the reserves are asked, until the outcome is given (then the
    /// timer is cancelled: a finished read does not wake the node).
    speculative_at: Option<Duration>,
}

impl ReadOp {
    /// Records an answer; false if it was not expected (not asked, or
    /// already answered).
    fn record(&mut self, from: NodeId, result: Result<Option<Object>, ReplicaError>) -> bool {
        if !self.tally.record(from, result.is_ok()) {
            return false;
        }
        if let Ok(state) = result {
            if let Some(state) = &state {
                self.merged.merge(state);
            }
            self.answers.push((from, state));
        }
        true
    }
}

/// The order in which a read asks `replicas`: primaries before fallbacks,
/// `me` first among its kind, the others rotated by `turn`.
fn read_order(me: NodeId, replicas: Vec<Replica>, turn: u64) -> Vec<Replica> {
    let (mut order, mut fallbacks): (Vec<Replica>, Vec<Replica>) = replicas
        .into_iter()
        .partition(|r| r.role == ReplicaRole::Primary);
    for group in [&mut order, &mut fallbacks] {
        let mine = group
            .iter()
            .position(|r| r.node == me)
            .map(|i| group.remove(i));
        if !group.is_empty() {
            let by = (turn % group.len() as u64) as usize;
            group.rotate_left(by);
        }
        if let Some(mine) = mine {
            group.insert(0, mine);
        }
    }
    order.extend(fallbacks);
    order
}

/// How many replicas a read with `quorum` asks at first.
fn first_asked(options: &Options, quorum: Quorum) -> usize {
    match options.read_fanout {
        ReadFanout::All => usize::MAX,
        ReadFanout::Quorum => quorum.total.max(1),
    }
}

impl Node {
    /// A read; with `then`, the read of an update, which goes on with that
    /// write once the read quorum answered.
    pub(super) fn start_read(
        &mut self,
        now: Duration,
        reply_to: ReplyTo,
        partition: PartitionId,
        key: Bytes,
        quorum: Quorum,
        then: Option<(WriteOf, Consistency)>,
    ) {
        self.stats.reads += 1;
        self.read_turn = self.read_turn.wrapping_add(1);
        let replicas = read_order(self.id, self.replica_set(partition), self.read_turn);
        let mut tally = Tally::new(replicas.clone(), quorum);
        if let Some(e) = Self::too_few(&tally) {
            self.stats.quorum_failures += 1;
            return self.reply(reply_to, Err(e));
        }
        let id = self.next_request_id();
        let asked = first_asked(&self.options, quorum).min(replicas.len());
        for reserve in &replicas[asked..] {
            tally.hold_back(reserve.node);
        }
        let speculative_at =
            (asked < replicas.len()).then(|| now + self.options.speculative_read_after);
        if let Some(at) = speculative_at {
            self.speculative_reads.insert((at, id));
        }
        let mut op = ReadOp {
            reply_to,
            partition,
            key: key.clone(),
            tally,
            answers: Vec::new(),
            merged: Object::new(),
            started: now,
            then,
            speculative_at,
        };
        let mut failed_here = 0;
        for &replica in &replicas[..asked] {
            if self.ask_replica(id, &mut op, replica) {
                failed_here += 1;
            }
        }
        self.ask_more(id, &mut op, failed_here);
        self.track(now, id, Op::Read(op));
        self.progress_read(now, id);
    }

    /// Sends read `id` to `replica`, or reads here if it is this node;
    /// true if it read here and failed.
    fn ask_replica(&mut self, id: RequestId, op: &mut ReadOp, replica: Replica) -> bool {
        let hint_for = match replica.role {
            ReplicaRole::Primary => None,
            ReplicaRole::Fallback { for_node } => Some(for_node),
        };
        if replica.node == self.id {
            let result = self.read_local(op.partition, &op.key, hint_for);
            let failed = result.is_err();
            op.record(self.id, result);
            failed
        } else {
            self.send(
                replica.node,
                PeerMessage::Read {
                    id,
                    partition: op.partition,
                    key: op.key.clone(),
                    hint_for,
                },
            );
            false
        }
    }

    /// Asks `count` more of `op`'s reserves (fewer if it runs out, more if
    /// one read here fails), unless its outcome is already given.
    fn ask_more(&mut self, id: RequestId, op: &mut ReadOp, mut count: usize) {
        while count > 0 && !op.tally.decided() {
            let Some(reserve) = op.tally.ask() else { break };
            self.stats.reserve_reads += 1;
            if !self.ask_replica(id, op, reserve) {
                count -= 1;
            }
        }
    }

    /// [`Node::ask_more`] for read `id` in flight.
    fn ask_reserves(&mut self, id: RequestId, count: usize) {
        let Some(Op::Read(mut op)) = self.take_op_if(id, |op| matches!(op, Op::Read(_))) else {
            return;
        };
        self.ask_more(id, &mut op, count);
        self.ops.insert(id, Op::Read(op));
    }

    /// Read `id`'s quorum has not answered in time: its reserves are asked.
    pub(super) fn read_speculatively(&mut self, now: Duration, id: RequestId) {
        self.ask_reserves(id, usize::MAX);
        self.progress_read(now, id);
    }

    pub(super) fn on_read_reply(
        &mut self,
        now: Duration,
        from: NodeId,
        id: RequestId,
        result: Result<Option<Object>, ReplicaError>,
    ) {
        let Some(Op::Read(op)) = self.ops.get_mut(&id) else {
            return;
        };
        let failed = result.is_err();
        if op.record(from, result) && failed {
            self.ask_reserves(id, 1);
        }
        self.progress_read(now, id);
    }

    /// Replies at quorum, fails when impossible, repairs when settled.
    fn progress_read(&mut self, now: Duration, id: RequestId) {
        let refusal = self.storage_refusal();
        let Some(Op::Read(op)) = self.ops.get_mut(&id) else {
            return;
        };
        let outcome = op
            .tally
            .decide()
            .map(|r| r.map(|receipt| response(&op.merged, receipt)));
        let (reply_to, settled) = (op.reply_to, op.tally.settled());
        let (then, no_more_reserves) = if outcome.is_some() {
            (op.then.take(), op.speculative_at.take())
        } else {
            (None, None)
        };
        if let Some(at) = no_more_reserves {
            self.speculative_reads.remove(&(at, id));
        }
        match (then, outcome) {
            // The storage failed while the update read: it writes nothing.
            (Some(_), Some(Ok(_))) if let Some(e) = refusal => {
                self.reply(reply_to, Err(e));
            }
            (Some((write, consistency)), Some(Ok(_))) => {
                let at = (op.partition, op.key.clone());
                let read = op.merged.clone();
                self.start_write(now, reply_to, at, write, consistency, Some(read));
            }
            (_, outcome) => self.give_outcome(reply_to, outcome),
        }
        if settled && let Some(Op::Read(op)) = self.take_op(id) {
            self.finish_read(now, op);
        }
    }

    pub(super) fn read_expired(&mut self, now: Duration, mut op: ReadOp) {
        // A speculative timer still set (it outlasts the request timeout)
        // finds no read when it fires, and does nothing.
        self.settle_expired(&mut op.tally, op.reply_to);
        self.finish_read(now, op);
    }

    /// Read repair: every primary that answered with less than the merged
    /// state gets it (see the module documentation for the exceptions).
    fn finish_read(&mut self, now: Duration, op: ReadOp) {
        if !self.options.read_repair || op.merged.is_empty() {
            return;
        }
        if now > op.started + self.options.request_timeout {
            self.stats.stale_repairs_skipped += 1;
            return;
        }
        for (node, state) in &op.answers {
            let primary = op
                .tally
                .replica(*node)
                .is_some_and(|r| r.role == ReplicaRole::Primary);
            if !primary {
                continue;
            }
            let stale = match state {
                None => !op.merged.is_absent(),
                Some(s) => !s.includes(&op.merged),
            };
            if !stale {
                continue;
            }
            self.stats.read_repairs += 1;
            if *node == self.id {
                if let Err(e) = self.merge_owned(now, op.partition, &op.key, &op.merged) {
                    self.stats.storage_errors += 1;
                    debug!(error = %e, "local read repair failed");
                }
            } else {
                self.send(
                    *node,
                    PeerMessage::Repair {
                        partition: op.partition,
                        key: op.key.clone(),
                        object: op.merged.clone(),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary(n: u64) -> Replica {
        Replica {
            node: NodeId(n),
            role: ReplicaRole::Primary,
        }
    }

    fn fallback(n: u64, for_node: u64) -> Replica {
        Replica {
            node: NodeId(n),
            role: ReplicaRole::Fallback {
                for_node: NodeId(for_node),
            },
        }
    }

    fn nodes(order: Vec<Replica>) -> Vec<u64> {
        order.into_iter().map(|r| r.node.0).collect()
    }

    #[test]
    fn a_read_asks_itself_first_then_primaries_in_turn_then_fallbacks() {
        let set = vec![primary(1), fallback(4, 2), primary(3), primary(5)];
        // Node 3 is a primary: it comes first, the other primaries take
        // turns behind it, and the fallback comes last.
        assert_eq!(nodes(read_order(NodeId(3), set.clone(), 0)), [3, 1, 5, 4]);
        assert_eq!(nodes(read_order(NodeId(3), set.clone(), 1)), [3, 5, 1, 4]);
        assert_eq!(nodes(read_order(NodeId(3), set.clone(), 2)), [3, 1, 5, 4]);
        // A coordinator that is not a replica asks primaries in turn.
        assert_eq!(nodes(read_order(NodeId(9), set.clone(), 1)), [3, 5, 1, 4]);
        // A coordinator that is the fallback still asks primaries first, so
        // a quorum's primary requirement is met by the first asked.
        assert_eq!(nodes(read_order(NodeId(4), set, 0)), [1, 3, 5, 4]);
    }
}
