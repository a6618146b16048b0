//! `quorra node`: run a peer, configured by flags, environment variables
//! (`QUORRA_*`) and an optional TOML file (`--config`), in that order of
//! precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use quorra_client::TlsFiles;
use quorra_ring::{
    DEFAULT_PARTITIONS, DEFAULT_REPLICAS, DEFAULT_TOKENS_PER_NODE, NodeId, RingConfig,
};
use serde::Deserialize;

use super::{CliError, LogFormat};
use quorra_node::admin::AdminConfig;
use quorra_node::admin::config::DEFAULT_ADMIN_LISTEN;
use quorra_node::core::{Options, ReadFanout};
use quorra_node::resp::RespConfig;
use quorra_node::resp::gateway::DEFAULT_SWEEP_INTERVAL;
use quorra_node::runtime::daemon::{NodeConfig, run_blocking};
use quorra_node::storage::budget::parse_size;
use quorra_node::storage::commit::DEFAULT_PERIODIC_INTERVAL;
use quorra_node::storage::{EngineKind, MemoryBudget, SyncMode};

#[derive(Args, Debug, Default)]
pub(crate) struct NodeArgs {
    /// TOML file with any of the settings below (kebab-case keys).
    #[arg(long, env = "QUORRA_CONFIG")]
    config: Option<PathBuf>,
    /// UDP address to listen on, e.g. 127.0.0.1:7401.
    #[arg(long, env = "QUORRA_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address other nodes and clients use (default: the listen address).
    #[arg(long, env = "QUORRA_ADVERTISE")]
    advertise: Option<SocketAddr>,
    /// Directory for the node's data.
    #[arg(long, env = "QUORRA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Node id (default: chosen on first start, then kept in the data directory).
    #[arg(long, env = "QUORRA_NODE_ID")]
    node_id: Option<u64>,
    /// Zone (failure domain) of this node.
    #[arg(long, env = "QUORRA_ZONE")]
    zone: Option<String>,
    /// Comma-separated addresses of nodes to join through (none: found a new cluster).
    #[arg(long, env = "QUORRA_SEEDS", value_delimiter = ',')]
    seeds: Vec<SocketAddr>,
    /// Directory with ca.crt and this node's certificate and key.
    #[arg(long, env = "QUORRA_TLS_DIR")]
    tls_dir: Option<PathBuf>,
    /// Name of the node's certificate in the TLS directory (NAME.crt, NAME.key) [default: node].
    #[arg(long, env = "QUORRA_TLS_NAME")]
    tls_name: Option<String>,
    /// When writes are acknowledged: always (after fsync, default) or periodic.
    #[arg(long, env = "QUORRA_FSYNC")]
    fsync: Option<String>,
    /// Flush interval of --fsync periodic, in milliseconds [default: 50].
    #[arg(long, env = "QUORRA_FSYNC_INTERVAL_MS")]
    fsync_interval_ms: Option<u64>,
    /// Storage engine: fjall (default), sled or memory.
    #[arg(long, env = "QUORRA_ENGINE")]
    engine: Option<EngineKind>,
    /// Memory the store's caches and write buffers may hold, e.g. 512M or
    /// 4G [default: 1G, at least 256M]. Give a node that has a machine of
    /// its own most of it.
    #[arg(long, env = "QUORRA_MEMORY")]
    memory: Option<String>,
    /// Cluster name; nodes of another cluster are refused [default: quorra].
    #[arg(long, env = "QUORRA_CLUSTER")]
    cluster: Option<String>,
    /// Partitions (Q), if this node founds the cluster [default: 1024].
    #[arg(long)]
    partitions: Option<u32>,
    /// Replicas (N), if this node founds the cluster [default: 3].
    #[arg(long)]
    replicas: Option<usize>,
    /// Tokens this node chooses when it joins [default: 64].
    #[arg(long)]
    tokens: Option<usize>,
    /// Join in the place of this dead member (its node id), under its
    /// tokens: only its partitions move, to this node, pulled from the
    /// survivors. Refused if that member is up, gone or unknown; ignored
    /// once this node has joined.
    #[arg(long, env = "QUORRA_REPLACE", value_name = "NODE_ID")]
    replace: Option<u64>,
    /// Coordinator request timeout in milliseconds [default: 2000].
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// Replicas a read asks: quorum (default: R of them, the others when
    /// one fails or is slow) or all (every replica, as Dynamo and Riak).
    #[arg(long, env = "QUORRA_READ_FANOUT")]
    read_fanout: Option<String>,
    /// With --read-fanout quorum: milliseconds a read waits for its quorum
    /// before it asks the other replicas too; at least 1, and at or beyond
    /// the request timeout they are asked only when a replica fails
    /// [default: 10].
    #[arg(long, env = "QUORRA_SPECULATIVE_READ_MS")]
    speculative_read_ms: Option<u64>,
    /// On SIGINT/SIGTERM, leave the cluster before stopping: the new
    /// owners pull every partition this node owned, then it announces
    /// `left` and exits (a second signal does not cut it short; kill it).
    #[arg(long, env = "QUORRA_LEAVE_ON_SHUTDOWN")]
    leave_on_shutdown: bool,
    /// Gossip interval in milliseconds [default: 1000].
    #[arg(long, env = "QUORRA_GOSSIP_INTERVAL_MS")]
    gossip_interval_ms: Option<u64>,
    /// Merkle anti-entropy: on (default) or off.
    #[arg(long, env = "QUORRA_ANTI_ENTROPY")]
    anti_entropy: Option<String>,
    /// Each partition this node replicates is compared with another replica
    /// once per this many seconds [default: 30].
    #[arg(long, env = "QUORRA_ANTI_ENTROPY_INTERVAL_SECS")]
    anti_entropy_interval_secs: Option<u64>,
    /// Anti-entropy exchanges this node runs at a time [default: 2].
    #[arg(long, env = "QUORRA_ANTI_ENTROPY_EXCHANGES")]
    anti_entropy_exchanges: Option<usize>,
    /// Bytes per second anti-entropy may ship, both ways, as initiator
    /// (0: unlimited) [default: 524288, 512 KiB/s].
    #[arg(long, env = "QUORRA_ANTI_ENTROPY_BYTES_PER_SEC")]
    anti_entropy_bytes_per_sec: Option<u64>,
    /// Bytes per second this node may pull, at most, for partitions it
    /// gains when ownership moves (0: unlimited); separate from
    /// anti-entropy's. A ceiling: while clients here or at the sources
    /// answer slower than before, pulls use as little as 1/32 of it.
    /// Changed on a running node with `quorra throttle`
    /// [default: 67108864, 64 MiB/s].
    #[arg(long, env = "QUORRA_TRANSFER_BYTES_PER_SEC")]
    transfer_bytes_per_sec: Option<u64>,
    /// Partitions this node pulls at a time, at most [default: 4].
    #[arg(long, env = "QUORRA_TRANSFER_STREAMS")]
    transfer_streams: Option<usize>,
    /// Requests this node coordinates at a time, at most; a client request
    /// beyond it is refused at once (`overloaded`, RESP `-BUSY`), nothing
    /// of it applied, rather than queued. While admitted requests wait
    /// longer than an eighth of the request timeout, the node admits fewer
    /// (down to 32; `quorra_admission_limit` shows how many) [default:
    /// 4096].
    #[arg(long, env = "QUORRA_MAX_REQUESTS_IN_FLIGHT")]
    max_requests_in_flight: Option<usize>,
    /// TCP address for the Redis protocol (RESP), e.g. 127.0.0.1:6379
    /// [default: none, no RESP port].
    #[arg(long, env = "QUORRA_RESP_LISTEN")]
    resp_listen: Option<SocketAddr>,
    /// Password Redis clients must give with AUTH (`requirepass` in the
    /// config file). Required to listen on a non-loopback address.
    #[arg(long, env = "QUORRA_RESP_PASSWORD", hide_env_values = true)]
    resp_password: Option<String>,
    /// Serve TLS on the RESP port with this node's certificate
    /// (redis-cli --tls --cacert ca.crt).
    #[arg(long, env = "QUORRA_RESP_TLS")]
    resp_tls: bool,
    /// Seconds between two walks of the expiry sweeper [default: 60].
    #[arg(long, env = "QUORRA_RESP_SWEEP_INTERVAL_SECS")]
    resp_sweep_interval_secs: Option<u64>,
    /// TCP address for the admin HTTP listener (/metrics, /health,
    /// /ready, /v1/status, the status page at /), or `off`. By default
    /// 127.0.0.1:9180, skipped with a warning if that port is taken (an
    /// address given here must be free) [default: 127.0.0.1:9180].
    #[arg(long, env = "QUORRA_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Bearer token the admin API asks for (all but /health and /ready).
    /// Required to listen on a non-loopback address.
    #[arg(long, env = "QUORRA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Log filter (tracing syntax), e.g. info or quorra_node=debug.
    #[arg(long, env = "QUORRA_LOG", default_value = "info")]
    log: String,
    /// Log lines as text (for people) or JSON (one object per line, for
    /// log shippers).
    #[arg(long, env = "QUORRA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// The keys a config file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<SocketAddr>,
    advertise: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    node_id: Option<u64>,
    zone: Option<String>,
    seeds: Option<Vec<SocketAddr>>,
    tls_dir: Option<PathBuf>,
    tls_name: Option<String>,
    fsync: Option<String>,
    fsync_interval_ms: Option<u64>,
    engine: Option<String>,
    memory: Option<String>,
    cluster: Option<String>,
    partitions: Option<u32>,
    replicas: Option<usize>,
    tokens: Option<usize>,
    replace: Option<u64>,
    request_timeout_ms: Option<u64>,
    read_fanout: Option<String>,
    speculative_read_ms: Option<u64>,
    leave_on_shutdown: Option<bool>,
    gossip_interval_ms: Option<u64>,
    anti_entropy: Option<String>,
    anti_entropy_interval_secs: Option<u64>,
    anti_entropy_exchanges: Option<usize>,
    anti_entropy_bytes_per_sec: Option<u64>,
    transfer_bytes_per_sec: Option<u64>,
    transfer_streams: Option<usize>,
    max_requests_in_flight: Option<usize>,
    resp_listen: Option<SocketAddr>,
    requirepass: Option<String>,
    resp_tls: Option<bool>,
    resp_sweep_interval_secs: Option<u64>,
    admin_listen: Option<String>,
    admin_token: Option<String>,
}

