//! The messages between a client and a node.
//!
//! A client opens one long-lived bidirectional stream per node and sends
//! [`ClientMessage`]s, each with an id of its choosing; the node answers
//! each with a [`NodeMessage`] carrying the same id, in any order. Besides
//! requests, a client can ask for the routing table (to send each request
//! straight to a replica of its key) and for the cluster's status.

use serde::{Deserialize, Serialize};

use crate::api::{Outcome, Request};

/// Client → node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// A get, put or delete.
    Request {
        /// Client-chosen id, echoed in the answer.
        id: u64,
        /// The request.
        request: Request,
    },
    /// Send me the routing table.
    Routing {
        /// Client-chosen id.
        id: u64,
    },
    /// Send me the cluster's status.
    Status {
        /// Client-chosen id.
        id: u64,
    },
    /// An operator's command to the node that receives it.
    Admin {
        /// Client-chosen id.
        id: u64,
        /// The command.
        command: AdminCommand,
    },
}

/// What an operator can ask of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminCommand {
    /// Announce `leaving`, then `left`, then stop.
    Leave,
    /// Announce that `node`, which died for good, is removed.
    Remove {
        /// The node to remove.
        node: u64,
    },
    /// Change the node's limits on pulls for moves (kept until it
    /// restarts; `None` keeps a limit as it is).
    Throttle {
        /// Bytes per second (0: unlimited).
        bytes_per_sec: Option<u64>,
        /// Partitions pulled at a time (at least 1).
        streams: Option<u32>,
    },
}

/// Node → client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum NodeMessage {
    /// The outcome of a request.
    Outcome {
        /// The request's id.
        id: u64,
        /// What happened.
        outcome: Outcome,
    },
    /// The routing table.
    Routing {
        /// The request's id.
        id: u64,
        /// The table.
        table: RoutingTable,
    },
    /// The cluster's status as this node sees it.
    Status {
        /// The request's id.
        id: u64,
        /// The status (boxed: it is far larger than every other message).
        status: Box<ClusterStatus>,
    },
    /// The outcome of an operator's command.
    Admin {
        /// The request's id.
        id: u64,
        /// What happened, or why not.
        result: Result<String, String>,
    },
    /// The node could not understand a message; the stream is closed after.
    Error {
        /// What was wrong.
        message: String,
    },
}

/// A member as a client needs it for routing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingMember {
    /// Node id.
    pub id: u64,
    /// Address clients connect to.
    pub address: String,
}

/// Where each partition lives: enough for a client to send every request
/// straight to a replica of its key (zero-hop routing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingTable {
    /// Q, a power of two.
    pub partitions: u32,
    /// Replicas per partition in `owners`.
    pub replicas: u32,
    /// The members.
    pub members: Vec<RoutingMember>,
    /// For each partition, `replicas` indices into `members`, primaries in
    /// preference order.
    pub owners: Vec<u32>,
}

impl RoutingTable {
    /// The members holding the primaries of `partition`, in preference order.
    pub fn owners_of(&self, partition: u32) -> impl Iterator<Item = &RoutingMember> {
        let n = self.replicas as usize;
        let at = partition as usize * n;
        self.owners
            .get(at..at + n)
            .unwrap_or(&[])
            .iter()
            .filter_map(|&i| self.members.get(i as usize))
    }
}

/// One member in a status report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: u64,
    /// Address.
    pub address: String,
    /// Zone.
    pub zone: String,
    /// `normal`, `joining` (no tokens yet), `down` (as the reporting node believes).
    pub state: String,
    /// Fraction of all partition-replicas it holds.
    pub share: f64,
    /// Its storage failed: it serves reads but takes no writes until it
    /// recovers (as gossip tells).
    #[serde(default)]
    pub storage_failing: bool,
    /// The reporting node's failure-detector suspicion of it (phi; 0 for
    /// the reporting node itself).
    #[serde(default)]
    pub phi: f64,
    /// Age of its freshest heartbeat at the reporting node, seconds
    /// (`None` for the reporting node, or before the first heartbeat).
    #[serde(default)]
    pub heartbeat_age_secs: Option<f64>,
}

