//! The gateway: a RESP server on every node, a client of its own core.
//!
//! The gateway runs on a thread with a single-threaded runtime of its own
//! ([`spawn_thread`]), not on the driver's. On one runtime, 5,000
//! connections pipelining SETs were 5,000 tasks taking turns with the one
//! task that drives the core and the QUIC endpoint, whose every message
//! then waited a turn: the cluster completed 209 SETs/s where it does
//! ~11,000 at light load, and most admitted SETs timed out. On a thread of
//! its own, the operating system shares the cores between the flood and
//! the driver, whatever the number of connections.
//!
//! Each accepted connection (TCP, or TLS over TCP with the cluster's
//! certificates) gets a task ([`super::connection`]). Commands become
//! ordinary [`Request`]s handed to the driver through the same inbox as
//! requests from QUIC clients, so the gateway adds no path of its own into
//! the core: everything a Redis client does is a get, a put or an update
//! (see [`crate::core::update`]) coordinated by the node, with the
//! connection's consistency level.
//!
//! Start-up refuses a RESP port on a non-loopback address without a
//! password ([`RespConfig::check`]): a Redis port open to a network with
//! no password is how Redis servers get taken over.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quorra_client::protocol::{ClientMessage, ClusterStatus, NodeMessage, RoutingTable};
use quorra_client::{Outcome, Request, RequestError, TlsFiles};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::value::Hlc;
use crate::admin::Metrics;
use crate::runtime::admission::Admission;
use crate::runtime::transport::{Input, ReplyTo};
use crate::storage::Store;

/// Most RESP connections a node serves at once; more are closed at once
/// with `-ERR max number of clients reached`, as Redis does.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Longest a TLS handshake may take before the connection is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One counted connection; uncounted when dropped.
struct ConnectionSlot(Arc<Gateway>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How the gateway is set up.
#[derive(Clone, Debug)]
pub struct RespConfig {
    /// TCP address to listen on.
    pub listen: SocketAddr,
    /// The password `AUTH` must give (none: no `AUTH` needed).
    pub password: Option<String>,
    /// Serve TLS with these files (the node's certificate; clients are
    /// not asked for one).
    pub tls: Option<TlsFiles>,
    /// How often the sweeper walks this node's partitions for expired keys.
    pub sweep_interval: Duration,
}

/// Default pause between two walks of the expiry sweeper.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl RespConfig {
    /// Refuses a configuration that would expose an unprotected port.
    pub fn check(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() && self.password.is_none() {
            return Err(format!(
                "refusing to serve Redis on {} without a password: anyone who can reach it \
                 could read and change every key. Set --resp-password (or `requirepass` in the \
                 config file), or listen on a loopback address such as 127.0.0.1",
                self.listen
            ));
        }
        if self.password.as_deref() == Some("") {
            return Err("the RESP password must not be empty".into());
        }
        Ok(())
    }
}

/// What `INFO` and `CONFIG GET` report about the node.
#[derive(Clone, Debug)]
pub struct Facts {
    /// The node's id.
    pub node: u64,
    /// The storage engine's name.
    pub engine: String,
    /// The sync mode, as `quorra node --fsync` takes it.
    pub fsync: String,
    /// The data directory.
    pub data_dir: PathBuf,
}

/// The gateway's shared state.
pub struct Gateway {
    inbox: mpsc::Sender<Input>,
    /// Shared with the QUIC clients' connections: one limit per node.
    pub(super) admission: Arc<Admission>,
    pub(super) store: Store,
    pub(super) config: RespConfig,
    pub(super) facts: Facts,
    pub(super) started: Instant,
    next_client: AtomicU64,
    pub(super) connected: AtomicUsize,
    pub(super) connections_total: AtomicU64,
    pub(super) commands_total: AtomicU64,
    pub(super) sweep_stats: super::keyspace::SweepStats,
    hlc: Mutex<Hlc>,
    /// Where command counts and latencies go (none: not recorded).
    pub(super) metrics: Option<Arc<Metrics>>,
}

