//! The driver: the one task that owns the node core and feeds it.
//!
//! It does for the runtime what the simulator does in simulation, and
//! nothing more: hand the core its inputs (peer messages, client requests,
//! timer expiries with the current time), carry out its outputs (frames to
//! peers, answers to clients), and run group commit: after each batch of
//! inputs, if the core asks for a flush, flush the store on a blocking
//! thread and hand the result back, which releases the acknowledgements
//! that waited for it. The core keeps running while a flush is in progress,
//! so the next batch is applied meanwhile and made durable by the next one.
//!
//! It also runs the membership exchange (until gossip replaces it): joining
//! through seeds, choosing tokens once, pushing the member table, and
//! handing the core a new ring when the table changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quorra_client::protocol::{
    ClientMessage, ClusterStatus, MemberStatus, NodeMessage, RoutingMember, RoutingTable,
};
use quorra_client::wire;
use quorra_ring::{NodeId, RingConfig, allocate_tokens};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use super::identity::{self, Identity};
use super::membership::{MemberRecord, Membership};
use super::transport::{ClusterId, Input, PeerFrame, Transport};
use crate::core::{ClientTag, Node};
use crate::storage::{Lsn, StorageError, Store};

/// Inputs handled per wake-up before outputs are sent and a flush asked.
const BATCH: usize = 1024;

/// How often the member table is pushed.
pub const MEMBERSHIP_INTERVAL: Duration = Duration::from_secs(1);

/// Everything the driver needs to start.
pub struct DriverParts {
    /// The core.
    pub node: Node,
    /// Its store.
    pub store: Store,
    /// The node's identity.
    pub identity: Identity,
    /// The member table.
    pub membership: Membership,
    /// The transport.
    pub transport: Arc<Transport>,
    /// Inputs from the transport.
    pub inbox: mpsc::Receiver<Input>,
    /// Seed addresses.
    pub seeds: Vec<SocketAddr>,
    /// Settings to create a new cluster with (when there are no seeds).
    pub new_cluster: RingConfig,
    /// Tokens to choose when joining.
    pub tokens: usize,
    /// Set when the node must stop.
    pub shutdown: watch::Receiver<bool>,
    /// The origin of the core's clock.
    pub origin: Instant,
}

/// The driver's state.
pub struct Driver {
    node: Node,
    store: Store,
    identity: Identity,
    membership: Membership,
    transport: Arc<Transport>,
    inbox: mpsc::Receiver<Input>,
    seeds: Vec<SocketAddr>,
    new_cluster: RingConfig,
    tokens: usize,
    shutdown: watch::Receiver<bool>,
    origin: Instant,
    clients: HashMap<ClientTag, (mpsc::Sender<NodeMessage>, u64)>,
    next_tag: ClientTag,
    flush_tx: mpsc::Sender<Result<Lsn, StorageError>>,
    flush_rx: mpsc::Receiver<Result<Lsn, StorageError>>,
    flushing: bool,
    rounds: u64,
}

