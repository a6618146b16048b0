//! The driver: the one task that owns the node core and the gossiper.
//!
//! It does for the runtime what the simulator does in simulation, and
//! nothing more: hand the core and the gossiper their inputs (peer and
//! gossip messages, client requests, timer expiries with the current time),
//! carry out their outputs (frames to peers, answers to clients), and run
//! group commit: after each batch of inputs, if the core asks for a flush,
//! flush the store on a blocking thread and hand the result back, which
//! releases the acknowledgements that waited for it. The core keeps running
//! while a flush is in progress, so the next batch is applied meanwhile and
//! made durable by the next one.
//!
//! Gossip drives membership: when the member table changes, the core gets
//! the ring of the new table; when the failure detector changes its mind,
//! the core's opinion of that peer follows. A node without tokens chooses
//! them once it sees another member owning some (or founds the cluster when
//! it has no seeds), then announces itself `normal`. Leaving announces
//! `leaving`, then `left`, then stops the node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quorra_client::protocol::{
    AdminCommand, ClientMessage, ClusterStatus, MemberStatus, NodeMessage, RoutingMember,
    RoutingTable,
};
use quorra_client::wire;
use quorra_gossip::{Entry, Event, Gossiper, Info, Status, Target};
use quorra_ring::{Member, NodeId, Ring, allocate_tokens};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use super::identity::{self, Identity};
use super::transport::{Input, PeerFrame, Transport};
use crate::core::{ClientTag, Node};
use crate::storage::{Lsn, StorageError, Store};

/// Inputs handled per wake-up before outputs are sent and a flush asked.
const BATCH: usize = 1024;

/// Everything the driver needs to start.
pub struct DriverParts {
    /// The core.
    pub node: Node,
    /// Its store.
    pub store: Store,
    /// The node's identity.
    pub identity: Identity,
    /// The gossiper.
    pub gossip: Gossiper,
    /// The transport.
    pub transport: Arc<Transport>,
    /// Inputs from the transport.
    pub inbox: mpsc::Receiver<Input>,
    /// Whether the node has seeds (else it may found a cluster).
    pub has_seeds: bool,
    /// Tokens to choose when joining.
    pub tokens: usize,
    /// Set when the node must stop.
    pub shutdown: watch::Receiver<bool>,
    /// Leave the cluster (announce `leaving`, then `left`) when asked to stop.
    pub leave_on_shutdown: bool,
    /// The origin of the core's and the gossiper's clock.
    pub origin: Instant,
}

/// Where a departure stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Departure {
    Staying,
    /// `leaving` announced at this time.
    Leaving(Duration),
    /// `left` announced at this time; the node stops soon after.
    Left(Duration),
}

/// The driver's state.
pub struct Driver {
    node: Node,
    store: Store,
    identity: Identity,
    gossip: Gossiper,
    transport: Arc<Transport>,
    inbox: mpsc::Receiver<Input>,
    has_seeds: bool,
    tokens: usize,
    shutdown: watch::Receiver<bool>,
    leave_on_shutdown: bool,
    origin: Instant,
    clients: HashMap<ClientTag, (mpsc::Sender<NodeMessage>, u64)>,
    next_tag: ClientTag,
    flush_tx: mpsc::Sender<Result<Lsn, StorageError>>,
    flush_rx: mpsc::Receiver<Result<Lsn, StorageError>>,
    flushing: bool,
    departure: Departure,
    members_dirty: bool,
}

/// How long each step of leaving lasts, so the news reaches everyone.
const LEAVE_STEP: Duration = Duration::from_secs(3);