impl Gateway {
    /// A gateway handing requests to the driver's `inbox`, as many at a
    /// time as `admission` admits.
    pub fn new(
        inbox: mpsc::Sender<Input>,
        admission: Arc<Admission>,
        store: Store,
        config: RespConfig,
        facts: Facts,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            inbox,
            admission,
            store,
            config,
            facts,
            started: Instant::now(),
            next_client: AtomicU64::new(1),
            connected: AtomicUsize::new(0),
            connections_total: AtomicU64::new(0),
            commands_total: AtomicU64::new(0),
            sweep_stats: Default::default(),
            hlc: Mutex::new(Hlc::default()),
            metrics,
        }
    }

    /// Serves `listener` until `shutdown` is set.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let tls = match &self.config.tls {
            Some(files) => match super::tls::acceptor(files) {
                Ok(a) => Some(a),
                Err(e) => {
                    // Checked at start-up; only a file changed since gets here.
                    warn!(error = %e, "RESP TLS unusable; the RESP port is closed");
                    return;
                }
            },
            None => None,
        };
        info!(address = %self.config.listen, tls = tls.is_some(), "serving Redis (RESP)");
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors, say: wait, do not spin.
                            warn!(error = %e, "RESP accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    self.clone().start(stream, peer, tls.clone());
                }
            }
        }
    }

    fn start(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(self.config.listen);
        tokio::spawn(async move {
            // Given back however the task ends, a panic included.
            let slot = ConnectionSlot(self.clone());
            if self.connected.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
                drop(slot);
                super::connection::refuse(stream).await;
                return;
            }
            self.connections_total.fetch_add(1, Ordering::Relaxed);
            let id = self.next_client.fetch_add(1, Ordering::Relaxed);
            match tls {
                None => super::connection::serve(self.clone(), stream, id, peer, local).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(s)) => {
                            super::connection::serve(self.clone(), s, id, peer, local).await
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "RESP TLS handshake failed"),
                        Err(_) => debug!(%peer, "RESP TLS handshake timed out"),
                    }
                }
            }
            drop(slot);
        });
    }

    /// Hands `request` to the core and waits for its outcome.
    pub async fn call(&self, request: Request) -> Outcome {
        match self.ask(ClientMessage::Request { id: 0, request }).await {
            Some(NodeMessage::Outcome { outcome, .. }) => outcome,
            _ => Err(RequestError::Unavailable(
                "the node is shutting down".into(),
            )),
        }
    }

    /// The node's view of the cluster.
    pub async fn status(&self) -> Option<ClusterStatus> {
        match self.ask(ClientMessage::Status { id: 0 }).await {
            Some(NodeMessage::Status { status, .. }) => Some(*status),
            _ => None,
        }
    }

    /// The node's routing table.
    pub async fn routing(&self) -> Option<RoutingTable> {
        match self.ask(ClientMessage::Routing { id: 0 }).await {
            Some(NodeMessage::Routing { table, .. }) => Some(table),
            _ => None,
        }
    }

    /// Sends `message` into the driver's inbox and waits for its one answer.
    async fn ask(&self, message: ClientMessage) -> Option<NodeMessage> {
        let permit = match self.admission.admit_message(&message) {
            Ok(permit) => permit,
            Err(shed) => return Some(shed),
        };
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Input::Client {
                message,
                reply: ReplyTo::Once(reply),
                permit,
            })
            .await
            .ok()?;
        answer.await.ok()
    }

    /// A stamp for a value written without an update (`QUORRA.PUT`): after
    /// every stamp this gateway issued.
    pub fn stamp(&self) -> Hlc {
        let mut last = self.hlc.lock().unwrap_or_else(|e| e.into_inner());
        *last = Hlc::next(*last, wall_ms(), self.facts.node);
        *last
    }

    /// RESP connections open now.
    pub fn connections(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Whether clients must `AUTH` first.
    pub fn needs_auth(&self) -> bool {
        self.config.password.is_some()
    }

    /// Whether `given` is the password (compared in constant time).
    pub fn password_matches(&self, given: &[u8]) -> bool {
        let Some(want) = &self.config.password else {
            return true;
        };
        let want = want.as_bytes();
        let mut diff = want.len() ^ given.len();
        for (i, &w) in want.iter().enumerate() {
            diff |= usize::from(w ^ given.get(i).copied().unwrap_or(!w));
        }
        diff == 0
    }
}

/// Runs the gateway (its listener, connections and expiry sweeper) on a
/// thread of its own. It stops taking connections when `shutdown` is set;
/// the connections it has go on until the driver is gone (a node leaving
/// on shutdown hands its data off first, and RESP clients keep their
/// answers meanwhile).
pub fn spawn_thread(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let (started, outcome) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("resp".into())
        .spawn(move || {
            // Built here: a runtime must not be dropped inside another's
            // context, as it would be if this thread failed to start.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = started.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                tokio::spawn(super::keyspace::sweep(gateway.clone(), shutdown.clone()));
                gateway.clone().serve(listener, shutdown).await;
                gateway.inbox.closed().await;
            })
        })?;
    // Blocks for as long as the thread takes to start, once.
    outcome.recv().unwrap_or_else(|_| {
        Err(std::io::Error::other(
            "the RESP thread ended before it started",
        ))
    })
}

/// The wall clock, Unix milliseconds: what expiry and stamps are measured in.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
