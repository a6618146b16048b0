//! `quorra node`: start-up, the driver, graceful shutdown.
//!
//! Start-up checks everything that can be wrong before serving, each with
//! an error that says what to do: the data directory (created, writable,
//! made by the same engine), the identity in it (same node id and cluster
//! as asked), the TLS files, the listening port. Then the node runs on a
//! single-threaded tokio runtime (the core is single-threaded; one thread
//! keeps QUIC's packet batching, measured far faster than a multi-threaded
//! runtime here), with flushes on tokio's blocking pool; the RESP gateway
//! has a thread and runtime of its own (`resp::gateway`). SIGINT or SIGTERM
//! stops it: the gateway takes no new connections, the driver finishes its
//! batch (or, with `--leave-on-shutdown`, hands its data off first),
//! flushes the store, saves the member table, and the endpoint closes its
//! connections; RESP connections are served until the driver stops.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use quorra_client::TlsFiles;
use quorra_client::tls::{TlsError, client_config};
use quorra_client::wire::ALPN_PEER;
use quorra_gossip::{Config as GossipConfig, Gossiper, settings_hash};
use quorra_ring::{Member, NodeId, Ring, RingConfig};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::admission::Admission;
use super::driver::{Driver, DriverParts};
use super::tls::server_config;
use super::transport::{ClusterId, Transport};
use crate::admin::server::NodeFacts;
use crate::admin::{AdminConfig, AdminServer, Metrics};
use crate::core::{Node, NodeError, Options};
use crate::membership::Membership;
use crate::membership::identity::{self, Identity, own_entry};
use crate::resp::{Facts, Gateway, RespConfig, RespUpdater};
use crate::storage::reopen::Reopenable;
use crate::storage::{EngineKind, MemoryBudget, StorageError, Store};

/// Inputs queued for the driver before the transport waits.
const INBOX: usize = 64 * 1024;

/// Everything `quorra node` is told.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Address other nodes and clients use (default: the listen address).
    pub advertise: Option<SocketAddr>,
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
    /// The node's id (default: chosen at random on first start, then kept).
    pub node_id: Option<u64>,
    /// Failure domain.
    pub zone: String,
    /// Addresses of nodes to join through; none founds a new cluster.
    pub seeds: Vec<SocketAddr>,
    /// TLS material.
    pub tls: TlsFiles,
    /// Storage engine.
    pub engine: EngineKind,
    /// What the store's caches and buffers may hold.
    pub memory: MemoryBudget,
    /// Cluster name; nodes of another cluster are refused.
    pub cluster: String,
    /// Q and N, if this node founds the cluster.
    pub new_cluster: RingConfig,
    /// Tokens to choose when joining.
    pub tokens: usize,
    /// Join in the place of this dead member, under its tokens, instead of
    /// choosing new ones (ignored once the node has joined).
    pub replace: Option<NodeId>,
    /// The core's options (timeouts, bounds, sync mode).
    pub options: Options,
    /// Gossip's options (interval, detector).
    pub gossip: GossipConfig,
    /// On SIGINT/SIGTERM, announce `leaving` then `left` before stopping.
    pub leave_on_shutdown: bool,
    /// The RESP (Redis protocol) gateway, if one is wanted.
    pub resp: Option<RespConfig>,
    /// The admin HTTP listener (metrics, health, status), if one is wanted.
    pub admin: Option<AdminConfig>,
}

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The data directory is unusable.
    #[error("data directory {path}: {reason}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The TLS material is unusable.
    #[error(
        "{0}\n  (make a cluster CA with `quorra cert init --dir DIR` and a node certificate with `quorra cert issue --dir DIR --name NAME`)"
    )]
    Tls(#[from] TlsError),
    /// The port could not be bound.
    #[error("cannot listen on {address}: {reason}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS's reason.
        reason: String,
    },
    /// The configuration contradicts the data directory or itself.
    #[error("{0}")]
    Config(String),
    /// The core refused to start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The cluster cannot take this node as configured (a refused
    /// replacement).
    #[error("{0}")]
    Membership(String),
}

