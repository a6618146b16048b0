//! # quorra-e2e: real `quorra` processes on loopback
//!
//! [`TestCluster`] starts `quorra node` child processes with their own
//! temporary data directories and a fresh cluster CA, waits until each has
//! joined, and lets a test kill (`SIGKILL`), stop (`SIGTERM`) and restart
//! them. The tests in `tests/` drive it through the real client SDK.
//! Everything listens on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quorra_client::{Client, ClientConfig, TlsFiles};
use quorra_node::runtime::certs::{Role, init, issue};
use tempfile::TempDir;

pub mod http;
mod ports;
pub mod prom;

pub use ports::free_port;

/// The `quorra` binary of this build (built by `cargo test --workspace`;
/// built here if missing or older than the sources it is made of, as after
/// an edit followed by `cargo test -p quorra-e2e`, which builds only the
/// tests: the old binary would be tested).
pub fn quorra_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join("quorra");
    if !bin.exists() || older_than_sources(&bin) {
        let mut args = vec!["build", "-p", "quorra-node", "--bin", "quorra"];
        if dir.ends_with("release") {
            args.push("--release");
        }
        let status = Command::new(env!("CARGO"))
            .args(args)
            .status()
            .expect("cargo build");
        assert!(status.success(), "building quorra failed");
    }
    bin
}

/// Whether a source file of the crates the binary is made of (or a
/// manifest) changed after `bin` was built.
fn older_than_sources(bin: &Path) -> bool {
    fn newest(path: &Path) -> Option<std::time::SystemTime> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return meta.modified().ok();
        }
        std::fs::read_dir(path)
            .ok()?
            .filter_map(|e| newest(&e.ok()?.path()))
            .max()
    }
    let Some(built) = std::fs::metadata(bin).and_then(|m| m.modified()).ok() else {
        return true;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut sources = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    for krate in ["ring", "merkle", "gossip", "node", "client"] {
        sources.push(root.join(krate).join("src"));
        sources.push(root.join(krate).join("Cargo.toml"));
    }
    sources
        .iter()
        .filter_map(|p| newest(p))
        .any(|changed| changed > built)
}

/// A cluster CA with node and client certificates in `dir`.
pub fn make_tls(dir: &Path) {
    init(dir).expect("CA");
    issue(dir, "node", Role::Node).expect("node certificate");
    issue(dir, "client", Role::Client).expect("client certificate");
}

/// Runs `session` on a blocking Redis connection to `addr` (the RESP
/// port of a node), off the test's runtime.
pub async fn resp_session(
    addr: SocketAddr,
    session: impl FnOnce(&mut redis::Connection) + Send + 'static,
) {
    tokio::task::spawn_blocking(move || {
        let mut connection = redis::Client::open(format!("redis://{addr}/"))
            .expect("a Redis URL")
            .get_connection()
            .expect("a RESP connection");
        session(&mut connection);
    })
    .await
    .expect("the RESP session");
}

