//! The client: connect to a cluster, send each request to a replica of its
//! key, get typed answers.
//!
//! [`Client::connect`] opens a QUIC connection (mutual TLS, cluster CA) to
//! a seed and fetches the routing table. Each request then goes straight to
//! the first primary of its key's partition that answers (zero-hop routing,
//! as Dynamo's client-driven coordination; a primary coordinates writes
//! itself, so nothing is forwarded), falling back to the other primaries
//! and then to any member, and to the seeds when no table is known. One
//! long-lived bidirectional stream per node carries every request to it,
//! multiplexed by request id.
//!
//! Failures are typed ([`ClientError`]). A node that could not be reached
//! is tried last for [`FAILURE_MEMORY`]. A request is retried on another
//! node only when it could not be delivered (connection refused or lost
//! before an answer); a write that timed out is *not* retried, since it may
//! have been applied: the caller decides. The routing table is refreshed
//! when a node fails, at most once per [`ROUTING_REFRESH`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{Mutex, oneshot};
use tracing::debug;

use crate::api::{Request, RequestError, Response};
use crate::consistency::Consistency;
use crate::context::Context;
use crate::protocol::{ClientMessage, ClusterStatus, NodeMessage, RoutingTable};
use crate::routing::partition_of;
use crate::tls::{TlsError, TlsFiles, client_config};
use crate::wire::{self, ALPN_CLIENT, NODE_SERVER_NAME};

/// Default time to wait for one answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Shortest time between two routing-table refreshes.
pub const ROUTING_REFRESH: Duration = Duration::from_secs(1);

/// Longest wait for a connection to a node (a dead node never answers the
/// handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a node that could not be reached is tried only after the others.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(5);

/// How to reach a cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Addresses of some nodes; any one that answers is enough.
    pub seeds: Vec<SocketAddr>,
    /// The client's certificate, key and the cluster CA.
    pub tls: TlsFiles,
    /// How long to wait for one answer (default 5 s).
    pub timeout: Duration,
    /// Further nodes to try when one cannot be reached (default 2).
    pub retries: usize,
    /// Send requests straight to a replica of the key (default true).
    pub zero_hop: bool,
}

impl ClientConfig {
    /// A configuration with defaults for everything but seeds and TLS.
    pub fn new(seeds: Vec<SocketAddr>, tls: TlsFiles) -> Self {
        Self {
            seeds,
            tls,
            timeout: DEFAULT_TIMEOUT,
            retries: 2,
            zero_hop: true,
        }
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A node refused this client's certificate (or this client refused
    /// the node's): the TLS material is not of this cluster.
    #[error("TLS handshake with {node} failed: {reason}")]
    TlsRefused {
        /// The node.
        node: SocketAddr,
        /// What the TLS layer said.
        reason: String,
    },
    /// No node could be reached; each attempt and why it failed.
    #[error("no node could be reached: {}", .0.join("; "))]
    Unreachable(Vec<String>),
    /// A node took longer than the timeout to answer; a write may or may
    /// not have been applied.
    #[error("no answer from {node} within {timeout:?}")]
    Timeout {
        /// The node asked.
        node: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
    /// The cluster answered with an error.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A node answered something this client does not understand.
    #[error("protocol error from {node}: {message}")]
    Protocol {
        /// The node.
        node: SocketAddr,
        /// What was wrong.
        message: String,
    },
}

/// Why a connection could not be opened.
enum OpenError {
    /// The TLS handshake failed: a certificate was refused.
    Tls(String),
    /// Anything else (unreachable, timed out, closed).
    Other(String),
}

/// One node's connection and its multiplexed stream.
struct NodeConn {
    connection: quinn::Connection,
    send: Mutex<quinn::SendStream>,
    pending: DashMap<u64, oneshot::Sender<NodeMessage>>,
    dead: AtomicBool,
}

impl NodeConn {
    async fn open(endpoint: &quinn::Endpoint, address: SocketAddr) -> Result<Arc<Self>, OpenError> {
        let connecting = endpoint
            .connect(address, NODE_SERVER_NAME)
            .map_err(|e| OpenError::Other(e.to_string()))?;
        let connection = connecting.await.map_err(|e| {
            let code = match &e {
                quinn::ConnectionError::TransportError(t) => Some(u64::from(t.code)),
                quinn::ConnectionError::ConnectionClosed(c) => Some(u64::from(c.error_code)),
                _ => None,
            };
            // 0x100..=0x1ff: a TLS alert, i.e. a certificate was refused.
            match code {
                Some(c) if (0x100..=0x1ff).contains(&c) => OpenError::Tls(e.to_string()),
                _ => OpenError::Other(e.to_string()),
            }
        })?;
        let (send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|e| OpenError::Other(e.to_string()))?;
        let conn = Arc::new(NodeConn {
            connection,
            send: Mutex::new(send),
            pending: DashMap::new(),
            dead: AtomicBool::new(false),
        });
        let reader = conn.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                match wire::read::<NodeMessage>(&mut recv, &mut buf).await {
                    Ok(Some(message)) => {
                        let id = match &message {
                            NodeMessage::Outcome { id, .. }
                            | NodeMessage::Routing { id, .. }
                            | NodeMessage::Status { id, .. }
                            | NodeMessage::Admin { id, .. } => *id,
                            NodeMessage::Error { message } => {
                                debug!(%address, message, "node reported a protocol error");
                                break;
                            }
                        };
                        if let Some((_, waiter)) = reader.pending.remove(&id) {
                            let _ = waiter.send(message);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(%address, error = %e, "connection to node lost");
                        break;
                    }
                }
            }
            reader.dead.store(true, Ordering::SeqCst);
            reader.pending.clear();
        });
        Ok(conn)
    }

