//! The coordinator: client requests in, quorum replies out.
//!
//! Every client request enters here (`Node::start_request`): it is
//! validated (key and value limits, the context decodes, the consistency
//! level fits the key's replicas) and routed. Reads are coordinated by
//! whichever node received them ([`super::read`]). Writes are coordinated
//! by a primary of the key: a node that is not one forwards the request to
//! the first primary it believes up ([`super::forward`]) and coordinates
//! itself only when it believes every primary down ([`super::write`]).
//!
//! The replicas of a request are its sloppy replica set: the primaries this
//! node believes up, plus, for each one it believes down, the next live node
//! of the preference list as a fallback. A request whose quorum becomes
//! impossible, or is not reached by the request timeout, fails with
//! `QuorumNotReached` naming the counts; after replying, a request keeps
//! tracking its stragglers until they answer or the timeout.

use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Context, Receipt, Request, RequestError, Response};
use quorra_ring::{NodeId, PartitionId, Replica, ReplicaRole, WriteReplicas};

use super::messages::{KeyState, RequestId};
use super::node::Node;
use super::read::ReadOp;
use super::tally::Tally;
use super::write::WriteOp;
use crate::storage::store::check_key;
use crate::version::{Object, Sibling, VersionVector, context};

/// Where the outcome of a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyTo {
    /// To the driver, with the client's tag; `since` is when the request
    /// arrived (its latency feeds [`super::pacing`]).
    Client { tag: u64, since: Duration },
    /// To the node that forwarded the request.
    Forwarded { node: NodeId, id: RequestId },
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
    /// Hints held for `owner` offered to `target` (the owner, or a current
    /// primary for orphans), with the states sent.
    Handoff {
        target: NodeId,
        owner: NodeId,
        items: Vec<KeyState>,
    },
    /// A purge check: the items and the votes gathered so far.
    PurgeCheck(super::purge::PurgeRound),
    /// A probe of a peer believed down.
    Ping(NodeId),
    /// An anti-entropy exchange waiting for the replica's answer.
    Exchange(super::anti_entropy::exchange::Exchange),
}

/// What a write puts in place.
#[derive(Debug)]
pub(super) enum WriteOf {
    /// The client's value or tombstone, over what its context covers.
    Given(Sibling, VersionVector),
    /// The updater's result, over the coordinator's copy (see [`super::update`]).
    Update(Bytes),
}

/// A request after validation.
struct Checked {
    partition: PartitionId,
    key: Bytes,
    write: Option<WriteOf>,
}

/// Largest encoded update: a value and some room for the operation.
const MAX_UPDATE_LEN: usize = quorra_client::MAX_VALUE_LEN + 4096;

/// The quorum `at_n` gives, when the level fits the largest ring
/// (`largest_ok`); for a ring smaller than the level names, all its `n`
/// members.
fn capped(
    largest_ok: Result<(), quorra_client::ConsistencyError>,
    at_n: impl FnOnce() -> Result<quorra_client::Quorum, quorra_client::ConsistencyError>,
    n: usize,
) -> Result<quorra_client::Quorum, quorra_client::ConsistencyError> {
    largest_ok?;
    at_n().or(Ok(quorra_client::Quorum {
        total: n,
        primaries: n,
    }))
}

/// The error of a request to a node that is in no ring yet: it started
/// and has not heard from its seeds, or has not joined.
fn not_in_a_ring(id: NodeId) -> RequestError {
    RequestError::Unavailable(format!(
        "node {id} is not part of a ring yet (it is still starting or joining the cluster); \
         try another node, or again in a moment"
    ))
}

pub(super) fn invalid(message: impl std::fmt::Display) -> RequestError {
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
            Some(WriteOf::Given(
                Sibling::Value(value.clone()),
                decode_context(context)?,
            ))
        }
        Request::Delete { context, .. } => {
            Some(WriteOf::Given(Sibling::Tombstone, decode_context(context)?))
        }
        Request::Update { update, .. } => {
            if update.len() > MAX_UPDATE_LEN {
                return Err(invalid(format!(
                    "update is {} bytes; the limit is {MAX_UPDATE_LEN}",
                    update.len()
                )));
            }
            if node.options.updater.is_none() {
                return Err(invalid("this node has no updater: updates are refused"));
            }
            Some(WriteOf::Update(update.clone()))
        }
    };
    Ok(Checked {
        partition: node.ring().partition_of_key(&key),
        key,
        write,
    })
}

fn decode_context(ctx: &Context) -> Result<VersionVector, RequestError> {
    context::decode(ctx).map_err(invalid)
}

