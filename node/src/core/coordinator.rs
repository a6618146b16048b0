//! The coordinator: client requests in, quorum replies out.
//!
//! **Reads** go to the key's sloppy replica set (the primaries this node
//! believes up, plus a fallback for each primary it believes down). The
//! reply goes out as soon as R replicas (PR of them primaries) answered,
//! with every live sibling of the merged answers; the request keeps
//! tracking the stragglers until all answered or the request timeout, then
//! sends the merged state to every primary that answered with less (**read
//! repair**), so repair happens also after the client has its answer. A
//! merged tombstone is not sent to a primary that has nothing: the two read
//! the same, and that primary may have just purged it.
//!
//! **Writes** are coordinated by a primary: a node that is not one forwards
//! the request to the first primary it believes up, and coordinates itself
//! only when it believes every primary down. The coordinator applies the
//! write to its own copy of the key (choosing the dot's epoch as
//! [`crate::version::actor`] describes), stores it, sends the new state to
//! the other replicas, and replies once W of them (PW primaries) hold it
//! durably, counting itself once its own copy is flushed. Fallbacks keep
//! the state as a **hint** for the primary they stand in for.
//!
//! A request whose quorum becomes impossible, or is not reached by the
//! request timeout, fails with `QuorumNotReached` naming the counts. A write
//! that failed may still have been applied by the replicas that answered:
//! like Dynamo, Quorra does not roll writes back.

use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Context, Outcome, Request, RequestError, Response};
use quorra_ring::{NodeId, PartitionId, Replica, ReplicaRole};
use tracing::debug;

use super::messages::{KeyState, PeerMessage, ReplicaError, RequestId};
use super::node::{Node, Pending};
use super::tally::Tally;
use crate::storage::store::check_key;
use crate::version::{Actor, Object, Sibling, VersionVector, context};

/// Where the outcome of a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyTo {
    /// To the driver, with the client's tag.
    Client(u64),
    /// To the node that forwarded the request.
    Forwarded { node: NodeId, id: RequestId },
}

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
    replied: bool,
}

/// A write in flight.
#[derive(Debug)]
pub(crate) struct WriteOp {
    reply_to: ReplyTo,
    tally: Tally,
    /// What the client is told on success.
    response: Response,
    replied: bool,
}

/// Work this node waits on, by request id.
#[derive(Debug)]
pub(crate) enum Op {
    Read(ReadOp),
    Write(WriteOp),
    /// A client request forwarded to `node`.
    Forward {
        reply_to: ReplyTo,
        node: NodeId,
    },
    /// Hints offered to `target`, with the states sent.
    Handoff {
        target: NodeId,
        items: Vec<KeyState>,
    },
    /// A purge check: the items and the votes gathered so far.
    PurgeCheck(super::purge::PurgeRound),
    /// A probe of a peer believed down.
    Ping(NodeId),
}

/// A request after validation.
struct Checked {
    partition: PartitionId,
    key: Bytes,
    write: Option<(Sibling, VersionVector)>,
}

fn invalid(message: impl std::fmt::Display) -> RequestError {
    RequestError::Invalid(message.to_string())
}

fn check(node: &Node, request: &Request) -> Result<Checked, RequestError> {
    let key = request.key().clone();
    check_key(&key).map_err(invalid)?;
    let write = match request {
        Request::Get { .. } => None,
        Request::Put { value, context, .. } => {
            if value.len() > quorra_client::MAX_VALUE_LEN {
                return Err(invalid(format!(
                    "value is {} bytes; the limit is {}",
                    value.len(),
                    quorra_client::MAX_VALUE_LEN
                )));
            }
            Some((Sibling::Value(value.clone()), decode_context(context)?))
        }
        Request::Delete { context, .. } => Some((Sibling::Tombstone, decode_context(context)?)),
    };
    Ok(Checked {
        partition: node.ring.partition_of_key(&key),
        key,
        write,
    })
}

fn decode_context(ctx: &Context) -> Result<VersionVector, RequestError> {
    context::decode(ctx).map_err(invalid)
}