impl Driver {
    /// A driver over `parts`.
    pub fn new(parts: DriverParts) -> Self {
        let (flush_tx, flush_rx) = mpsc::channel(4);
        Self {
            node: parts.node,
            store: parts.store,
            identity: parts.identity,
            membership: parts.membership,
            transport: parts.transport,
            inbox: parts.inbox,
            seeds: parts.seeds,
            new_cluster: parts.new_cluster,
            tokens: parts.tokens,
            shutdown: parts.shutdown,
            origin: parts.origin,
            clients: HashMap::new(),
            next_tag: 1,
            flush_tx,
            flush_rx,
            flushing: false,
            rounds: 0,
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Runs until shutdown; then makes everything durable.
    pub async fn run(mut self) -> Result<(), StorageError> {
        self.maybe_found_cluster()?;
        let mut membership = tokio::time::interval(MEMBERSHIP_INTERVAL);
        membership.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = tokio::time::Instant::from_std(self.origin + self.node.poll_timeout());
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => break,
                Some(result) = self.flush_rx.recv() => {
                    self.flushing = false;
                    let now = self.now();
                    match result {
                        Ok(_) => self.node.handle_flushed(now),
                        Err(e) => {
                            error!(error = %e, "flush failed; acknowledgements wait for the next one");
                            self.node.handle_flush_failed(now);
                        }
                    }
                }
                Some(input) = self.inbox.recv() => {
                    self.input(input);
                    for _ in 1..BATCH {
                        match self.inbox.try_recv() {
                            Ok(more) => self.input(more),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = self.now();
                    self.node.handle_timeout(now);
                }
                _ = membership.tick() => self.membership_round()?,
            }
            self.outputs();
        }
        // Shutting down: wait for a flush in flight, then flush everything.
        if self.flushing {
            let _ = self.flush_rx.recv().await;
        }
        identity::save_members(&self.store, &self.membership.records())?;
        self.store.flush()?;
        self.outputs();
        Ok(())
    }

    fn input(&mut self, input: Input) {
        let now = self.now();
        match input {
            Input::Peer { from, message } => self.node.handle_message(now, from, message),
            Input::Members {
                from,
                settings,
                records,
            } => self.on_members(from, settings, records),
            Input::Client { message, reply } => match message {
                ClientMessage::Request { id, request } => {
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    self.clients.insert(tag, (reply, id));
                    self.node.handle_client(now, tag, request);
                }
                ClientMessage::Routing { id } => {
                    let table = self.routing_table();
                    let _ = reply.try_send(NodeMessage::Routing { id, table });
                }
                ClientMessage::Status { id } => {
                    let status = self.status();
                    let _ = reply.try_send(NodeMessage::Status { id, status });
                }
            },
        }
    }

    /// Sends what the core produced and starts a flush if it asks for one.
    fn outputs(&mut self) {
        while let Some((to, message)) = self.node.poll_transmit() {
            let Some(address) = self.membership.address(to) else {
                continue;
            };
            match wire::encode(&PeerFrame::Core(message)) {
                Ok(frame) => self.transport.send(to, address, frame),
                Err(e) => warn!(error = %e, "message could not be encoded"),
            }
        }
        while let Some((tag, outcome)) = self.node.poll_reply() {
            if let Some((reply, id)) = self.clients.remove(&tag) {
                // A full or closed client queue means the client is gone.
                let _ = reply.try_send(NodeMessage::Outcome { id, outcome });
            }
        }
        let now = self.now();
        if !self.flushing && self.node.poll_flush(now) {
            self.flushing = true;
            let store = self.store.clone();
            let done = self.flush_tx.clone();
            tokio::task::spawn_blocking(move || {
                let _ = done.blocking_send(store.flush());
            });
        }
    }

    fn settings(&self) -> Option<RingConfig> {
        self.identity.settings
    }

    /// A node with no seeds, no tokens and no known peers founds a cluster.
    fn maybe_found_cluster(&mut self) -> Result<(), StorageError> {
        if self.identity.tokens.is_empty()
            && self.seeds.is_empty()
            && !self.membership.others_have_tokens()
        {
            let settings = self.identity.settings.unwrap_or(self.new_cluster);
            info!(cluster = %self.identity.cluster, partitions = settings.partitions, replicas = settings.replicas, "founding a new cluster");
            self.identity.settings = Some(settings);
            self.choose_tokens()?;
        }
        Ok(())
    }

    /// Chooses this node's tokens against the ring it sees, once.
    fn choose_tokens(&mut self) -> Result<(), StorageError> {
        let Some(settings) = self.settings() else {
            return Ok(());
        };
        let ring = match self.membership.ring(settings) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "cannot build the ring to choose tokens");
                return Ok(());
            }
        };
        let tokens =
            match allocate_tokens(&ring, self.identity.node, &self.identity.zone, self.tokens) {
                Ok(t) => t,
                Err(e) => {
                    error!(error = %e, "cannot choose tokens");
                    return Ok(());
                }
            };
        self.identity.tokens = tokens;
        self.identity.version += 1;
        identity::save(&self.store, &self.identity)?;
        info!(
            node = self.identity.node.0,
            tokens = self.identity.tokens.len(),
            "tokens chosen"
        );
        self.publish_own_record();
        self.transport.set_identity(ClusterId {
            node: self.identity.node,
            cluster: self.identity.cluster.clone(),
            settings: self.identity.settings,
        });
        self.apply_ring();
        self.push_members_to_all();
        Ok(())
    }

    fn publish_own_record(&mut self) {
        if let Some(own) = self.membership.own().cloned() {
            self.membership.set_own(MemberRecord {
                tokens: self.identity.tokens.clone(),
                version: self.identity.version,
                ..own
            });
        }
    }

    /// Hands the core the ring of the current member table.
    fn apply_ring(&mut self) {
        let Some(settings) = self.settings() else {
            return;
        };
        match self.membership.ring(settings) {
            Ok(ring) => self.node.handle_ring(ring),
            Err(e) => error!(error = %e, "member table does not form a ring"),
        }
        if let Err(e) = identity::save_members(&self.store, &self.membership.records()) {
            error!(error = %e, "saving the member table failed");
        }
    }

    fn on_members(
        &mut self,
        from: NodeId,
        settings: Option<RingConfig>,
        records: Vec<MemberRecord>,
    ) {
        if self.identity.settings.is_none()
            && let Some(s) = settings
        {
            info!(
                partitions = s.partitions,
                replicas = s.replicas,
                "adopting the cluster's settings"
            );
            self.identity.settings = Some(s);
            self.transport.set_identity(ClusterId {
                node: self.identity.node,
                cluster: self.identity.cluster.clone(),
                settings: Some(s),
            });
        }
        let theirs: HashMap<NodeId, u64> = records.iter().map(|r| (r.id, r.version)).collect();
        let changed = self.membership.merge(&records);
        if changed {
            debug!(from = from.0, "member table changed");
            self.apply_ring();
        }
        if self.identity.tokens.is_empty()
            && self.settings().is_some()
            && self.membership.others_have_tokens()
        {
            if let Err(e) = self.choose_tokens() {
                error!(error = %e, "could not persist chosen tokens");
            }
            return;
        }
        // Push-pull: if the sender lacks something we know, answer with it.
        let behind = self
            .membership
            .records()
            .iter()
            .any(|r| theirs.get(&r.id).is_none_or(|&v| v < r.version));
        if behind {
            self.push_members_to(from);
        }
    }

    fn members_frame(&self) -> Option<bytes::Bytes> {
        wire::encode(&PeerFrame::Members {
            settings: self.settings(),
            records: self.membership.records(),
        })
        .ok()
    }

    fn push_members_to(&self, to: NodeId) {
        if let (Some(address), Some(frame)) = (self.membership.address(to), self.members_frame()) {
            self.transport.send(to, address, frame);
        }
    }

    fn push_members_to_all(&self) {
        for r in self.membership.records() {
            if r.id != self.identity.node {
                self.push_members_to(r.id);
            }
        }
    }

    /// Once a second: a joining node asks its seeds; a member pushes its
    /// table to the next two members in turn.
    fn membership_round(&mut self) -> Result<(), StorageError> {
        self.rounds += 1;
        if self.identity.tokens.is_empty() {
            if let Some(frame) = self.members_frame() {
                for &seed in &self.seeds {
                    self.transport.send_once(seed, frame.clone());
                }
            }
            return Ok(());
        }
        let others: Vec<NodeId> = self
            .membership
            .records()
            .iter()
            .map(|r| r.id)
            .filter(|&id| id != self.identity.node)
            .collect();
        if !others.is_empty() {
            for k in 0..2u64 {
                let i = ((self.rounds * 2 + k) % others.len() as u64) as usize;
                self.push_members_to(others[i]);
            }
        }
        if self.rounds.is_multiple_of(10)
            && let Some(frame) = self.members_frame()
        {
            for &seed in &self.seeds {
                self.transport.send_once(seed, frame.clone());
            }
        }
        Ok(())
    }

    fn routing_table(&self) -> RoutingTable {
        let ring = self.node.ring();
        let members: Vec<NodeId> = ring.node_ids().collect();
        let index: HashMap<NodeId, u32> = members
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, i as u32))
            .collect();
        let replicas = ring.effective_replicas() as u32;
        let mut owners =
            Vec::with_capacity(ring.partitioner().count() as usize * replicas as usize);
        for p in ring.partitioner().iter() {
            owners.extend(ring.primaries(p).map(|n| index[&n]));
        }
        RoutingTable {
            partitions: ring.partitioner().count(),
            replicas,
            members: members
                .iter()
                .map(|&id| RoutingMember {
                    id: id.0,
                    address: self
                        .membership
                        .get(id)
                        .map(|r| r.address.clone())
                        .unwrap_or_default(),
                })
                .collect(),
            owners,
        }
    }

    fn status(&self) -> ClusterStatus {
        let ring = self.node.ring();
        let counts: HashMap<NodeId, u64> = ring.partition_replica_counts().into_iter().collect();
        let total = (ring.partitioner().count() as u64 * ring.effective_replicas() as u64).max(1);
        ClusterStatus {
            node: self.identity.node.0,
            cluster: self.identity.cluster.clone(),
            partitions: ring.partitioner().count(),
            replicas: ring.effective_replicas() as u32,
            members: self
                .membership
                .records()
                .into_iter()
                .map(|r| MemberStatus {
                    id: r.id.0,
                    state: if r.tokens.is_empty() {
                        "joining".into()
                    } else if self.node.believes_up(r.id) {
                        "normal".into()
                    } else {
                        "down".into()
                    },
                    share: counts.get(&r.id).copied().unwrap_or(0) as f64 / total as f64,
                    address: r.address,
                    zone: r.zone,
                })
                .collect(),
        }
    }
}
