//! `quorra put|get|del|status`: the cluster from the command line.
//!
//! By default the CLI talks to `127.0.0.1:7401` with the certificates of a
//! local `quorra dev` cluster (`.quorra/dev/tls`), so that `quorra dev` in
//! one terminal and `quorra put hello world` in another just work; flags
//! and `QUORRA_PEERS` / `QUORRA_TLS_DIR` point it elsewhere.
//!
//! `put` and `del` read the key first and write with its context, so they
//! replace what is there, as users expect; `--context` passes a context
//! from an earlier read instead, and `put --blind` writes without one
//! (concurrent with everything stored: it becomes a sibling).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use clap::Args;
use quorra_client::protocol::ClusterStatus;
use quorra_client::{Client, ClientConfig, Consistency, Context, Response, TlsFiles};
use quorra_node::storage::budget::Bytes as Size;
use serde_json::json;

use super::CliError;

/// Where the CLI finds a local dev cluster's certificates by default.
pub(crate) const DEV_TLS_DIR: &str = ".quorra/dev/tls";

#[derive(Args, Debug, Clone)]
pub(crate) struct Connection {
    /// Comma-separated node addresses to contact.
    #[arg(
        long = "peer",
        env = "QUORRA_PEERS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7401"
    )]
    peers: Vec<SocketAddr>,
    /// Directory with ca.crt and the client certificate [default: .quorra/dev/tls].
    #[arg(long, env = "QUORRA_TLS_DIR")]
    tls_dir: Option<PathBuf>,
    /// Name of the client certificate (NAME.crt, NAME.key).
    #[arg(long, env = "QUORRA_TLS_NAME", default_value = "client")]
    tls_name: String,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

impl Connection {
    /// The status of the first node that answers.
    fn status(&self) -> Result<quorra_client::protocol::ClusterStatus, CliError> {
        let config = self.config()?;
        Ok(Self::runtime()?.block_on(async {
            let client = Client::connect(config).await?;
            client.status().await
        })?)
    }

    pub(crate) fn config(&self) -> Result<ClientConfig, CliError> {
        let dir = self
            .tls_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEV_TLS_DIR));
        if !dir.join("ca.crt").exists() {
            return Err(CliError::Usage(format!(
                "no cluster CA at {}: pass --tls-dir (or set QUORRA_TLS_DIR), or start a local cluster with `quorra dev`",
                dir.join("ca.crt").display()
            )));
        }
        let mut config =
            ClientConfig::new(self.peers.clone(), TlsFiles::in_dir(&dir, &self.tls_name));
        config.timeout = Duration::from_secs(self.timeout.max(1));
        Ok(config)
    }

    pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))
    }
}

fn parse_consistency(s: &str) -> Result<Consistency, String> {
    s.parse()
        .map_err(|e: quorra_client::ConsistencyError| e.to_string())
}

fn parse_context(s: &str) -> Result<Context, String> {
    B64.decode(s.trim())
        .map(Context::from_bytes)
        .map_err(|e| format!("context is not base64: {e}"))
}