fn read_file(path: &Path) -> Result<FileConfig, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text)
        .map_err(|e| CliError::Usage(format!("config file {}: {e}", path.display())))
}

fn required<T>(value: Option<T>, flag: &str, key: &str) -> Result<T, CliError> {
    value.ok_or_else(|| {
        CliError::Usage(format!(
            "{flag} is required (or `{key}` in the config file)"
        ))
    })
}

fn sync_mode(name: Option<String>, interval_ms: Option<u64>) -> Result<SyncMode, CliError> {
    match name.as_deref().unwrap_or("always") {
        "always" => Ok(SyncMode::Always),
        "periodic" => Ok(SyncMode::Periodic {
            interval: interval_ms.map_or(DEFAULT_PERIODIC_INTERVAL, Duration::from_millis),
        }),
        other => Err(CliError::Usage(format!(
            "--fsync must be always or periodic, not {other:?}"
        ))),
    }
}

/// The node's configuration from flags, environment and file.
fn config(args: NodeArgs) -> Result<NodeConfig, CliError> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    let engine = match args.engine {
        Some(e) => e,
        None => match file.engine {
            Some(name) => name.parse().map_err(CliError::Usage)?,
            None => EngineKind::default(),
        },
    };
    let memory = match args.memory.or(file.memory) {
        None => MemoryBudget::default(),
        Some(text) => parse_size(&text)
            .and_then(MemoryBudget::new)
            .map_err(|e| CliError::Usage(format!("--memory: {e}")))?,
    };
    let tls_dir = required(args.tls_dir.or(file.tls_dir), "--tls-dir", "tls-dir")?;
    let tls_name = args
        .tls_name
        .or(file.tls_name)
        .unwrap_or_else(|| "node".into());
    let mut options = Options {
        sync: sync_mode(
            args.fsync.or(file.fsync),
            args.fsync_interval_ms.or(file.fsync_interval_ms),
        )?,
        ..Options::default()
    };
    if let Some(ms) = args.request_timeout_ms.or(file.request_timeout_ms) {
        options.request_timeout = Duration::from_millis(ms.max(1));
    }
    match args.read_fanout.or(file.read_fanout).as_deref() {
        None | Some("quorum") => {}
        Some("all") => options.read_fanout = ReadFanout::All,
        Some(other) => {
            return Err(CliError::Usage(format!(
                "--read-fanout must be quorum or all, not {other:?}"
            )));
        }
    }
    if let Some(ms) = args.speculative_read_ms.or(file.speculative_read_ms) {
        if ms == 0 {
            return Err(CliError::Usage(
                "--speculative-read-ms must be at least 1 (use --read-fanout all to ask every replica at once)".into(),
            ));
        }
        options.speculative_read_after = Duration::from_millis(ms);
    }
    match args.anti_entropy.or(file.anti_entropy).as_deref() {
        None | Some("on") => {}
        Some("off") => options.anti_entropy = false,
        Some(other) => {
            return Err(CliError::Usage(format!(
                "--anti-entropy must be on or off, not {other:?}"
            )));
        }
    }
    if let Some(s) = args
        .anti_entropy_interval_secs
        .or(file.anti_entropy_interval_secs)
    {
        if s == 0 {
            return Err(CliError::Usage(
                "--anti-entropy-interval-secs must be at least 1".into(),
            ));
        }
        options.anti_entropy_interval = Duration::from_secs(s);
    }
    if let Some(b) = args.transfer_bytes_per_sec.or(file.transfer_bytes_per_sec) {
        options.transfer_bytes_per_sec = b;
    }
    if let Some(n) = args.transfer_streams.or(file.transfer_streams) {
        if n == 0 {
            return Err(CliError::Usage(
                "--transfer-streams must be at least 1".into(),
            ));
        }
        options.transfer_streams = n;
    }
    if let Some(n) = args.max_requests_in_flight.or(file.max_requests_in_flight) {
        if n == 0 {
            return Err(CliError::Usage(
                "--max-requests-in-flight must be at least 1".into(),
            ));
        }
        options.max_requests_in_flight = n;
    }
    if let Some(n) = args.anti_entropy_exchanges.or(file.anti_entropy_exchanges) {
        if n == 0 {
            return Err(CliError::Usage(
                "--anti-entropy-exchanges must be at least 1 (use --anti-entropy off to stop it)"
                    .into(),
            ));
        }
        options.anti_entropy_exchanges = n;
    }
    if let Some(b) = args
        .anti_entropy_bytes_per_sec
        .or(file.anti_entropy_bytes_per_sec)
    {
        options.anti_entropy_bytes_per_sec = b;
    }
    let new_cluster = RingConfig {
        partitions: args
            .partitions
            .or(file.partitions)
            .unwrap_or(DEFAULT_PARTITIONS),
        replicas: args.replicas.or(file.replicas).unwrap_or(DEFAULT_REPLICAS),
    };
    new_cluster
        .validate()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let tokens = args
        .tokens
        .or(file.tokens)
        .unwrap_or(DEFAULT_TOKENS_PER_NODE);
    if tokens == 0 || tokens > quorra_ring::MAX_TOKENS_PER_NODE {
        return Err(CliError::Usage(format!(
            "--tokens must be between 1 and {}",
            quorra_ring::MAX_TOKENS_PER_NODE
        )));
    }
    let tls = TlsFiles::in_dir(&tls_dir, &tls_name);
    let resp = match args.resp_listen.or(file.resp_listen) {
        None => None,
        Some(listen) => {
            let sweep = args
                .resp_sweep_interval_secs
                .or(file.resp_sweep_interval_secs);
            if sweep == Some(0) {
                return Err(CliError::Usage(
                    "--resp-sweep-interval-secs must be at least 1".into(),
                ));
            }
            let resp = RespConfig {
                listen,
                password: args.resp_password.or(file.requirepass),
                tls: (args.resp_tls || file.resp_tls.unwrap_or(false)).then(|| tls.clone()),
                sweep_interval: sweep.map_or(DEFAULT_SWEEP_INTERVAL, Duration::from_secs),
            };
            resp.check().map_err(CliError::Usage)?;
            Some(resp)
        }
    };
    let (listen, explicit) = match args.admin_listen.or(file.admin_listen).as_deref() {
        None => (Some(DEFAULT_ADMIN_LISTEN), false),
        Some("off" | "none") => (None, true),
        Some(addr) => (
            Some(addr.parse::<SocketAddr>().map_err(|e| {
                CliError::Usage(format!(
                    "--admin-listen {addr:?}: {e} (an address such as 127.0.0.1:9180, or off)"
                ))
            })?),
            true,
        ),
    };
    let admin = match listen {
        None => None,
        Some(listen) => {
            let admin = AdminConfig {
                listen,
                token: args.admin_token.or(file.admin_token),
                explicit,
            };
            admin.check().map_err(CliError::Usage)?;
            Some(admin)
        }
    };
    let mut gossip = quorra_gossip::Config::default();
    if let Some(ms) = args.gossip_interval_ms.or(file.gossip_interval_ms) {
        gossip.interval = Duration::from_millis(ms.max(10));
    }
    Ok(NodeConfig {
        listen: required(args.listen.or(file.listen), "--listen", "listen")?,
        advertise: args.advertise.or(file.advertise),
        data_dir: required(args.data_dir.or(file.data_dir), "--data-dir", "data-dir")?,
        node_id: args.node_id.or(file.node_id),
        zone: args.zone.or(file.zone).unwrap_or_else(|| "default".into()),
        seeds: if args.seeds.is_empty() {
            file.seeds.unwrap_or_default()
        } else {
            args.seeds
        },
        tls,
        engine,
        memory,
        cluster: args
            .cluster
            .or(file.cluster)
            .unwrap_or_else(|| "quorra".into()),
        new_cluster,
        tokens,
        replace: args.replace.or(file.replace).map(NodeId),
        options,
        gossip,
        leave_on_shutdown: args.leave_on_shutdown || file.leave_on_shutdown.unwrap_or(false),
        resp,
        admin,
    })
}

