//! Counters of what a node has done, for tests, the simulator and metrics.

/// Monotonic counters since the node started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Client requests received (including forwarded ones coordinated here).
    pub client_requests: u64,
    /// Client requests refused at once because the node held
    /// [`super::Options::max_requests_in_flight`] already.
    pub shed_requests: u64,
    /// Reads coordinated.
    pub reads: u64,
    /// Writes (puts and deletes) coordinated.
    pub writes: u64,
    /// Reads this node served as a replica (for a coordinator, itself
    /// included when it is one); refusals are not counted.
    pub replica_reads: u64,
    /// Writes (and hints) this node stored as a replica, the
    /// coordinator's own copy included; refusals are not counted.
    pub replica_writes: u64,
    /// Writes forwarded to a primary.
    pub forwarded: u64,
    /// Requests that failed their quorum.
    pub quorum_failures: u64,
    /// Read repairs sent (or applied locally).
    pub read_repairs: u64,
    /// Reserve replicas a read asked because one it asked failed or its
    /// quorum was slow to answer ([`super::ReadFanout::Quorum`]).
    pub reserve_reads: u64,
    /// Hints stored here for other nodes.
    pub hints_stored: u64,
    /// Hints delivered to their owner and deleted here.
    pub hints_delivered: u64,
    /// Writes for an unreachable owner this node refused because its hint
    /// store was full. The write still succeeds on the nodes it reached.
    pub hints_overflowed: u64,
    /// As coordinator: fallbacks that refused a hint because they were full.
    pub hints_refused_by_fallback: u64,
    /// Orphan hints (their owner no longer replicates the partition) handed
    /// to a current primary instead.
    pub hints_rerouted: u64,
    /// Tombstones purged here.
    pub tombstones_purged: u64,
    /// Peers this node came to believe down.
    pub peers_marked_down: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages ignored because their sender is not a member.
    pub rejected_messages: u64,
    /// Storage errors met while serving peers.
    pub storage_errors: u64,
    /// Flushes the driver reported as failed.
    pub flush_failures: u64,
    /// Read repairs not sent because the read was older than the request
    /// timeout (the coordinator was paused).
    pub stale_repairs_skipped: u64,
    /// Forwarded writes dropped because they were addressed to an earlier
    /// incarnation of this node (perhaps a copy of one it executed).
    pub stale_forwards: u64,
    /// Anti-entropy exchanges this node started.
    pub ae_exchanges: u64,
    /// Exchanges that found the two replicas in sync.
    pub ae_in_sync: u64,
    /// Exchanges that compared keys (the replicas differed).
    pub ae_repaired_exchanges: u64,
    /// Exchanges that failed (refused, timed out, storage error).
    pub ae_failed: u64,
    /// Keys whose state anti-entropy changed here (repair progress).
    pub ae_keys_repaired: u64,
    /// States this node sent to other replicas by anti-entropy.
    pub ae_keys_sent: u64,
    /// Bytes of keys, hashes and states sent by anti-entropy (framing not counted).
    pub ae_bytes_sent: u64,
    /// Merkle trees built from storage.
    pub ae_trees_built: u64,
    /// Keys scanned to build them.
    pub ae_tree_keys_scanned: u64,
    /// Segments too large to list in one message, skipped.
    pub ae_segments_skipped: u64,
    /// Pulls of a gained partition from one source started.
    pub transfers_started: u64,
    /// Gained partitions received from every source.
    pub transfers_completed: u64,
    /// Pulls that failed (refused, timed out), to be retried.
    pub transfers_failed: u64,
    /// States received by pulls.
    pub transfer_keys: u64,
    /// Bytes of states received by pulls.
    pub transfer_bytes: u64,
    /// Keys dropped from partitions this node no longer owns in any active ring.
    pub cleanup_keys: u64,
}

impl Stats {
    /// Adds `other`'s counts to these (e.g. over nodes, or over restarts).
    pub fn absorb(&mut self, other: &Stats) {
        let Stats {
            client_requests,
            shed_requests,
            reads,
            writes,
            replica_reads,
            replica_writes,
            forwarded,
            quorum_failures,
            read_repairs,
            reserve_reads,
            hints_stored,
            hints_delivered,
            hints_overflowed,
            hints_refused_by_fallback,
            hints_rerouted,
            tombstones_purged,
            peers_marked_down,
            messages_sent,
            rejected_messages,
            storage_errors,
            flush_failures,
            stale_repairs_skipped,
            stale_forwards,
            ae_exchanges,
            ae_in_sync,
            ae_repaired_exchanges,
            ae_failed,
            ae_keys_repaired,
            ae_keys_sent,
            ae_bytes_sent,
            ae_trees_built,
            ae_tree_keys_scanned,
            ae_segments_skipped,
            transfers_started,
            transfers_completed,
            transfers_failed,
            transfer_keys,
            transfer_bytes,
            cleanup_keys,
        } = other;
        self.client_requests += client_requests;
        self.shed_requests += shed_requests;
        self.reads += reads;
        self.writes += writes;
        self.replica_reads += replica_reads;
        self.replica_writes += replica_writes;
        self.forwarded += forwarded;
        self.quorum_failures += quorum_failures;
        self.read_repairs += read_repairs;
        self.reserve_reads += reserve_reads;
        self.hints_stored += hints_stored;
        self.hints_delivered += hints_delivered;
        self.hints_overflowed += hints_overflowed;
        self.hints_refused_by_fallback += hints_refused_by_fallback;
        self.hints_rerouted += hints_rerouted;
        self.tombstones_purged += tombstones_purged;
        self.peers_marked_down += peers_marked_down;
        self.messages_sent += messages_sent;
        self.rejected_messages += rejected_messages;
        self.storage_errors += storage_errors;
        self.flush_failures += flush_failures;
        self.stale_repairs_skipped += stale_repairs_skipped;
        self.stale_forwards += stale_forwards;
        self.ae_exchanges += ae_exchanges;
        self.ae_in_sync += ae_in_sync;
        self.ae_repaired_exchanges += ae_repaired_exchanges;
        self.ae_failed += ae_failed;
        self.ae_keys_repaired += ae_keys_repaired;
        self.ae_keys_sent += ae_keys_sent;
        self.ae_bytes_sent += ae_bytes_sent;
        self.ae_trees_built += ae_trees_built;
        self.ae_tree_keys_scanned += ae_tree_keys_scanned;
        self.ae_segments_skipped += ae_segments_skipped;
        self.transfers_started += transfers_started;
        self.transfers_completed += transfers_completed;
        self.transfers_failed += transfers_failed;
        self.transfer_keys += transfer_keys;
        self.transfer_bytes += transfer_bytes;
        self.cleanup_keys += cleanup_keys;
    }
}
