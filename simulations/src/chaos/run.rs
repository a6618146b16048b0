//! One chaos run: the network, the nodes, the clients and the nemesis;
//! then healing, settling, reading every replica's disk and judging.
//!
//! The faults and the membership changes are one timeline, carried out in
//! time order: a join starts the new node's process and goes on (the node
//! joins while faults go on); a leave asks the node, through the SDK's
//! operator command, to leave, and from then on the node is not counted
//! as a member: settling waits for the members the run ends with, and
//! the leaver stops by itself once its data has moved.
//!
//! Settling waits, in turn, for every node to see every member normal
//! with no partition moving and no hint held; reads every key at `all`
//! (read repair included, and these reads are checked too); then waits
//! until anti-entropy has stopped changing anything for
//! [`QUIET_POLLS`] polls in a row. Then the nodes stop (`SIGTERM`) and the
//! harness opens each node's storage engine and reads every key's state on
//! each of its primaries, the state the checks judge: the same
//! [`FinalState`] the simulator reads off its simulated disks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quorra_client::Client;
use quorra_client::protocol::{AdminCommand, ClusterStatus, RoutingTable};
use quorra_client::routing::partition_of;
use quorra_node::storage::{EngineKind, Store, open_engine};
use quorra_ring::{NodeId, PartitionId};

use super::cluster::{ANTI_ENTROPY_SECS, Cluster, ClusterError, RESP_PORT, find_netem};
use super::net::{Net, NetError};
use super::schedule::{COUNTER_KEYS, Change, Fault, Plan, Timed, TimedChange};
use super::workload::{CLIENT_TIMEOUT, Recorder, Targets, over_resp, read_all, run_client};
use crate::check::{
    FinalState, Violation, causality, convergence, counters, durability, resurrection,
};
use crate::history::{History, Kind};
use crate::workload::key_name;

/// How long healing may take before the run counts as stuck.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Polls (one per anti-entropy interval) with nothing repaired anywhere
/// before the replicas count as settled.
pub const QUIET_POLLS: usize = 3;

/// Why a run could not be carried out (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The network could not be made.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The nodes could not be run.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The harness's clients could not connect.
    #[error("the harness's client could not connect: {0}")]
    Client(String),
    /// A node's disk could not be read after the run.
    #[error("reading node {node}'s disk after the run: {reason}")]
    Disk {
        /// The node.
        node: u64,
        /// What failed.
        reason: String,
    },
}

/// What a run did and found.
pub struct Report {
    /// The plan run.
    pub plan: Plan,
    /// Every operation.
    pub history: History,
    /// What the nemesis did, with times from the workload's start.
    pub events: Vec<(Duration, String)>,
    /// Broken promises.
    pub violations: Vec<Violation>,
    /// Why the cluster did not settle, if it did not (liveness).
    pub stuck: Vec<String>,
    /// Acknowledged writes the durability check held the cluster to.
    pub owed_writes: usize,
    /// Where the logs and data are.
    pub dir: PathBuf,
}

impl Report {
    /// Whether a safety check failed.
    pub fn safety_failed(&self) -> bool {
        self.violations.iter().any(|v| v.check.is_safety())
    }

    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.stuck.is_empty()
    }

    /// One line of figures.
    pub fn summary(&self) -> String {
        let ops = self.history.records.len();
        let ok = self.history.records.iter().filter(|r| r.ok()).count();
        let faults = self.plan.faults.len();
        let changes = self.plan.changes.len();
        let resp = self
            .history
            .records
            .iter()
            .filter(|r| r.kind == Kind::Incr && over_resp(r.client))
            .count();
        format!(
            "{ops} operations ({ok} ok; {resp} INCR over RESP), {faults} faults, {changes} membership changes, {} acknowledged writes owed, {} violations",
            self.owed_writes,
            self.violations.len()
        )
    }
}