/// Hints the reporting node holds for other nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintsStatus {
    /// Hints held.
    pub held: u64,
    /// Their bytes.
    pub bytes: u64,
    /// How long it has held hints for some owner without a break, seconds
    /// (the longest over owners; an upper bound on the oldest hint's age).
    pub oldest_age_secs: u64,
    /// Hints stored since start.
    pub stored: u64,
    /// Hints delivered since start.
    pub delivered: u64,
    /// Hints refused for a full hint store since start (here).
    pub refused: u64,
}

/// The cluster as one node sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node: u64,
    /// Cluster name.
    pub cluster: String,
    /// Q.
    pub partitions: u32,
    /// N.
    pub replicas: u32,
    /// Every member, in id order.
    pub members: Vec<MemberStatus>,
    /// Gossip messages this node sent as QUIC datagrams since it started.
    #[serde(default)]
    pub gossip_datagrams: u64,
    /// Gossip messages it sent on streams (too large for a datagram).
    #[serde(default)]
    pub gossip_streamed: u64,
    /// What Merkle anti-entropy has done on this node since it started.
    #[serde(default)]
    pub anti_entropy: AntiEntropyStatus,
    /// The answering node's storage.
    #[serde(default)]
    pub storage: StorageStatus,
    /// The answering node's memory: its budget and what the caches hold.
    #[serde(default)]
    pub memory: MemoryStatus,
    /// Ownership changes under way and the data they move.
    #[serde(default)]
    pub moves: MovesStatus,
    /// Hints held here.
    #[serde(default)]
    pub hints: HintsStatus,
    /// The longest any partition the reporting node replicates went
    /// without an anti-entropy exchange that ended in sync or repaired,
    /// seconds (since it started).
    #[serde(default)]
    pub anti_entropy_oldest_sync_secs: u64,
    /// Client requests on the answering node: what it admits and sheds.
    #[serde(default)]
    pub requests: RequestsStatus,
}

/// Client requests on one node: how many it holds, how many it admits at
/// once now, and how many it refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestsStatus {
    /// Client requests read and not yet answered.
    pub admitted: u64,
    /// How many it admits at once now: `ceiling`, or fewer while admitted
    /// requests wait longer than `target_ms`.
    pub limit: u64,
    /// `--max-requests-in-flight`.
    pub ceiling: u64,
    /// The wait, milliseconds, beyond which the node admits fewer.
    pub target_ms: u64,
    /// Requests refused (`overloaded`, RESP `-BUSY`) since it started.
    pub shed: u64,
}

/// Ownership changes as one node sees them, and what this node moves.
///
/// A join, leave or removal makes a new *layout* (who owns what). Writes go
/// to every layout from `floor` to `newest`; reads use `read` until the new
/// owners hold their data. `moving_partitions == 0` means no move is under
/// way anywhere this node knows of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovesStatus {
    /// Layouts writes go to now (1 when nothing moves).
    pub layouts: u32,
    /// Stamps ("counter.node") of the newest layout, the one reads use, and
    /// the oldest still written to.
    pub newest: String,
    /// See `newest`.
    pub read: String,
    /// See `newest`.
    pub floor: String,
    /// Partitions whose owners differ between the active layouts.
    pub moving_partitions: u32,
    /// Members short of the newest layout, in id order.
    pub waiting_on: Vec<MoveWait>,
    /// Partitions this node is pulling and has not finished, in order.
    pub gains: Vec<GainReport>,
    /// Pulls of one partition from one source started, completed (the
    /// whole partition from every source), failed (retried later).
    pub pulls_started: u64,
    /// See `pulls_started`.
    pub gains_completed: u64,
    /// See `pulls_started`.
    pub pulls_failed: u64,
    /// States and bytes this node received by pulls since it started.
    pub keys_received: u64,
    /// See `keys_received`.
    pub bytes_received: u64,
    /// Keys dropped from partitions this node no longer owns.
    pub keys_cleaned: u64,
    /// States per second this node's current pulls receive (received by
    /// the partitions in `gains`, over the time since the first of them
    /// started).
    #[serde(default)]
    pub keys_per_sec: u64,
    /// Seconds until every partition in `gains` is received at that rate,
    /// partitions with no estimate yet counted at the mean of the others;
    /// `None` while no estimate or rate is known.
    #[serde(default)]
    pub eta_secs: Option<u64>,
    /// Bytes per second this node's pulls are paced at (0: unlimited).
    #[serde(default)]
    pub pull_budget: u64,
    /// Bytes per second they may use now: the budget scaled down while
    /// this node's clients or its sources' see slower answers (transfers
    /// yield to foreground requests); 0: unlimited.
    #[serde(default)]
    pub pull_limit: u64,
    /// The share of their budget, in thousandths, this node lets pulls
    /// from it (and its own) use now: below 1000 while its clients see
    /// slower answers than before during a move; `None` from a node that
    /// predates it.
    #[serde(default)]
    pub allowed_share_permille: Option<u32>,
}

