//! QUIC transport: one endpoint per node for peers and clients alike.
//!
//! **Peers.** A node sends to a peer over its own outgoing connection and
//! one long-lived unidirectional stream, opened with a `Hello` frame (the
//! sender's id and cluster), then carrying frames back to back; it receives
//! from that peer over the peer's connection. So each direction has exactly
//! one connection and one stream, and no two nodes race to set one up.
//! Frames queued for a peer that cannot be reached are dropped: the node
//! core treats them as lost messages and times out. When a peer's `Hello`
//! shows it restarted (a new boot value), our link to it is replaced too: a
//! killed process says no goodbye, and the old connection would swallow
//! frames until its idle timeout. A link task per peer
//! owns the connection, reconnects with backoff, and writes every frame
//! queued since its last write in one go.
//!
//! **Gossip** rides QUIC datagrams on the same connection when a message
//! fits one (digests and small updates almost always do): gossip tolerates
//! loss, and a datagram neither waits behind megabytes of core frames on
//! the stream nor takes a slot in its queue, so heartbeats keep flowing
//! under load. A datagram carries the sender's identity only through its
//! connection: it is accepted once that connection's stream has presented
//! an accepted `Hello`, and dropped before. Messages too large for a
//! datagram (updates with many tokens) go on the stream like core frames.
//!
//! **Clients** open bidirectional streams; each frame on one is a client
//! message, answered on the same stream.
//!
//! **Bad input** (a frame too large, an unknown version, a payload that
//! does not decode, a peer of another cluster) stops that stream with an
//! error code and a log line; the connection's other streams, and the node,
//! go on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use quorra_client::protocol::{ClientMessage, NodeMessage};
use quorra_client::wire::{self, ALPN_CLIENT, ALPN_PEER, NODE_SERVER_NAME};
use quorra_ring::{NodeId, RingConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::admission::{Admission, Permit};
use super::tls::{alpn, presented_node_certificate};
use crate::core::PeerMessage;
use quorra_gossip::GossipMessage;

/// Frames queued per peer before new ones are dropped.
pub const LINK_QUEUE: usize = 16 * 1024;

/// Frames queued per client stream before its reader waits.
pub const CLIENT_QUEUE: usize = 4 * 1024;

/// Application error code when a stream is stopped for bad input.
const BAD_INPUT: u32 = 1;

/// A frame between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    /// First frame of every peer stream.
    Hello {
        /// The sender.
        from: NodeId,
        /// Distinguishes the sender's process lives: a new value means it
        /// restarted.
        boot: u64,
        /// The sender's cluster name.
        cluster: String,
        /// The sender's cluster settings (Q, N).
        settings: RingConfig,
    },
    /// A message of the node core.
    Core(PeerMessage),
    /// A gossip message.
    Gossip(GossipMessage),
}

