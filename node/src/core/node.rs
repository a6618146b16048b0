//! The node state machine: inputs in, outputs out, time passed in.
//!
//! A driver (the runtime or the simulator) feeds a [`Node`] with
//! `handle_client`, `handle_message`, `handle_timeout` and `handle_flushed`,
//! each taking `now`, and carries out what `poll_transmit`, `poll_reply` and
//! `poll_timeout` return. After each batch of inputs it asks
//! [`Node::poll_flush`], flushes the store if so, and calls
//! [`Node::handle_flushed`], which releases the acknowledgements that waited
//! for durability. The node never reads a clock or does I/O other than
//! synchronous calls to its [`Store`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use quorra_client::Outcome;
use quorra_ring::{NodeId, PartitionId, Placement, Ring};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use tracing::{debug, trace, warn};

use super::anti_entropy::AntiEntropy;
use super::cleanup::Cleanup;
use super::coordinator::{Op, ReplyTo};
use super::dedup::Dedup;
use super::hints::HintBook;
use super::life::{Life, persist_heard, persist_incarnation, persist_life};
use super::messages::{PeerMessage, RequestId};
use super::options::{Options, overloaded};
use super::pacing::Pacing;
use super::peers::Peers;
use super::purge::Tombstones;
use super::purged::Purged;
use super::stats::Stats;
use super::transfer::{Moves, Transfers};
use crate::storage::{GroupCommit, Lsn, StorageError, Store};

/// A tag the driver attaches to a client request; the reply carries it back.
pub type ClientTag = u64;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node is not a member of the ring it was given.
    #[error("node {0} is not a member of the ring")]
    NotAMember(NodeId),
    /// Its storage failed while loading state.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Something waiting for a flush before it may leave the node.
#[derive(Debug)]
pub(super) enum Pending {
    /// A reply to a peer (write or handoff acknowledgement).
    Reply {
        lsn: Lsn,
        to: NodeId,
        message: PeerMessage,
    },
    /// The coordinator's own copy of a write, counted as one acknowledgement.
    Local { lsn: Lsn, op: RequestId },
}

impl Pending {
    fn lsn(&self) -> Lsn {
        match self {
            Pending::Reply { lsn, .. } | Pending::Local { lsn, .. } => *lsn,
        }
    }
}