/// Runs `plan` with the `quorra` binary `bin`, keeping logs and data in
/// `dir`.
pub async fn run(plan: &Plan, bin: &Path, dir: &Path) -> Result<Report, ChaosError> {
    if plan
        .faults
        .iter()
        .any(|f| matches!(f.fault, Fault::Jitter { .. }))
    {
        // Missing, it would fail the run only when the fault begins.
        find_netem()?;
    }
    let net = Net::create(plan.nodes + plan.joiners())?;
    let mut cluster = Cluster::start(
        net,
        dir,
        bin,
        plan.nodes,
        plan.joiners(),
        plan.founder_restarts_seedless,
        &plan.clocks,
    )
    .await?;
    let targets = connect(&cluster).await?;
    let recorder = Arc::new(Recorder::default());
    let start = Instant::now();
    let end = start + plan.duration;
    let clients: Vec<_> = (0..plan.clients)
        .map(|c| {
            tokio::spawn(run_client(
                plan.clone(),
                c,
                targets.clone(),
                recorder.clone(),
                start,
                end,
            ))
        })
        .collect();
    let mut events = Vec::new();
    let mut disk_losses = Vec::new();
    let mut stuck = Vec::new();
    for (at, step) in timeline(plan) {
        tokio::time::sleep_until((start + at).into()).await;
        match step {
            Step::Start(timed) => {
                events.push((
                    start.elapsed(),
                    format!("start: {}", timed.fault.describe()),
                ));
                inject(
                    &mut cluster,
                    &timed.fault,
                    plan.seed,
                    start,
                    &mut disk_losses,
                )?;
            }
            Step::Heal(timed) => {
                events.push((start.elapsed(), format!("heal: {}", timed.fault.describe())));
                match heal(&mut cluster, &timed.fault).await {
                    Ok(None) => {}
                    Ok(Some(report)) => events.push((start.elapsed(), format!("  {report}"))),
                    Err(e) => stuck.push(format!("after {}: {e}", timed.fault.describe())),
                }
            }
            Step::Change(change) => {
                let what = change.change.describe();
                match apply_change(&mut cluster, &targets, &change.change).await {
                    Ok(()) => events.push((start.elapsed(), what)),
                    Err(e) => stuck.push(format!("{what}: {e}")),
                }
            }
        }
    }
    for c in clients {
        let _ = c.await;
    }
    events.push((start.elapsed(), "workload ended".into()));
    let mut statuses = BTreeMap::new();
    if stuck.is_empty() {
        match settle(&mut cluster, &targets).await {
            Ok(s) => statuses = s,
            Err(e) => stuck.push(e),
        }
        events.push((
            start.elapsed(),
            "leavers stopped; every node sees every member, no move, no hint".into(),
        ));
    }
    if stuck.is_empty() {
        let unread = read_all(
            plan,
            &targets,
            &recorder,
            start,
            Instant::now() + SETTLE_TIMEOUT,
        )
        .await;
        if !unread.is_empty() {
            stuck.push(format!(
                "keys not readable at all after healing: {unread:?}"
            ));
        }
        events.push((start.elapsed(), "every key read at all".into()));
        match quiet(&cluster, &targets).await {
            Ok(s) => statuses = s,
            Err(e) => stuck.push(e),
        }
    }
    events.push((start.elapsed(), "anti-entropy quiet".into()));
    let table = targets
        .routed
        .refresh_routing()
        .await
        .ok()
        .and(targets.routed.routing());
    for (id, status) in cluster.crashed() {
        stuck.push(format!(
            "node {id} exited by itself ({status}); see its log"
        ));
    }
    for c in std::iter::once(&targets.routed).chain(&targets.pinned) {
        c.close();
    }
    cluster.stop_all();
    let history = History {
        records: recorder.take(),
        disk_losses,
        applications: Default::default(),
    };
    let mut violations = causality::check(&history);
    let mut owed_writes = 0;
    if stuck.is_empty() {
        let table = table.ok_or_else(|| ChaosError::Client("no routing table".into()))?;
        let fin = final_state(&cluster, plan, &table, &statuses)?;
        violations.extend(durability::check(&history, &fin));
        violations.extend(resurrection::check(&history, &fin));
        let counter_keys: Vec<usize> = (plan.keys..plan.keys + COUNTER_KEYS).collect();
        violations.extend(counters::check_bounds(&history, &fin, &counter_keys));
        violations.extend(convergence::check(&fin));
        owed_writes = (0..history.records.len())
            .filter(|&i| history.owed(i))
            .count();
    }
    Ok(Report {
        plan: plan.clone(),
        history,
        events,
        violations,
        stuck,
        owed_writes,
        dir: dir.to_path_buf(),
    })
}