fn data_dir_error(path: &Path, reason: impl std::fmt::Display) -> DaemonError {
    DaemonError::DataDir {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Creates the data directory and checks it is writable and was made by
/// `engine`; returns the engine's own directory.
fn prepare_data_dir(dir: &Path, engine: EngineKind) -> Result<PathBuf, DaemonError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| data_dir_error(dir, format!("cannot create it: {e}")))?;
    let marker = dir.join("ENGINE");
    match std::fs::read_to_string(&marker) {
        Ok(existing) if existing.trim() != engine.name() => {
            return Err(data_dir_error(
                dir,
                format!(
                    "it holds data of the {} engine, not {}",
                    existing.trim(),
                    engine.name()
                ),
            ));
        }
        Ok(_) => {}
        Err(_) => std::fs::write(&marker, engine.name())
            .map_err(|e| data_dir_error(dir, format!("not writable: {e}")))?,
    }
    Ok(dir.join(engine.name()))
}

/// A node id for a node started without one: random enough, never 0.
fn new_node_id(config: &NodeConfig) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(
        &std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes(),
    );
    h.update(&std::process::id().to_le_bytes());
    h.update(config.listen.to_string().as_bytes());
    let id = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes")) >> 1;
    id.max(1)
}

/// Loads the identity in the store, or creates it; checks it against the
/// configuration.
fn check_identity(id: &Identity, config: &NodeConfig) -> Result<(), DaemonError> {
    if let Some(wanted) = config.node_id
        && wanted != id.node.0
    {
        return Err(DaemonError::Config(format!(
            "the data directory belongs to node {}, not {wanted}; use another --data-dir or drop --node-id",
            id.node
        )));
    }
    if id.cluster != config.cluster {
        return Err(DaemonError::Config(format!(
            "the data directory belongs to cluster {:?}, not {:?}",
            id.cluster, config.cluster
        )));
    }
    Ok(())
}

fn load_identity(store: &Store, config: &NodeConfig) -> Result<Identity, DaemonError> {
    match identity::load(store)? {
        Some(id) => {
            check_identity(&id, config)?;
            Ok(id)
        }
        None => {
            let node = config.node_id.unwrap_or_else(|| new_node_id(config));
            if node == 0 {
                return Err(DaemonError::Config("node ids start at 1".into()));
            }
            let id = Identity {
                node: NodeId(node),
                cluster: config.cluster.clone(),
                settings: config.new_cluster,
                zone: config.zone.clone(),
                tokens: Vec::new(),
                version: 1,
                left: false,
                layout: Default::default(),
            };
            identity::save(store, &id)?;
            Ok(id)
        }
    }
}

/// Builds the node core and its membership on the store, from the identity
/// and member table it holds: at start-up, and again after the store
/// recovered from a failure (a new life, as after a crash).
struct CoreFactory {
    advertise: SocketAddr,
    seeds: Vec<SocketAddr>,
    options: Options,
    gossip: GossipConfig,
    tokens: usize,
    replace: Option<NodeId>,
}

impl CoreFactory {
    fn build(
        &self,
        store: &Store,
        now: std::time::Duration,
    ) -> Result<(Node, Membership), DaemonError> {
        let identity = identity::load(store)?
            .ok_or_else(|| DaemonError::Config("the data directory holds no identity".into()))?;
        let remembered = identity::load_members(store)?;
        let provisional_ring = Ring::new(
            identity.settings,
            [Member::new(
                identity.node,
                identity.zone.clone(),
                identity.tokens.clone(),
            )],
        )
        .map_err(|e| DaemonError::Config(e.to_string()))?;
        // Fresh entropy for every core, also one rebuilt after a storage
        // failure: whatever the store holds, a draw
        // (`core::life::first_incarnation`) never repeats the process's
        // earlier one.
        let options = Options {
            rng_seed: self.options.rng_seed ^ entropy(),
            ..self.options.clone()
        };
        let node = Node::new(identity.node, provisional_ring, store.clone(), options, now)?;
        let mut gossip = Gossiper::new(
            own_entry(&identity, &self.advertise.to_string(), node.started_as()),
            identity.cluster.clone(),
            settings_hash(identity.settings.partitions, identity.settings.replicas),
            self.seeds.iter().map(ToString::to_string).collect(),
            self.gossip.clone(),
            self.options.rng_seed ^ u64::from(node.started_as()),
            now,
        );
        gossip.remember(remembered);
        let mut membership = Membership::new(
            identity,
            gossip,
            store.clone(),
            !self.seeds.is_empty(),
            self.tokens,
        );
        if let Some(dead) = self.replace {
            membership.set_replace(dead);
        }
        Ok((node, membership))
    }
}

