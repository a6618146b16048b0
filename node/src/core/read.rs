//! Coordinated reads and read repair.
//!
//! A read goes to the key's sloppy replica set; the reply goes out as soon
//! as R replicas (PR of them primaries) answered, with every live sibling of
//! the merged answers. The read keeps tracking the stragglers until all
//! answered or the request timeout, then sends the merged state to every
//! primary that answered with less (**read repair**), so repair also happens
//! after the client has its answer.
//!
//! Two cases are deliberately not repaired:
//! - a merged tombstone is not sent to a primary that has nothing: the two
//!   read the same, and that primary may have just purged it;
//! - a read older than the request timeout (its coordinator was paused) is
//!   not used for repair: its states may predate a delete that has been
//!   purged since, and would bring deleted values back.

use std::time::Duration;

use bytes::Bytes;
use quorra_client::Quorum;
use quorra_ring::{NodeId, PartitionId, ReplicaRole};
use tracing::debug;

use super::coordinator::{Op, ReplyTo, WriteOf, response};
use super::messages::{PeerMessage, ReplicaError, RequestId};
use super::node::Node;
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
    then: Option<(WriteOf, Quorum)>,
}

impl ReadOp {
    fn record(&mut self, from: NodeId, result: Result<Option<Object>, ReplicaError>) {
        if !self.tally.record(from, result.is_ok()) {
            return; // not asked, or already answered
        }
        if let Ok(state) = result {
            if let Some(state) = &state {
                self.merged.merge(state);
            }
            self.answers.push((from, state));
        }
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
        then: Option<(WriteOf, Quorum)>,
    ) {
        self.stats.reads += 1;
        let replicas = self.replica_set(partition);
        let tally = Tally::new(replicas.clone(), quorum);
        if let Some(e) = Self::too_few(&tally) {
            self.stats.quorum_failures += 1;
            return self.reply(reply_to, Err(e));
        }
        let id = self.next_request_id();
        let mut op = ReadOp {
            reply_to,
            partition,
            key: key.clone(),
            tally,
            answers: Vec::new(),
            merged: Object::new(),
            started: now,
            then,
        };
        for replica in &replicas {
            let hint_for = match replica.role {
                ReplicaRole::Primary => None,
                ReplicaRole::Fallback { for_node } => Some(for_node),
            };
            if replica.node == self.id {
                let result = self.read_local(partition, &key, hint_for);
                op.record(self.id, result);
            } else {
                self.send(
                    replica.node,
                    PeerMessage::Read {
                        id,
                        partition,
                        key: key.clone(),
                        hint_for,
                    },
                );
            }
        }
        self.track(now, id, Op::Read(op));
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
        op.record(from, result);
        self.progress_read(now, id);
    }

    /// Replies at quorum, fails when impossible, repairs when settled.
    fn progress_read(&mut self, now: Duration, id: RequestId) {
        let Some(Op::Read(op)) = self.ops.get_mut(&id) else {
            return;
        };
        let outcome = op
            .tally
            .decide()
            .map(|r| r.map(|receipt| response(&op.merged, receipt)));
        let (reply_to, settled) = (op.reply_to, op.tally.settled());
        let then = if outcome.is_some() {
            op.then.take()
        } else {
            None
        };
        match (then, outcome) {
            (Some((write, quorum)), Some(Ok(_))) => {
                let at = (op.partition, op.key.clone());
                let read = op.merged.clone();
                self.start_write(now, reply_to, at, write, quorum, Some(read));
            }
            (_, outcome) => self.give_outcome(reply_to, outcome),
        }
        if settled && let Some(Op::Read(op)) = self.take_op(id) {
            self.finish_read(now, op);
        }
    }

    pub(super) fn read_expired(&mut self, now: Duration, mut op: ReadOp) {
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
