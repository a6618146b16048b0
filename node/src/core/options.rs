//! Tunables of the node core, with their documented defaults.

use std::sync::Arc;
use std::time::Duration;

use quorra_client::RequestError;

use super::update::Updater;

use crate::storage::SyncMode;

/// Options of one node. Every timeout and bound the core uses is here.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a coordinator waits for its quorum, and tracks stragglers
    /// after replying (default 2 s). A request that has not reached its
    /// quorum by then fails with `QuorumNotReached`.
    pub request_timeout: Duration,
    /// Consecutive timeouts after which a peer is believed down (default 2).
    /// Any message from it marks it up again.
    pub down_after_failures: u32,
    /// How often peers believed down are probed (default 1 s).
    pub probe_interval: Duration,
    /// Sloppy quorum with hinted handoff (default on). Off: requests go to
    /// reachable primaries only and no hints are kept.
    pub hinted_handoff: bool,
    /// How often held hints are offered to their owners (default 1 s).
    pub handoff_interval: Duration,
    /// Hints per handoff message (default 64).
    pub handoff_batch: usize,
    /// Most hints a node holds (default 100,000). Beyond it, writes for
    /// unreachable owners are refused by the fallback and counted.
    pub max_hints: u64,
    /// Most bytes of hints a node holds (default 256 MiB).
    pub max_hint_bytes: u64,
    /// Read repair (default on): after a read, replicas that answered with a
    /// stale or missing version are sent the merged one.
    pub read_repair: bool,
    /// Which replicas a read asks at first (default [`ReadFanout::Quorum`]).
    pub read_fanout: ReadFanout,
    /// How long a read that asked only its quorum waits for it before it
    /// asks the other replicas too (default 10 ms; a replica's failure
    /// brings in the next one at once).
    pub speculative_read_after: Duration,
    /// How long a key must have been a tombstone on a replica before it may
    /// be purged (default 60 s). Must exceed the longest time a message can
    /// spend in flight, so no stale copy can arrive after the purge.
    pub tombstone_grace: Duration,
    /// How often tombstones past their grace are checked for purging (default 1 s).
    pub purge_interval: Duration,
    /// Tombstones per purge check (default 128).
    pub purge_batch: usize,
    /// Merkle anti-entropy (default on): replicas of each partition compare
    /// trees in the background and exchange the keys that differ.
    pub anti_entropy: bool,
    /// Each partition this node is a primary of is compared with another
    /// replica once per interval (default 30 s); exchanges start evenly
    /// spread over it.
    pub anti_entropy_interval: Duration,
    /// Most exchanges this node runs at a time (default 2).
    pub anti_entropy_exchanges: usize,
    /// Bytes of keys, hashes and states anti-entropy sends and receives per
    /// second, at most, as initiator (default 512 KiB/s; 0: unlimited).
    /// Measured on 3 loopback nodes sharing 2 cores: at this rate a wiped
    /// node of 100,000 keys is refilled in under a minute while foreground
    /// throughput stays above 90% (the issue-6 note has the figures).
    pub anti_entropy_bytes_per_sec: u64,
    /// Bytes a node pulls per second, at most, for the partitions it gains
    /// when ownership moves (default 64 MiB/s; 0: unlimited), separate
    /// from anti-entropy's budget. At the default a node gaining 1 TB has
    /// it in under five hours; anti-entropy's 512 KiB/s would take three
    /// weeks. A ceiling: pulls use less of it while clients see slower
    /// answers ([`super::pacing`]).
    pub transfer_bytes_per_sec: u64,
    /// Partitions a node pulls at a time, at most (default 4).
    pub transfer_streams: usize,
    /// How long a pull that failed waits before it tries the same source
    /// again (default 5 s).
    pub transfer_retry: Duration,
    /// Operations a node may hold before it refuses client requests
    /// (default [`DEFAULT_MAX_REQUESTS_IN_FLIGHT`]): counted are the
    /// requests it coordinates, reads staying on for read repair and its
    /// own background work; a client request beyond it is refused at once
    /// with `Overloaded`, not queued. Forwards from peers are never
    /// refused: their coordinator counted them. The daemon admits fewer
    /// while the admitted requests wait long (`runtime::delay_limit`): this
    /// is the ceiling.
    pub max_requests_in_flight: usize,
    /// Group-commit mode: when writes are acknowledged relative to flushes.
    pub sync: SyncMode,
    /// Seed of the node's RNG (timer jitter, gossip peers, the first
    /// incarnation of an empty store). The simulator sets it from its seed;
    /// the daemon mixes in the operating system's entropy.
    pub rng_seed: u64,
    /// What [`quorra_client::Request::Update`]s mean (default none: updates
    /// are refused). The daemon sets the RESP gateway's.
    pub updater: Option<Arc<dyn Updater>>,
}

/// The default bound on the requests a node coordinates at a time (and
/// on the client requests the runtime admits, `runtime::admission`). An
/// operation holds its key, value and replies, so this bounds the memory
/// requests hold: at most this many times the request limits
/// ([`quorra_client::MAX_KEY_LEN`], [`quorra_client::MAX_VALUE_LEN`]),
/// 4 MiB of values at 1 KiB each. Measured on this 2-core machine (the
/// issue-18 note): 10,000 SDK writes of 1 KiB in flight against three
/// nodes are about 2x what they complete; at this limit each node sheds
/// about half of them at once and peaks at 225 MiB RSS, against 298 MiB
/// and 73,182 timeouts of 200,000 without a limit. Lower it for large
/// values or a small memory budget.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT: usize = 4096;

/// The answer to a client request refused because `limit` are in flight:
/// the one wording of the core's refusal and the runtime's.
pub fn overloaded(limit: usize) -> RequestError {
    RequestError::Overloaded(format!(
        "{limit} requests in flight on this node, as many as it admits now; nothing of \
         this request was applied: retry with backoff or through another node"
    ))
}

/// Which replicas a read asks.
///
/// Dynamo and Riak ask all N replicas and reply after the first R; Cassandra
/// asks R and keeps the rest for a speculative retry. Asking R does a third
/// less messaging for a quorum read of N = 3, and half of it when the
/// coordinator is a replica (its own answer is free). What it gives up:
/// read repair reaches only the replicas asked, so a stale replica that a
/// read did not ask waits for anti-entropy or a later read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFanout {
    /// Ask as many replicas as the quorum needs (this node first when it is
    /// one, the others taking turns); ask the rest when one fails or after
    /// [`Options::speculative_read_after`].
    Quorum,
    /// Ask every replica at once.
    All,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(2),
            down_after_failures: 2,
            probe_interval: Duration::from_secs(1),
            hinted_handoff: true,
            handoff_interval: Duration::from_secs(1),
            handoff_batch: 64,
            max_hints: 100_000,
            max_hint_bytes: 256 * 1024 * 1024,
            read_repair: true,
            read_fanout: ReadFanout::Quorum,
            speculative_read_after: Duration::from_millis(10),
            tombstone_grace: Duration::from_secs(60),
            purge_interval: Duration::from_secs(1),
            purge_batch: 128,
            anti_entropy: true,
            anti_entropy_interval: Duration::from_secs(30),
            anti_entropy_exchanges: 2,
            anti_entropy_bytes_per_sec: 512 * 1024,
            transfer_bytes_per_sec: 64 * 1024 * 1024,
            transfer_streams: 4,
            transfer_retry: Duration::from_secs(5),
            max_requests_in_flight: DEFAULT_MAX_REQUESTS_IN_FLIGHT,
            sync: SyncMode::Always,
            rng_seed: 0,
            updater: None,
        }
    }
}
