//! The replica side: serving reads, merging writes and repairs.
//!
//! A replica never overwrites: every incoming state is merged with what it
//! holds ([`crate::version::DvvSet::merge`]), so duplicated, reordered or
//! stale messages cannot lose anything. A write is acknowledged only once
//! the flush that covers it is done (group commit, see
//! [`crate::storage::commit`]). A primary keeps the key as owned data; a
//! fallback keeps it as a hint for the primary it stands in for.

use std::time::Duration;

use bytes::Bytes;
use quorra_ring::{NodeId, PartitionId};
use tracing::debug;

use super::anti_entropy::object_hash;
use super::messages::{PeerMessage, ReplicaError, RequestId};
use super::node::{Node, Pending};
use crate::storage::store::{Change, encode_object};
use crate::storage::{Lsn, StorageError};
use crate::version::Object;

/// The outcome of merging a state into an owned key.
pub(super) struct Merged {
    /// The LSN to wait for before acknowledging.
    pub(super) lsn: Lsn,
    /// The key's state after the merge.
    pub(super) state: Object,
    /// Whether the merge changed what was stored.
    pub(super) changed: bool,
}

pub(super) fn storage_error(e: StorageError) -> ReplicaError {
    ReplicaError::Storage(e.to_string())
}

impl Node {
    /// This node's state of a key: owned, or the hint held for `hint_for`.
    pub(super) fn read_local(
        &mut self,
        partition: PartitionId,
        key: &[u8],
        hint_for: Option<NodeId>,
    ) -> Result<Option<Object>, ReplicaError> {
        let result = match hint_for {
            None if !self.is_primary(partition) => return Err(ReplicaError::NotReplica(partition)),
            None => self.store.get(partition, key),
            Some(owner) => self.store.get_hint(owner, partition, key),
        };
        self.stats.replica_reads += 1;
        result.map_err(|e| {
            self.stats.storage_errors += 1;
            storage_error(e)
        })
    }

    pub(super) fn on_read(
        &mut self,
        from: NodeId,
        id: RequestId,
        partition: PartitionId,
        key: Bytes,
        hint_for: Option<NodeId>,
    ) {
        let result = self.read_local(partition, &key, hint_for);
        self.send(from, PeerMessage::ReadReply { id, result });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_write(
        &mut self,
        now: Duration,
        from: NodeId,
        id: RequestId,
        partition: PartitionId,
        key: Bytes,
        object: Object,
        hint_for: Option<NodeId>,
    ) {
        let stored = match hint_for {
            Some(owner) => self.merge_hint(owner, partition, &key, &object),
            None if !self.is_primary(partition) => Err(ReplicaError::NotReplica(partition)),
            None => self
                .merge_owned(now, partition, &key, &object)
                .map_err(storage_error),
        };
        match stored {
            Ok(lsn) => {
                self.stats.replica_writes += 1;
                self.after_durable(Pending::Reply {
                    lsn,
                    to: from,
                    message: PeerMessage::WriteReply { id, result: Ok(()) },
                });
            }
            Err(e) => {
                debug!(error = %e, "write refused");
                self.send(from, PeerMessage::WriteReply { id, result: Err(e) });
            }
        }
    }

    pub(super) fn on_repair(
        &mut self,
        now: Duration,
        partition: PartitionId,
        key: Bytes,
        object: Object,
    ) {
        if !self.is_primary(partition) {
            return;
        }
        if let Err(e) = self.merge_owned(now, partition, &key, &object) {
            self.stats.storage_errors += 1;
            debug!(error = %e, "read repair could not be applied");
        }
    }

    /// Merges `incoming` into the owned copy of a key and stores it, keeping
    /// the tombstone mark in step. Returns the LSN to wait for before the
    /// result may be acknowledged.
    pub(super) fn merge_owned(
        &mut self,
        now: Duration,
        partition: PartitionId,
        key: &[u8],
        incoming: &Object,
    ) -> Result<Lsn, StorageError> {
        self.merge_owned_state(now, partition, key, incoming)
            .map(|m| m.lsn)
    }

    /// [`Node::merge_owned`], also returning the merged state and whether
    /// it changed what was stored.
    pub(super) fn merge_owned_state(
        &mut self,
        now: Duration,
        partition: PartitionId,
        key: &[u8],
        incoming: &Object,
    ) -> Result<Merged, StorageError> {
        let existing = self.store.get(partition, key)?;
        // The key's Merkle leaf, if its partition's tree is kept, taken
        // before the state is merged in place.
        let tracked = self.tree_kept(partition);
        let old_leaf = match &existing {
            Some(old) if tracked => object_hash(key, old).map(Some),
            _ => Ok(None),
        };
        let mut state = existing.unwrap_or_default();
        if !state.merge(incoming) {
            // Nothing new (or nothing at all: an empty state is never
            // stored): no write, and a tombstone keeps its age. Whoever
            // waits for durability waits for everything applied so far,
            // which covers the write that stored this state.
            return Ok(Merged {
                lsn: self.store.applied_lsn(),
                state,
                changed: false,
            });
        }
        // Encoded once, for storage and the new leaf alike.
        let encoded = encode_object(&state)?;
        let tombstone = state.is_tombstone();
        let marked = self.tombstones.contains(partition, key);
        let mut changes = vec![Change::Put {
            partition,
            key,
            object: &state,
            encoded: Some(&encoded),
        }];
        if tombstone {
            changes.push(Change::PutTombMark { partition, key });
        } else if marked {
            changes.push(Change::DeleteTombMark { partition, key });
        }
        let lsn = self.store.apply(&changes)?;
        self.tombstones.note(partition, key, tombstone, now, lsn);
        self.cleanup_note(partition);
        if tracked {
            self.trees_update(partition, key, old_leaf, &encoded);
        }
        Ok(Merged {
            lsn,
            state,
            changed: true,
        })
    }
}