/// One Quorra node's protocol logic.
pub struct Node {
    pub(super) id: NodeId,
    /// The active rings (one when nothing moves) and the one reads use.
    pub(super) placement: Placement,
    /// Counts placements with a new newest ring: writes remember the one
    /// they started under, so membership knows when none from before the
    /// last change is in flight.
    pub(super) placement_generation: u64,
    pub(super) options: Options,
    pub(super) store: Store,
    commit: GroupCommit,
    /// The high half of this life's dots ([`super::life`]).
    pub(super) incarnation: u32,
    /// Starts on this store; request ids begin at `life << 32`.
    life: u32,
    /// The gossip generation this process answers to, to which peers
    /// address forwards: `life`, or, on a store that had never heard of
    /// another node, 0 until it does and 1 from then on ([`super::life`]
    /// says why).
    pub(super) started_as: u32,
    /// Peers' incarnations, as gossip tells them.
    pub(super) peer_incarnations: BTreeMap<NodeId, u32>,
    /// Peers whose storage failed, as gossip says: a write is forwarded to
    /// one of them only when no other primary is up.
    pub(super) peers_storage_failing: BTreeSet<NodeId>,
    pub(super) next_epoch: u32,
    pub(super) rng: Xoshiro256PlusPlus,
    pub(super) peers: Peers,
    pub(super) ops: BTreeMap<RequestId, Op>,
    deadlines: BTreeSet<(Duration, RequestId)>,
    /// When reads that asked only their quorum ask their other replicas.
    pub(super) speculative_reads: BTreeSet<(Duration, RequestId)>,
    /// Reads coordinated so far: whose turn it is among a key's replicas.
    pub(super) read_turn: u64,
    next_id: RequestId,
    outbox: VecDeque<(NodeId, PeerMessage)>,
    replies: VecDeque<(ClientTag, Outcome)>,
    pending: VecDeque<Pending>,
    pub(super) hints: HintBook,
    pub(super) tombstones: Tombstones,
    /// Forwarded requests already started.
    pub(super) forwards_seen: Dedup,
    /// Keys purged in this incarnation, whose old epochs are not continued.
    pub(super) purged: Purged,
    next_probe: Duration,
    pub(super) next_handoff: Duration,
    next_purge: Duration,
    pub(super) stats: Stats,
    pub(super) ae: AntiEntropy,
    /// Partitions being pulled because this node gains them.
    pub(super) transfers: Transfers,
    /// Partitions waiting to be dropped because it owns them no more.
    pub(super) cleanup: Cleanup,
    /// Why the store failed, if it did (see [`Node::handle_storage_failed`]).
    pub(super) storage_failure: Option<String>,
    /// The share of the transfer budget pulls may use ([`super::pacing`]).
    pub(super) pacing: Pacing,
    /// The latest time an input carried: when a reply leaves.
    clock: Duration,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("incarnation", &self.incarnation)
            .field("ops", &self.ops.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts node `id` on `store`: begins a new life on it (a new
    /// incarnation, drawn on an empty store, and life, made durable before
    /// anything else: [`Life::begin`]), and loads the hint and tombstone
    /// bookkeeping from storage.
    pub fn new(
        id: NodeId,
        ring: Ring,
        store: Store,
        options: Options,
        now: Duration,
    ) -> Result<Self, NodeError> {
        if !ring.contains(id) {
            return Err(NodeError::NotAMember(id));
        }
        let Life {
            incarnation,
            life,
            generation: started_as,
        } = Life::begin(&store, options.rng_seed, id)?;
        let hints = HintBook::load(&store)?;
        let tombstones = Tombstones::load(&store, now)?;
        let peers = Peers::new(id, ring.node_ids());
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(options.rng_seed ^ id.0.rotate_left(17));
        let jitter = |rng: &mut Xoshiro256PlusPlus, every: Duration| {
            every.mul_f64(rng.random_range(0.0..1.0))
        };
        let next_probe = now + jitter(&mut rng, options.probe_interval);
        let next_handoff = now + jitter(&mut rng, options.handoff_interval);
        let next_purge = now + jitter(&mut rng, options.purge_interval);
        let first_exchange = now
            + jitter(
                &mut rng,
                options.anti_entropy_interval.min(Duration::from_secs(10)),
            );
        debug!(
            node = id.0,
            incarnation,
            hints = hints.count(),
            "node started"
        );
        let ae = AntiEntropy::new(options.anti_entropy_bytes_per_sec, first_exchange, now);
        let transfers = Transfers::new(options.transfer_bytes_per_sec, now);
        let mut node = Self {
            id,
            placement: Placement::stable(ring),
            placement_generation: 0,
            commit: GroupCommit::new(options.sync),
            options,
            store,
            incarnation,
            life,
            started_as,
            peer_incarnations: BTreeMap::new(),
            peers_storage_failing: BTreeSet::new(),
            next_epoch: 1,
            rng,
            peers,
            ops: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            speculative_reads: BTreeSet::new(),
            read_turn: 0,
            // Ids are unique across lives, so a late reply to a request
            // of an earlier life never matches a new request. From the
            // life, not the drawn incarnation: request ids must grow from
            // one life to the next (peers' `Dedup` floors).
            next_id: (u64::from(life) << 32) | 1,
            outbox: VecDeque::new(),
            replies: VecDeque::new(),
            pending: VecDeque::new(),
            hints,
            tombstones,
            forwards_seen: Dedup::default(),
            purged: Purged::default(),
            next_probe,
            next_handoff,
            next_purge,
            stats: Stats::default(),
            ae,
            transfers,
            cleanup: Cleanup::default(),
            storage_failure: None,
            pacing: Pacing::new(now),
            clock: now,
        };
        node.ae_placement_changed();
        node.cleanup_placement_changed();
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The gossip generation this process answers to, to which peers
    /// address forwards (not the incarnation its dots carry).
    pub fn started_as(&self) -> u32 {
        self.started_as
    }

    /// The incarnation this life's dots carry ([`super::life`]).
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// Answers to gossip generation `generation` from now on, and counts
    /// its lives from there (persisted first): a node that lost its data
    /// learns from gossip the generation of its earlier life, and its
    /// request ids must never fall below that life's. Its incarnation is
    /// raised to at least the same number too, which matters only on a
    /// store from before incarnations were drawn; a drawn one
    /// ([`super::life`]) that is already above is kept.
    pub fn adopt_generation(&mut self, generation: u32) -> Result<(), StorageError> {
        self.hear()?;
        if generation > self.incarnation {
            persist_incarnation(&self.store, generation)?;
            debug!(
                node = self.id.0,
                incarnation = generation,
                "incarnation raised"
            );
            self.incarnation = generation;
            self.next_epoch = 1;
        }
        if generation > self.life {
            persist_life(&self.store, generation)?;
            self.life = generation;
            self.next_id = (u64::from(generation) << 32) | 1;
        }
        self.started_as = self.started_as.max(generation);
        Ok(())
    }

    /// Notes that the store heard of another node: a life that gossiped
    /// generation 0 moves to 1 now (membership tells gossip), and later
    /// starts gossip their life ([`super::life`]).
    /// Generation 0 means exactly "never heard of another node".
    fn hear(&mut self) -> Result<(), StorageError> {
        if self.started_as == 0 {
            persist_heard(&self.store)?;
            self.started_as = 1;
        }
        Ok(())
    }

    /// The ring the node routes with.
    pub fn ring(&self) -> &Ring {
        self.placement.read_ring()
    }

    /// The active rings and the one reads use.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The node's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The node's options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Counters of what the node has done.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether this node believes `node` reachable.
    pub fn believes_up(&self, node: NodeId) -> bool {
        self.peers.is_up(node)
    }

    /// Hints held: (count, bytes).
    pub fn hint_usage(&self) -> (u64, u64) {
        (self.hints.count(), self.hints.bytes())
    }

    /// Anti-entropy: (Merkle trees built and kept, exchanges running).
    pub fn anti_entropy_usage(&self) -> (usize, usize) {
        (self.ae.trees.len(), self.ae.running)
    }

    /// Keys (live and tombstones) of the partitions whose Merkle trees
    /// this node keeps: with anti-entropy on, every partition it
    /// replicates once each was exchanged after start-up.
    pub fn tree_keys(&self) -> u64 {
        self.ae.trees.keys()
    }

    /// The partitions whose Merkle trees this node keeps.
    pub fn tree_partitions(&self) -> Vec<PartitionId> {
        self.ae.trees.partitions()
    }

    /// Partitions waiting to be dropped because this node owns them no
    /// more (see [`super::cleanup`]).
    pub fn cleanup_pending(&self) -> usize {
        self.cleanup.queue.len()
    }

    /// Requests in flight (coordinated here, including stragglers tracked
    /// after the reply).
    pub fn requests_in_flight(&self) -> usize {
        self.ops.len()
    }

    // ---- inputs ----

    /// A client request, tagged by the driver.
    pub fn handle_client(
        &mut self,
        now: Duration,
        tag: ClientTag,
        request: quorra_client::Request,
    ) {
        let _span = tracing::trace_span!("node", id = self.id.0).entered();
        self.stats.client_requests += 1;
        let limit = self.options.max_requests_in_flight;
        if self.ops.len() >= limit {
            // Shed, not queued: a request admitted now would wait behind
            // the others and more likely time out than succeed.
            self.stats.shed_requests += 1;
            self.replies.push_back((tag, Err(overloaded(limit))));
            return;
        }
        self.clock = now;
        self.start_request(now, ReplyTo::Client { tag, since: now }, request);
        self.release_acknowledgements();
    }

    /// A message from peer `from`.
    pub fn handle_message(&mut self, now: Duration, from: NodeId, message: PeerMessage) {
        let _span = tracing::trace_span!("node", id = self.id.0).entered();
        self.clock = now;
        if !self.placement.rings().iter().any(|r| r.contains(from)) || from == self.id {
            debug!(
                from = from.0,
                kind = message.kind(),
                "message from a non-member ignored"
            );
            self.stats.rejected_messages += 1;
            return;
        }
        trace!(from = from.0, kind = message.kind(), "message");
        if let Err(reason) = self.admit(&message) {
            debug!(
                from = from.0,
                kind = message.kind(),
                reason,
                "malformed message dropped"
            );
            self.stats.rejected_messages += 1;
            return;
        }
        if self.peers.heard_from(from, now) {
            debug!(peer = from.0, "peer is reachable again");
            if self.hints.has_hints_for(from) {
                self.next_handoff = now;
            }
        }
        match message {
            PeerMessage::Read {
                id,
                partition,
                key,
                hint_for,
            } => self.on_read(from, id, partition, key, hint_for),
            PeerMessage::ReadReply { id, result } => self.on_read_reply(now, from, id, result),
            PeerMessage::Write {
                id,
                partition,
                key,
                object,
                hint_for,
            } => self.on_write(now, from, id, partition, key, object, hint_for),
            PeerMessage::WriteReply { id, result } => self.on_write_reply(from, id, result),
            PeerMessage::Repair {
                partition,
                key,
                object,
            } => self.on_repair(now, partition, key, object),
            PeerMessage::Forward { id, to, request } => self.on_forward(now, from, id, to, request),
            PeerMessage::ForwardReply { id, outcome } => self.on_forward_reply(from, id, outcome),
            PeerMessage::Handoff { id, items } => self.on_handoff(now, from, id, items),
            PeerMessage::HandoffReply { id, stored } => {
                self.on_handoff_reply(now, from, id, stored)
            }
            PeerMessage::PurgeCheck { id, items } => self.on_purge_check(now, from, id, items),
            PeerMessage::PurgeCheckReply { id, votes } => {
                self.on_purge_check_reply(now, from, id, votes)
            }
            PeerMessage::Purge { items } => self.on_purge(items),
            PeerMessage::AntiEntropy {
                id,
                partition,
                step,
                stream,
            } => self.on_ae_step(now, from, id, (partition, stream), step),
            PeerMessage::AntiEntropyReply { id, result, share } => {
                self.on_ae_reply(now, from, id, (result, share))
            }
            PeerMessage::Ping { id } => self.send(from, PeerMessage::Pong { id }),
            PeerMessage::Pong { id } => {
                self.take_op_if(id, |op| matches!(op, Op::Ping(n) if *n == from));
            }
        }
        self.release_acknowledgements();
    }

    /// Time has advanced to `now`: expire requests, run periodic work.
    pub fn handle_timeout(&mut self, now: Duration) {
        let _span = tracing::trace_span!("node", id = self.id.0).entered();
        self.clock = now;
        self.pacing.roll(now);
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(op) = self.ops.remove(&id) {
                self.expire(now, op);
            }
        }
        while let Some(&(at, id)) = self.speculative_reads.first() {
            if at > now {
                break;
            }
            self.speculative_reads.pop_first();
            self.read_speculatively(now, id);
        }
        if now >= self.next_probe {
            self.probe(now);
            self.next_probe = now + self.jittered(self.options.probe_interval);
        }
        if now >= self.next_handoff {
            self.offer_hints(now);
            self.next_handoff = now + self.jittered(self.options.handoff_interval);
        }
        if now >= self.next_purge {
            self.sweep_tombstones(now);
            self.next_purge = now + self.jittered(self.options.purge_interval);
        }
        // The pace first: parked pull steps resume at the current share.
        self.transfers_pace(now);
        self.ae_tick(now);
        self.transfers_tick(now);
        self.cleanup_tick(now);
        self.release_acknowledgements();
    }

    /// The membership changed, with nothing moving: route with `ring` from
    /// now on (see [`Node::handle_placement`]).
    pub fn handle_ring(&mut self, ring: Ring) {
        self.handle_placement(Placement::stable(ring), Moves::default());
    }

    /// The membership changed: route with `placement` from now on, and
    /// pull what this node gains as `moves` allows ([`super::transfer`]).
    /// Requests in flight keep the replicas they were sent to.
    pub fn handle_placement(&mut self, placement: Placement, moves: Moves) {
        if moves.newest != self.transfers.moves.newest {
            self.placement_generation += 1;
        }
        self.transfers.moves = moves;
        self.placement = placement;
        self.peers.set_members(self.members());
        self.ae_placement_changed();
        let placement = self.placement.clone();
        self.transfers_placement_changed(&placement);
        self.cleanup_placement_changed();
    }

    /// Whether a write this node coordinates that started before the
    /// latest change of the newest ring is still in flight: until none is,
    /// the node does not announce that it writes to the newest ring.
    pub fn older_writes_in_flight(&self) -> bool {
        let now = self.placement_generation;
        self.ops
            .values()
            .any(|op| matches!(op, Op::Write(w) if w.generation < now))
    }

    /// Gossip says `peer` runs as `incarnation` (its generation): forwards
    /// to it are addressed to that incarnation.
    pub fn handle_peer_incarnation(&mut self, peer: NodeId, incarnation: u32) {
        if let Err(e) = self.hear() {
            // Only the next start's generation depends on it (0 once more).
            warn!(node = self.id.0, error = %e, "recording that the store heard of a peer failed");
        }
        self.peer_incarnations.insert(peer, incarnation);
    }

    /// Gossip says whether `peer`'s storage has failed.
    pub fn handle_peer_storage(&mut self, peer: NodeId, failing: bool) {
        if failing {
            self.peers_storage_failing.insert(peer);
        } else {
            self.peers_storage_failing.remove(&peer);
        }
    }

    /// The failure detector's opinion of `peer` changed.
    pub fn handle_peer_status(&mut self, peer: NodeId, up: bool) {
        self.peers.set_suspected(peer, !up);
    }

    /// The driver flushed the store: acknowledgements may go out.
    pub fn handle_flushed(&mut self, now: Duration) {
        self.clock = now;
        self.commit.flushed(now);
        self.release_acknowledgements();
    }

    /// The store failed (a full disk, an I/O error: the driver saw an
    /// engine error). From now on this node coordinates no write: it
    /// forwards each to another primary or refuses it, so that a client
    /// learns at once rather than from a timeout. Reads are still served.
    /// There is no way back for this core: the driver recovers the store
    /// and starts a new core on it (as after a crash).
    pub fn handle_storage_failed(&mut self, reason: String) {
        self.storage_failure.get_or_insert(reason);
    }

    /// The driver's flush failed (full disk, I/O error). Nothing waiting
    /// for durability is released; `poll_flush` asks again after
    /// [`crate::storage::commit::FLUSH_RETRY`].
    pub fn handle_flush_failed(&mut self, now: Duration) {
        self.stats.flush_failures += 1;
        self.commit.failed(now);
    }

    // ---- outputs ----

    /// The next message to send, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(NodeId, PeerMessage)> {
        self.outbox.pop_front()
    }

    /// The next client reply, if any.
    #[must_use]
    pub fn poll_reply(&mut self) -> Option<(ClientTag, Outcome)> {
        self.replies.pop_front()
    }

    /// When `handle_timeout` must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Duration {
        let mut next = self.next_probe.min(self.next_handoff).min(self.next_purge);
        if let Some(at) = self.ae_next_wake(next) {
            next = next.min(at);
        }
        if let Some(at) = self.transfers_next_wake() {
            next = next.min(at);
        }
        if let Some(at) = self.cleanup_next_wake() {
            next = next.min(at);
        }
        if let Some(&(deadline, _)) = self.deadlines.first() {
            next = next.min(deadline);
        }
        if let Some(&(at, _)) = self.speculative_reads.first() {
            next = next.min(at);
        }
        if let Some(at) = self
            .commit
            .next_flush_at(self.store.applied_lsn(), self.store.durable_lsn())
        {
            next = next.min(at);
        }
        next
    }

