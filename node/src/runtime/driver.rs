//! The driver: the one task that owns the node core and its membership.
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
//! What gossip means for the core (ring, peer opinions, joining, leaving)
//! is decided by [`Membership`], which the simulator drives too; the driver
//! only carries its messages and stops the node once it has departed.
//!
//! When the storage fails (a full disk, an I/O error) the driver keeps the
//! node up: the core takes no more writes, reads are still served, and once
//! there is space again the engine is reopened and a new core started on it,
//! as after a crash ([`super::storage_watch`]). Clients waiting on the old
//! core are told that their request's outcome is unknown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quorra_client::RequestError;
use quorra_client::protocol::{
    AdminCommand, AntiEntropyStatus, ClientMessage, ClusterStatus, GainReport, HintsStatus,
    MemberStatus, MemoryStatus, MoveWait, MovesStatus, NodeMessage, RequestsStatus, RoutingMember,
    RoutingTable,
};
use quorra_client::wire;
use quorra_gossip::Target;
use quorra_ring::NodeId;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::admission::{Admission, Permit};
use super::daemon::DaemonError;
use super::storage_watch::{PROBE_BYTES, StorageWatch};
use super::transport::{Input, PeerFrame, ReplyTo, Transport};
use crate::admin::metrics::{RequestKind, Source};
use crate::admin::query::{RingMember, RingView};
use crate::admin::ready::{Readiness, readiness};
use crate::admin::snapshot::{Process, Snapshot};
use crate::admin::{Answer, Metrics, Query};
use crate::core::{ClientTag, Node, Stats};
use crate::membership::{LEAVE_STEP, Membership};
use crate::storage::reopen::Reopenable;
use crate::storage::{Engine, Lsn, MemoryBudget, StorageError, Store};

/// Builds a new core and its membership on the store (after the engine was
/// reopened), given the driver's clock.
pub type Rebuild = Box<dyn FnMut(Duration) -> Result<(Node, Membership), DaemonError> + Send>;

/// A flush slower than this is logged as a slow disk.
pub const SLOW_FLUSH: Duration = Duration::from_secs(1);

/// At most one slow-flush line per this long.
pub const SLOW_FLUSH_LOG_EVERY: Duration = Duration::from_secs(30);

/// Inputs handled per wake-up before outputs are sent and a flush asked.
const BATCH: usize = 1024;

/// Everything the driver needs to start.
pub struct DriverParts {
    /// The core.
    pub node: Node,
    /// Its store.
    pub store: Store,
    /// Its membership (gossiper and identity).
    pub membership: Membership,
    /// The transport.
    pub transport: Arc<Transport>,
    /// Inputs from the transport.
    pub inbox: mpsc::Receiver<Input>,
    /// Set when the node must stop.
    pub shutdown: watch::Receiver<bool>,
    /// Leave the cluster (announce `leaving`, then `left`) when asked to stop.
    pub leave_on_shutdown: bool,
    /// The origin of the core's and the gossiper's clock.
    pub origin: Instant,
    /// The engine under `store`, reopened after a failure.
    pub engine: Arc<Reopenable>,
    /// The memory budget the store's caches were sized from.
    pub memory: MemoryBudget,
    /// Makes a new core and membership once the engine is reopened.
    pub rebuild: Rebuild,
    /// Where request latencies and flush times go (none: not recorded).
    pub metrics: Option<Arc<Metrics>>,
    /// The client requests admitted at the edge (its sheds are counted
    /// with the core's).
    pub admission: Arc<Admission>,
}

/// A client request the core is working on: where its answer goes, and
/// what its metrics need.
struct Waiting {
    reply: ReplyTo,
    id: u64,
    /// Its place among the admitted requests, given back with the answer.
    permit: Option<Permit>,
    /// The request's labels, source and arrival, when metrics are kept.
    measured: Option<(RequestKind, Source, Instant)>,
}

