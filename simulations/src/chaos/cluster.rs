//! Real `quorra node` processes, one per namespace of [`Net`], and the
//! process faults: `SIGKILL`, `SIGSTOP`/`SIGCONT`, `SIGTERM`, a wiped data
//! directory, restarts, and a slow disk: every node runs with the
//! `LD_PRELOAD` shim of `tests/fault/slow_sync.c` (built with the system C
//! compiler at the start of a run), whose delay per `fsync`/`fdatasync` is
//! read from a file of the node's, 0 until a fault writes to it. A node
//! whose clock the plan skews also preloads libfaketime with its
//! `FAKETIME`.
//!
//! Every node listens on its namespace's address (QUIC on [`NODE_PORT`],
//! RESP on [`RESP_PORT`] with [`RESP_PASSWORD`]), seeded with node 1
//! (restarts: see [`Cluster::start`]), with a one-second request timeout and anti-entropy every
//! [`ANTI_ENTROPY_SECS`] seconds, so a run settles in seconds rather than
//! the default 30 s interval; everything else is the default, fsync on
//! every write included. Signals go through `kill(1)`: `ip netns exec`
//! execs the node in place, so the child's pid is the node's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quorra_client::{Client, ClientConfig, TlsFiles};
use quorra_node::runtime::certs::{Role, init, issue};

use super::net::Net;
use super::netem::Shape;
use super::schedule::Skew;

/// The nodes' QUIC port (each in its own namespace).
pub const NODE_PORT: u16 = 7000;
/// The nodes' RESP port.
pub const RESP_PORT: u16 = 6379;
/// The RESP port's password (required off loopback).
pub const RESP_PASSWORD: &str = "quorra-chaos";
/// Anti-entropy interval of the nodes, seconds.
pub const ANTI_ENTROPY_SECS: u64 = 2;

/// How long a node may take to start and report itself normal.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the cluster could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Setting up files or processes failed.
    #[error("{0}")]
    Setup(String),
    /// A node did not become ready; its log's end.
    #[error("node {id} not ready within {READY_TIMEOUT:?}; its log ends:\n{log}")]
    NotReady {
        /// The node.
        id: u64,
        /// Its log's last lines.
        log: String,
    },
}

/// One node process.
pub struct Proc {
    /// Node id (index + 1).
    pub id: u64,
    /// Its QUIC address.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    args: Vec<String>,
    restart_args: Vec<String>,
    /// Its process was started at least once.
    pub started: bool,
    namespace: String,
    child: Option<Child>,
    paused: bool,
    /// Asked to leave the cluster: it stops by itself once it has left,
    /// and is a member no more.
    pub leaving: bool,
    /// The slow-disk shim's control file: milliseconds per sync.
    slow_sync: PathBuf,
    /// The node's `FAKETIME` (none: the real clock).
    faketime: Option<String>,
}

/// The slow-disk shim's source, built into each run's directory.
const SLOW_SYNC_SHIM: &str = include_str!("../../../tests/fault/slow_sync.c");

/// The nodes of a run.
pub struct Cluster {
    /// The namespaces they run in.
    pub net: Net,
    /// Where certificates, data and logs are.
    pub dir: PathBuf,
    /// The nodes, by index.
    pub nodes: Vec<Proc>,
    bin: PathBuf,
    /// The slow-disk shim, preloaded into every node.
    shim: PathBuf,
    /// libfaketime, preloaded into the nodes whose clock is skewed.
    faketime: Option<PathBuf>,
    /// The `quorra-netem` helper shaping packets into a node, by index.
    netem: Option<(usize, Child)>,
}