    /// Whether the driver must flush the store now. A `true` starts a
    /// flush: the driver flushes (possibly on another thread) and then calls
    /// [`Node::handle_flushed`]; no other flush is asked for meanwhile.
    #[must_use]
    pub fn poll_flush(&mut self, now: Duration) -> bool {
        self.commit
            .poll_flush(now, self.store.applied_lsn(), self.store.durable_lsn())
    }

    // ---- helpers for the protocol modules ----

    pub(super) fn send(&mut self, to: NodeId, message: PeerMessage) {
        self.stats.messages_sent += 1;
        self.outbox.push_back((to, message));
    }

    pub(super) fn reply(&mut self, to: ReplyTo, outcome: Outcome) {
        match to {
            ReplyTo::Client { tag, since } => {
                let now = self.clock;
                self.pacing.answered(now, now.saturating_sub(since));
                self.replies.push_back((tag, outcome));
            }
            ReplyTo::Forwarded { node, id } => {
                self.send(node, PeerMessage::ForwardReply { id, outcome })
            }
        }
    }

    pub(super) fn next_request_id(&mut self) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Registers an operation that expires after the request timeout.
    pub(super) fn track(&mut self, now: Duration, id: RequestId, op: Op) {
        self.track_for(now, id, op, self.options.request_timeout);
    }

