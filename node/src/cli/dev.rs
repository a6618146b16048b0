//! `quorra dev`: a local cluster on loopback for a first try.
//!
//! Makes a cluster CA and a node and a client certificate on first use,
//! then starts each node as its own `quorra node` child process (so a user
//! can kill one and watch the others cope), one after the other, waiting
//! for each to join before starting the next, so tokens are chosen against
//! the full ring. It prints every node's address, pid and log file, and
//! what the CLI needs; then it waits. Ctrl-C (or SIGTERM) stops the nodes
//! cleanly. A node that dies is reported and not restarted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use quorra_client::{Client, ClientConfig, TlsFiles};
use quorra_node::runtime::certs::{Role, init, issue};
use tokio::process::{Child, Command};

use super::CliError;

#[derive(Args, Debug)]
pub(crate) struct DevArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Port of the first node; the others follow.
    #[arg(long, default_value_t = 7401)]
    base_port: u16,
    /// Directory for certificates, data and logs.
    #[arg(long, default_value = ".quorra/dev")]
    data_dir: PathBuf,
    /// When writes are acknowledged: always (after fsync) or periodic.
    #[arg(long, default_value = "always")]
    fsync: String,
    /// Storage engine of the nodes.
    #[arg(long, default_value = "fjall")]
    engine: String,
    /// Merkle anti-entropy of the nodes: on or off.
    #[arg(long, default_value = "on")]
    anti_entropy: String,
    /// RESP (Redis protocol) port of the first node; the others follow
    /// (0: no RESP ports).
    #[arg(long, default_value_t = 6379)]
    resp_base_port: u16,
    /// Admin HTTP port (metrics, health, status page) of the first node;
    /// the others follow (0: no admin ports).
    #[arg(long, default_value_t = 9180)]
    admin_base_port: u16,
}

struct DevNode {
    id: u16,
    address: SocketAddr,
    resp: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    log: PathBuf,
    child: Child,
    exited: bool,
}