impl Cluster {
    /// Makes certificates and starts the first `nodes` of `net`'s nodes
    /// from `bin`, node 1 first, each waited for, so every node chooses its
    /// tokens against the ring of those before it. The next `joiners` are
    /// made ready to start later ([`Cluster::spawn`]), seeded with the
    /// first ones.
    pub async fn start(
        net: Net,
        dir: &Path,
        bin: &Path,
        nodes: usize,
        joiners: usize,
        founder_restarts_seedless: bool,
        clocks: &[Option<Skew>],
    ) -> Result<Self, ClusterError> {
        let tls = dir.join("tls");
        let setup = |e: &dyn std::fmt::Display| ClusterError::Setup(e.to_string());
        init(&tls).map_err(|e| setup(&e))?;
        issue(&tls, "node", Role::Node).map_err(|e| setup(&e))?;
        issue(&tls, "client", Role::Client).map_err(|e| setup(&e))?;
        let shim = build_shim(dir)?;
        let faketime = if clocks.iter().any(Option::is_some) {
            Some(find_faketime()?)
        } else {
            None
        };
        let seed = SocketAddr::from((net.addr(0), NODE_PORT));
        let everyone: Vec<String> = (0..nodes)
            .map(|i| SocketAddr::from((net.addr(i), NODE_PORT)).to_string())
            .collect();
        let procs = (0..nodes + joiners)
            .map(|i| {
                let id = i as u64 + 1;
                let ip = net.addr(i);
                let data = dir.join(format!("node{id}"));
                let mut args: Vec<String> = [
                    "node",
                    "--listen",
                    &SocketAddr::from((ip, NODE_PORT)).to_string(),
                    "--data-dir",
                    &data.display().to_string(),
                    "--node-id",
                    &id.to_string(),
                    "--tls-dir",
                    &tls.display().to_string(),
                    "--request-timeout-ms",
                    "1000",
                    "--resp-listen",
                    &SocketAddr::from((ip, RESP_PORT)).to_string(),
                    "--resp-password",
                    RESP_PASSWORD,
                    "--admin-listen",
                    "off",
                    "--anti-entropy-interval-secs",
                    &ANTI_ENTROPY_SECS.to_string(),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                // A first start is seeded with node 1 (node 1 founds the
                // cluster); a restart with every other node, as operators
                // configure seeds, except node 1's if the plan says it
                // restarts as it first started (after losing its disk it
                // then founds a cluster of its own for a while).
                let mut restart_args = args.clone();
                let others: Vec<&str> = (0..nodes)
                    .filter(|&o| o != i)
                    .map(|o| everyone[o].as_str())
                    .collect();
                if i > 0 || !founder_restarts_seedless {
                    restart_args.extend(["--seeds".to_string(), others.join(",")]);
                }
                if i >= nodes {
                    // A joiner, seeded with every first node.
                    let first: Vec<&str> = everyone.iter().map(String::as_str).collect();
                    args.extend(["--seeds".to_string(), first.join(",")]);
                } else if i > 0 {
                    args.extend(["--seeds".to_string(), seed.to_string()]);
                }
                Proc {
                    id,
                    addr: SocketAddr::from((ip, NODE_PORT)),
                    restart_args,
                    data,
                    log: dir.join(format!("node{id}.log")),
                    args,
                    started: false,
                    namespace: net.namespace(i),
                    child: None,
                    paused: false,
                    leaving: false,
                    slow_sync: dir.join(format!("node{id}.slow-sync-ms")),
                    faketime: clocks.get(i).copied().flatten().map(|s| s.faketime()),
                }
            })
            .collect();
        let mut cluster = Cluster {
            net,
            dir: dir.to_path_buf(),
            nodes: procs,
            bin: bin.to_path_buf(),
            shim,
            netem: None,
            faketime,
        };
        for node in &cluster.nodes {
            std::fs::write(&node.slow_sync, "0").map_err(|e| setup(&e))?;
        }
        for i in 0..nodes {
            cluster.spawn(i)?;
            cluster.wait_ready(i).await?;
        }
        Ok(cluster)
    }

    /// The nodes that are members: started, and not asked to leave.
    pub fn members(&self) -> impl Iterator<Item = &Proc> {
        self.nodes.iter().filter(|n| n.started && !n.leaving)
    }

    /// The nodes asked to leave whose process still runs: they have not
    /// finished leaving (a node stops by itself once it has left).
    pub fn still_leaving(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        for node in self.nodes.iter_mut().filter(|n| n.leaving) {
            if let Some(child) = node.child.as_mut()
                && let Ok(None) = child.try_wait()
            {
                out.push(node.id);
            }
        }
        out
    }

    /// The TLS files of the harness's clients.
    pub fn client_tls(&self) -> TlsFiles {
        TlsFiles::in_dir(&self.dir.join("tls"), "client")
    }

    /// A client configuration with every node started so far as a seed.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(
            self.nodes
                .iter()
                .filter(|n| n.started)
                .map(|n| n.addr)
                .collect(),
            self.client_tls(),
        )
    }

    /// Starts node `i`'s process (appending to its log).
    pub fn spawn(&mut self, i: usize) -> Result<(), ClusterError> {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| ClusterError::Setup(format!("{}: {e}", node.log.display())))?;
        let args = if node.started {
            &node.restart_args
        } else {
            &node.args
        };
        let mut command = Command::new("ip");
        let mut preload = self.shim.clone().into_os_string();
        if let (Some(lib), Some(faketime)) = (&self.faketime, &node.faketime) {
            preload.push(":");
            preload.push(lib);
            command.env("FAKETIME", faketime);
        }
        let child = command
            .args(["netns", "exec", &node.namespace])
            .arg(&self.bin)
            .args(args)
            .env("LD_PRELOAD", preload)
            .env("QUORRA_SLOW_SYNC_FILE", &node.slow_sync)
            .env(
                "RUST_LOG",
                std::env::var("QUORRA_CHAOS_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| ClusterError::Setup(format!("starting node {}: {e}", node.id)))?;
        node.child = Some(child);
        node.started = true;
        node.paused = false;
        Ok(())
    }

    /// Waits until node `i` reports itself a normal member.
    pub async fn wait_ready(&mut self, i: usize) -> Result<(), ClusterError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let (id, addr) = (self.nodes[i].id, self.nodes[i].addr);
        let mut config = self.client_config();
        config.seeds = vec![addr];
        config.timeout = Duration::from_secs(2);
        config.retries = 0;
        while Instant::now() < deadline {
            if !self.running(i) {
                break;
            }
            if let Ok(client) = Client::connect(config.clone()).await {
                let ready = client
                    .status_of(addr)
                    .await
                    .is_ok_and(|s| s.members.iter().any(|m| m.id == id && m.state == "normal"));
                client.close();
                if ready {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ClusterError::NotReady {
            id,
            log: self.log_tail(i, 20),
        })
    }

    /// Whether node `i`'s process runs.
    pub fn running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Node `i`s that exited although no fault stopped them, with their
    /// exit status (a node that left stops by itself, successfully).
    pub fn crashed(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
                && !(node.leaving && status.success())
            {
                out.push((node.id, status.to_string()));
            }
        }
        out
    }

    fn signal(&self, i: usize, signal: &str) {
        if let Some(child) = &self.nodes[i].child {
            // A node that left has exited by itself: kill(1) would only
            // complain that it is gone.
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// `SIGKILL`: no flush, no goodbye.
    pub fn kill9(&mut self, i: usize) {
        if self.nodes[i].paused {
            self.signal(i, "-CONT");
        }
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nodes[i].paused = false;
    }

    /// Makes node `i`'s every sync take `ms` longer (0: its disk is
    /// healthy again); the running process sees it at its next sync.
    pub fn slow_disk(&mut self, i: usize, ms: u32) -> Result<(), ClusterError> {
        let node = &self.nodes[i];
        std::fs::write(&node.slow_sync, ms.to_string())
            .map_err(|e| ClusterError::Setup(format!("{}: {e}", node.slow_sync.display())))
    }

    /// Starts the `quorra-netem` helper in node `i`'s namespace, shaping
    /// what its queue rule hands it ([`super::net::Net::apply`] makes the
    /// rule); its last words go to `node<id>.netem.log`.
    pub fn start_netem(&mut self, i: usize, shape: Shape, seed: u64) -> Result<(), ClusterError> {
        let helper = find_netem()?;
        let node = &self.nodes[i];
        let log_path = self.dir.join(format!("node{}.netem.log", node.id));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| ClusterError::Setup(format!("{}: {e}", log_path.display())))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &node.namespace])
            .arg(&helper)
            .args(shape.args(seed))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| ClusterError::Setup(format!("starting {}: {e}", helper.display())))?;
        self.netem = Some((i, child));
        Ok(())
    }

    /// Stops the helper: closing its input makes it let through what it
    /// holds and exit; the rule, still there, lets packets pass unqueued
    /// once nothing is bound (`--queue-bypass`). Returns its last words.
    pub fn stop_netem(&mut self) -> String {
        let Some((i, mut child)) = self.netem.take() else {
            return String::new();
        };
        drop(child.stdin.take());
        let deadline = Instant::now() + NETEM_STOP;
        while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = self.dir.join(format!("node{}.netem.log", self.nodes[i].id));
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .last()
            .unwrap_or("quorra-netem said nothing")
            .to_string()
    }

    /// `SIGSTOP`.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "-STOP");
        self.nodes[i].paused = true;
    }

    /// `SIGCONT`.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "-CONT");
        self.nodes[i].paused = false;
    }

    /// `SIGKILL` and the data directory deleted.
    pub fn wipe(&mut self, i: usize) -> Result<(), ClusterError> {
        self.kill9(i);
        match std::fs::remove_dir_all(&self.nodes[i].data) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ClusterError::Setup(format!(
                "wiping {}: {e}",
                self.nodes[i].data.display()
            ))),
        }
    }

    /// `SIGTERM` to every node, then waits (10 s at most, then `SIGKILL`).
    pub fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused {
                self.resume(i);
            }
            self.signal(i, "-TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for i in 0..self.nodes.len() {
            if let Some(mut child) = self.nodes[i].child.take() {
                while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some((_, mut child)) = self.netem.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
    }
}