/// The answer a client sees for a state.
fn response(state: &Object, tally: &Tally) -> Response {
    Response {
        values: state.live_values().cloned().collect(),
        context: context::encode(&state.context()),
        receipt: tally.receipt(),
    }
}

impl Node {
    /// Entry point of every client request, local or forwarded.
    pub(super) fn start_request(&mut self, now: Duration, reply_to: ReplyTo, request: Request) {
        let checked = match check(self, &request) {
            Ok(c) => c,
            Err(e) => return self.reply(reply_to, Err(e)),
        };
        let consistency = request.consistency();
        let n = self.ring.effective_replicas();
        match checked.write {
            None => match consistency.read_quorum(n) {
                Ok(q) => self.start_read(now, reply_to, checked.partition, checked.key, q),
                Err(e) => self.reply(reply_to, Err(e.into())),
            },
            Some((sibling, ctx)) => {
                let quorum = match consistency.write_quorum(n) {
                    Ok(q) => q,
                    Err(e) => return self.reply(reply_to, Err(e.into())),
                };
                let coordinate_here = matches!(reply_to, ReplyTo::Forwarded { .. })
                    || self.is_primary(checked.partition);
                if !coordinate_here {
                    let primary = self
                        .ring
                        .primaries(checked.partition)
                        .find(|&n| self.peers.is_up(n));
                    if let Some(primary) = primary {
                        return self.forward(now, reply_to, primary, request);
                    }
                }
                self.start_write(
                    now,
                    reply_to,
                    checked.partition,
                    checked.key,
                    sibling,
                    ctx,
                    quorum,
                );
            }
        }
    }

    /// The replicas a request on `partition` goes to.
    fn replica_set(&self, partition: PartitionId) -> Vec<Replica> {
        if self.options.hinted_handoff {
            self.ring
                .sloppy_replicas(partition, |n| self.peers.is_up(n))
        } else {
            self.ring
                .primaries(partition)
                .filter(|&n| self.peers.is_up(n))
                .map(|node| Replica {
                    node,
                    role: ReplicaRole::Primary,
                })
                .collect()
        }
    }

    /// Fails fast when the believed-reachable replicas cannot make the quorum.
    fn too_few(tally: &Tally) -> Option<RequestError> {
        tally.impossible().then(|| tally.failure())
    }