/// One step of a run's timeline.
enum Step<'a> {
    /// A fault begins.
    Start(&'a Timed),
    /// A fault ends.
    Heal(&'a Timed),
    /// A membership change.
    Change(&'a TimedChange),
}

/// The faults' starts and ends and the membership changes, in time order
/// (a heal before a start at the same moment: faults never overlap).
fn timeline(plan: &Plan) -> Vec<(Duration, Step<'_>)> {
    let mut steps: Vec<(Duration, u8, Step<'_>)> = Vec::new();
    for f in &plan.faults {
        steps.push((f.at, 1, Step::Start(f)));
        steps.push((f.at + f.lasts, 0, Step::Heal(f)));
    }
    for c in &plan.changes {
        steps.push((c.at, 2, Step::Change(c)));
    }
    steps.sort_by_key(|(at, order, _)| (*at, *order));
    steps.into_iter().map(|(at, _, step)| (at, step)).collect()
}

/// Starts a joiner's process, or asks a node to leave.
async fn apply_change(
    cluster: &mut Cluster,
    targets: &Targets,
    change: &Change,
) -> Result<(), ChaosError> {
    match change {
        Change::Join { node } => cluster.spawn(*node)?,
        Change::Leave { node } => {
            let addr = cluster.nodes[*node].addr;
            targets
                .routed
                .admin(addr, AdminCommand::Leave)
                .await
                .map_err(|e| {
                    ChaosError::Client(format!("asking node {} to leave: {e}", node + 1))
                })?;
            cluster.nodes[*node].leaving = true;
        }
    }
    Ok(())
}

async fn connect(cluster: &Cluster) -> Result<Targets, ChaosError> {
    let mut config = cluster.client_config();
    config.timeout = CLIENT_TIMEOUT;
    let routed = Client::connect(config.clone())
        .await
        .map_err(|e| ChaosError::Client(e.to_string()))?;
    // One pinned client per node started now (the first ones; joiners
    // are reached through the routing client once they serve).
    let mut pinned = Vec::new();
    for node in cluster.nodes.iter().filter(|n| n.started) {
        let mut one = config.clone();
        one.seeds = vec![node.addr];
        one.zero_hop = false;
        one.retries = 0;
        pinned.push(
            Client::connect(one)
                .await
                .map_err(|e| ChaosError::Client(e.to_string()))?,
        );
    }
    let resp = cluster
        .nodes
        .iter()
        .filter(|n| n.started)
        .map(|n| SocketAddr::new(n.addr.ip(), RESP_PORT))
        .collect();
    let everyone = cluster.nodes.iter().map(|n| n.id).collect();
    Ok(Targets {
        routed,
        pinned,
        resp,
        everyone,
    })
}

/// Starts `fault`.
fn inject(
    cluster: &mut Cluster,
    fault: &Fault,
    seed: u64,
    start: Instant,
    disk_losses: &mut Vec<(u64, Duration)>,
) -> Result<(), ChaosError> {
    match fault {
        Fault::Partition { .. } | Fault::OneWay { .. } | Fault::Loss { .. } => {
            cluster.net.apply(&[fault])?
        }
        Fault::Jitter { node, shape } => {
            cluster.start_netem(*node, *shape, seed)?;
            cluster.net.apply(&[fault])?
        }
        Fault::Kill { node } => cluster.kill9(*node),
        Fault::Pause { node } => cluster.pause(*node),
        Fault::Wipe { node } => {
            disk_losses.push((cluster.nodes[*node].id, start.elapsed()));
            cluster.wipe(*node)?
        }
        Fault::SlowDisk { node, ms } => cluster.slow_disk(*node, *ms)?,
    }
    Ok(())
}

/// Ends `fault`: clears the rules, resumes, or restarts (and waits for
/// the node to serve). Returns what a packet-shaping helper reported.
async fn heal(cluster: &mut Cluster, fault: &Fault) -> Result<Option<String>, ChaosError> {
    match fault {
        Fault::Partition { .. } | Fault::OneWay { .. } | Fault::Loss { .. } => {
            cluster.net.apply(&[])?
        }
        Fault::Jitter { .. } => {
            // The helper first: replacing the namespace's rules drops
            // every packet still queued in the kernel.
            let report = cluster.stop_netem();
            cluster.net.apply(&[])?;
            return Ok(Some(report));
        }
        Fault::Pause { node } => cluster.resume(*node),
        Fault::SlowDisk { node, .. } => cluster.slow_disk(*node, 0)?,
        Fault::Kill { node } | Fault::Wipe { node } => {
            cluster.spawn(*node)?;
            cluster.wait_ready(*node).await?;
        }
    }
    Ok(None)
}

async fn statuses(
    cluster: &Cluster,
    client: &Client,
) -> Result<BTreeMap<u64, ClusterStatus>, String> {
    let mut out = BTreeMap::new();
    for node in cluster.members() {
        let status = client
            .status_of(node.addr)
            .await
            .map_err(|e| format!("node {}: status failed: {e}", node.id))?;
        out.insert(node.id, status);
    }
    Ok(out)
}

/// Why the cluster is not settled yet, if it is not.
fn unsettled(expected: usize, statuses: &BTreeMap<u64, ClusterStatus>) -> Option<String> {
    let behind: Vec<String> = statuses
        .iter()
        .filter_map(|(id, s)| {
            let normal = s.members.iter().filter(|m| m.state == "normal").count();
            (normal != expected || s.moves.moving_partitions > 0 || s.hints.held > 0).then(|| {
                format!(
                    "node {id} sees {normal} of {expected} normal, {} partitions moving, holds {} hints",
                    s.moves.moving_partitions, s.hints.held
                )
            })
        })
        .collect();
    (!behind.is_empty()).then(|| behind.join("; "))
}

/// Waits until every node asked to leave has left and stopped, and every
/// member sees every member normal, nothing moving, no hint held.
async fn settle(
    cluster: &mut Cluster,
    targets: &Targets,
) -> Result<BTreeMap<u64, ClusterStatus>, String> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last = String::from("no status yet");
    while Instant::now() < deadline {
        let leaving = cluster.still_leaving();
        if !leaving.is_empty() {
            last = format!("node(s) {leaving:?} asked to leave still run");
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        match statuses(cluster, &targets.routed).await {
            Ok(s) => match unsettled(cluster.members().count(), &s) {
                None => return Ok(s),
                Some(why) => last = why,
            },
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("not settled within {SETTLE_TIMEOUT:?}: {last}"))
}

/// Waits until anti-entropy repairs nothing for [`QUIET_POLLS`] polls in a
/// row and the cluster stays settled.
async fn quiet(
    cluster: &Cluster,
    targets: &Targets,
) -> Result<BTreeMap<u64, ClusterStatus>, String> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut previous: Option<u64> = None;
    let mut calm = 0;
    let mut last = String::from("no status yet");
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(ANTI_ENTROPY_SECS)).await;
        let s = match statuses(cluster, &targets.routed).await {
            Ok(s) => s,
            Err(e) => {
                last = e;
                calm = 0;
                continue;
            }
        };
        if let Some(why) = unsettled(cluster.members().count(), &s) {
            last = why;
            calm = 0;
            continue;
        }
        let repaired: u64 = s
            .values()
            .map(|s| s.anti_entropy.keys_repaired + s.anti_entropy.keys_sent)
            .sum();
        calm = if previous == Some(repaired) {
            calm + 1
        } else {
            0
        };
        previous = Some(repaired);
        last = format!("anti-entropy still repairing ({repaired} keys so far)");
        if calm >= QUIET_POLLS {
            return Ok(s);
        }
    }
    Err(format!(
        "anti-entropy not quiet within {SETTLE_TIMEOUT:?}: {last}"
    ))
}

/// Every key's state on each of its primaries, read from the stopped
/// nodes' disks.
fn final_state(
    cluster: &Cluster,
    plan: &Plan,
    table: &RoutingTable,
    statuses: &BTreeMap<u64, ClusterStatus>,
) -> Result<FinalState, ChaosError> {
    let mut stores = BTreeMap::new();
    for node in cluster.nodes.iter().filter(|n| n.data.exists()) {
        let engine = open_engine(EngineKind::Fjall, &node.data.join(EngineKind::Fjall.name()))
            .map_err(|e| ChaosError::Disk {
                node: node.id,
                reason: e.to_string(),
            })?;
        stores.insert(node.id, Store::new(engine));
    }
    let mut replicas = BTreeMap::new();
    for k in 0..plan.keys + COUNTER_KEYS {
        let key = key_name(k);
        let partition = partition_of(&key, table.partitions);
        let mut states = Vec::new();
        for owner in table.owners_of(partition) {
            let store = stores.get(&owner.id).ok_or_else(|| ChaosError::Disk {
                node: owner.id,
                reason: "a primary the routing table names is not a node of the run".into(),
            })?;
            let state = store
                .get(PartitionId(partition), &key)
                .map_err(|e| ChaosError::Disk {
                    node: owner.id,
                    reason: e.to_string(),
                })?;
            states.push((NodeId(owner.id), state));
        }
        replicas.insert(k, states);
    }
    let hints_left = statuses
        .iter()
        .map(|(&id, s)| (NodeId(id), s.hints.held))
        .collect();
    Ok(FinalState {
        replicas,
        hints_left,
    })
}