pub(crate) fn run(args: NodeArgs) -> Result<(), CliError> {
    super::init_logging_as(&args.log, args.log_format);
    let config = config(args)?;
    run_blocking(config).map_err(|e| CliError::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_required_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7000\"\ndata-dir = \"/tmp/x\"\ntls-dir = \"/tmp/tls\"\nzone = \"a\"\nfsync = \"periodic\"\n",
        )
        .unwrap();
        let args = NodeArgs {
            config: Some(file.clone()),
            zone: Some("b".into()),
            ..NodeArgs::default()
        };
        let c = config(args).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.zone, "b");
        assert!(matches!(c.options.sync, SyncMode::Periodic { .. }));
        assert_eq!(c.options.read_fanout, ReadFanout::Quorum);

        let c = config(NodeArgs {
            config: Some(file.clone()),
            read_fanout: Some("all".into()),
            speculative_read_ms: Some(25),
            ..NodeArgs::default()
        })
        .unwrap();
        assert_eq!(c.options.read_fanout, ReadFanout::All);
        assert_eq!(c.options.speculative_read_after, Duration::from_millis(25));
        let err = config(NodeArgs {
            config: Some(file.clone()),
            read_fanout: Some("some".into()),
            ..NodeArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("quorum or all"), "{err}");
        let err = config(NodeArgs {
            config: Some(file.clone()),
            speculative_read_ms: Some(0),
            ..NodeArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");

        std::fs::write(&file, "listen = \"127.0.0.1:7000\"\nbogus = 1\n").unwrap();
        let err = config(NodeArgs {
            config: Some(file),
            ..NodeArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = config(NodeArgs::default()).unwrap_err();
        assert!(err.to_string().contains("--tls-dir is required"), "{err}");
    }

    #[test]
    fn a_resp_port_off_loopback_needs_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        let base = "listen = \"127.0.0.1:7000\"\ndata-dir = \"/tmp/x\"\ntls-dir = \"/tmp/tls\"\n";
        std::fs::write(&file, format!("{base}resp-listen = \"0.0.0.0:6379\"\n")).unwrap();
        let args = || NodeArgs {
            config: Some(file.clone()),
            ..NodeArgs::default()
        };
        let err = config(args()).unwrap_err();
        assert!(err.to_string().contains("without a password"), "{err}");
        std::fs::write(
            &file,
            format!("{base}resp-listen = \"0.0.0.0:6379\"\nrequirepass = \"s3cret\"\n"),
        )
        .unwrap();
        let c = config(args()).unwrap();
        let resp = c.resp.unwrap();
        assert_eq!(resp.password.as_deref(), Some("s3cret"));
        assert!(resp.tls.is_none());
        std::fs::write(&file, format!("{base}resp-listen = \"127.0.0.1:6379\"\n")).unwrap();
        assert!(config(args()).unwrap().resp.unwrap().password.is_none());
    }

    #[test]
    fn an_admin_port_off_loopback_needs_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        let base = "listen = \"127.0.0.1:7000\"\ndata-dir = \"/tmp/x\"\ntls-dir = \"/tmp/tls\"\n";
        let args = || NodeArgs {
            config: Some(file.clone()),
            ..NodeArgs::default()
        };
        std::fs::write(&file, base).unwrap();
        let default = config(args()).unwrap().admin.unwrap();
        assert_eq!(default.listen, DEFAULT_ADMIN_LISTEN);
        assert!(
            !default.explicit,
            "the default may be skipped if its port is taken"
        );
        std::fs::write(&file, format!("{base}admin-listen = \"off\"\n")).unwrap();
        assert!(config(args()).unwrap().admin.is_none(), "off when asked");
        std::fs::write(&file, format!("{base}admin-listen = \"nonsense\"\n")).unwrap();
        assert!(
            config(args())
                .unwrap_err()
                .to_string()
                .contains("--admin-listen")
        );
        std::fs::write(&file, format!("{base}admin-listen = \"0.0.0.0:9180\"\n")).unwrap();
        let err = config(args()).unwrap_err();
        assert!(err.to_string().contains("without a token"), "{err}");
        std::fs::write(
            &file,
            format!("{base}admin-listen = \"0.0.0.0:9180\"\nadmin-token = \"s3cret\"\n"),
        )
        .unwrap();
        let admin = config(args()).unwrap().admin.unwrap();
        assert_eq!(admin.token.as_deref(), Some("s3cret"));
        assert!(admin.explicit);
        std::fs::write(&file, format!("{base}admin-listen = \"127.0.0.1:9180\"\n")).unwrap();
        assert!(config(args()).unwrap().admin.unwrap().token.is_none());
    }

    #[test]
    fn the_example_config_in_ops_is_accepted() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/node.toml");
        let c = config(NodeArgs {
            config: Some(file),
            ..NodeArgs::default()
        })
        .unwrap();
        assert_eq!(c.admin.unwrap().token.as_deref(), Some("change-me"));
        assert_eq!(c.seeds.len(), 2);
        assert_eq!(c.memory.bytes(), 8 << 30);
    }

    #[test]
    fn the_memory_budget_is_a_size_of_at_least_the_minimum() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        let base = "listen = \"127.0.0.1:7000\"\ndata-dir = \"/tmp/x\"\ntls-dir = \"/tmp/tls\"\n";
        let args = |flag: Option<&str>| NodeArgs {
            config: Some(file.clone()),
            memory: flag.map(String::from),
            ..NodeArgs::default()
        };
        std::fs::write(&file, base).unwrap();
        assert_eq!(config(args(None)).unwrap().memory, MemoryBudget::default());
        std::fs::write(&file, format!("{base}memory = \"2G\"\n")).unwrap();
        assert_eq!(config(args(None)).unwrap().memory.bytes(), 2 << 30);
        assert_eq!(
            config(args(Some("512M"))).unwrap().memory.bytes(),
            512 << 20,
            "the flag wins over the file"
        );
        for bad in ["100M", "lots", "1.5G"] {
            let err = config(args(Some(bad))).unwrap_err().to_string();
            assert!(err.contains("--memory"), "{bad}: {err}");
        }
    }
}