/// The last `lines` lines of a log file (for failure messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Builds `tests/fault/slow_sync.c`, the `LD_PRELOAD` shim that makes
/// `fsync`, `fdatasync` and `syncfs` wait as many milliseconds as the file
/// named by `QUORRA_SLOW_SYNC_FILE` says, into `dir`, and returns the
/// library's path. With the system C compiler, which building the
/// workspace needs anyway (ring's C parts).
pub fn slow_sync_shim(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fault/slow_sync.c");
    let lib = dir.join("libslowsync.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&lib)
        .arg(&source)
        .arg("-ldl")
        .output()
        .expect("run cc (a C compiler builds the slow-disk shim)");
    assert!(
        out.status.success(),
        "cc {}: {}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

/// One `quorra node` process.
pub struct NodeProc {
    /// Node id.
    pub id: u64,
    /// Listen address.
    pub addr: SocketAddr,
    /// The RESP (Redis protocol) address every test node serves.
    pub resp: SocketAddr,
    /// The admin HTTP address every test node serves.
    pub admin: SocketAddr,
    /// Data directory.
    pub data: PathBuf,
    /// Log file.
    pub log: PathBuf,
    args: Vec<String>,
    /// Environment added to the process from its next start on.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl NodeProc {
    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A cluster of real processes.
pub struct TestCluster {
    /// Temporary directory holding everything.
    pub dir: TempDir,
    /// The TLS directory.
    pub tls: PathBuf,
    /// The nodes, by index (id = index + 1).
    pub nodes: Vec<NodeProc>,
}

impl TestCluster {
    /// A cluster of no node yet, with its certificates made.
    fn empty() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let tls = dir.path().join("tls");
        make_tls(&tls);
        TestCluster {
            dir,
            tls,
            nodes: Vec::new(),
        }
    }

    /// Starts `n` nodes, one after the other, each joining through the
    /// first; `extra` are added to every node's command line.
    pub async fn start(n: usize, extra: &[&str]) -> Self {
        let mut cluster = Self::empty();
        for _ in 0..n {
            cluster.add_node(extra).await;
        }
        cluster.wait_converged(n).await;
        cluster
    }

    /// Like [`TestCluster::start`], calling `prepare(i, data_dir)` before
    /// node `i` first starts (to mount something on its data directory).
    pub async fn start_prepared(
        n: usize,
        extra: &[&str],
        mut prepare: impl FnMut(usize, &Path),
    ) -> Self {
        let mut cluster = Self::empty();
        for _ in 0..n {
            let i = cluster.define_node(extra);
            std::fs::create_dir_all(&cluster.nodes[i].data).expect("data directory");
            prepare(i, &cluster.nodes[i].data);
            cluster.restart(i).await;
        }
        cluster.wait_converged(n).await;
        cluster
    }

    /// Starts `n` nodes at once, each given only the first as its seed,
    /// without waiting for any; returns when every node sees all `n` normal,
    /// with the time that took, once no partition is moving any more.
    pub async fn start_together(n: usize, extra: &[&str]) -> (Self, Duration) {
        let mut cluster = Self::empty();
        for _ in 0..n {
            cluster.define_node(extra);
        }
        let started = Instant::now();
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_view(n, false).await;
        let view = started.elapsed();
        cluster.wait_view(n, true).await;
        eprintln!(
            "{n} nodes saw one view after {view:?}; their ownership moves settled after {:?}",
            started.elapsed()
        );
        (cluster, view)
    }

    /// Defines one more node (seeded with the first) without starting it.
    fn define_node(&mut self, extra: &[&str]) -> usize {
        let id = self.nodes.len() as u64 + 1;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let resp = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let data = self.dir.path().join(format!("node{id}"));
        let log = self.dir.path().join(format!("node{id}.log"));
        let mut args: Vec<String> = vec![
            "node".into(),
            "--listen".into(),
            addr.to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--node-id".into(),
            id.to_string(),
            "--tls-dir".into(),
            self.tls.display().to_string(),
            "--request-timeout-ms".into(),
            "1000".into(),
            "--resp-listen".into(),
            resp.to_string(),
            "--admin-listen".into(),
            admin.to_string(),
        ];
        if let Some(first) = self.nodes.first() {
            args.push("--seeds".into());
            args.push(first.addr.to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        self.nodes.push(NodeProc {
            id,
            addr,
            resp,
            admin,
            data,
            log,
            args,
            env: Vec::new(),
            child: None,
        });
        self.nodes.len() - 1
    }

    /// Adds and starts one more node without waiting for it to be ready
    /// (it may never be: a node of another cluster).
    pub fn add_node_unready(&mut self, extra: &[&str]) -> usize {
        let i = self.define_node(extra);
        self.spawn(i);
        i
    }

    /// Adds and starts one more node, seeded with the first.
    pub async fn add_node(&mut self, extra: &[&str]) -> usize {
        let i = self.define_node(extra);
        self.restart(i).await;
        i
    }

    /// Client configuration for this cluster (all nodes as seeds).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(
            self.nodes.iter().map(|n| n.addr).collect(),
            TlsFiles::in_dir(&self.tls, "client"),
        );
        c.timeout = Duration::from_secs(5);
        c
    }

    /// A connected client.
    pub async fn client(&self) -> Client {
        Client::connect(self.client_config())
            .await
            .expect("client connects")
    }

    /// A client that talks only to node `i`, without routing.
    pub async fn client_of(&self, i: usize) -> Client {
        let mut c = self.client_config();
        c.seeds = vec![self.nodes[i].addr];
        c.zero_hop = false;
        c.retries = 0;
        Client::connect(c).await.expect("client connects")
    }

    /// Starts node `i` (again) and waits until it reports itself normal.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ready(i).await;
    }

    /// Starts node `i`'s process.
    pub fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log file");
        let child = Command::new(quorra_bin())
            .args(&node.args)
            .env(
                "RUST_LOG",
                std::env::var("QUORRA_E2E_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(node.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn quorra node");
        node.child = Some(child);
    }

    /// Whether node `i`'s process is running (it may have exited).
    pub fn running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// Waits until node `i` says it is a normal member.
    pub async fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (id, addr) = (self.nodes[i].id, self.nodes[i].addr);
        let mut config = self.client_config();
        config.seeds = vec![addr];
        config.timeout = Duration::from_secs(2);
        config.retries = 0;
        loop {
            if let Some(child) = self.nodes[i].child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("node {id} exited with {status}:\n{}", self.log_of(i));
            }
            if let Ok(client) = Client::connect(config.clone()).await {
                let ready = client
                    .status_of(addr)
                    .await
                    .is_ok_and(|s| s.members.iter().any(|m| m.id == id && m.state == "normal"));
                client.close();
                if ready {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id} not ready in 30 s:\n{}",
                self.log_of(i)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every running node sees `expected` members as normal
    /// and no partition moving (reads and routing use the newest layout);
    /// past 30 s, fails naming each node that does not, with its log's end.
    pub async fn wait_converged(&self, expected: usize) {
        self.wait_view(expected, true).await
    }

    /// Waits until every running node sees `expected` members as normal
    /// and, if `moves`, no partition moving; past 30 s, fails naming each
    /// node that does not, with its log's end.
    pub async fn wait_view(&self, expected: usize, moves: bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = self.client().await;
        loop {
            let mut behind = Vec::new();
            for n in self.nodes.iter().filter(|n| n.child.is_some()) {
                let seen = client.status_of(n.addr).await.map(|s| {
                    let normal = s.members.iter().filter(|m| m.state == "normal").count();
                    (normal, s.moves.moving_partitions)
                });
                match seen {
                    Ok((normal, moving)) if normal == expected && (moving == 0 || !moves) => {}
                    Ok((normal, _)) if normal != expected => {
                        behind.push((n, format!("sees {normal} normal")))
                    }
                    Ok((_, moving)) => behind.push((n, format!("sees {moving} partitions moving"))),
                    Err(e) => behind.push((n, format!("status failed: {e}"))),
                }
            }
            if behind.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let report: Vec<String> = behind
                    .iter()
                    .map(|(n, what)| {
                        format!(
                            "node {} {what}; its log ends:\n{}",
                            n.id,
                            log_tail(&n.log, 8)
                        )
                    })
                    .collect();
                panic!(
                    "membership did not converge to {expected} nodes with no move under way within 30 s:\n{}",
                    report.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops node `i` and deletes its data directory, as a lost disk.
    pub fn wipe(&mut self, i: usize) {
        self.stop(i);
        std::fs::remove_dir_all(&self.nodes[i].data).expect("delete the data directory");
    }

    /// Kills node `i` with SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops node `i` with SIGTERM and waits for it to exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asserts that the cluster still takes a write and reads it back
    /// (after a test threw something bad at one of its ports).
    pub async fn assert_serving(&self) {
        let client = self.client().await;
        let key = "still-serving";
        client
            .put(
                key,
                "yes",
                &quorra_client::Context::empty(),
                quorra_client::Consistency::ONE,
            )
            .await
            .expect("a write after the bad input");
        let read = client
            .get(key, quorra_client::Consistency::ONE)
            .await
            .expect("a read after the bad input");
        assert_eq!(read.values.len(), 1, "the write is not read back");
    }

    /// The log of node `i`.
    pub fn log_of(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }
}

/// A tmpfs of a given size mounted on a directory the test made, to fill a
/// node's disk; unmounted when dropped. Needs root (CI runs as root).
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB on `path`; the reason if it cannot.
    pub fn mount(path: &Path, mib: u64) -> Result<Self, String> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(path)
            .status()
            .map_err(|e| format!("mount: {e}"))?;
        if !status.success() {
            return Err(format!("mount -t tmpfs failed ({status}): not root?"));
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Grows (or shrinks) it to `mib` MiB, as freeing space would.
    pub fn resize(&self, mib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(&self.path)
            .status()
            .expect("mount -o remount");
        assert!(status.success(), "resizing the tmpfs failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process may still hold files in it.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        if std::thread::panicking() && std::env::var_os("QUORRA_E2E_KEEP").is_some() {
            let dir = std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("temporary directory"),
            );
            eprintln!(
                "keeping the failed cluster's files in {}",
                dir.keep().display()
            );
        }
    }
}
