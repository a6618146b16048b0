//! The Merkle trees of the partitions this node replicates, kept in step
//! with its owned data.
//!
//! A tree is built from storage the first time an exchange needs it (one
//! scan of the partition), then updated on every change of an owned key of
//! that partition ([`Trees::note`]), so it always summarises exactly what
//! the store holds. Trees live in memory only: rebuilding one costs a scan
//! of its partition, paid lazily and spread over the first round of
//! exchanges, while persisting them would add a write to every write and a
//! way for tree and data to disagree after a crash. A partition this node
//! stops replicating loses its tree.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use quorra_merkle::{Tree, leaf_hash, segment_of};
use quorra_ring::PartitionId;

use crate::storage::store::encode_object;
use crate::storage::{StorageError, Store};
use crate::version::Object;

/// Keys read per page when scanning a partition.
const SCAN_PAGE: usize = 1024;

/// The leaf hash of `key` holding `object`: over its canonical encoding,
/// so equal states hash equally on every replica.
pub(crate) fn object_hash(key: &[u8], object: &Object) -> Result<u64, StorageError> {
    Ok(leaf_hash(key, &encode_object(object)?))
}

/// One key met by a scan: its state, leaf hash and encoded size.
pub(crate) struct Scanned {
    pub(crate) key: Bytes,
    pub(crate) object: Object,
    pub(crate) hash: u64,
    pub(crate) size: usize,
}

/// Calls `f` for every owned key of `partition` whose segment is in
/// `segments` (all keys for `None`), in key order.
pub(crate) fn scan(
    store: &Store,
    partition: PartitionId,
    segments: Option<&BTreeSet<u32>>,
    mut f: impl FnMut(Scanned),
) -> Result<(), StorageError> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan_partition(partition, after.as_deref(), SCAN_PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        let full = page.len() == SCAN_PAGE;
        for (key, object) in page {
            if segments.is_some_and(|s| !s.contains(&segment_of(&key))) {
                continue;
            }
            let encoded = encode_object(&object)?;
            f(Scanned {
                hash: leaf_hash(&key, &encoded),
                size: encoded.len() + key.len(),
                key: Bytes::from(key),
                object,
            });
        }
        if !full {
            return Ok(());
        }
    }
}

/// The trees built so far, by partition.
#[derive(Debug, Default)]
pub(crate) struct Trees {
    built: BTreeMap<PartitionId, Tree>,
}

impl Trees {
    /// The tree of `partition`, built from `store` if it is not yet.
    /// Returns the tree and how many keys a build scanned (0 if none ran).
    pub(crate) fn get_or_build(
        &mut self,
        store: &Store,
        partition: PartitionId,
    ) -> Result<(&mut Tree, u64), StorageError> {
        use std::collections::btree_map::Entry;
        match self.built.entry(partition) {
            Entry::Occupied(e) => Ok((e.into_mut(), 0)),
            Entry::Vacant(e) => {
                let mut tree = Tree::new();
                let mut scanned = 0;
                scan(store, partition, None, |s| {
                    tree.insert(&s.key, s.hash);
                    scanned += 1;
                })?;
                Ok((e.insert(tree), scanned))
            }
        }
    }

    /// Whether `partition`'s tree is built, and so kept in step with every
    /// change of its keys.
    pub(crate) fn is_built(&self, partition: PartitionId) -> bool {
        self.built.contains_key(&partition)
    }

    /// An owned key of `partition` went from `old` to `new` in storage.
    pub(crate) fn note(
        &mut self,
        partition: PartitionId,
        key: &[u8],
        old: Option<&Object>,
        new: Option<&Object>,
    ) -> Result<(), StorageError> {
        if !self.is_built(partition) {
            return Ok(());
        }
        let old = old.map(|o| object_hash(key, o)).transpose();
        let new = new.map(|o| object_hash(key, o)).transpose();
        self.update(partition, key, old, new)
    }

    /// An owned key of `partition` went from leaf hash `old` to `new`
    /// (`None`: absent; an error: a state that could not be hashed).
    pub(crate) fn update(
        &mut self,
        partition: PartitionId,
        key: &[u8],
        old: Result<Option<u64>, StorageError>,
        new: Result<Option<u64>, StorageError>,
    ) -> Result<(), StorageError> {
        let Some(tree) = self.built.get_mut(&partition) else {
            return Ok(());
        };
        match (old, new) {
            (Ok(old), Ok(new)) => {
                tree.update(key, old, new);
                Ok(())
            }
            (Err(e), _) | (_, Err(e)) => {
                // The tree can no longer be trusted: rebuild it when next needed.
                self.built.remove(&partition);
                Err(e)
            }
        }
    }

    /// Keeps only the trees of `partitions`.
    pub(crate) fn retain(&mut self, partitions: &BTreeSet<PartitionId>) {
        self.built.retain(|p, _| partitions.contains(p));
    }

    /// The partitions whose trees are built, in order.
    pub(crate) fn partitions(&self) -> Vec<PartitionId> {
        self.built.keys().copied().collect()
    }

    /// How many trees are built.
    pub(crate) fn len(&self) -> usize {
        self.built.len()
    }

    /// Keys (live and tombstones) in the partitions whose trees are built.
    pub(crate) fn keys(&self) -> u64 {
        self.built.values().map(Tree::keys).sum()
    }
}