#[derive(Args, Debug)]
pub(crate) struct GetArgs {
    /// The key.
    key: String,
    #[command(flatten)]
    connection: Connection,
    /// one, two, quorum, all, or r=N,w=N (and pr=, pw=).
    #[arg(long, default_value = "quorum", value_parser = parse_consistency)]
    consistency: Consistency,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct PutArgs {
    /// The key.
    key: String,
    /// The value; `-` reads it from standard input.
    value: String,
    #[command(flatten)]
    connection: Connection,
    /// one, two, quorum, all, or r=N,w=N (and pr=, pw=).
    #[arg(long, default_value = "quorum", value_parser = parse_consistency)]
    consistency: Consistency,
    /// Context (base64) from an earlier read, instead of reading first.
    #[arg(long, value_parser = parse_context, conflicts_with = "blind")]
    context: Option<Context>,
    /// Write without a context: the value becomes a sibling of what is stored.
    #[arg(long)]
    blind: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct DelArgs {
    /// The key.
    key: String,
    #[command(flatten)]
    connection: Connection,
    /// one, two, quorum, all, or r=N,w=N (and pr=, pw=).
    #[arg(long, default_value = "quorum", value_parser = parse_consistency)]
    consistency: Consistency,
    /// Context (base64) from an earlier read, instead of reading first.
    #[arg(long, value_parser = parse_context)]
    context: Option<Context>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    connection: Connection,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `values`/`encoding` for JSON: UTF-8 text when every value is, else base64.
fn values_json(values: &[Bytes]) -> (Vec<String>, &'static str) {
    let texts: Option<Vec<String>> = values
        .iter()
        .map(|v| std::str::from_utf8(v).ok().map(str::to_string))
        .collect();
    match texts {
        Some(t) => (t, "utf-8"),
        None => (values.iter().map(|v| B64.encode(v)).collect(), "base64"),
    }
}

fn response_json(r: &Response) -> serde_json::Value {
    let (values, encoding) = values_json(&r.values);
    json!({
        "values": values,
        "encoding": encoding,
        "context": B64.encode(r.context.as_bytes()),
        "replicas": r.receipt.answered.iter().map(|a| json!({
            "node": a.node,
            "fallback_for": a.fallback_for,
        })).collect::<Vec<_>>(),
        "used_fallback": r.receipt.used_fallback(),
    })
}

fn receipt_line(r: &Response) -> String {
    let nodes: Vec<String> = r
        .receipt
        .answered
        .iter()
        .map(|a| match a.fallback_for {
            Some(owner) => format!("{} (for {owner})", a.node),
            None => a.node.to_string(),
        })
        .collect();
    format!("replicas: {}", nodes.join(", "))
}

pub(crate) fn get(args: GetArgs) -> Result<(), CliError> {
    let config = args.connection.config()?;
    let response = Connection::runtime()?.block_on(async {
        let client = Client::connect(config).await?;
        client.get(args.key.clone(), args.consistency).await
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", response_json(&response))?;
    } else if response.values.is_empty() {
        eprintln!("(not found)");
    } else {
        for v in &response.values {
            out.write_all(v)?;
            out.write_all(b"\n")?;
        }
        if response.values.len() > 1 {
            eprintln!(
                "({} siblings; write with --context {} to resolve)",
                response.values.len(),
                B64.encode(response.context.as_bytes())
            );
        }
    }
    Ok(())
}

/// Connects, finds the context to write with (the one given, none for a
/// blind write, else the key's current one, read first), writes `value`
/// (or deletes, for `None`) and prints the answer.
#[allow(clippy::too_many_arguments)]
fn write(
    connection: &Connection,
    key: &str,
    value: Option<Bytes>,
    context: Option<Context>,
    blind: bool,
    consistency: Consistency,
    json: bool,
    done: &str,
) -> Result<(), CliError> {
    let config = connection.config()?;
    let response = Connection::runtime()?.block_on(async {
        let client = Client::connect(config).await?;
        let context = match (context, blind) {
            (Some(c), _) => c,
            (None, true) => Context::empty(),
            (None, false) => client.get(key.to_string(), consistency).await?.context,
        };
        match value {
            Some(v) => client.put(key.to_string(), v, &context, consistency).await,
            None => client.delete(key.to_string(), &context, consistency).await,
        }
    })?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", response_json(&response))?;
    } else {
        writeln!(out, "{done} ({})", receipt_line(&response))?;
    }
    Ok(())
}

pub(crate) fn put(args: PutArgs) -> Result<(), CliError> {
    let value = if args.value == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        Bytes::from(buf)
    } else {
        Bytes::from(args.value.clone())
    };
    write(
        &args.connection,
        &args.key,
        Some(value),
        args.context,
        args.blind,
        args.consistency,
        args.json,
        "ok",
    )
}

pub(crate) fn del(args: DelArgs) -> Result<(), CliError> {
    write(
        &args.connection,
        &args.key,
        None,
        args.context,
        false,
        args.consistency,
        args.json,
        "deleted",
    )
}

pub(crate) fn status(args: StatusArgs) -> Result<(), CliError> {
    let status = args.connection.status()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let members: Vec<serde_json::Value> = status
            .members
            .iter()
            .map(|m| {
                json!({"id": m.id, "address": m.address, "zone": m.zone, "state": m.state, "share": m.share,
                       "storage_failing": m.storage_failing})
            })
            .collect();
        writeln!(
            out,
            "{}",
            json!({"node": status.node, "cluster": status.cluster, "partitions": status.partitions,
                   "replicas": status.replicas, "members": members,
                   "gossip_datagrams": status.gossip_datagrams, "gossip_streamed": status.gossip_streamed,
                   "anti_entropy": status.anti_entropy, "storage": status.storage,
                   "memory": status.memory, "requests": status.requests,
                   "moves": status.moves})
        )?;
    } else {
        writeln!(
            out,
            "cluster {:?} as seen by node {}: {} partitions, {} replicas",
            status.cluster, status.node, status.partitions, status.replicas
        )?;
        writeln!(
            out,
            "{:>20}  {:<22} {:<10} {:<8} {:>7}  storage",
            "id", "address", "zone", "state", "share"
        )?;
        for m in &status.members {
            writeln!(
                out,
                "{:>20}  {:<22} {:<10} {:<8} {:>6.2}%  {}",
                m.id,
                m.address,
                m.zone,
                m.state,
                m.share * 100.0,
                if m.storage_failing { "FAILING" } else { "ok" }
            )?;
        }
        let st = &status.storage;
        match &st.failure {
            None => writeln!(
                out,
                "storage of node {} ({}): ok{}",
                status.node,
                st.engine,
                match st.recoveries {
                    0 => String::new(),
                    n => format!(", recovered from {n} failure(s) since it started"),
                }
            )?,
            Some(error) => writeln!(
                out,
                "storage of node {} ({}): FAILING for {} s: {error}\n  it takes no writes; \
                 {} flush(es) failed, {} check(s) for free space{}",
                status.node,
                st.engine,
                st.failing_for_secs,
                st.failed_flushes,
                st.probes,
                st.last_probe_error
                    .as_ref()
                    .map(|e| format!(" (last: {e})"))
                    .unwrap_or_default()
            )?,
        }
        let mem = &status.memory;
        if mem.budget > 0 {
            writeln!(
                out,
                "memory of node {}: budget {}; object cache {} of {}; block cache {}; resident {}",
                status.node,
                Size(mem.budget),
                Size(mem.object_cache_bytes),
                Size(mem.object_cache_capacity),
                Size(mem.block_cache_capacity),
                Size(mem.resident_bytes)
            )?;
        }
        let rq = &status.requests;
        if rq.ceiling > 0 {
            writeln!(
                out,
                "client requests at node {}: {} in flight, admitting {} at once (ceiling {}), \
                 {} refused since it started{}",
                status.node,
                rq.admitted,
                rq.limit,
                rq.ceiling,
                rq.shed,
                match (rq.admitted >= rq.limit, rq.limit < rq.ceiling) {
                    (true, _) => "; OVERLOADED: it refuses new requests now".to_string(),
                    (false, true) => format!(
                        "; admits fewer than its ceiling since answers waited over {} ms \
                         under load (grows back as quick answers come)",
                        rq.target_ms
                    ),
                    (false, false) => String::new(),
                }
            )?;
        }
        writeln!(
            out,
            "gossip sent: {} as datagrams, {} on streams",
            status.gossip_datagrams, status.gossip_streamed
        )?;
        let ae = &status.anti_entropy;
        if ae.enabled {
            writeln!(
                out,
                "anti-entropy: {} trees, {} running; {} exchanges ({} in sync, {} failed); \
                 {} keys repaired here, {} sent ({} bytes)",
                ae.trees,
                ae.running,
                ae.exchanges,
                ae.in_sync,
                ae.failed,
                ae.keys_repaired,
                ae.keys_sent,
                ae.bytes_sent
            )?;
        } else {
            writeln!(out, "anti-entropy: off")?;
        }
        write_moves(&mut out, &status, STATUS_GAINS)?;
    }
    Ok(())
}

/// Partitions `quorra status` lists one by one; `quorra transfers` lists all.
const STATUS_GAINS: usize = 8;

/// The moves part of `quorra status` and all of `quorra transfers`: one
/// line when nothing moves, else the layouts, who the move waits for (and
/// what to do when that is a member this node sees down), and this node's
/// pulls (the first `limit` partitions of them).
fn write_moves(out: &mut impl Write, status: &ClusterStatus, limit: usize) -> Result<(), CliError> {
    let moves = &status.moves;
    if moves.moving_partitions == 0 {
        writeln!(
            out,
            "moves: none under way (layout {}); this node received {} keys ({} bytes), cleaned {}",
            moves.newest, moves.keys_received, moves.bytes_received, moves.keys_cleaned
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "moves: {} partitions moving across {} layouts (newest {}, reads use {}, oldest written {})",
        moves.moving_partitions, moves.layouts, moves.newest, moves.read, moves.floor
    )?;
    for w in &moves.waiting_on {
        let what: Vec<&str> = [
            (w.ack, "writing to it"),
            (w.sync, "holding its data"),
            (w.read, "reading from it"),
        ]
        .iter()
        .filter(|(short, _)| *short)
        .map(|(_, what)| *what)
        .collect();
        writeln!(out, "  waiting for node {}: {}", w.node, what.join(", "))?;
    }
    for (node, partitions) in waiting_on_down(status) {
        writeln!(
            out,
            "  node {node} is down and the move waits for it ({partitions} of this node's \
             pulls need it): bring it back, or if it is gone for good, `quorra remove {node}` \
             (or start a new node with `--replace {node}`) and its data is pulled from the \
             other owners"
        )?;
    }
    writeln!(
        out,
        "  this node: {} partitions to pull ({} keys/s, ETA {}); {} pulls started, {} failed; received {} keys ({} bytes), cleaned {}",
        moves.gains.len(),
        moves.keys_per_sec,
        eta(moves.eta_secs),
        moves.pulls_started,
        moves.pulls_failed,
        moves.keys_received,
        moves.bytes_received,
        moves.keys_cleaned
    )?;
    if let Some(line) = pace_line(moves) {
        writeln!(out, "  {line}")?;
    }
    for g in moves.gains.iter().take(limit) {
        let of = g
            .estimate_keys
            .map_or(String::new(), |e| format!(" of ~{e}"));
        writeln!(
            out,
            "  partition {}: {}{of} keys ({} bytes), {} keys/s ({} B/s), ETA {}; pulled from {:?}, waiting on {:?}{}",
            g.partition,
            g.keys,
            g.bytes,
            g.keys_per_sec,
            g.bytes_per_sec,
            eta(g.eta_secs),
            g.pulled,
            g.waiting_on,
            match &g.last_error {
                Some(e) => format!(", {} retries, last error: {e}", g.retries),
                None => String::new(),
            }
        )?;
    }
    if moves.gains.len() > limit {
        writeln!(
            out,
            "  ... and {} more (quorra transfers lists all)",
            moves.gains.len() - limit
        )?;
    }
    Ok(())
}

/// What paces this node's pulls, or the pulls from it, when either is
/// paced below its budget.
fn pace_line(moves: &quorra_client::protocol::MovesStatus) -> Option<String> {
    let (budget, limit) = (moves.pull_budget, moves.pull_limit);
    // Within 10% of the budget is not worth a line.
    if budget > 0 && limit < budget / 10 * 9 && !moves.gains.is_empty() {
        return Some(format!(
            "pulls paced at {} of their {} budget: clients here or at the sources \
             answer slower than before, and transfers yield to them",
            per_sec(limit),
            per_sec(budget)
        ));
    }
    let allowed = moves.allowed_share_permille.filter(|&p| p < 900)?;
    Some(format!(
        "pulls from this node may use {:.1}% of their budget: its clients answer slower \
         than before, and transfers yield to them",
        f64::from(allowed) / 10.0
    ))
}

/// Bytes per second, for people.
fn per_sec(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MIB {
        format!("{:.1} MiB/s", bytes as f64 / MIB)
    } else {
        format!("{:.0} KiB/s", bytes as f64 / 1024.0)
    }
}

/// The members this node sees down that a move waits for, in id order,
/// each with how many of this node's pulls wait on it.
fn waiting_on_down(status: &ClusterStatus) -> Vec<(u64, usize)> {
    let down: std::collections::BTreeSet<u64> = status
        .members
        .iter()
        .filter(|m| m.state == "down")
        .map(|m| m.id)
        .collect();
    let mut waited: std::collections::BTreeMap<u64, usize> = status
        .moves
        .waiting_on
        .iter()
        .filter(|w| down.contains(&w.node))
        .map(|w| (w.node, 0))
        .collect();
    for gain in &status.moves.gains {
        for node in gain.waiting_on.iter().filter(|n| down.contains(n)) {
            *waited.entry(*node).or_default() += 1;
        }
    }
    waited.into_iter().collect()
}

/// An ETA for people: `12s`, `3m04s`, `2h05m`, or `unknown`.
fn eta(secs: Option<u64>) -> String {
    match secs {
        None => "unknown".into(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[derive(Args, Debug)]
pub(crate) struct TransfersArgs {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `quorra transfers`: the moves one node sees and its pulls, in full.
pub(crate) fn transfers(args: TransfersArgs) -> Result<(), CliError> {
    let status = args.connection.status()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            json!({"node": status.node, "moves": status.moves})
        )?;
    } else {
        writeln!(out, "node {} of cluster {:?}", status.node, status.cluster)?;
        write_moves(&mut out, &status, usize::MAX)?;
    }
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct LeaveArgs {
    /// Return once the node announced `leaving`, without waiting for it
    /// to hand everything over and stop.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    connection: Connection,
}

/// How often `quorra leave` looks at the leaving node's progress.
const LEAVE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Args, Debug)]
pub(crate) struct RemoveArgs {
    /// Id of the node to remove (it must be dead and never come back).
    id: u64,
    #[command(flatten)]
    connection: Connection,
}

/// Sends an operator's command to the first `--peer`.
fn admin(
    connection: &Connection,
    command: quorra_client::protocol::AdminCommand,
) -> Result<(), CliError> {
    let mut config = connection.config()?;
    let Some(&node) = config.seeds.first() else {
        return Err(CliError::Usage("--peer is required".into()));
    };
    config.seeds.truncate(1);
    let text = Connection::runtime()?.block_on(async {
        let client = Client::connect(config).await?;
        client.admin(node, command).await
    })?;
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(())
}

/// `quorra leave`: starts the leave, then (unless `--no-wait`) shows, as
/// it changes, what the move still waits for, until the node stops.
pub(crate) fn leave(args: LeaveArgs) -> Result<(), CliError> {
    admin(
        &args.connection,
        quorra_client::protocol::AdminCommand::Leave,
    )?;
    if args.no_wait {
        return Ok(());
    }
    let mut config = args.connection.config()?;
    config.seeds.truncate(1);
    config.retries = 0;
    let node = config.seeds[0];
    let started = std::time::Instant::now();
    let mut last = String::new();
    Connection::runtime()?.block_on(async {
        loop {
            tokio::time::sleep(LEAVE_POLL).await;
            let status = match Client::connect(config.clone()).await {
                Ok(client) => client.status_of(node).await,
                Err(e) => Err(e),
            };
            let Ok(status) = status else {
                // It stopped: it announced `left` once its new owners held
                // everything, and stopped a few seconds later.
                println!(
                    "node at {node} has left and stopped ({:.0?})",
                    started.elapsed()
                );
                return;
            };
            let own = status.members.iter().find(|m| m.id == status.node);
            let now = match own.map(|m| m.state.as_str()) {
                Some("left") => "left: stopping".to_string(),
                _ => {
                    let m = &status.moves;
                    let waiting: Vec<String> = m
                        .waiting_on
                        .iter()
                        .map(|w| {
                            let what = if w.sync {
                                "to hold its data"
                            } else if w.ack {
                                "to write to it"
                            } else {
                                "to read from it"
                            };
                            format!("node {} {what}", w.node)
                        })
                        .collect();
                    format!(
                        "leaving: {} partitions moving; waiting for {}",
                        m.moving_partitions,
                        if waiting.is_empty() {
                            "nobody".to_string()
                        } else {
                            waiting.join(", ")
                        }
                    )
                }
            };
            if now != last {
                println!("{now} ({:.0?})", started.elapsed());
                last = now;
            }
        }
    });
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct ThrottleArgs {
    /// Bytes per second the node may pull for moves (0: unlimited).
    #[arg(long)]
    bytes_per_sec: Option<u64>,
    /// Partitions the node pulls at a time (at least 1).
    #[arg(long)]
    streams: Option<u32>,
    #[command(flatten)]
    connection: Connection,
}

/// `quorra throttle`: the node checks the limits (and refuses 0 streams).
pub(crate) fn throttle(args: ThrottleArgs) -> Result<(), CliError> {
    admin(
        &args.connection,
        quorra_client::protocol::AdminCommand::Throttle {
            bytes_per_sec: args.bytes_per_sec,
            streams: args.streams,
        },
    )
}

pub(crate) fn remove(args: RemoveArgs) -> Result<(), CliError> {
    admin(
        &args.connection,
        quorra_client::protocol::AdminCommand::Remove { node: args.id },
    )
}

#[cfg(test)]
mod tests {
    use quorra_client::protocol::{GainReport, MemberStatus, MoveWait};

    use super::*;

    fn member(id: u64, state: &str) -> MemberStatus {
        MemberStatus {
            id,
            address: format!("127.0.0.1:{}", 7700 + id),
            zone: "default".into(),
            state: state.into(),
            share: 0.25,
            storage_failing: false,
            phi: 0.0,
            heartbeat_age_secs: None,
        }
    }

    #[test]
    fn a_move_waiting_on_a_down_member_says_what_to_do() {
        let mut status = ClusterStatus {
            node: 4,
            members: vec![member(1, "normal"), member(2, "down"), member(4, "normal")],
            ..ClusterStatus::default()
        };
        status.moves.moving_partitions = 3;
        status.moves.waiting_on = vec![MoveWait {
            node: 4,
            sync: true,
            ..MoveWait::default()
        }];
        status.moves.gains = (0..3)
            .map(|p| GainReport {
                partition: p,
                waiting_on: if p < 2 { vec![1, 2] } else { vec![1] },
                ..GainReport::default()
            })
            .collect();
        assert_eq!(waiting_on_down(&status), vec![(2, 2)]);
        let mut out = Vec::new();
        write_moves(&mut out, &status, 8).expect("written");
        let text = String::from_utf8(out).expect("text");
        assert!(
            text.contains("node 2 is down and the move waits for it (2 of this node's pulls")
                && text.contains("`quorra remove 2`"),
            "{text}"
        );
        assert!(!text.contains("node 1 is down"), "{text}");
        // Nobody down: no advice.
        status.members[1].state = "normal".into();
        assert!(waiting_on_down(&status).is_empty());
    }

    #[test]
    fn pulls_paced_below_their_budget_say_why() {
        let mut status = ClusterStatus::default();
        status.moves.moving_partitions = 2;
        status.moves.pull_budget = 64 << 20;
        status.moves.pull_limit = 64 << 20;
        status.moves.allowed_share_permille = Some(1000);
        let text = |status: &ClusterStatus| {
            let mut out = Vec::new();
            write_moves(&mut out, status, 8).expect("written");
            String::from_utf8(out).expect("text")
        };
        assert!(!text(&status).contains("paced"), "{}", text(&status));
        assert!(!text(&status).contains("may use"), "{}", text(&status));
        // Pulling, paced at 1/16 by a source.
        status.moves.gains = vec![GainReport::default()];
        status.moves.pull_limit = 4 << 20;
        assert!(
            text(&status).contains("pulls paced at 4.0 MiB/s of their 64.0 MiB/s budget"),
            "{}",
            text(&status)
        );
        // A source whose clients are slower: says what it allows.
        status.moves.gains.clear();
        status.moves.allowed_share_permille = Some(31);
        assert!(
            text(&status).contains("pulls from this node may use 3.1% of their budget"),
            "{}",
            text(&status)
        );
    }
}