/// A member the newest layout waits for, and for what.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveWait {
    /// The member.
    pub node: u64,
    /// It does not yet write to the newest layout.
    pub ack: bool,
    /// It does not yet hold the data the newest layout gives it.
    pub sync: bool,
    /// It does not yet read from the newest layout.
    pub read: bool,
}

/// One partition this node is gaining.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GainReport {
    /// The partition.
    pub partition: u32,
    /// Old owners still to pull from.
    pub waiting_on: Vec<u64>,
    /// Old owners pulled from.
    pub pulled: Vec<u64>,
    /// Failed pulls, and the last error.
    pub retries: u32,
    /// See `retries`.
    pub last_error: Option<String>,
    /// States and bytes received for it so far.
    pub keys: u64,
    /// See `keys`.
    pub bytes: u64,
    /// States the partition holds, as its sources told (the most any
    /// told); `None` until one answered.
    #[serde(default)]
    pub estimate_keys: Option<u64>,
    /// States and bytes per second since its first pull started.
    #[serde(default)]
    pub keys_per_sec: u64,
    /// See `keys_per_sec`.
    #[serde(default)]
    pub bytes_per_sec: u64,
    /// Seconds left at that rate, once the estimate and a rate are known.
    #[serde(default)]
    pub eta_secs: Option<u64>,
}

/// One node's storage: healthy, or failing and recovering.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatus {
    /// The engine's name.
    pub engine: String,
    /// The first error of the failure going on now (`None`: healthy).
    pub failure: Option<String>,
    /// Seconds since the failure began.
    pub failing_for_secs: u64,
    /// Flushes that failed since it began.
    pub failed_flushes: u64,
    /// Checks for free space made since it began.
    pub probes: u64,
    /// Why the last check failed.
    pub last_probe_error: Option<String>,
    /// Failures this process recovered from (each a reopen of the engine
    /// and a new incarnation of the node).
    pub recoveries: u64,
}

/// One node's memory: the budget its caches are sized from, what they
/// hold, and what the process really uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStatus {
    /// The node's memory budget (`--memory`), bytes.
    pub budget: u64,
    /// The object cache's bound and what it holds, bytes.
    pub object_cache_capacity: u64,
    /// See `object_cache_capacity`.
    pub object_cache_bytes: u64,
    /// The storage engine's block cache, bytes (its bound).
    pub block_cache_capacity: u64,
    /// The process's resident memory, bytes (0 where it cannot be read).
    pub resident_bytes: u64,
}

/// Anti-entropy on one node since it started: repair progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AntiEntropyStatus {
    /// Whether it runs.
    pub enabled: bool,
    /// Merkle trees built and kept up to date (one per partition replica).
    pub trees: u64,
    /// Exchanges running now.
    pub running: u64,
    /// Exchanges started here.
    pub exchanges: u64,
    /// Exchanges that found both replicas in sync.
    pub in_sync: u64,
    /// Exchanges that failed (peer refused or timed out, storage error).
    pub failed: u64,
    /// Keys whose state anti-entropy changed on this node.
    pub keys_repaired: u64,
    /// States this node sent to other replicas.
    pub keys_sent: u64,
    /// Bytes of keys, hashes and states it sent.
    pub bytes_sent: u64,
}