/// What the transport hands to the driver.
#[derive(Debug)]
pub enum Input {
    /// A core message from a peer.
    Peer {
        /// The sender.
        from: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// A gossip message from a peer.
    Gossip {
        /// The sender.
        from: NodeId,
        /// The message.
        message: GossipMessage,
    },
    /// A message from a client, and where to answer.
    Client {
        /// The message.
        message: ClientMessage,
        /// Where its answer goes.
        reply: ReplyTo,
        /// A request's place among those admitted (none for questions
        /// that are not requests): held until it is answered.
        permit: Option<Permit>,
    },
    /// A question from the admin HTTP listener.
    Admin {
        /// The question.
        query: crate::admin::Query,
        /// Where the answer goes.
        reply: oneshot::Sender<crate::admin::Answer>,
    },
}

/// Where the driver sends the answer to a client message.
#[derive(Debug)]
pub enum ReplyTo {
    /// A QUIC client stream's answer queue, shared by all its requests.
    Stream(mpsc::Sender<NodeMessage>),
    /// One caller waiting for one answer (the RESP gateway). A channel per
    /// request allocated a block of 32 slots (several KiB, past the
    /// allocator's per-thread cache) for every GET and SET; a oneshot is
    /// one small allocation.
    Once(oneshot::Sender<NodeMessage>),
}

impl ReplyTo {
    /// Delivers `message`. A full or closed stream queue, or a caller that
    /// stopped waiting, means the client is gone: the answer is dropped.
    pub fn send(self, message: NodeMessage) {
        match self {
            ReplyTo::Stream(queue) => {
                let _ = queue.try_send(message);
            }
            ReplyTo::Once(caller) => {
                let _ = caller.send(message);
            }
        }
    }
}

/// Our sending side towards one peer.
struct Link {
    /// Where the peer listens.
    address: SocketAddr,
    /// Frames for the link task to write on the stream.
    frames: mpsc::Sender<Bytes>,
    /// The link task's current connection, for datagrams.
    connection: Arc<Mutex<Option<quinn::Connection>>>,
}

/// What went out as gossip, and the SDK connections open: for `quorra
/// status` and the metrics.
#[derive(Debug, Default)]
pub struct TransportCounters {
    /// Gossip messages sent as datagrams.
    pub datagrams: std::sync::atomic::AtomicU64,
    /// Gossip messages sent on the stream (too large, or no connection
    /// yet).
    pub streamed: std::sync::atomic::AtomicU64,
    /// Bytes of gossip frames sent either way.
    pub bytes: std::sync::atomic::AtomicU64,
    /// SDK (QUIC client) connections open now.
    pub client_connections: std::sync::atomic::AtomicU64,
}

/// One peer link's QUIC path, as the transport sees it now.
#[derive(Clone, Copy, Debug)]
pub struct PeerPath {
    /// The peer.
    pub peer: NodeId,
    /// quinn's smoothed round-trip time.
    pub rtt: std::time::Duration,
    /// Packets sent on this connection.
    pub sent_packets: u64,
    /// Packets deemed lost on it.
    pub lost_packets: u64,
}

/// Uncounts an SDK connection when its task ends.
struct ClientConnection<'a>(&'a std::sync::atomic::AtomicU64);

impl Drop for ClientConnection<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Who this node is, as peers' `Hello`s are checked against it.
#[derive(Clone, Debug)]
pub struct ClusterId {
    /// Our id.
    pub node: NodeId,
    /// Our cluster name.
    pub cluster: String,
    /// Our settings.
    pub settings: RingConfig,
}

/// The node's QUIC endpoint and its links to peers.
pub struct Transport {
    endpoint: quinn::Endpoint,
    peer_config: quinn::ClientConfig,
    links: DashMap<NodeId, Link>,
    identity: Arc<RwLock<ClusterId>>,
    /// This process's boot value, sent in every `Hello`.
    boot: u64,
    /// The boot value last seen from each peer.
    peer_boots: DashMap<NodeId, u64>,
    /// Gossip sent and SDK connections.
    counters: TransportCounters,
}