/// The driver's state.
pub struct Driver {
    node: Node,
    store: Store,
    membership: Membership,
    transport: Arc<Transport>,
    inbox: mpsc::Receiver<Input>,
    shutdown: watch::Receiver<bool>,
    leave_on_shutdown: bool,
    origin: Instant,
    clients: HashMap<ClientTag, Waiting>,
    next_tag: ClientTag,
    flush_tx: mpsc::Sender<(Result<Lsn, StorageError>, Duration)>,
    flush_rx: mpsc::Receiver<(Result<Lsn, StorageError>, Duration)>,
    flushing: bool,
    /// When a slow flush was last logged (at most one line per
    /// [`SLOW_FLUSH_LOG_EVERY`]).
    slow_flush_logged: Option<Instant>,
    /// When the flush in progress started.
    flush_started: Option<Instant>,
    engine: Arc<Reopenable>,
    memory: MemoryBudget,
    rebuild: Rebuild,
    watch: StorageWatch,
    probe_tx: mpsc::Sender<Result<(), String>>,
    probe_rx: mpsc::Receiver<Result<(), String>>,
    metrics: Option<Arc<Metrics>>,
    admission: Arc<Admission>,
    /// The counters of the cores this process ran before the current one
    /// (one per recovery from a storage failure), so that what `status`
    /// and `/metrics` report keeps counting from the process's start.
    carried: Stats,
}

impl Driver {
    /// A driver over `parts`.
    pub fn new(parts: DriverParts) -> Self {
        let (flush_tx, flush_rx) = mpsc::channel(4);
        let (probe_tx, probe_rx) = mpsc::channel(1);
        Self {
            node: parts.node,
            store: parts.store,
            membership: parts.membership,
            transport: parts.transport,
            inbox: parts.inbox,
            shutdown: parts.shutdown,
            leave_on_shutdown: parts.leave_on_shutdown,
            origin: parts.origin,
            clients: HashMap::new(),
            next_tag: 1,
            flush_tx,
            flush_rx,
            flushing: false,
            slow_flush_logged: None,
            flush_started: None,
            engine: parts.engine,
            memory: parts.memory,
            rebuild: parts.rebuild,
            watch: StorageWatch::default(),
            probe_tx,
            probe_rx,
            metrics: parts.metrics,
            admission: parts.admission,
            carried: Stats::default(),
        }
    }