    fn alive(&self) -> bool {
        !self.dead.load(Ordering::SeqCst) && self.connection.close_reason().is_none()
    }
}

struct Inner {
    endpoint: quinn::Endpoint,
    config: ClientConfig,
    conns: DashMap<SocketAddr, Arc<NodeConn>>,
    table: std::sync::RwLock<Option<RoutingTable>>,
    refreshed: std::sync::Mutex<Option<Instant>>,
    /// Nodes that could not be reached, and when.
    failed: DashMap<SocketAddr, Instant>,
    next_id: AtomicU64,
}

/// What one attempt on one node came to.
enum Attempt {
    Answered(NodeMessage),
    /// Not delivered: safe to try elsewhere.
    Undelivered(String),
    /// The TLS handshake failed: trying elsewhere will not help.
    TlsRefused(String),
    TimedOut,
}

/// A connection to a Quorra cluster. Cheap to clone; clones share
/// connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to the first seed that answers and fetches the routing table.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let quic = client_config(&config.tls, ALPN_CLIENT)?;
        let bind: SocketAddr = match config.seeds.first() {
            Some(SocketAddr::V6(_)) => "[::]:0".parse().expect("valid"),
            _ => "0.0.0.0:0".parse().expect("valid"),
        };
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| ClientError::Unreachable(vec![e.to_string()]))?;
        endpoint.set_default_client_config(quic);
        let client = Client {
            inner: Arc::new(Inner {
                endpoint,
                config,
                conns: DashMap::new(),
                table: std::sync::RwLock::new(None),
                refreshed: std::sync::Mutex::new(None),
                failed: DashMap::new(),
                next_id: AtomicU64::new(1),
            }),
        };
        client.refresh_routing().await?;
        Ok(client)
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Reads every sibling of `key`.
    pub async fn get(
        &self,
        key: impl Into<Bytes>,
        consistency: Consistency,
    ) -> Result<Response, ClientError> {
        self.request(Request::Get {
            key: key.into(),
            consistency,
        })
        .await
    }

    /// Writes `value`, replacing what `context` covers (empty: a blind write).
    pub async fn put(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        context: &Context,
        consistency: Consistency,
    ) -> Result<Response, ClientError> {
        self.request(Request::Put {
            key: key.into(),
            value: value.into(),
            context: context.clone(),
            consistency,
        })
        .await
    }

    /// Deletes what `context` covers.
    pub async fn delete(
        &self,
        key: impl Into<Bytes>,
        context: &Context,
        consistency: Consistency,
    ) -> Result<Response, ClientError> {
        self.request(Request::Delete {
            key: key.into(),
            context: context.clone(),
            consistency,
        })
        .await
    }

    /// Sends any request, routed to a replica of its key.
    pub async fn request(&self, request: Request) -> Result<Response, ClientError> {
        let targets = self.targets(request.key());
        let retry_timeouts = !request.is_write();
        let message = |id| ClientMessage::Request {
            id,
            request: request.clone(),
        };
        match self.call(&targets, message, retry_timeouts).await? {
            (_, NodeMessage::Outcome { outcome, .. }) => outcome.map_err(ClientError::Request),
            (node, other) => Err(ClientError::Protocol {
                node,
                message: format!("expected an outcome, got {other:?}"),
            }),
        }
    }

    /// The cluster's status as the first reachable node sees it.
    pub async fn status(&self) -> Result<ClusterStatus, ClientError> {
        let targets = self.all_nodes();
        match self
            .call(&targets, |id| ClientMessage::Status { id }, true)
            .await?
        {
            (_, NodeMessage::Status { status, .. }) => Ok(*status),
            (node, other) => Err(ClientError::Protocol {
                node,
                message: format!("expected a status, got {other:?}"),
            }),
        }
    }

    /// The status as one given node sees it.
    pub async fn status_of(&self, node: SocketAddr) -> Result<ClusterStatus, ClientError> {
        match self
            .call(&[node], |id| ClientMessage::Status { id }, false)
            .await?
        {
            (_, NodeMessage::Status { status, .. }) => Ok(*status),
            (node, other) => Err(ClientError::Protocol {
                node,
                message: format!("expected a status, got {other:?}"),
            }),
        }
    }

    /// Sends an operator's command to one node and returns its answer.
    pub async fn admin(
        &self,
        node: SocketAddr,
        command: crate::protocol::AdminCommand,
    ) -> Result<String, ClientError> {
        let message = |id| ClientMessage::Admin {
            id,
            command: command.clone(),
        };
        match self.call(&[node], message, false).await? {
            (
                _,
                NodeMessage::Admin {
                    result: Ok(text), ..
                },
            ) => Ok(text),
            (
                _,
                NodeMessage::Admin {
                    result: Err(text), ..
                },
            ) => Err(ClientError::Request(RequestError::Invalid(text))),
            (node, other) => Err(ClientError::Protocol {
                node,
                message: format!("expected an admin answer, got {other:?}"),
            }),
        }
    }

    /// The routing table in use, if any.
    pub fn routing(&self) -> Option<RoutingTable> {
        self.inner.table.read().ok().and_then(|t| t.clone())
    }

    /// Fetches the routing table again.
    pub async fn refresh_routing(&self) -> Result<(), ClientError> {
        if let Ok(mut at) = self.inner.refreshed.lock() {
            *at = Some(Instant::now());
        }
        let targets = self.all_nodes();
        match self
            .call(&targets, |id| ClientMessage::Routing { id }, true)
            .await?
        {
            (_, NodeMessage::Routing { table, .. }) => {
                if let Ok(mut t) = self.inner.table.write() {
                    *t = Some(table);
                }
                Ok(())
            }
            (node, other) => Err(ClientError::Protocol {
                node,
                message: format!("expected a routing table, got {other:?}"),
            }),
        }
    }

    /// Closes every connection.
    pub fn close(&self) {
        self.inner.endpoint.close(0u32.into(), b"client closed");
    }

    /// Every known node: the seeds first (the nodes the caller chose), then
    /// the other members of the table; nodes that failed recently go last.
    fn all_nodes(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = self.inner.config.seeds.clone();
        if let Some(table) = self.routing() {
            for m in table
                .members
                .iter()
                .filter_map(|m| m.address.parse::<SocketAddr>().ok())
            {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        self.demote_failed(out)
    }

    /// Moves nodes that failed within [`FAILURE_MEMORY`] to the end.
    fn demote_failed(&self, nodes: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let failed = |n: &SocketAddr| {
            self.inner
                .failed
                .get(n)
                .is_some_and(|at| at.elapsed() < FAILURE_MEMORY)
        };
        let (bad, mut good): (Vec<SocketAddr>, Vec<SocketAddr>) =
            nodes.into_iter().partition(failed);
        good.extend(bad);
        good
    }

    /// Where to send a request for `key`: its primaries first (zero hop),
    /// then every other known node; recently failed nodes last.
    fn targets(&self, key: &[u8]) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        if self.inner.config.zero_hop
            && let Some(table) = self.routing()
        {
            let p = partition_of(key, table.partitions);
            out.extend(
                table
                    .owners_of(p)
                    .filter_map(|m| m.address.parse::<SocketAddr>().ok()),
            );
        }
        for n in self.all_nodes() {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        self.demote_failed(out)
    }

    async fn connection(&self, node: SocketAddr) -> Result<Arc<NodeConn>, OpenError> {
        if let Some(c) = self.inner.conns.get(&node)
            && c.alive()
        {
            return Ok(c.clone());
        }
        let limit = self.inner.config.timeout.min(CONNECT_TIMEOUT);
        let conn =
            match tokio::time::timeout(limit, NodeConn::open(&self.inner.endpoint, node)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(OpenError::Other(format!("no connection within {limit:?}"))),
            };
        self.inner.conns.insert(node, conn.clone());
        Ok(conn)
    }

    async fn attempt(&self, node: SocketAddr, message: ClientMessage, id: u64) -> Attempt {
        let conn = match self.connection(node).await {
            Ok(c) => c,
            Err(OpenError::Tls(reason)) => return Attempt::TlsRefused(reason),
            Err(OpenError::Other(e)) => return Attempt::Undelivered(format!("{node}: {e}")),
        };
        let frame = match wire::encode(&message) {
            Ok(f) => f,
            Err(e) => return Attempt::Undelivered(format!("{node}: {e}")),
        };
        let (tx, rx) = oneshot::channel();
        conn.pending.insert(id, tx);
        let sent = conn.send.lock().await.write_all(&frame).await;
        if let Err(e) = sent {
            conn.pending.remove(&id);
            conn.dead.store(true, Ordering::SeqCst);
            return Attempt::Undelivered(format!("{node}: {e}"));
        }
        match tokio::time::timeout(self.inner.config.timeout, rx).await {
            Ok(Ok(answer)) => Attempt::Answered(answer),
            Ok(Err(_)) => {
                Attempt::Undelivered(format!("{node}: connection lost before the answer"))
            }
            Err(_) => {
                conn.pending.remove(&id);
                Attempt::TimedOut
            }
        }
    }

    /// Tries `targets` in order until one answers (see the module
    /// documentation for what is retried).
    async fn call(
        &self,
        targets: &[SocketAddr],
        message: impl Fn(u64) -> ClientMessage,
        retry_timeouts: bool,
    ) -> Result<(SocketAddr, NodeMessage), ClientError> {
        let mut failures = Vec::new();
        let attempts = self.inner.config.retries + 1;
        for &node in targets.iter().take(attempts.max(1)) {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            match self.attempt(node, message(id), id).await {
                Attempt::Answered(answer) => return Ok((node, answer)),
                Attempt::TlsRefused(reason) => {
                    return Err(ClientError::TlsRefused { node, reason });
                }
                Attempt::Undelivered(why) => {
                    failures.push(why);
                    self.inner.failed.insert(node, Instant::now());
                    self.maybe_refresh();
                }
                Attempt::TimedOut if retry_timeouts => {
                    self.inner.failed.insert(node, Instant::now());
                    failures.push(format!(
                        "{node}: no answer within {:?}",
                        self.inner.config.timeout
                    ));
                }
                Attempt::TimedOut => {
                    return Err(ClientError::Timeout {
                        node,
                        timeout: self.inner.config.timeout,
                    });
                }
            }
        }
        if failures.is_empty() {
            failures.push("no node known".into());
        }
        Err(ClientError::Unreachable(failures))
    }

    /// Refreshes the routing table in the background, at most once per
    /// [`ROUTING_REFRESH`].
    fn maybe_refresh(&self) {
        let due = match self.inner.refreshed.lock() {
            Ok(mut at) => {
                let due = at.is_none_or(|t| t.elapsed() >= ROUTING_REFRESH);
                if due {
                    *at = Some(Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if due {
            let client = self.clone();
            tokio::spawn(async move {
                if let Err(e) = client.refresh_routing().await {
                    debug!(error = %e, "routing refresh failed");
                }
            });
        }
    }
}
