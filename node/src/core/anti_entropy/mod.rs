//! Merkle anti-entropy: replicas of a partition compare trees in the
//! background and ship each other only the keys on which they differ.
//!
//! Read repair fixes keys that are read, hinted handoff covers failures
//! that were noticed; anti-entropy repairs everything else: a replica that
//! lost its disk, missed writes while partitioned or paused, holds keys no
//! one reads, or never got a hint (a full hint store, a fallback that
//! crashed before flushing). It is what makes an undelivered hint harmless:
//! the owner is repaired from the other primaries anyway. Tombstones are
//! ordinary states here, so deletes converge too; a purge deletes a key on
//! every primary only once all hold the same tombstone ([`super::purge`]),
//! so an exchange can at worst hand a tombstone back to a primary that
//! purged it a moment before, which then purges it again.
//!
//! ## Schedule
//!
//! Each node walks the partitions it is a primary of, in order, starting
//! one exchange every `anti_entropy_interval / partitions` (so each
//! partition once per interval), with a random other primary it believes
//! up, at most `anti_entropy_exchanges` at a time.
//!
//! ## An exchange (`exchange.rs`)
//!
//! 1. The initiator sends its root; the replica answers `InSync`, or with
//!    its [`BRANCHES`](quorra_merkle::BRANCHES) branch hashes.
//! 2. The initiator asks for the segment hashes under the branches that
//!    differ, and keeps the segments that differ.
//! 3. For a batch of differing segments at a time, the initiator sends its
//!    keys there with their leaf hashes; the replica answers with the
//!    states it holds that differ (the initiator lacks them, or holds
//!    another version) and the keys it wants.
//! 4. The initiator merges what it got, and pushes back the keys wanted and
//!    every state whose merge with its own differed from what it got.
//!
//! Every state is merged (as by read repair), never overwritten; a
//! push is not acknowledged (a lost one is found by the next exchange).
//!
//! ## Bounds
//!
//! Every message is at most [`AE_MAX_BYTES`] of keys and states (or one
//! state larger than that, which travels alone), and at most
//! [`AE_MAX_KEYS`] keys. The initiator paces its exchange with a byte
//! budget of `anti_entropy_bytes_per_sec` (`budget.rs`), charged with what
//! travels both ways; a replica charges what it sends, so a node serving
//! many exchanges starts fewer of its own. A step waits while the budget
//! is in debt, so foreground traffic keeps the rest of the link.
//!
//! Trees are built lazily, from storage, the first time an exchange needs
//! them, and then kept in step with every write (`trees.rs`).

pub(crate) mod budget;
pub(crate) mod exchange;
pub(crate) mod trees;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use quorra_merkle::Tree;
use quorra_ring::PartitionId;

use self::budget::Budget;
use self::exchange::Exchange;
use self::trees::Trees;
pub(super) use self::trees::object_hash;
use super::messages::AeStep;
use super::node::Node;
use crate::storage::StorageError;
use crate::version::Object;

/// Most bytes of keys and states one anti-entropy message carries (8 MiB),
/// well under the transport's frame limit.
pub const AE_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Most keys one anti-entropy message lists.
pub const AE_MAX_KEYS: usize = 65_536;

/// Anti-entropy's state on one node.
#[derive(Debug)]
pub(crate) struct AntiEntropy {
    pub(crate) trees: Trees,
    /// The partitions this node is a primary of, in order.
    partitions: Vec<PartitionId>,
    /// Index of the partition the next exchange is for.
    cursor: usize,
    /// When the next exchange may start.
    next_start: Duration,
    /// Exchanges running (waiting for an answer, or parked).
    pub(crate) running: usize,
    /// Exchanges waiting for the budget, with the step to send next.
    pub(crate) parked: VecDeque<(Exchange, AeStep)>,
    pub(crate) budget: Budget,
    /// When an exchange last ended well (in sync, or repaired) per
    /// partition, or when the partition became this node's if no exchange
    /// has since; absent: not since `started`.
    synced: BTreeMap<PartitionId, Duration>,
    /// The partitions changed: those new to `synced` are stamped at the
    /// next tick (the placement arrives without the time).
    unstamped: bool,
    /// When this core started (the age of a partition never synced).
    started: Duration,
}

impl AntiEntropy {
    pub(crate) fn new(rate: u64, first: Duration, now: Duration) -> Self {
        Self {
            trees: Trees::default(),
            partitions: Vec::new(),
            cursor: 0,
            next_start: first,
            running: 0,
            parked: VecDeque::new(),
            budget: Budget::new(rate, now),
            synced: BTreeMap::new(),
            unstamped: false,
            started: now,
        }
    }

    /// Records that an exchange of `partition` ended well at `now`.
    pub(crate) fn note_synced(&mut self, partition: PartitionId, now: Duration) {
        self.synced.insert(partition, now);
    }
}

impl Node {
    /// The longest time, at `now`, that a partition this node replicates
    /// has gone without an anti-entropy exchange that ended well (in sync
    /// or repaired), counting from when it became this node's (or this
    /// core's start); `None` when it replicates nothing or anti-entropy is
    /// off. An operator's "is repair stalled?".
    pub fn anti_entropy_oldest_sync(&self, now: Duration) -> Option<Duration> {
        if !self.options.anti_entropy {
            return None;
        }
        self.ae
            .partitions
            .iter()
            .map(|p| self.ae.synced.get(p).copied().unwrap_or(self.ae.started))
            .min()
            .map(|oldest| now.saturating_sub(oldest))
    }

