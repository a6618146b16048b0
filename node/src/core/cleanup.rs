//! Dropping what a node no longer owns.
//!
//! Once a node owns a partition in no active ring (see
//! `membership::layouts`: no member reads a layout below the floor, so
//! nobody can ask this node for it), its copy of the partition is of no
//! use, and a danger while it lasts: were a delete purged meanwhile, a
//! node that regained the partition would merge the stale copy into what
//! it pulls and bring the value back. So the node deletes the partition's
//! keys and tombstone marks, automatically (no operator step to forget), a
//! bounded batch at a time so foreground work goes on; and until it has,
//! its purge votes count the leftover as a copy outside the primaries
//! (`super::purge`), so no delete of a key it still holds is purged (and
//! a purge waits while members' ring views differ). That is what makes
//! keeping the leftover safe when the partition is owned again before
//! cleanup reaches it: nothing it holds was purged elsewhere.
//!
//! A partition is queued when the placement changes and it is owned no
//! more, when a state for it is merged here although this node does not
//! own it (a merge whose ownership check came earlier: a tombstone
//! reconciled by a purge round, a read repair of its own copy), and when
//! a purge vote finds a leftover; the queue is worked through every
//! [`CLEANUP_EVERY`]. The
//! node will not continue, for keys of a dropped partition, the epochs it
//! had opened before (their highest dots went with the data, see
//! [`super::purged`]).

use std::collections::BTreeSet;
use std::time::Duration;

use quorra_ring::PartitionId;
use tracing::debug;

use super::node::Node;
use crate::storage::store::Change;
use crate::version::Actor;

/// Keys deleted per step, at most.
pub const CLEANUP_BATCH: usize = 1024;

/// Time between two steps while partitions wait to be dropped.
pub const CLEANUP_EVERY: Duration = Duration::from_millis(10);

/// Partitions waiting to be dropped.
#[derive(Debug, Default)]
pub(crate) struct Cleanup {
    pub(crate) queue: BTreeSet<PartitionId>,
    pub(crate) next: Duration,
}

impl Node {
    /// Queues every partition this node owns in no active ring.
    pub(super) fn cleanup_placement_changed(&mut self) {
        let me = self.id;
        let unowned: Vec<PartitionId> = self
            .placement
            .read_ring()
            .partitioner()
            .iter()
            .filter(|&p| !self.placement.is_owner(p, me))
            .collect();
        self.cleanup.queue.extend(unowned);
    }

    /// A state for `partition` was stored although this node does not own
    /// it: it goes the same way.
    pub(super) fn cleanup_note(&mut self, partition: PartitionId) {
        if !self.placement.is_owner(partition, self.id) {
            self.cleanup.queue.insert(partition);
        }
    }

    /// When cleanup next needs `handle_timeout`.
    pub(super) fn cleanup_next_wake(&self) -> Option<Duration> {
        (!self.cleanup.queue.is_empty()).then_some(self.cleanup.next)
    }

    /// Deletes up to [`CLEANUP_BATCH`] keys of the queued partitions.
    pub(super) fn cleanup_tick(&mut self, now: Duration) {
        if self.cleanup.queue.is_empty() || now < self.cleanup.next {
            return;
        }
        self.cleanup.next = now + CLEANUP_EVERY;
        let mut budget = CLEANUP_BATCH;
        while budget > 0 {
            let Some(&partition) = self.cleanup.queue.first() else {
                return;
            };
            if self.placement.is_owner(partition, self.id) {
                // Owned again meanwhile: keep it (no purge passed it by).
                self.cleanup.queue.remove(&partition);
                continue;
            }
            let keys = match self.store.scan_partition(partition, None, budget) {
                Ok(keys) => keys,
                Err(e) => {
                    self.stats.storage_errors += 1;
                    debug!(error = %e, %partition, "cleanup cannot read the partition");
                    return;
                }
            };
            if keys.is_empty() {
                self.cleanup.queue.remove(&partition);
                continue;
            }
            let done = keys.len() < budget;
            let mut changes = Vec::with_capacity(keys.len() * 2);
            for (key, _) in &keys {
                changes.push(Change::Delete {
                    partition,
                    key: key.as_slice(),
                });
                changes.push(Change::DeleteTombMark {
                    partition,
                    key: key.as_slice(),
                });
            }
            if let Err(e) = self.store.apply(&changes) {
                self.stats.storage_errors += 1;
                debug!(error = %e, %partition, "cleanup could not delete");
                return;
            }
            for (key, _) in &keys {
                self.tombstones.forget(partition, key);
            }
            let next = Actor::epoch_of(self.incarnation, self.next_epoch);
            self.purged.note_partition(partition, next);
            self.stats.cleanup_keys += keys.len() as u64;
            budget -= keys.len();
            if done {
                self.cleanup.queue.remove(&partition);
                debug!(%partition, "partition owned no more: dropped");
            }
        }
    }
}