    /// The core's counters since this process started, over recoveries.
    fn stats(&self) -> Stats {
        let mut all = self.carried.clone();
        all.absorb(self.node.stats());
        all
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Runs until shutdown (or until the node has left); then makes
    /// everything durable.
    pub async fn run(mut self) -> Result<(), DaemonError> {
        // The ring of the members remembered from the last run, at once.
        self.membership.start(&mut self.node)?;
        self.outputs()?;
        let mut shutdown = self.shutdown.clone();
        loop {
            let next = self.node.poll_timeout().min(self.membership.poll_timeout());
            let deadline = tokio::time::Instant::from_std(self.origin + next);
            let probe_at = self
                .watch
                .failing
                .as_ref()
                .filter(|f| !f.probing)
                .map(|f| tokio::time::Instant::from_std(f.next_probe));
            tokio::select! {
                biased;
                changed = shutdown.changed(), if !self.membership.departing() => {
                    if changed.is_ok() && self.leave_on_shutdown && self.membership.joined() {
                        info!("leaving the cluster before shutting down");
                        let _ = self.membership.leave();
                    } else {
                        break;
                    }
                }
                Some((result, took)) = self.flush_rx.recv() => {
                    self.flushing = false;
                    self.note_flush_time(took, true);
                    let now = self.now();
                    match result {
                        Ok(_) => self.node.handle_flushed(now),
                        Err(e) => {
                            self.node.handle_flush_failed(now);
                            if self.watch.failing.is_none() {
                                self.enter_failure(&e.to_string());
                            }
                            self.watch.flush_failed(Instant::now());
                        }
                    }
                }
                Some(probe) = self.probe_rx.recv() => match probe {
                    Ok(()) => self.recover().await?,
                    Err(e) => self.watch.probe_failed(&e, Instant::now()),
                },
                _ = tokio::time::sleep_until(probe_at.unwrap_or(deadline)), if probe_at.is_some() => {
                    self.start_probe();
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
                    self.membership.handle_timeout(now);
                    if self.membership.departed() {
                        self.outputs()?;
                        break;
                    }
                }
            }
            self.outputs()?;
            if let Some(why) = self.membership.failure() {
                return Err(DaemonError::Membership(why.to_string()));
            }
        }
        // Stopping: wait for a flush in flight, then flush everything.
        if self.flushing {
            let _ = self.flush_rx.recv().await;
        }
        if let Some(f) = &self.watch.failing {
            // Nothing can be saved on a failed store: what was flushed
            // before the failure is what the next start finds.
            warn!(error = %f.error, "stopping with failed storage: nothing more is saved");
            return Ok(());
        }
        self.membership.save()?;
        self.store.flush()?;
        Ok(())
    }

    /// Notices an engine failure the store reported since the last look,
    /// and tells the core and the cluster.
    fn watch_storage(&mut self) {
        if self.watch.failing.is_some() {
            return;
        }
        if let Some(failure) = self.engine.failure() {
            self.enter_failure(&failure.to_string());
        }
    }

    fn enter_failure(&mut self, error: &str) {
        self.watch.fail(error, Instant::now());
        self.node.handle_storage_failed(error.to_string());
        self.membership.set_storage_failing(true);
    }

    /// Checks for free space on a blocking thread; the answer comes back
    /// through `probe_rx`.
    fn start_probe(&mut self) {
        let Some(f) = &mut self.watch.failing else {
            return;
        };
        f.probing = true;
        let engine = self.engine.clone();
        let done = self.probe_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = engine.probe_space(PROBE_BYTES).map_err(|e| e.to_string());
            let _ = done.blocking_send(result);
        });
    }

    /// There is space again: reopens the engine and starts a new core on
    /// it, as after a crash. A reopen that fails leaves the node failing,
    /// to try again later; a core that cannot start on the reopened engine
    /// stops the process, since the old core no longer matches its store.
    async fn recover(&mut self) -> Result<(), DaemonError> {
        if self.flushing {
            let _ = self.flush_rx.recv().await;
            self.flushing = false;
        }
        info!("space is available again: reopening the storage engine");
        let engine = self.engine.clone();
        let reopened = tokio::task::spawn_blocking(move || engine.reopen())
            .await
            .unwrap_or_else(|e| Err(StorageError::engine("reopen", e)));
        if let Err(e) = reopened {
            self.watch
                .probe_failed(&format!("reopen: {e}"), Instant::now());
            return Ok(());
        }
        self.store.clear_cache();
        // Requests waiting on the old core: their writes were not made
        // durable here; whether the others applied them is unknown.
        let waiting: Vec<ClientTag> = self.clients.keys().copied().collect();
        for tag in waiting {
            let outcome = Err(RequestError::Unavailable(
                "the node restarted after a storage failure; the request may or may not have \
                 been applied by other replicas"
                    .into(),
            ));
            self.answer(tag, outcome);
        }
        let now = self.now();
        let (node, membership) = (self.rebuild)(now)?;
        let failed_for = self
            .watch
            .failing
            .as_ref()
            .map_or(0, |f| f.since.elapsed().as_secs());
        self.carried.absorb(self.node.stats());
        self.node = node;
        self.membership = membership;
        self.membership.start(&mut self.node)?;
        self.watch.recovered();
        info!(
            generation = self.node.started_as(),
            failed_for_secs = failed_for,
            "storage recovered: the node runs again on what its disk holds"
        );
        Ok(())
    }

    fn input(&mut self, input: Input) -> Result<(), StorageError> {
        let now = self.now();
        match input {
            Input::Peer { from, message } => self.node.handle_message(now, from, message),
            Input::Gossip { from, message } => self.membership.handle_message(now, from, message),
            Input::Client {
                message,
                reply,
                permit,
            } => match message {
                ClientMessage::Request { id, request } => {
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    let measured = self.metrics.as_ref().map(|_| {
                        let source = match reply {
                            ReplyTo::Stream(_) => Source::Sdk,
                            ReplyTo::Once(_) => Source::Resp,
                        };
                        (RequestKind::of(&request), source, Instant::now())
                    });
                    self.clients.insert(
                        tag,
                        Waiting {
                            reply,
                            id,
                            permit,
                            measured,
                        },
                    );
                    self.node.handle_client(now, tag, request);
                }
                ClientMessage::Routing { id } => {
                    let table = self.routing_table();
                    reply.send(NodeMessage::Routing { id, table });
                }
                ClientMessage::Status { id } => {
                    let status = self.status();
                    reply.send(NodeMessage::Status {
                        id,
                        status: Box::new(status),
                    });
                }
                ClientMessage::Admin { id, command } => {
                    let result = self.admin(command);
                    reply.send(NodeMessage::Admin { id, result });
                }
            },
            // A query whose asker gave up (its timeout passed) is skipped.
            Input::Admin { query, reply } if !reply.is_closed() => {
                let _ = reply.send(self.query(query));
            }
            Input::Admin { .. } => {}
        }
        Ok(())
    }

    /// Answers a waiting client and records the request's metrics.
    fn answer(&mut self, tag: ClientTag, outcome: quorra_client::Outcome) {
        let Some(mut waiting) = self.clients.remove(&tag) else {
            return;
        };
        if let Some(permit) = &mut waiting.permit {
            permit.judge(&outcome);
        }
        if let (Some(metrics), Some((kind, source, since))) = (&self.metrics, waiting.measured) {
            metrics.record_request(kind, source, &outcome, since.elapsed());
        }
        waiting.reply.send(NodeMessage::Outcome {
            id: waiting.id,
            outcome,
        });
    }

    /// Answers the admin listener.
    fn query(&self, query: Query) -> Answer {
        match query {
            Query::Status => Answer::Status(Box::new(self.status())),
            Query::Ring => Answer::Ring(Box::new(self.ring_view())),
            Query::Ready => Answer::Ready(self.readiness()),
            Query::Metrics => Answer::Metrics(Box::new(self.snapshot())),
        }
    }

    fn readiness(&self) -> Readiness {
        let gossip = self.membership.gossip();
        readiness(
            self.membership.identity().node,
            gossip.own().info.status.name(),
            self.watch.failing.is_some(),
            self.node.placement().rings(),
            |n| gossip.is_up(n),
        )
    }

    fn snapshot(&self) -> Snapshot {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = self.reported_stats();
        let ready = self.readiness();
        let counters = self.transport.counters();
        let store = self.node.store();
        Snapshot {
            status: self.status_with(&stats),
            stats,
            paths: self.transport.peer_paths(),
            tree_keys: self.node.tree_keys(),
            unflushed: store.applied_lsn().saturating_sub(store.durable_lsn()),
            in_flight: self.node.requests_in_flight() as u64,
            admission_limit: self.admission.limit() as u64,
            ready: ready.ready,
            partitions_without_quorum: ready.partitions_without_quorum,
            sdk_connections: counters.client_connections.load(Relaxed),
            gossip_bytes: counters.bytes.load(Relaxed),
            // Filled in by the admin listener, which knows them.
            resp_connections: 0,
            disk: None,
            data_bytes: None,
            certificate_expiry: None,
        }
    }

    /// The ring for `/v1/ring`: tokens of the newest layout, owners of
    /// the layout reads use.
    fn ring_view(&self) -> RingView {
        let placement = self.node.placement();
        let read = placement.read_ring();
        let partitioner = read.partitioner();
        RingView {
            node: self.membership.identity().node.0,
            partitions: partitioner.count(),
            replicas: read.effective_replicas() as u32,
            members: placement
                .newest()
                .members()
                .into_iter()
                .map(|m| RingMember {
                    id: m.id.0,
                    zone: m.zone,
                    tokens: m.tokens.iter().map(|t| t.0).collect(),
                })
                .collect(),
            owners: partitioner
                .iter()
                .map(|p| read.primaries(p).map(|n| n.0).collect())
                .collect(),
            moving: partitioner
                .iter()
                .filter(|&p| placement.moving(p))
                .map(|p| p.0)
                .collect(),
            starts: partitioner.iter().map(|p| partitioner.start(p)).collect(),
        }
    }

    fn admin(&mut self, command: AdminCommand) -> Result<String, String> {
        let me = self.membership.identity().node;
        match command {
            AdminCommand::Leave => {
                self.membership.leave()?;
                Ok(format!(
                    "node {me} is leaving: `leaving` now; `left` once its new owners hold \
                     every partition it owned, then it stops {} s later",
                    LEAVE_STEP.as_secs()
                ))
            }
            AdminCommand::Remove { node } => {
                self.membership.remove(NodeId(node))?;
                Ok(format!("node {node} removed; the news spreads by gossip"))
            }
            AdminCommand::Throttle {
                bytes_per_sec,
                streams,
            } => {
                if streams == Some(0) {
                    return Err("streams must be at least 1".into());
                }
                let now = self.now();
                let (rate, streams) =
                    self.node
                        .set_transfer_limits(now, bytes_per_sec, streams.map(|s| s as usize));
                let rate = if rate == 0 {
                    "unlimited".to_string()
                } else {
                    format!("{rate} bytes/s")
                };
                Ok(format!(
                    "node {me} pulls at {rate}, {streams} partitions at a time (until it restarts)"
                ))
            }
        }
    }

    /// Sends what the core and the gossiper produced, handles gossip's
    /// events, and starts a flush if the core asks for one.
    fn outputs(&mut self) -> Result<(), StorageError> {
        let now = self.now();
        if let Err(e) = self.membership.process(now, &mut self.node) {
            // The member table or the identity could not be saved: the
            // store failed, which the watch handles; the node goes on.
            if self.watch.failing.is_none() {
                self.enter_failure(&e.to_string());
            }
            self.watch.repeated(Instant::now());
        }
        self.watch_storage();
        while let Some((target, message)) = self.membership.poll_transmit() {
            let Ok(frame) = wire::encode(&PeerFrame::Gossip(message)) else {
                continue;
            };
            match target {
                Target::Member(id, address) => {
                    if let Ok(address) = address.parse::<SocketAddr>() {
                        self.transport.send_gossip(id, address, frame);
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
            self.answer(tag, outcome);
        }
        let now = self.now();
        if let Some(started) = self.flush_started.filter(|_| self.flushing) {
            // A flush that never returns is logged too, not only a slow one.
            self.note_flush_time(started.elapsed(), false);
        }
        if !self.flushing && self.node.poll_flush(now) {
            self.flushing = true;
            self.flush_started = Some(Instant::now());
            let store = self.store.clone();
            let done = self.flush_tx.clone();
            let metrics = self.metrics.clone();
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let result = store.flush();
                let took = started.elapsed();
                if let Some(m) = metrics {
                    m.record_flush(took);
                }
                let _ = done.blocking_send((result, took));
            });
        }
        Ok(())
    }

    /// Logs a flush slower than [`SLOW_FLUSH`] (`done`: it returned after
    /// `took`; else it has been running that long), at most once per
    /// [`SLOW_FLUSH_LOG_EVERY`]: the operator's first sign of a failing or
    /// saturated disk. The node goes on meanwhile (the flush runs outside
    /// the engine's write path); only acknowledgements of its own copies
    /// wait for it.
    fn note_flush_time(&mut self, took: Duration, done: bool) {
        if took < SLOW_FLUSH {
            return;
        }
        let now = Instant::now();
        if self
            .slow_flush_logged
            .is_some_and(|at| now.duration_since(at) < SLOW_FLUSH_LOG_EVERY)
        {
            return;
        }
        self.slow_flush_logged = Some(now);
        let what = if done { "took" } else { "has been running for" };
        warn!(
            took_ms = took.as_millis() as u64,
            "slow disk: a flush (fdatasync) {what} {took:.1?}; this node's acknowledgements wait \
             for it, quorums that do not need them go on (see quorra_storage_flush_duration_seconds)"
        );
    }

    fn address(&self, id: NodeId) -> Option<SocketAddr> {
        self.membership.address(id)?.parse().ok()
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
                    address: self.membership.address(id).unwrap_or_default().to_string(),
                })
                .collect(),
            owners,
        }
    }

    fn status(&self) -> ClusterStatus {
        self.status_with(&self.reported_stats())
    }

    /// The core's counters with the requests the runtime shed before they
    /// reached it.
    fn reported_stats(&self) -> Stats {
        let mut stats = self.stats();
        stats.shed_requests += self.admission.shed();
        stats
    }

    /// [`Driver::status`] with the counters already taken.
    fn status_with(&self, stats: &Stats) -> ClusterStatus {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.now();
        let counters = self.transport.counters();
        let gossip = self.membership.gossip();
        // Shares are where ownership is going (the newest layout); reads
        // move there once its new owners hold their data.
        let ring = self.node.placement().newest();
        let counts: HashMap<NodeId, u64> = ring.partition_replica_counts().into_iter().collect();
        let total = (ring.partitioner().count() as u64 * ring.effective_replicas() as u64).max(1);
        ClusterStatus {
            node: self.membership.identity().node.0,
            cluster: self.membership.identity().cluster.clone(),
            partitions: ring.partitioner().count(),
            replicas: ring.effective_replicas() as u32,
            members: gossip
                .entries()
                .map(|e| MemberStatus {
                    id: e.id.0,
                    state: if !e.info.status.gone() && !gossip.is_up(e.id) {
                        "down".into()
                    } else {
                        e.info.status.name().into()
                    },
                    share: counts.get(&e.id).copied().unwrap_or(0) as f64 / total as f64,
                    address: e.info.address.clone(),
                    zone: e.info.zone.clone(),
                    storage_failing: e.info.storage_failing,
                    phi: gossip.phi(e.id, now),
                    heartbeat_age_secs: gossip.heartbeat_age(e.id, now),
                })
                .collect(),
            gossip_datagrams: counters.datagrams.load(Relaxed),
            gossip_streamed: counters.streamed.load(Relaxed),
            anti_entropy: {
                let (trees, running) = self.node.anti_entropy_usage();
                AntiEntropyStatus {
                    enabled: self.node.options().anti_entropy,
                    trees: trees as u64,
                    running: running as u64,
                    exchanges: stats.ae_exchanges,
                    in_sync: stats.ae_in_sync,
                    failed: stats.ae_failed,
                    keys_repaired: stats.ae_keys_repaired,
                    keys_sent: stats.ae_keys_sent,
                    bytes_sent: stats.ae_bytes_sent,
                }
            },
            storage: self.watch.status(self.engine.name(), Instant::now()),
            memory: MemoryStatus {
                budget: self.memory.bytes(),
                object_cache_capacity: self.store.cache_capacity() as u64,
                object_cache_bytes: self.store.cached_bytes() as u64,
                block_cache_capacity: self.memory.block_cache(),
                resident_bytes: Process::read().resident_bytes,
            },
            moves: self.moves_status(stats),
            hints: {
                let held = self.node.hints_by_owner(now);
                HintsStatus {
                    held: held.iter().map(|h| h.1).sum(),
                    bytes: held.iter().map(|h| h.2).sum(),
                    oldest_age_secs: held.iter().map(|h| h.3.as_secs()).max().unwrap_or(0),
                    stored: stats.hints_stored,
                    delivered: stats.hints_delivered,
                    refused: stats.hints_overflowed,
                }
            },
            anti_entropy_oldest_sync_secs: self
                .node
                .anti_entropy_oldest_sync(now)
                .map_or(0, |d| d.as_secs()),
            requests: RequestsStatus {
                // Refused at the edge and by the core.
                shed: stats.shed_requests,
                ..self.admission.status()
            },
        }
    }

    /// The layouts as this node sees them and what it pulls.
    fn moves_status(&self, stats: &Stats) -> MovesStatus {
        let placement = self.node.placement();
        let moving = placement
            .read_ring()
            .partitioner()
            .iter()
            .filter(|&p| placement.moving(p))
            .count() as u32;
        let now = self.now();
        let gains = self.node.transfers();
        let (keys_per_sec, eta) = self.node.transfers_progress(now);
        let mut status = MovesStatus {
            layouts: placement.rings().len() as u32,
            moving_partitions: moving,
            keys_per_sec: keys_per_sec.map_or(0, |r| r.round() as u64),
            eta_secs: eta.map(|s| s.ceil() as u64),
            gains: gains
                .into_iter()
                .map(|g| GainReport {
                    partition: g.partition.0,
                    waiting_on: g.waiting_on.iter().map(|n| n.0).collect(),
                    pulled: g.pulled.iter().map(|n| n.0).collect(),
                    retries: g.retries,
                    keys: g.keys,
                    bytes: g.bytes,
                    estimate_keys: g.estimate_keys,
                    keys_per_sec: g.keys_per_sec(now).map_or(0, |r| r.round() as u64),
                    bytes_per_sec: g.bytes_per_sec(now).map_or(0, |r| r.round() as u64),
                    eta_secs: g.eta_secs(now).map(|s| s.ceil() as u64),
                    last_error: g.last_error,
                })
                .collect(),
            pulls_started: stats.transfers_started,
            gains_completed: stats.transfers_completed,
            pulls_failed: stats.transfers_failed,
            keys_received: stats.transfer_keys,
            bytes_received: stats.transfer_bytes,
            keys_cleaned: stats.cleanup_keys,
            pull_budget: self.node.options().transfer_bytes_per_sec,
            pull_limit: self.node.transfer_limit().unwrap_or(0),
            allowed_share_permille: Some((self.node.allowed_share() * 1000.0).round() as u32),
            ..MovesStatus::default()
        };
        if let Some(stage) = self.membership.stage() {
            status.newest = stage.newest.stamp.to_string();
            status.read = stage.read.stamp.to_string();
            status.floor = stage.floor.stamp.to_string();
            status.waiting_on = stage
                .behind
                .iter()
                .filter(|(_, b)| b.ack || b.sync || b.sync_ack)
                .map(|(id, b)| MoveWait {
                    node: id.0,
                    ack: b.ack,
                    sync: b.sync,
                    read: b.sync_ack,
                })
                .collect();
        }
        status
    }
}