/// Makes the CA and the dev certificates unless they exist.
fn ensure_certificates(tls: &Path) -> Result<(), CliError> {
    let failed = |e: quorra_node::runtime::certs::CertError| CliError::Failed(e.to_string());
    if !tls.join("ca.crt").exists() {
        init(tls).map_err(failed)?;
    }
    if !tls.join("node.crt").exists() {
        issue(tls, "node", Role::Node).map_err(failed)?;
    }
    if !tls.join("client.crt").exists() {
        issue(tls, "client", Role::Client).map_err(failed)?;
    }
    Ok(())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until node `id` at `address` reports itself a normal member.
async fn wait_ready(tls: &Path, node: &mut DevNode) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut config = ClientConfig::new(vec![node.address], TlsFiles::in_dir(tls, "client"));
    config.timeout = Duration::from_secs(2);
    config.retries = 0;
    loop {
        if let Ok(Some(status)) = node.child.try_wait() {
            return Err(format!("exited with {status}"));
        }
        if let Ok(client) = Client::connect(config.clone()).await {
            let ready = client.status_of(node.address).await.ok().is_some_and(|s| {
                s.members
                    .iter()
                    .any(|m| m.id == u64::from(node.id) && m.state == "normal")
            });
            client.close();
            if ready {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("did not become ready within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn terminate(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
}

async fn stop_all(nodes: &mut [DevNode]) {
    for n in nodes.iter().filter(|n| !n.exited) {
        terminate(n.child.id());
    }
    for n in nodes.iter_mut().filter(|n| !n.exited) {
        match tokio::time::timeout(Duration::from_secs(10), n.child.wait()).await {
            Ok(_) => eprintln!("node {} stopped", n.id),
            Err(_) => {
                let _ = n.child.kill().await;
                eprintln!("node {} did not stop in 10 s: killed", n.id);
            }
        }
    }
}

async fn run_dev(args: DevArgs) -> Result<(), CliError> {
    if args.nodes == 0 || args.nodes > 64 {
        return Err(CliError::Usage("--nodes must be between 1 and 64".into()));
    }
    if u32::from(args.base_port) + u32::from(args.nodes) > 65536 {
        return Err(CliError::Usage(
            "--base-port too high for that many nodes".into(),
        ));
    }
    if u32::from(args.resp_base_port) + u32::from(args.nodes) > 65536 {
        return Err(CliError::Usage(
            "--resp-base-port too high for that many nodes".into(),
        ));
    }
    if u32::from(args.admin_base_port) + u32::from(args.nodes) > 65536 {
        return Err(CliError::Usage(
            "--admin-base-port too high for that many nodes".into(),
        ));
    }
    let dir = &args.data_dir;
    let tls = dir.join("tls");
    ensure_certificates(&tls)?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Failed(format!("cannot find the quorra binary: {e}")))?;
    let first: SocketAddr = SocketAddr::from(([127, 0, 0, 1], args.base_port));
    let mut nodes: Vec<DevNode> = Vec::new();
    for i in 0..args.nodes {
        let id = i + 1;
        let address = SocketAddr::from(([127, 0, 0, 1], args.base_port + i));
        let resp = (args.resp_base_port != 0)
            .then(|| SocketAddr::from(([127, 0, 0, 1], args.resp_base_port + i)));
        let admin = (args.admin_base_port != 0)
            .then(|| SocketAddr::from(([127, 0, 0, 1], args.admin_base_port + i)));
        let data = dir.join(format!("node{id}"));
        std::fs::create_dir_all(&data)?;
        let log = dir.join(format!("node{id}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut cmd = Command::new(&exe);
        cmd.arg("node")
            .arg("--listen")
            .arg(address.to_string())
            .arg("--data-dir")
            .arg(&data)
            .arg("--node-id")
            .arg(id.to_string())
            .arg("--tls-dir")
            .arg(&tls)
            .arg("--tls-name")
            .arg("node")
            .arg("--fsync")
            .arg(&args.fsync)
            .arg("--engine")
            .arg(&args.engine)
            .arg("--anti-entropy")
            .arg(&args.anti_entropy)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        if id > 1 {
            cmd.arg("--seeds").arg(first.to_string());
        }
        if let Some(resp) = resp {
            cmd.arg("--resp-listen").arg(resp.to_string());
        }
        let admin_arg = admin.map_or("off".to_string(), |a| a.to_string());
        cmd.arg("--admin-listen").arg(admin_arg);
        let child = cmd
            .spawn()
            .map_err(|e| CliError::Failed(format!("cannot start node {id}: {e}")))?;
        let mut node = DevNode {
            id,
            address,
            resp,
            admin,
            log,
            child,
            exited: false,
        };
        if let Err(why) = wait_ready(&tls, &mut node).await {
            eprintln!(
                "node {id} at {address} {why}; last lines of {}:\n{}",
                node.log.display(),
                tail(&node.log, 15)
            );
            let port_taken = tail(&node.log, 15).contains("cannot listen on");
            nodes.push(node);
            stop_all(&mut nodes).await;
            if port_taken {
                return Err(CliError::Failed(format!(
                    "node {id} could not open its ports: choose others with --base-port \
                     (QUIC, default 7401), --resp-base-port (Redis, default 6379; 0 for none) \
                     or --admin-base-port (HTTP, default 9180; 0 for none)"
                )));
            }
            return Err(CliError::Failed(format!("node {id} did not start")));
        }
        nodes.push(node);
    }

    // Wait until the first node sees every node normal: gossip has spread.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut config = ClientConfig::new(vec![first], TlsFiles::in_dir(&tls, "client"));
    config.timeout = Duration::from_secs(2);
    while Instant::now() < deadline {
        let converged = match Client::connect(config.clone()).await {
            Ok(c) => c.status_of(first).await.is_ok_and(|s| {
                s.members.iter().filter(|m| m.state == "normal").count() == nodes.len()
            }),
            Err(_) => false,
        };
        if converged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let peers: Vec<String> = nodes.iter().map(|n| n.address.to_string()).collect();
    let tls_abs = std::fs::canonicalize(&tls).unwrap_or(tls.clone());
    println!("local Quorra cluster of {} nodes is up:", nodes.len());
    for n in &nodes {
        println!(
            "  node {:<3} {}  redis {:<15}  admin {:<22}  pid {:<8} log {}",
            n.id,
            n.address,
            n.resp.map_or("-".into(), |r| r.to_string()),
            n.admin.map_or("-".into(), |a| format!("http://{a}/")),
            n.child.id().map_or("-".into(), |p| p.to_string()),
            n.log.display()
        );
    }
    println!();
    println!("from this directory, try:");
    println!("  quorra put hello world && quorra get hello && quorra status");
    if let Some(resp) = nodes.first().and_then(|n| n.resp) {
        println!("with any Redis client, e.g.:");
        println!("  redis-cli -p {} set greeting hello", resp.port());
    }
    if let Some(admin) = nodes.first().and_then(|n| n.admin) {
        println!("see the cluster in a browser at http://{admin}/, or:");
        println!("  curl -s http://{admin}/metrics | grep ^quorra_members");
    }
    println!("from anywhere else, first:");
    println!(
        "  export QUORRA_TLS_DIR={} QUORRA_PEERS={}",
        tls_abs.display(),
        peers.join(",")
    );
    println!();
    println!(
        "Ctrl-C stops the cluster; kill a node's pid to watch the others cope (nothing is restarted)."
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let mut watch = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = watch.tick() => {
                for n in nodes.iter_mut().filter(|n| !n.exited) {
                    if let Ok(Some(status)) = n.child.try_wait() {
                        n.exited = true;
                        eprintln!("node {} ({}) exited: {status}; not restarted (log: {})", n.id, n.address, n.log.display());
                    }
                }
            }
        }
    }
    eprintln!("stopping the cluster...");
    stop_all(&mut nodes).await;
    Ok(())
}

pub(crate) fn run(args: DevArgs) -> Result<(), CliError> {
    super::init_logging("warn");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run_dev(args))
}