    /// Registers an operation that expires after `timeout`.
    pub(super) fn track_for(&mut self, now: Duration, id: RequestId, op: Op, timeout: Duration) {
        self.deadlines.insert((now + timeout, id));
        self.ops.insert(id, op);
    }

    /// Removes an operation (its deadline entry is dropped lazily).
    pub(super) fn take_op(&mut self, id: RequestId) -> Option<Op> {
        self.ops.remove(&id)
    }

    /// Removes an operation only if it is what a reply expects: a reply of
    /// the wrong kind, or from the wrong node, leaves it in place.
    pub(super) fn take_op_if(
        &mut self,
        id: RequestId,
        expected: impl Fn(&Op) -> bool,
    ) -> Option<Op> {
        if self.ops.get(&id).is_some_and(expected) {
            self.ops.remove(&id)
        } else {
            None
        }
    }

    /// Queues something that must wait for `lsn` to be durable.
    pub(super) fn after_durable(&mut self, pending: Pending) {
        self.pending.push_back(pending);
    }

    /// Releases everything whose write is now durable (or acknowledgeable
    /// at once in periodic mode).
    fn release_acknowledgements(&mut self) {
        let durable = self.store.durable_lsn();
        while let Some(first) = self.pending.front() {
            if !self.commit.can_acknowledge(first.lsn(), durable) {
                break;
            }
            match self.pending.pop_front().expect("peeked") {
                Pending::Reply { to, message, .. } => self.send(to, message),
                Pending::Local { op, .. } => self.local_write_durable(op),
            }
        }
    }

