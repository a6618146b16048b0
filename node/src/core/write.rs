//! Coordinated writes (puts and deletes).
//!
//! The coordinator applies the client's write to its copy of the key with a
//! new dot, **stores its own copy first**, then sends the new state to the
//! other replicas of the sloppy set, and replies once W of them (PW
//! primaries) hold it durably, counting itself once its own copy is
//! flushed. Fallbacks keep the state as a hint for the primary they stand
//! in for.
//!
//! Which actor issues the dot ([`crate::version::actor`]): a primary
//! continues its epoch of the current incarnation if its copy of the key
//! has one. That copy holds every dot the epoch issued for the key, because
//! the coordinator stores each write before sending it and a primary that
//! cannot store its copy fails the request without sending anything. Every
//! other coordinator (a fallback, or a node coordinating while every primary
//! looks down) keeps no such record, so it always opens a fresh epoch. Dots
//! are therefore never issued twice.
//!
//! A write that failed may still have been applied by the replicas that
//! answered: like Dynamo, Quorra does not roll writes back.

use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Consistency, Quorum, Receipt, RequestError, Response};
use quorra_ring::{NodeId, PartitionId, ReplicaRole};
use tracing::debug;

use super::coordinator::{Op, ReplyTo, WriteOf, response};
use super::life::persist_incarnation;
use super::messages::{PeerMessage, ReplicaError, RequestId};
use super::node::{Node, Pending};
use super::tally::Tally;
use super::update::{Applied, Change};
use crate::version::{Actor, Object, Sibling};

/// A write in flight.
#[derive(Debug)]
pub(crate) struct WriteOp {
    reply_to: ReplyTo,
    /// The placement generation it started under (see
    /// [`Node::older_writes_in_flight`]).
    pub(super) generation: u64,
    tally: Tally,
    /// What the client is told on success (the receipt is filled in then).
    response: Response,
}

/// What applying a write did.
enum Applying {
    /// The state changed; an update's answer.
    Written(Option<Bytes>),
    /// The update changes nothing; its answer.
    Kept(Bytes),
}

impl Node {
    /// The actor for a write this node coordinates as a primary: its epoch
    /// of this incarnation if its copy of the key has one it may continue
    /// (not one from before the key was purged, see [`super::purged`]),
    /// else a fresh one.
    fn primary_actor(
        &mut self,
        owned: &Object,
        partition: PartitionId,
        key: &[u8],
    ) -> Result<Actor, RequestError> {
        let from = self.purged.continuable_from(partition, key);
        let mine = owned
            .context()
            .iter()
            .map(|(a, _)| a)
            .filter(|a| a.node == self.id && a.incarnation() == self.incarnation && a.epoch >= from)
            .max();
        match mine {
            Some(actor) => Ok(actor),
            None => self.fresh_actor(),
        }
    }