/// Binds a TCP port (the RESP gateway's, the admin listener's).
async fn bind_tcp(address: SocketAddr) -> Result<tokio::net::TcpListener, DaemonError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| DaemonError::Bind {
            address,
            reason: e.to_string(),
        })
}

/// Runs a node until SIGINT or SIGTERM.
pub fn run_blocking(config: NodeConfig) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Config(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run(config))
}

/// Runs a node until SIGINT or SIGTERM.
pub async fn run(config: NodeConfig) -> Result<(), DaemonError> {
    let engine_dir = prepare_data_dir(&config.data_dir, config.engine)?;
    let engine = Arc::new(Reopenable::open(
        config.engine,
        &engine_dir,
        config.memory.block_cache(),
    )?);
    let store = Store::with_cache(engine.clone(), config.memory.object_cache());
    // Everything that can fail is checked before a new identity is written:
    // a failed first start must not stamp the directory with a random id.
    if let Some(existing) = identity::load(&store)? {
        check_identity(&existing, &config)?;
    }
    if config.replace.is_some() && config.seeds.is_empty() {
        return Err(DaemonError::Config(
            "--replace needs --seeds: the node takes a dead member's place in an existing cluster"
                .into(),
        ));
    }
    let server = server_config(&config.tls)?;
    let peer = client_config(&config.tls, ALPN_PEER)?;
    let resp_listener = match &config.resp {
        Some(resp) => {
            resp.check().map_err(DaemonError::Config)?;
            if let Some(files) = &resp.tls {
                crate::resp::tls::acceptor(files)?;
            }
            Some(bind_tcp(resp.listen).await?)
        }
        None => None,
    };
    let admin_listener = match &config.admin {
        Some(admin) => {
            admin.check().map_err(DaemonError::Config)?;
            match bind_tcp(admin.listen).await {
                Ok(listener) => Some(listener),
                Err(e) if !admin.explicit => {
                    warn!(
                        error = %e,
                        "no admin port: the default one is taken (another node on this host?); \
                         choose one with --admin-listen ADDR, or turn it off with --admin-listen off"
                    );
                    None
                }
                Err(e) => return Err(e),
            }
        }
        None => None,
    };
    // Metrics are recorded only when someone can read them.
    let metrics = admin_listener.as_ref().map(|_| Arc::new(Metrics::new()));

    let provisional = ClusterId {
        node: NodeId(config.node_id.unwrap_or(0)),
        cluster: config.cluster.clone(),
        settings: config.new_cluster,
    };
    let transport = Transport::bind(config.listen, server, peer, provisional).map_err(|e| {
        DaemonError::Bind {
            address: config.listen,
            reason: e.to_string(),
        }
    })?;
    let mut identity = load_identity(&store, &config)?;
    transport.set_identity(ClusterId {
        node: identity.node,
        cluster: identity.cluster.clone(),
        settings: identity.settings,
    });
    let bound = transport.local_addr().map_err(|e| DaemonError::Bind {
        address: config.listen,
        reason: e.to_string(),
    })?;
    let advertise = match config.advertise {
        Some(a) => a,
        None if bound.ip().is_unspecified() => {
            return Err(DaemonError::Config(format!(
                "listening on {bound} needs --advertise ADDR: the address other nodes and clients should use"
            )));
        }
        None => bound,
    };

    if identity.left {
        return Err(DaemonError::Config(format!(
            "node {} left the cluster; start a new node with a new data directory",
            identity.node
        )));
    }
    let remembered = identity::load_members(&store)?;
    let address_changed = remembered
        .iter()
        .find(|e| e.id == identity.node)
        .is_some_and(|own| {
            own.info.address != advertise.to_string() || own.info.zone != identity.zone
        });
    if address_changed {
        identity.version += 1;
        identity::save(&store, &identity)?;
    }

    let origin = Instant::now();
    // Every node applies the gateway's updates: a gateway on another node
    // forwards them to whichever primary coordinates the key.
    let factory = CoreFactory {
        advertise,
        seeds: config.seeds.clone(),
        options: Options {
            updater: Some(Arc::new(RespUpdater)),
            // Timer jitter, gossip peer choice and a first incarnation
            // differ per process, even for a node restarted on an empty
            // directory under the same id (see `core::life::first_incarnation`).
            rng_seed: config.options.rng_seed ^ entropy(),
            ..config.options.clone()
        },
        gossip: config.gossip.clone(),
        tokens: config.tokens,
        replace: config.replace,
    };
    let (node, membership) = factory.build(&store, origin.elapsed())?;
    info!(
        node = identity.node.0,
        cluster = %identity.cluster,
        %advertise,
        generation = node.started_as(),
        engine = config.engine.name(),
        sync = %config.options.sync,
        "node started"
    );

    let (inbox_tx, inbox) = mpsc::channel(INBOX);
    let admission = Admission::new(
        config.options.max_requests_in_flight,
        config.options.request_timeout,
    );
    tokio::spawn(
        transport
            .clone()
            .accept(inbox_tx.clone(), admission.clone()),
    );
    let (stop_tx, shutdown) = watch::channel(false);
    let mut gateway = None;
    if let (Some(listener), Some(resp)) = (resp_listener, config.resp.clone()) {
        let facts = Facts {
            node: identity.node.0,
            engine: config.engine.name().into(),
            fsync: match config.options.sync {
                crate::storage::SyncMode::Always => "always".into(),
                _ => "periodic".into(),
            },
            data_dir: config.data_dir.clone(),
        };
        let resp_gateway = Arc::new(Gateway::new(
            inbox_tx.clone(),
            admission.clone(),
            store.clone(),
            resp,
            facts,
            metrics.clone(),
        ));
        crate::resp::gateway::spawn_thread(resp_gateway.clone(), listener, shutdown.clone())
            .map_err(|e| DaemonError::Config(format!("cannot start the RESP gateway: {e}")))?;
        gateway = Some(resp_gateway);
    }
    if let (Some(listener), Some(admin), Some(metrics)) =
        (admin_listener, config.admin.clone(), metrics.clone())
    {
        let facts = NodeFacts {
            resp: gateway,
            data_dir: config.data_dir.clone(),
            certificate: config.tls.cert.clone(),
        };
        let server = Arc::new(AdminServer::new(admin, inbox_tx, metrics, facts));
        tokio::spawn(server.serve(listener, shutdown.clone()));
    }
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down");
        let _ = stop_tx.send(true);
    });

    let rebuild_store = store.clone();
    let driver = Driver::new(DriverParts {
        memory: config.memory,
        node,
        store,
        membership,
        transport: transport.clone(),
        inbox,
        shutdown,
        leave_on_shutdown: config.leave_on_shutdown,
        origin,
        engine,
        rebuild: Box::new(move |now| factory.build(&rebuild_store, now)),
        metrics,
        admission,
    });
    let result = driver.run().await;
    transport.close().await;
    info!("stopped");
    result
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the node runs until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// 64 bits from the operating system's entropy: std seeds each
/// `RandomState` from it (the node's only other source would be a new
/// dependency for one number).
fn entropy() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}