impl Transport {
    /// Binds the endpoint.
    pub fn bind(
        listen: SocketAddr,
        server: quinn::ServerConfig,
        peer_config: quinn::ClientConfig,
        identity: ClusterId,
    ) -> std::io::Result<Arc<Self>> {
        let endpoint = quinn::Endpoint::server(server, listen)?;
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Ok(Arc::new(Self {
            endpoint,
            peer_config,
            links: DashMap::new(),
            identity: Arc::new(RwLock::new(identity)),
            boot,
            peer_boots: DashMap::new(),
            counters: TransportCounters::default(),
        }))
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Updates what our `Hello` says and what peers are checked against.
    pub fn set_identity(&self, identity: ClusterId) {
        if let Ok(mut id) = self.identity.write() {
            *id = identity;
        }
        // Links started before carry the old Hello; start them again.
        self.links.clear();
    }

    fn hello(&self) -> Option<Bytes> {
        let id = self.identity.read().ok()?.clone();
        wire::encode(&PeerFrame::Hello {
            from: id.node,
            boot: self.boot,
            cluster: id.cluster,
            settings: id.settings,
        })
        .ok()
    }

    /// Queues `frame` for peer `to` at `address`; dropped if the link's
    /// queue is full.
    pub fn send(self: &Arc<Self>, to: NodeId, address: SocketAddr, frame: Bytes) {
        if let Some(link) = self.links.get(&to)
            && link.address == address
            && !link.frames.is_closed()
        {
            if link.frames.try_send(frame).is_err() {
                debug!(peer = to.0, "link queue full: frame dropped");
            }
            return;
        }
        let Some(hello) = self.hello() else { return };
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        let _ = tx.try_send(frame);
        let connection = Arc::new(Mutex::new(None));
        self.links.insert(
            to,
            Link {
                address,
                frames: tx,
                connection: connection.clone(),
            },
        );
        let me = self.clone();
        tokio::spawn(async move { me.link(to, address, hello, rx, connection).await });
    }

    /// Sends a gossip `frame` to peer `to`: as a datagram if the link is
    /// connected and the frame fits one, else on the stream.
    pub fn send_gossip(self: &Arc<Self>, to: NodeId, address: SocketAddr, frame: Bytes) {
        use std::sync::atomic::Ordering::Relaxed;
        self.counters.bytes.fetch_add(frame.len() as u64, Relaxed);
        let connection = self
            .links
            .get(&to)
            .filter(|link| link.address == address)
            .and_then(|link| link.connection.lock().ok().and_then(|c| c.clone()));
        if let Some(connection) = connection {
            // The datagram carries the frame's body: its length is the
            // datagram's own.
            let body = frame.slice(4..);
            if connection
                .max_datagram_size()
                .is_some_and(|max| body.len() <= max)
                && connection.send_datagram(body).is_ok()
            {
                self.counters.datagrams.fetch_add(1, Relaxed);
                return;
            }
        }
        self.counters.streamed.fetch_add(1, Relaxed);
        self.send(to, address, frame);
    }

    /// How gossip went out so far, and the SDK connections open.
    pub fn counters(&self) -> &TransportCounters {
        &self.counters
    }

    /// The QUIC path of every peer link that is connected now, in peer
    /// order.
    pub fn peer_paths(&self) -> Vec<PeerPath> {
        let mut paths: Vec<PeerPath> = self
            .links
            .iter()
            .filter_map(|link| {
                let connection = link.connection.lock().ok()?.clone()?;
                let stats = connection.stats();
                Some(PeerPath {
                    peer: *link.key(),
                    rtt: connection.rtt(),
                    sent_packets: stats.path.sent_packets,
                    lost_packets: stats.path.lost_packets,
                })
            })
            .collect();
        paths.sort_by_key(|p| p.peer);
        paths
    }

    /// Sends one frame to an address whose node is not known yet (a seed).
    pub fn send_once(self: &Arc<Self>, address: SocketAddr, frame: Bytes) {
        let Some(hello) = self.hello() else { return };
        let me = self.clone();
        tokio::spawn(async move {
            let result = async {
                let conn = me.connect(address).await?;
                let mut send = conn.open_uni().await.map_err(|e| e.to_string())?;
                send.write_all(&hello).await.map_err(|e| e.to_string())?;
                send.write_all(&frame).await.map_err(|e| e.to_string())?;
                send.finish().map_err(|e| e.to_string())?;
                let _ = send.stopped().await;
                Ok::<_, String>(())
            }
            .await;
            if let Err(e) = result {
                debug!(%address, error = %e, "could not reach seed");
            }
        });
    }

    async fn connect(&self, address: SocketAddr) -> Result<quinn::Connection, String> {
        let connecting = self
            .endpoint
            .connect_with(self.peer_config.clone(), address, NODE_SERVER_NAME)
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(5), connecting).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connection timed out".into()),
        }
    }

    /// The task that owns the connection to one peer.
    async fn link(
        self: Arc<Self>,
        to: NodeId,
        address: SocketAddr,
        hello: Bytes,
        mut rx: mpsc::Receiver<Bytes>,
        connection: Arc<Mutex<Option<quinn::Connection>>>,
    ) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if let Ok(mut c) = connection.lock() {
                *c = None;
            }
            let conn = match self.connect(address).await {
                Ok(c) => c,
                Err(e) => {
                    debug!(peer = to.0, %address, error = %e, "peer unreachable");
                    // What was queued is stale by the time we reconnect.
                    while rx.try_recv().is_ok() {}
                    if rx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            let Ok(mut send) = conn.open_uni().await else {
                continue;
            };
            if send.write_all(&hello).await.is_err() {
                continue;
            }
            if let Ok(mut c) = connection.lock() {
                *c = Some(conn.clone());
            }
            let mut batch = BytesMut::new();
            loop {
                let Some(frame) = rx.recv().await else {
                    let _ = send.finish();
                    return;
                };
                batch.extend_from_slice(&frame);
                while batch.len() < 1 << 20
                    && let Ok(more) = rx.try_recv()
                {
                    batch.extend_from_slice(&more);
                }
                if let Err(e) = send.write_all(&batch).await {
                    debug!(peer = to.0, error = %e, "peer stream broke; reconnecting");
                    break;
                }
                batch.clear();
            }
        }
    }

    /// Accepts connections until the endpoint closes; client requests
    /// beyond what `admission` admits are answered `Overloaded` at once.
    pub async fn accept(self: Arc<Self>, inbox: mpsc::Sender<Input>, admission: Arc<Admission>) {
        while let Some(incoming) = self.endpoint.accept().await {
            let me = self.clone();
            let inbox = inbox.clone();
            let admission = admission.clone();
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                match incoming.await {
                    Ok(conn) => me.serve(conn, inbox, admission).await,
                    Err(e) => info!(%remote, error = %e, "connection refused during handshake"),
                }
            });
        }
    }

    async fn serve(
        self: Arc<Self>,
        conn: quinn::Connection,
        inbox: mpsc::Sender<Input>,
        admission: Arc<Admission>,
    ) {
        match alpn(&conn).as_deref() {
            Some(p) if p == ALPN_PEER => {
                if !presented_node_certificate(&conn) {
                    warn!(remote = %conn.remote_address(), "peer connection without a node certificate refused");
                    conn.close(BAD_INPUT.into(), b"a node certificate is required");
                    return;
                }
                // Set by the first accepted Hello on this connection.
                let sender = Arc::new(OnceLock::new());
                tokio::spawn(peer_datagrams(conn.clone(), sender.clone(), inbox.clone()));
                while let Ok(recv) = conn.accept_uni().await {
                    let me = self.clone();
                    let inbox = inbox.clone();
                    let sender = sender.clone();
                    tokio::spawn(async move { me.peer_stream(recv, sender, inbox).await });
                }
            }
            Some(p) if p == ALPN_CLIENT => {
                let open = &self.counters.client_connections;
                open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _counted = ClientConnection(open);
                while let Ok((send, recv)) = conn.accept_bi().await {
                    let inbox = inbox.clone();
                    tokio::spawn(client_stream(send, recv, inbox, admission.clone()));
                }
            }
            _ => conn.close(BAD_INPUT.into(), b"unknown protocol"),
        }
    }

    /// Reads one peer stream: a `Hello`, then frames.
    async fn peer_stream(
        self: Arc<Self>,
        mut recv: quinn::RecvStream,
        sender: Arc<OnceLock<NodeId>>,
        inbox: mpsc::Sender<Input>,
    ) {
        let mut buf = Vec::new();
        let from = match wire::read::<PeerFrame>(&mut recv, &mut buf).await {
            Ok(Some(PeerFrame::Hello {
                from,
                boot,
                cluster,
                settings,
            })) => {
                let ours = self.identity.read().map(|i| i.clone());
                let Ok(ours) = ours else { return };
                let settings_clash = settings != ours.settings;
                if cluster != ours.cluster || settings_clash || from == ours.node || from.0 == 0 {
                    warn!(
                        peer = from.0,
                        their_cluster = %cluster,
                        ?settings,
                        our_cluster = %ours.cluster,
                        our_settings = ?ours.settings,
                        "peer of another cluster, with other settings or a clashing id refused"
                    );
                    let _ = recv.stop(BAD_INPUT.into());
                    return;
                }
                // A peer that restarted says so with a new boot value: our
                // connection to its previous life may be dead without
                // knowing it yet, so open a fresh one.
                if self
                    .peer_boots
                    .insert(from, boot)
                    .is_some_and(|before| before != boot)
                {
                    self.links.remove(&from);
                }
                let _ = sender.set(from);
                from
            }
            Ok(_) => {
                warn!("peer stream without a Hello refused");
                let _ = recv.stop(BAD_INPUT.into());
                return;
            }
            Err(e) => {
                debug!(error = %e, "peer stream failed before its Hello");
                let _ = recv.stop(BAD_INPUT.into());
                return;
            }
        };
        loop {
            let input = match wire::read::<PeerFrame>(&mut recv, &mut buf).await {
                Ok(Some(PeerFrame::Core(message))) => Input::Peer { from, message },
                Ok(Some(PeerFrame::Gossip(message))) => Input::Gossip { from, message },
                Ok(Some(PeerFrame::Hello { .. })) => continue,
                Ok(None) => return,
                Err(e) => {
                    warn!(peer = from.0, error = %e, "bad frame from peer: stream closed");
                    let _ = recv.stop(BAD_INPUT.into());
                    return;
                }
            };
            if inbox.send(input).await.is_err() {
                return;
            }
        }
    }

    /// Closes the endpoint and waits (briefly) for connections to close.
    pub async fn close(&self) {
        self.links.clear();
        self.endpoint.close(0u32.into(), b"node shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// Reads gossip datagrams from one peer connection until it closes. A
/// datagram before the connection's `Hello` was accepted has no trusted
/// sender and is dropped.
async fn peer_datagrams(
    conn: quinn::Connection,
    sender: Arc<OnceLock<NodeId>>,
    inbox: mpsc::Sender<Input>,
) {
    while let Ok(datagram) = conn.read_datagram().await {
        let Some(&from) = sender.get() else {
            debug!(remote = %conn.remote_address(), "gossip datagram before Hello dropped");
            continue;
        };
        match wire::decode::<PeerFrame>(&datagram) {
            Ok(PeerFrame::Gossip(message)) => {
                if inbox.send(Input::Gossip { from, message }).await.is_err() {
                    return;
                }
            }
            Ok(_) => warn!(peer = from.0, "a datagram that is not gossip dropped"),
            Err(e) => warn!(peer = from.0, error = %e, "bad gossip datagram dropped"),
        }
    }
}

/// Serves one client stream: frames in, answers out on the same stream.
async fn client_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    inbox: mpsc::Sender<Input>,
    admission: Arc<Admission>,
) {
    let (tx, mut rx) = mpsc::channel::<NodeMessage>(CLIENT_QUEUE);
    let writer = tokio::spawn(async move {
        let mut batch = BytesMut::new();
        while let Some(message) = rx.recv().await {
            let last = matches!(message, NodeMessage::Error { .. });
            if let Ok(frame) = wire::encode(&message) {
                batch.extend_from_slice(&frame);
            }
            while batch.len() < 1 << 20
                && let Ok(more) = rx.try_recv()
                && let Ok(frame) = wire::encode(&more)
            {
                batch.extend_from_slice(&frame);
            }
            if send.write_all(&batch).await.is_err() {
                return;
            }
            batch.clear();
            if last {
                let _ = send.finish();
                return;
            }
        }
        let _ = send.finish();
    });
    let mut buf = Vec::new();
    loop {
        match wire::read::<ClientMessage>(&mut recv, &mut buf).await {
            Ok(Some(message)) => {
                let permit = match admission.admit_message(&message) {
                    Ok(permit) => permit,
                    Err(shed) => {
                        if tx.send(shed).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let input = Input::Client {
                    message,
                    reply: ReplyTo::Stream(tx.clone()),
                    permit,
                };
                if inbox.send(input).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                debug!(error = %e, "bad frame from client: stream closed");
                let _ = tx
                    .send(NodeMessage::Error {
                        message: e.to_string(),
                    })
                    .await;
                let _ = recv.stop(BAD_INPUT.into());
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