impl Driver {
    /// A driver over `parts`.
    pub fn new(parts: DriverParts) -> Self {
        let (flush_tx, flush_rx) = mpsc::channel(4);
        Self {
            node: parts.node,
            store: parts.store,
            identity: parts.identity,
            gossip: parts.gossip,
            transport: parts.transport,
            inbox: parts.inbox,
            has_seeds: parts.has_seeds,
            tokens: parts.tokens,
            shutdown: parts.shutdown,
            leave_on_shutdown: parts.leave_on_shutdown,
            origin: parts.origin,
            clients: HashMap::new(),
            next_tag: 1,
            flush_tx,
            flush_rx,
            flushing: false,
            departure: Departure::Staying,
            members_dirty: false,
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Runs until shutdown (or until the node has left); then makes
    /// everything durable.
    pub async fn run(mut self) -> Result<(), StorageError> {
        // The ring of the members remembered from the last run, at once.
        self.apply_ring();
        if self.identity.tokens.is_empty() && !self.has_seeds && self.gossip.entries().count() == 1
        {
            info!(cluster = %self.identity.cluster, partitions = self.identity.settings.partitions,
                  replicas = self.identity.settings.replicas, "founding a new cluster");
            self.choose_tokens()?;
        }
        let mut shutdown = self.shutdown.clone();
        loop {
            let next = self.node.poll_timeout().min(self.gossip.poll_timeout());
            let next = match self.departure {
                Departure::Staying => next,
                Departure::Leaving(at) | Departure::Left(at) => next.min(at + LEAVE_STEP),
            };
            let deadline = tokio::time::Instant::from_std(self.origin + next);
            tokio::select! {
                biased;
                changed = shutdown.changed(), if self.departure == Departure::Staying => {
                    if changed.is_ok() && self.leave_on_shutdown && !self.identity.tokens.is_empty() {
                        info!("leaving the cluster before shutting down");
                        self.start_leaving();
                    } else {
                        break;
                    }
                }
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
                    self.input(input)?;
                    for _ in 1..BATCH {
                        match self.inbox.try_recv() {
                            Ok(more) => self.input(more)?,
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = self.now();
                    self.node.handle_timeout(now);
                    self.gossip.handle_timeout(now);
                    if self.advance_departure(now) {
                        self.outputs()?;
                        break;
                    }
                }
            }
            self.outputs()?;
        }
        // Stopping: wait for a flush in flight, then flush everything.
        if self.flushing {
            let _ = self.flush_rx.recv().await;
        }
        self.save_members()?;
        self.store.flush()?;
        Ok(())
    }

    fn input(&mut self, input: Input) -> Result<(), StorageError> {
        let now = self.now();
        match input {
            Input::Peer { from, message } => self.node.handle_message(now, from, message),
            Input::Gossip { from, message } => self.gossip.handle_message(now, from, message),
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
                ClientMessage::Admin { id, command } => {
                    let result = self.admin(command);
                    let _ = reply.try_send(NodeMessage::Admin { id, result });
                }
            },
        }
        Ok(())
    }

    fn admin(&mut self, command: AdminCommand) -> Result<String, String> {
        match command {
            AdminCommand::Leave => {
                if self.departure != Departure::Staying {
                    return Err("this node is already leaving".into());
                }
                if self.identity.tokens.is_empty() {
                    return Err("this node has not joined yet".into());
                }
                self.start_leaving();
                Ok(format!(
                    "node {} is leaving: `leaving` now, `left` in {} s, then it stops",
                    self.identity.node,
                    LEAVE_STEP.as_secs()
                ))
            }
            AdminCommand::Remove { node } => {
                let id = NodeId(node);
                if id == self.identity.node {
                    return Err("a node cannot remove itself; use `quorra leave`".into());
                }
                match self.gossip.entry(id) {
                    None => Err(format!("node {node} is not a member")),
                    Some(e) if e.info.status.gone() => {
                        Err(format!("node {node} is already {}", e.info.status.name()))
                    }
                    Some(_) if self.gossip.is_up(id) => Err(format!(
                        "node {node} is up; remove only a node that died for good (stop it, or let it `quorra leave`)"
                    )),
                    Some(_) => {
                        self.gossip.remove(id);
                        Ok(format!("node {node} removed; the news spreads by gossip"))
                    }
                }
            }
        }
    }

    fn start_leaving(&mut self) {
        let now = self.now();
        self.departure = Departure::Leaving(now);
        self.set_status(Status::Leaving);
    }

    /// Moves a departure along; true when the node should stop now.
    fn advance_departure(&mut self, now: Duration) -> bool {
        match self.departure {
            Departure::Leaving(at) if now >= at + LEAVE_STEP => {
                self.departure = Departure::Left(now);
                self.identity.left = true;
                self.set_status(Status::Left);
                info!("left the cluster; stopping once the news has spread");
                false
            }
            Departure::Left(at) => now >= at + LEAVE_STEP,
            _ => false,
        }
    }

    fn set_status(&mut self, status: Status) {
        let mut info = self.gossip.own().info.clone();
        info.status = status;
        self.gossip.set_info(info);
        self.gossip.announce();
        self.identity.version = self.gossip.own().version;
        if let Err(e) = identity::save(&self.store, &self.identity) {
            error!(error = %e, "saving the identity failed");
        }
    }

    /// Sends what the core and the gossiper produced, handles gossip's
    /// events, and starts a flush if the core asks for one.
    fn outputs(&mut self) -> Result<(), StorageError> {
        while let Some(event) = self.gossip.poll_event() {
            self.gossip_event(event)?;
        }
        while let Some((target, message)) = self.gossip.poll_transmit() {
            let Ok(frame) = wire::encode(&PeerFrame::Gossip(message)) else {
                continue;
            };
            match target {
                Target::Member(id, address) => {
                    if let Ok(address) = address.parse::<SocketAddr>() {
                        self.transport.send(id, address, frame);
                    }
                }
                Target::Seed(address) => match address.parse::<SocketAddr>() {
                    Ok(a) => self.transport.send_once(a, frame),
                    Err(e) => warn!(%address, error = %e, "seed address does not parse"),
                },
            }
        }
        while let Some((to, message)) = self.node.poll_transmit() {
            let Some(address) = self.address(to) else {
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
        if self.members_dirty {
            self.members_dirty = false;
            self.save_members()?;
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
        Ok(())
    }

    fn gossip_event(&mut self, event: Event) -> Result<(), StorageError> {
        match event {
            Event::Changed(id) => {
                debug!(member = id.0, "member table changed");
                self.apply_ring();
                self.members_dirty = true;
                if self.identity.tokens.is_empty()
                    && !self.identity.left
                    && self
                        .gossip
                        .entries()
                        .any(|e| e.id != self.identity.node && e.info.status.owns_tokens())
                {
                    self.choose_tokens()?;
                }
            }
            Event::Up(id) => {
                info!(peer = id.0, "peer is up");
                self.node.handle_peer_status(id, true);
            }
            Event::Down(id) => {
                warn!(peer = id.0, "peer is down (phi accrual)");
                self.node.handle_peer_status(id, false);
            }
            Event::Refused { cluster, settings } => {
                warn!(
                    their_cluster = %cluster,
                    their_settings = settings,
                    our_cluster = %self.identity.cluster,
                    our_settings = quorra_gossip::settings_hash(self.identity.settings.partitions, self.identity.settings.replicas),
                    "gossip from a node of another cluster or with other partitions/replicas refused"
                );
            }
        }
        Ok(())
    }

    fn address(&self, id: NodeId) -> Option<SocketAddr> {
        self.gossip.entry(id)?.info.address.parse().ok()
    }

    /// The ring of gossip's member table: members that own tokens, and
    /// joining ones (known, owning nothing).
    fn ring(&self) -> Result<Ring, quorra_ring::RingError> {
        Ring::new(
            self.identity.settings,
            self.gossip
                .entries()
                .filter(|e| !e.info.status.gone())
                .map(|e| {
                    let tokens = if e.info.status.owns_tokens() {
                        e.info.tokens.clone()
                    } else {
                        Vec::new()
                    };
                    Member::new(e.id, e.info.zone.clone(), tokens)
                }),
        )
    }

    fn apply_ring(&mut self) {
        match self.ring() {
            Ok(ring) => self.node.handle_ring(ring),
            Err(e) => error!(error = %e, "the member table does not form a ring"),
        }
    }

    /// Chooses this node's tokens against the ring it sees, once, and
    /// announces itself `normal`.
    fn choose_tokens(&mut self) -> Result<(), StorageError> {
        let ring = match self.ring() {
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
        self.identity.tokens = tokens.clone();
        let mut info = self.gossip.own().info.clone();
        info.tokens = tokens;
        info.status = Status::Normal;
        self.gossip.set_info(info);
        self.gossip.announce();
        self.identity.version = self.gossip.own().version;
        identity::save(&self.store, &self.identity)?;
        info!(
            node = self.identity.node.0,
            tokens = self.identity.tokens.len(),
            "tokens chosen; now normal"
        );
        self.apply_ring();
        Ok(())
    }

    fn save_members(&self) -> Result<(), StorageError> {
        let members: Vec<Entry> = self.gossip.entries().cloned().collect();
        identity::save_members(&self.store, &members)
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
                        .gossip
                        .entry(id)
                        .map(|e| e.info.address.clone())
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
                .gossip
                .entries()
                .map(|e| MemberStatus {
                    id: e.id.0,
                    state: if !e.info.status.gone() && !self.gossip.is_up(e.id) {
                        "down".into()
                    } else {
                        e.info.status.name().into()
                    },
                    share: counts.get(&e.id).copied().unwrap_or(0) as f64 / total as f64,
                    address: e.info.address.clone(),
                    zone: e.info.zone.clone(),
                })
                .collect(),
        }
    }
}

/// The gossip entry of a node starting with `identity` at `address`.
pub fn own_entry(identity: &Identity, address: &str, generation: u32) -> Entry {
    Entry {
        id: identity.node,
        generation: u64::from(generation),
        heartbeat: 0,
        version: identity.version,
        info: Info {
            status: if identity.left {
                Status::Left
            } else if identity.tokens.is_empty() {
                Status::Joining
            } else {
                Status::Normal
            },
            address: address.to_string(),
            zone: identity.zone.clone(),
            tokens: identity.tokens.clone(),
        },
    }
}