/// How long a stopping `quorra-netem` may take to let its packets through.
const NETEM_STOP: Duration = Duration::from_secs(5);

/// The `quorra-netem` helper: `QUORRA_CHAOS_NETEM` if set, else next to
/// this executable (cargo builds both into the same directory).
pub fn find_netem() -> Result<PathBuf, ClusterError> {
    let helper = match std::env::var_os("QUORRA_CHAOS_NETEM") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .map_err(|e| ClusterError::Setup(format!("this executable's path: {e}")))?
            .with_file_name("quorra-netem"),
    };
    if helper.exists() {
        Ok(helper)
    } else {
        Err(ClusterError::Setup(format!(
            "the plan delays packets but the quorra-netem helper is not at {} (cargo build \
             -p quorra-simulations --bins builds it next to quorra-chaos; or set \
             QUORRA_CHAOS_NETEM)",
            helper.display()
        )))
    }
}

/// Where Debian's libfaketime package puts the multi-threaded library.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// libfaketime: `QUORRA_CHAOS_FAKETIME` if set, else Debian's path.
fn find_faketime() -> Result<PathBuf, ClusterError> {
    let lib = std::env::var_os("QUORRA_CHAOS_FAKETIME")
        .map_or_else(|| PathBuf::from(FAKETIME_LIB), PathBuf::from);
    if lib.exists() {
        Ok(lib)
    } else {
        Err(ClusterError::Setup(format!(
            "the plan skews clocks but libfaketime is not at {} (Debian: apt install \
             libfaketime; elsewhere set QUORRA_CHAOS_FAKETIME), or pass --no-clock-skew",
            lib.display()
        )))
    }
}

/// Builds the slow-disk shim into `dir` with `cc`.
fn build_shim(dir: &Path) -> Result<PathBuf, ClusterError> {
    let source = dir.join("slow_sync.c");
    let lib = dir.join("libslowsync.so");
    std::fs::write(&source, SLOW_SYNC_SHIM)
        .map_err(|e| ClusterError::Setup(format!("{}: {e}", source.display())))?;
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&source)
        .arg("-ldl")
        .output()
        .map_err(|e| {
            ClusterError::Setup(format!(
                "running cc to build the slow-disk shim (a C compiler is needed): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(ClusterError::Setup(format!(
            "cc {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(lib)
}