    pub(super) fn jittered(&mut self, every: Duration) -> Duration {
        every.mul_f64(self.rng.random_range(0.9..1.1))
    }

    /// Marks a peer as having failed to answer.
    pub(super) fn peer_timed_out(&mut self, node: NodeId) {
        if self.peers.timed_out(node, self.options.down_after_failures) {
            debug!(peer = node.0, "peer believed down");
            self.stats.peers_marked_down += 1;
        }
    }

    fn probe(&mut self, now: Duration) {
        let down: Vec<NodeId> = self.peers.down().collect();
        for node in down {
            let id = self.next_request_id();
            self.send(node, PeerMessage::Ping { id });
            self.track(now, id, Op::Ping(node));
        }
    }

    /// The members of the active rings, in id order.
    pub(super) fn members(&self) -> Vec<NodeId> {
        let mut members: Vec<NodeId> = self
            .placement
            .rings()
            .iter()
            .flat_map(Ring::node_ids)
            .collect();
        members.sort_unstable();
        members.dedup();
        members
    }

    /// Whether this node owns `partition` in some active ring (it stores
    /// it, takes writes for it as a primary and votes on its purges).
    pub(super) fn is_primary(&self, partition: PartitionId) -> bool {
        self.placement.is_owner(partition, self.id)
    }
}