    fn start_read(
        &mut self,
        now: Duration,
        reply_to: ReplyTo,
        partition: PartitionId,
        key: Bytes,
        quorum: quorra_client::Quorum,
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
            replied: false,
        };
        for replica in &replicas {
            let hint_for = match replica.role {
                ReplicaRole::Primary => None,
                ReplicaRole::Fallback { for_node } => Some(for_node),
            };
            if replica.node == self.id {
                let result = self.read_local(partition, &key, hint_for);
                Self::record_read(&mut op, self.id, result);
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

    fn record_read(op: &mut ReadOp, from: NodeId, result: Result<Option<Object>, ReplicaError>) {
        let ok = result.is_ok();
        if !op.tally.record(from, ok) {
            return;
        }
        if let Ok(state) = result {
            if let Some(state) = &state {
                op.merged.merge(state);
            }
            op.answers.push((from, state));
        }
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
        Self::record_read(op, from, result);
        self.progress_read(now, id);
    }

    /// Replies at quorum, fails when impossible, repairs when settled.
    fn progress_read(&mut self, now: Duration, id: RequestId) {
        let Some(Op::Read(op)) = self.ops.get_mut(&id) else {
            return;
        };
        let mut outcome = None;
        if !op.replied && op.tally.reached() {
            op.replied = true;
            outcome = Some(Ok(response(&op.merged, &op.tally)));
        } else if !op.replied && op.tally.impossible() {
            op.replied = true;
            outcome = Some(Err(op.tally.failure()));
        }
        let reply_to = op.reply_to;
        let settled = op.tally.settled();
        if let Some(outcome) = outcome {
            if outcome.is_err() {
                self.stats.quorum_failures += 1;
            }
            self.reply(reply_to, outcome);
        }
        if settled && let Some(Op::Read(op)) = self.take_op(id) {
            self.finish_read(now, op);
        }
    }

    /// Read repair: every primary that answered with less than the merged
    /// state gets it.
    fn finish_read(&mut self, now: Duration, op: ReadOp) {
        if !self.options.read_repair || op.merged.is_empty() {
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
            // A replica with nothing does not need a tombstone: absent and
            // deleted read the same, and it may have just purged it.
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

    /// The epoch this node continues for a key it knows as `known`, or a
    /// fresh one (see [`crate::version::actor`]).
    fn actor_for(&mut self, known: &Object) -> Actor {
        let mine = known
            .context()
            .iter()
            .map(|(a, _)| a)
            .filter(|a| a.node == self.id && a.incarnation() == self.incarnation)
            .max();
        if let Some(actor) = mine {
            return actor;
        }
        if self.next_epoch == u32::MAX {
            // Out of fresh epochs in this incarnation: move to the next one.
            self.incarnation = self.incarnation.wrapping_add(1);
            self.next_epoch = 1;
            if let Err(e) = self
                .store
                .put_meta("incarnation", &self.incarnation.to_be_bytes())
                .and_then(|_| self.store.flush())
            {
                debug!(error = %e, "persisting a new incarnation failed");
            }
        }
        let epoch = Actor::epoch_of(self.incarnation, self.next_epoch);
        self.next_epoch += 1;
        Actor::new(self.id, epoch)
    }

    /// Everything this node holds about a key: its own copy and any hints.
    fn local_knowledge(&self, partition: PartitionId, key: &[u8]) -> Result<Object, RequestError> {
        let storage = |e: crate::storage::StorageError| RequestError::Storage(e.to_string());
        let mut known = self
            .store
            .get(partition, key)
            .map_err(storage)?
            .unwrap_or_default();
        if self.hints.count() > 0 {
            for target in self.members() {
                if let Some(hint) = self
                    .store
                    .get_hint(target, partition, key)
                    .map_err(storage)?
                {
                    known.merge(&hint);
                }
            }
        }
        Ok(known)
    }

    #[allow(clippy::too_many_arguments)]
    fn start_write(
        &mut self,
        now: Duration,
        reply_to: ReplyTo,
        partition: PartitionId,
        key: Bytes,
        sibling: Sibling,
        ctx: VersionVector,
        quorum: quorra_client::Quorum,
    ) {
        self.stats.writes += 1;
        let replicas = self.replica_set(partition);
        let tally = Tally::new(replicas.clone(), quorum);
        if let Some(e) = Self::too_few(&tally) {
            self.stats.quorum_failures += 1;
            return self.reply(reply_to, Err(e));
        }
        let mut state = match self.local_knowledge(partition, &key) {
            Ok(k) => k,
            Err(e) => return self.reply(reply_to, Err(e)),
        };
        let actor = self.actor_for(&state);
        state.update(&ctx, actor, sibling);
        let id = self.next_request_id();
        let mut op = WriteOp {
            reply_to,
            response: response(&state, &tally),
            tally,
            replied: false,
        };
        for replica in &replicas {
            let hint_for = match replica.role {
                ReplicaRole::Primary => None,
                ReplicaRole::Fallback { for_node } => Some(for_node),
            };
            if replica.node == self.id {
                let stored = match hint_for {
                    None => self
                        .merge_owned(now, partition, &key, &state)
                        .map_err(super::replica::storage_error),
                    Some(owner) => self.merge_hint(owner, partition, &key, &state),
                };
                match stored {
                    Ok(lsn) => self.after_durable(Pending::Local { lsn, op: id }),
                    Err(e) => {
                        debug!(error = %e, "local write failed");
                        op.tally.record(self.id, false);
                    }
                }
            } else {
                self.send(
                    replica.node,
                    PeerMessage::Write {
                        id,
                        partition,
                        key: key.clone(),
                        object: state.clone(),
                        hint_for,
                    },
                );
            }
        }
        self.track(now, id, Op::Write(op));
        self.progress_write(id);
    }

    pub(super) fn on_write_reply(
        &mut self,
        _now: Duration,
        from: NodeId,
        id: RequestId,
        result: Result<(), ReplicaError>,
    ) {
        let Some(Op::Write(op)) = self.ops.get_mut(&id) else {
            return;
        };
        if let Err(ReplicaError::HintsFull) = &result {
            self.stats.hints_refused_by_fallback += 1;
        }
        op.tally.record(from, result.is_ok());
        self.progress_write(id);
    }

    /// The coordinator's own copy became durable.
    pub(super) fn local_write_durable(&mut self, id: RequestId) {
        let me = self.id;
        if let Some(Op::Write(op)) = self.ops.get_mut(&id) {
            op.tally.record(me, true);
            self.progress_write(id);
        }
    }

    fn progress_write(&mut self, id: RequestId) {
        let Some(Op::Write(op)) = self.ops.get_mut(&id) else {
            return;
        };
        let mut outcome = None;
        if !op.replied && op.tally.reached() {
            op.replied = true;
            let mut response = op.response.clone();
            response.receipt = op.tally.receipt();
            outcome = Some(Ok(response));
        } else if !op.replied && op.tally.impossible() {
            op.replied = true;
            outcome = Some(Err(op.tally.failure()));
        }
        let reply_to = op.reply_to;
        let settled = op.tally.settled();
        if let Some(outcome) = outcome {
            if outcome.is_err() {
                self.stats.quorum_failures += 1;
            }
            self.reply(reply_to, outcome);
        }
        if settled {
            self.take_op(id);
        }
    }

    fn forward(&mut self, now: Duration, reply_to: ReplyTo, primary: NodeId, request: Request) {
        self.stats.forwarded += 1;
        let id = self.next_request_id();
        self.send(primary, PeerMessage::Forward { id, request });
        self.track(
            now,
            id,
            Op::Forward {
                reply_to,
                node: primary,
            },
        );
    }

    pub(super) fn on_forward(
        &mut self,
        now: Duration,
        from: NodeId,
        id: RequestId,
        request: Request,
    ) {
        if self.forwards_seen.contains_key(&(from, id)) {
            return;
        }
        self.forwards_seen.insert((from, id), now);
        self.start_request(now, ReplyTo::Forwarded { node: from, id }, request);
    }

    pub(super) fn on_forward_reply(&mut self, from: NodeId, id: RequestId, outcome: Outcome) {
        match self.take_op(id) {
            Some(Op::Forward { reply_to, node }) if node == from => self.reply(reply_to, outcome),
            Some(other) => self.put_op(id, other),
            None => {}
        }
    }

    /// A request reached its deadline.
    pub(super) fn expire(&mut self, now: Duration, _id: RequestId, op: Op) {
        match op {
            Op::Read(mut op) => {
                let late: Vec<NodeId> = op.tally.pending().collect();
                for node in late {
                    op.tally.record(node, false);
                    self.peer_timed_out(node);
                }
                if !op.replied {
                    self.stats.quorum_failures += 1;
                    self.reply(op.reply_to, Err(op.tally.failure()));
                }
                self.finish_read(now, op);
            }
            Op::Write(mut op) => {
                let late: Vec<NodeId> = op.tally.pending().collect();
                for node in late {
                    op.tally.record(node, false);
                    if node != self.id {
                        self.peer_timed_out(node);
                    }
                }
                if !op.replied {
                    self.stats.quorum_failures += 1;
                    self.reply(op.reply_to, Err(op.tally.failure()));
                }
            }
            Op::Forward { reply_to, node } => {
                self.peer_timed_out(node);
                self.reply(
                    reply_to,
                    Err(RequestError::Unavailable(format!(
                        "node {node}, the primary the write was forwarded to, did not answer"
                    ))),
                );
            }
            Op::Handoff { target, .. } => self.handoff_expired(target),
            Op::PurgeCheck(round) => self.purge_round_expired(round),
            Op::Ping(node) => self.peer_timed_out(node),
        }
    }
}