/// The answer a client sees for a state, with the receipt of who answered.
pub(super) fn response(state: &Object, receipt: Receipt) -> Response {
    Response {
        values: state.live_values().cloned().collect(),
        context: context::encode(&state.context()),
        receipt,
        answer: None,
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
        // A level is judged against the largest active ring (a cluster
        // growing to N has smaller rings behind it); a smaller ring is asked
        // for all its members ([`capped`]).
        let largest = self
            .placement
            .rings()
            .iter()
            .map(|r| r.effective_replicas())
            .max()
            .unwrap_or(0);
        if largest == 0 {
            // Not the client's level at fault: this node has no ring yet.
            return self.reply(reply_to, Err(not_in_a_ring(self.id)));
        }
        if checked.write.is_some()
            && let Err(e) = consistency.write_quorum(largest)
        {
            return self.reply(reply_to, Err(e.into()));
        }
        let n = self.ring().effective_replicas();
        let read_quorum = |consistency: quorra_client::Consistency| {
            capped(
                consistency.read_quorum(largest).map(|_| ()),
                || consistency.read_quorum(n),
                n,
            )
        };
        match checked.write {
            None => match read_quorum(consistency) {
                Ok(q) => self.start_read(now, reply_to, checked.partition, checked.key, q, None),
                Err(e) => self.reply(reply_to, Err(e.into())),
            },
            Some(write) => {
                // A node whose storage failed coordinates no write: it hands
                // the write to a primary that can, or refuses it.
                let healthy = self.storage_failure.is_none();
                let coordinate_here = matches!(reply_to, ReplyTo::Forwarded { .. })
                    || (healthy && self.is_primary(checked.partition));
                if !coordinate_here {
                    // A primary whose storage failed would refuse it: one
                    // that can take it first.
                    let owners = self.placement.owners(checked.partition);
                    let up = || {
                        owners
                            .iter()
                            .copied()
                            .filter(|&n| n != self.id && self.peers.is_up(n))
                    };
                    let primary = up()
                        .find(|n| !self.peers_storage_failing.contains(n))
                        .or_else(|| up().next());
                    if let Some(primary) = primary {
                        return self.forward(now, reply_to, primary, request);
                    }
                }
                if let Some(e) = self.storage_refusal() {
                    return self.reply(reply_to, Err(e));
                }
                if let WriteOf::Update(update) = &write
                    && self
                        .options
                        .updater
                        .as_ref()
                        .is_some_and(|u| u.reads_first(update))
                {
                    let read_quorum = match read_quorum(consistency) {
                        Ok(q) => q,
                        Err(e) => return self.reply(reply_to, Err(e.into())),
                    };
                    let then = (write, consistency);
                    return self.start_read(
                        now,
                        reply_to,
                        checked.partition,
                        checked.key,
                        read_quorum,
                        Some(then),
                    );
                }
                self.start_write(
                    now,
                    reply_to,
                    (checked.partition, checked.key),
                    write,
                    consistency,
                    None,
                );
            }
        }
    }

    /// The replicas a write on `partition` goes to: the owners in every
    /// active ring, with fallbacks for those believed down under a sloppy
    /// quorum, grouped by ring ([`quorra_ring::Placement::write_replicas`]).
    pub(super) fn write_replicas(&self, partition: PartitionId) -> WriteReplicas {
        let mut set = self
            .placement
            .write_replicas(partition, |n| self.peers.is_up(n));
        if !self.options.hinted_handoff {
            set.replicas.retain(|r| r.role == ReplicaRole::Primary);
            for group in &mut set.groups {
                group
                    .members
                    .retain(|n| set.replicas.iter().any(|r| r.node == *n));
            }
        }
        set
    }

    /// The replicas a read on `partition` goes to (the read ring's).
    pub(super) fn replica_set(&self, partition: PartitionId) -> Vec<Replica> {
        if self.options.hinted_handoff {
            self.ring()
                .sloppy_replicas(partition, |n| self.peers.is_up(n))
        } else {
            self.ring()
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
    pub(super) fn too_few(tally: &Tally) -> Option<RequestError> {
        tally.impossible().then(|| tally.failure())
    }

    /// A request's deadline passed: its silent replicas count as failed
    /// (and as timeouts against them), and a caller still waiting gets the
    /// failure.
    pub(super) fn settle_expired(&mut self, tally: &mut Tally, reply_to: ReplyTo) {
        let (failure, late) = tally.expire();
        for node in late {
            if node != self.id {
                self.peer_timed_out(node);
            }
        }
        if let Some(e) = failure {
            self.stats.quorum_failures += 1;
            self.reply(reply_to, Err(e));
        }
    }

    /// Gives a request's outcome, if it became known (see [`Tally::decide`]).
    pub(super) fn give_outcome(
        &mut self,
        reply_to: ReplyTo,
        outcome: Option<Result<Response, RequestError>>,
    ) {
        match outcome {
            Some(Err(e)) => {
                self.stats.quorum_failures += 1;
                self.reply(reply_to, Err(e));
            }
            Some(ok) => self.reply(reply_to, ok),
            None => {}
        }
    }

    /// A request reached its deadline.
    pub(super) fn expire(&mut self, now: Duration, op: Op) {
        match op {
            Op::Read(op) => self.read_expired(now, op),
            Op::Write(op) => self.write_expired(op),
            Op::Forward { reply_to, node } => self.forward_expired(reply_to, node),
            Op::Handoff { target, owner, .. } => self.handoff_expired(target, owner),
            Op::PurgeCheck(round) => self.purge_round_expired(round),
            Op::Ping(node) => self.peer_timed_out(node),
            Op::Exchange(exchange) => self.ae_expired(now, exchange),
        }
    }

    /// The error a write gets while this node's storage has failed.
    pub(super) fn storage_refusal(&self) -> Option<RequestError> {
        self.storage_failure.as_ref().map(|reason| {
            RequestError::Storage(format!(
                "node {}'s storage failed ({reason}); it takes no writes until it recovers",
                self.id
            ))
        })
    }
}