    /// Keeps the trees in step with a change of an owned key.
    pub(super) fn trees_note(
        &mut self,
        partition: PartitionId,
        key: &[u8],
        old: Option<&Object>,
        new: Option<&Object>,
    ) {
        let noted = self.ae.trees.note(partition, key, old, new);
        self.tree_noted(noted);
    }

    /// [`Node::trees_note`] for a caller that has done part of the work:
    /// `old` is the key's leaf hash taken before the change
    /// ([`object_hash`]), `new` the new state as
    /// [`encode_object`](crate::storage::store::encode_object) encoded it.
    pub(super) fn trees_update(
        &mut self,
        partition: PartitionId,
        key: &[u8],
        old: Result<Option<u64>, StorageError>,
        new: &[u8],
    ) {
        let new = Ok(Some(quorra_merkle::leaf_hash(key, new)));
        let noted = self.ae.trees.update(partition, key, old, new);
        self.tree_noted(noted);
    }

    fn tree_noted(&mut self, noted: Result<(), StorageError>) {
        if let Err(e) = noted {
            self.stats.storage_errors += 1;
            tracing::debug!(error = %e, "anti-entropy tree dropped; rebuilt when next needed");
        }
    }

    /// Whether `partition`'s Merkle tree is kept (built, and so updated on
    /// every change of its keys).
    pub(super) fn tree_kept(&self, partition: PartitionId) -> bool {
        self.ae.trees.is_built(partition)
    }

    /// Builds now the tree of every partition this node replicates that has
    /// none yet (they are otherwise built on first use). Returns the keys
    /// scanned. For benchmarks, and for warming a node before traffic.
    pub fn build_anti_entropy_trees(&mut self) -> Result<u64, StorageError> {
        let before = self.stats.ae_tree_keys_scanned;
        for partition in self.ae.partitions.clone() {
            self.ae_tree(partition)?;
        }
        Ok(self.stats.ae_tree_keys_scanned - before)
    }

    /// The tree of `partition`, built from storage (and counted) if it is
    /// not yet.
    pub(super) fn ae_tree(&mut self, partition: PartitionId) -> Result<&mut Tree, StorageError> {
        let (tree, scanned) = self.ae.trees.get_or_build(&self.store, partition)?;
        if scanned > 0 {
            self.stats.ae_trees_built += 1;
            self.stats.ae_tree_keys_scanned += scanned;
        }
        Ok(tree)
    }

    /// The placement changed: walk the partitions this node replicates and
    /// that are not moving (a moving partition is pulled instead, see
    /// [`super::transfer`]), and forget the trees of the partitions it owns
    /// in no active ring.
    pub(super) fn ae_placement_changed(&mut self) {
        let read = self.placement.read_ring();
        let owned: BTreeSet<PartitionId> = read
            .partitioner()
            .iter()
            .filter(|&p| self.placement.is_owner(p, self.id))
            .collect();
        self.ae.trees.retain(&owned);
        self.ae.partitions = read
            .partitions_of(self.id)
            .into_iter()
            .filter(|&p| !self.placement.moving(p))
            .collect();
        self.ae.unstamped = true;
        if self.ae.cursor >= self.ae.partitions.len() {
            self.ae.cursor = 0;
        }
    }

    /// When anti-entropy (or a parked pull) next needs `handle_timeout`.
    pub(super) fn ae_next_wake(&self, now: Duration) -> Option<Duration> {
        let mut next = None;
        for (exchange, _) in &self.ae.parked {
            let budget = if exchange.stream {
                &self.transfers.budget
            } else {
                &self.ae.budget
            };
            let at = budget.ready_at(now);
            next = Some(next.map_or(at, |n: Duration| n.min(at)));
        }
        if self.options.anti_entropy {
            next = Some(next.map_or(self.ae.next_start, |n| n.min(self.ae.next_start)));
        }
        next
    }

    /// Resumes parked exchanges the budget allows, and starts the next one
    /// when it is time.
    pub(super) fn ae_tick(&mut self, now: Duration) {
        let parked = std::mem::take(&mut self.ae.parked);
        for (exchange, step) in parked {
            let budget = if exchange.stream {
                &mut self.transfers.budget
            } else {
                &mut self.ae.budget
            };
            if budget.available(now) {
                self.ae_send(now, exchange, step);
            } else {
                self.ae.parked.push_back((exchange, step));
            }
        }
        if !self.options.anti_entropy || now < self.ae.next_start {
            return;
        }
        if std::mem::take(&mut self.ae.unstamped) {
            let AntiEntropy {
                partitions, synced, ..
            } = &mut self.ae;
            synced.retain(|p, _| partitions.binary_search(p).is_ok());
            for &p in partitions.iter() {
                synced.entry(p).or_insert(now);
            }
        }
        let count = self.ae.partitions.len().max(1) as u32;
        let every = self.options.anti_entropy_interval / count;
        self.ae.next_start = now + self.jittered(every);
        if self.ae.running >= self.options.anti_entropy_exchanges
            || !self.ae.budget.available(now)
            || self.ae.partitions.is_empty()
        {
            return;
        }
        let partition = self.ae.partitions[self.ae.cursor];
        self.ae.cursor = (self.ae.cursor + 1) % self.ae.partitions.len();
        self.ae_start(now, partition);
    }
}