    /// An epoch this node never used before.
    fn fresh_actor(&mut self) -> Result<Actor, RequestError> {
        if self.next_epoch == u32::MAX {
            // Out of fresh epochs in this incarnation: move to the next one,
            // durably, before issuing anything from it.
            let next = self.incarnation.wrapping_add(1);
            persist_incarnation(&self.store, next)
                .map_err(|e| RequestError::Storage(e.to_string()))?;
            self.incarnation = next;
            self.next_epoch = 1;
        }
        let epoch = Actor::epoch_of(self.incarnation, self.next_epoch);
        self.next_epoch += 1;
        Ok(Actor::new(self.id, epoch))
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

    /// Applies the client's write, or computes and applies an update, on
    /// `state` with a suitable actor.
    fn apply_write(
        &mut self,
        state: &mut Object,
        at: (PartitionId, &[u8]),
        primary: bool,
        write: &WriteOf,
    ) -> Result<Applying, RequestError> {
        let mut actor = if primary {
            self.primary_actor(state, at.0, at.1)?
        } else {
            self.fresh_actor()?
        };
        // A coordinator that is not a primary starts on a fresh actor.
        let mut renewed = !primary;
        let mut exhausted = None;
        // Again with a fresh actor when the updater asks for one, or when
        // this epoch can issue no more dots for the key.
        for _ in 0..3 {
            let (sibling, ctx, answer) = match write {
                WriteOf::Given(sibling, ctx) => (sibling.clone(), ctx.clone(), None),
                WriteOf::Update(update) => match self.run_updater(state, update, actor)? {
                    Applied { fresh_writer, .. } if fresh_writer && !renewed => {
                        actor = self.fresh_actor()?;
                        renewed = true;
                        continue;
                    }
                    Applied {
                        change: Change::Keep,
                        answer,
                        ..
                    } => return Ok(Applying::Kept(answer)),
                    Applied { change, answer, .. } => {
                        let sibling = match change {
                            Change::Put(value) => Sibling::Value(value),
                            _ => Sibling::Tombstone,
                        };
                        (sibling, state.context(), Some(answer))
                    }
                },
            };
            match state.update(&ctx, actor, sibling) {
                Ok(_) => return Ok(Applying::Written(answer)),
                Err(e) => exhausted = Some(e),
            }
            actor = self.fresh_actor()?;
            renewed = true;
        }
        Err(RequestError::Invalid(
            exhausted.map(|e| e.to_string()).unwrap_or_default(),
        ))
    }

    /// The updater's result for `update` on `state`, as `actor`.
    fn run_updater(
        &self,
        state: &Object,
        update: &[u8],
        actor: Actor,
    ) -> Result<Applied, RequestError> {
        let updater = self
            .options
            .updater
            .as_ref()
            .ok_or_else(|| RequestError::Invalid("this node has no updater".into()))?;
        let values: Vec<Bytes> = state.live_values().cloned().collect();
        let applied = updater
            .apply(update, &values, actor)
            .map_err(RequestError::Invalid)?;
        if let Change::Put(value) = &applied.change
            && value.len() > quorra_client::MAX_VALUE_LEN
        {
            return Err(RequestError::Invalid(format!(
                "the updated value is {} bytes; the limit is {}",
                value.len(),
                quorra_client::MAX_VALUE_LEN
            )));
        }
        Ok(applied)
    }

    pub(super) fn start_write(
        &mut self,
        now: Duration,
        reply_to: ReplyTo,
        (partition, key): (PartitionId, Bytes),
        write: WriteOf,
        consistency: Consistency,
        read: Option<Object>,
    ) {
        self.stats.writes += 1;
        let set = self.write_replicas(partition);
        let mut groups = Vec::with_capacity(set.groups.len());
        for group in set.groups {
            match consistency.write_quorum(group.replicas) {
                Ok(quorum) => groups.push((group.members, quorum)),
                // A ring with fewer members than the request's level names
                // (a cluster still growing to N): all of them.
                Err(_) => groups.push((
                    group.members,
                    Quorum {
                        total: group.replicas,
                        primaries: group.replicas,
                    },
                )),
            }
        }
        let replicas = set.replicas;
        let tally = Tally::grouped(replicas.clone(), groups);
        if let Some(e) = Self::too_few(&tally) {
            self.stats.quorum_failures += 1;
            return self.reply(reply_to, Err(e));
        }
        let my_role = replicas.iter().find(|r| r.node == self.id).map(|r| r.role);
        let primary = my_role == Some(ReplicaRole::Primary);
        let known = if primary {
            self.store
                .get(partition, &key)
                .map(Option::unwrap_or_default)
                .map_err(|e| RequestError::Storage(e.to_string()))
        } else {
            self.local_knowledge(partition, &key)
        };
        let mut state = match known {
            Ok(k) => k,
            Err(e) => return self.reply(reply_to, Err(e)),
        };
        if let Some(read) = &read {
            // What an update's read found on the other replicas.
            state.merge(read);
        }
        let answer = match self.apply_write(&mut state, (partition, &key), primary, &write) {
            Ok(Applying::Written(answer)) => answer,
            Ok(Applying::Kept(answer)) => {
                // An update that changes nothing: its answer, at once.
                let unchanged = Response {
                    answer: Some(answer),
                    ..response(&state, Receipt::default())
                };
                return self.reply(reply_to, Ok(unchanged));
            }
            Err(e) => return self.reply(reply_to, Err(e)),
        };
        let id = self.next_request_id();
        let mut op = WriteOp {
            reply_to,
            generation: self.placement_generation,
            response: Response {
                answer,
                ..response(&state, Receipt::default())
            },
            tally,
        };
        match my_role {
            Some(ReplicaRole::Primary) => match self.merge_owned(now, partition, &key, &state) {
                Ok(lsn) => {
                    self.stats.replica_writes += 1;
                    self.after_durable(Pending::Local { lsn, op: id });
                }
                Err(e) => {
                    // Nothing was sent: the dot is forgotten with the request.
                    debug!(error = %e, "coordinator could not store its copy");
                    self.stats.storage_errors += 1;
                    return self.reply(reply_to, Err(RequestError::Storage(e.to_string())));
                }
            },
            Some(ReplicaRole::Fallback { for_node }) => {
                match self.merge_hint(for_node, partition, &key, &state) {
                    Ok(lsn) => {
                        self.stats.replica_writes += 1;
                        self.after_durable(Pending::Local { lsn, op: id });
                    }
                    Err(e) => {
                        debug!(error = %e, "coordinator could not keep its hint");
                        op.tally.record(self.id, false);
                    }
                }
            }
            None => {}
        }
        for replica in &replicas {
            if replica.node == self.id {
                continue;
            }
            let hint_for = match replica.role {
                ReplicaRole::Primary => None,
                ReplicaRole::Fallback { for_node } => Some(for_node),
            };
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
        self.track(now, id, Op::Write(op));
        self.progress_write(id);
    }

    pub(super) fn on_write_reply(
        &mut self,
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
        let outcome = op.tally.decide().map(|r| {
            r.map(|receipt| Response {
                receipt,
                ..op.response.clone()
            })
        });
        let (reply_to, settled) = (op.reply_to, op.tally.settled());
        self.give_outcome(reply_to, outcome);
        if settled {
            self.take_op(id);
        }
    }

    pub(super) fn write_expired(&mut self, mut op: WriteOp) {
        self.settle_expired(&mut op.tally, op.reply_to);
    }
}
