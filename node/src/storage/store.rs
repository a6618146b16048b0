//! The typed store the node core talks to.
//!
//! [`Store`] puts objects, hints and metadata into an [`Engine`] using the
//! [`layout`](super::layout), checks the documented size limits before
//! anything reaches the engine, and decodes (and validates) what it reads, so
//! a corrupt record is a [`StorageError::Corrupt`] naming the key, never a
//! panic. Objects are encoded with rmp-serde.

use std::ops::Bound;
use std::sync::Arc;

use quorra_client::{MAX_KEY_LEN, MAX_VALUE_LEN};
use quorra_ring::{NodeId, PartitionId};

use super::cache::ObjectCache;
use super::layout::{
    all_hints_prefix, all_tombs_prefix, data_key, data_prefix, hint_key, hint_prefix, meta_key,
    parse_data_key, parse_hint_key, parse_tomb_key, prefix_end, tomb_key,
};
use super::{Durability, Engine, Lsn, MAX_RECORD_LEN, StorageError, WriteOp};
use crate::version::{Object, Sibling};

/// A hint read back from storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHint {
    /// The node the hint is for.
    pub target: NodeId,
    /// The key's partition.
    pub partition: PartitionId,
    /// The user key.
    pub key: Vec<u8>,
    /// The state to hand over.
    pub object: Object,
}

/// One change of an atomic [`Store::apply`].
#[derive(Clone, Debug)]
pub enum Change<'a> {
    /// Store an owned object.
    Put {
        /// Partition of the key.
        partition: PartitionId,
        /// User key.
        key: &'a [u8],
        /// New state.
        object: &'a Object,
        /// `object` as [`encode_object`] encodes it, when the caller has
        /// it already (it hashed it for a Merkle leaf): not encoded again.
        encoded: Option<&'a [u8]>,
    },
    /// Remove an owned object (tombstone purge).
    Delete {
        /// Partition of the key.
        partition: PartitionId,
        /// User key.
        key: &'a [u8],
    },
    /// Store a hint for `target`.
    PutHint {
        /// The node the hint is for.
        target: NodeId,
        /// Partition of the key.
        partition: PartitionId,
        /// User key.
        key: &'a [u8],
        /// State to hand over.
        object: &'a Object,
    },
    /// Remove a hint (delivered).
    DeleteHint {
        /// The node the hint was for.
        target: NodeId,
        /// Partition of the key.
        partition: PartitionId,
        /// User key.
        key: &'a [u8],
    },
    /// Mark an owned key as a tombstone (a purge candidate).
    PutTombMark {
        /// Partition of the key.
        partition: PartitionId,
        /// User key.
        key: &'a [u8],
    },
    /// Remove a tombstone mark.
    DeleteTombMark {
        /// Partition of the key.
        partition: PartitionId,
        /// User key.
        key: &'a [u8],
    },
    /// Set a metadata entry.
    PutMeta {
        /// Entry name.
        name: &'a str,
        /// Entry value.
        value: &'a [u8],
    },
}

/// Typed access to an engine.
#[derive(Clone)]
pub struct Store {
    engine: Arc<dyn Engine>,
    /// Shared by clones; none for [`Store::new`].
    cache: Option<Arc<ObjectCache>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine.name())
            .finish()
    }
}

/// Checks a user key against the limits.
pub fn check_key(key: &[u8]) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::EmptyKey);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StorageError::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// Encodes an object after checking every sibling and the whole record
/// against the limits.
pub fn encode_object(object: &Object) -> Result<Vec<u8>, StorageError> {
    for sibling in object.values() {
        if let Sibling::Value(v) = sibling
            && v.len() > MAX_VALUE_LEN
        {
            return Err(StorageError::ValueTooLarge {
                len: v.len(),
                max: MAX_VALUE_LEN,
            });
        }
    }
    // Sized up front: growing from empty took six reallocations for a
    // 100-byte value, and an object is encoded several times per write
    // (storage, Merkle leaf hashes).
    let values: usize = object
        .values()
        .map(|s| s.value().map_or(1, |v| v.len() + 5))
        .sum();
    let mut bytes = Vec::with_capacity(64 + values + 32 * object.sibling_count());
    rmp_serde::encode::write(&mut bytes, object).map_err(|e| StorageError::Corrupt {
        what: "object being written".into(),
        reason: e.to_string(),
    })?;
    if bytes.len() > MAX_RECORD_LEN {
        return Err(StorageError::ValueTooLarge {
            len: bytes.len(),
            max: MAX_RECORD_LEN,
        });
    }
    Ok(bytes)
}

/// Decodes and validates a stored object; `what` names it in errors.
pub fn decode_object(bytes: &[u8], what: impl FnOnce() -> String) -> Result<Object, StorageError> {
    let object: Object = rmp_serde::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        what: what(),
        reason: e.to_string(),
    })?;
    object.validate().map_err(|e| StorageError::Corrupt {
        what: "stored object".into(),
        reason: e.to_string(),
    })?;
    Ok(object)
}

/// Scans up to `limit` pairs whose keys start with `prefix`, beginning after
/// `after` (a full storage key) or at the prefix's first key.
fn scan_prefix(
    engine: &dyn Engine,
    prefix: &[u8],
    after: Option<Vec<u8>>,
    limit: usize,
) -> Result<Vec<super::Pair>, StorageError> {
    let end = prefix_end(prefix);
    let from = match &after {
        Some(k) => Bound::Excluded(k.as_slice()),
        None => Bound::Included(prefix),
    };
    let to = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    engine.scan(from, to, limit)
}

fn describe(partition: PartitionId, key: &[u8]) -> String {
    format!("{partition}/{}", String::from_utf8_lossy(key))
}

impl Store {
    /// A store over `engine`, reading every object from it.
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Self {
            engine,
            cache: None,
        }
    }

    /// A store over `engine` that keeps about `bytes` of the objects it
    /// read or wrote last ([`super::cache`]). Only one store with a cache
    /// may write to an engine.
    pub fn with_cache(engine: Arc<dyn Engine>, bytes: usize) -> Self {
        Self {
            engine,
            cache: Some(Arc::new(ObjectCache::new(bytes))),
        }
    }

    /// Empties the cache (shared by every clone of this store): for an
    /// engine reopened after a failure, which may have lost writes the
    /// cache remembers.
    pub fn clear_cache(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// Bytes its cache holds (0 without one).
    pub fn cached_bytes(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.bytes())
    }

    /// The bound on [`Store::cached_bytes`] (0 without a cache).
    pub fn cache_capacity(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.capacity())
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// What a flush of this store protects against.
    pub fn durability(&self) -> Durability {
        self.engine.durability()
    }

    /// The owned object at `key`, if any.
    pub fn get(&self, partition: PartitionId, key: &[u8]) -> Result<Option<Object>, StorageError> {
        check_key(key)?;
        let at = data_key(partition, key);
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&at)) {
            return Ok(hit);
        }
        let object = self
            .engine
            .get(&at)?
            .map(|bytes| decode_object(&bytes, || describe(partition, key)))
            .transpose()?;
        if let Some(cache) = &self.cache {
            cache.insert(at, object.clone());
        }
        Ok(object)
    }

    /// Stores an owned object.
    pub fn put(
        &self,
        partition: PartitionId,
        key: &[u8],
        object: &Object,
    ) -> Result<Lsn, StorageError> {
        self.apply(&[Change::Put {
            partition,
            key,
            object,
            encoded: None,
        }])
    }

    /// Removes an owned object.
    pub fn delete(&self, partition: PartitionId, key: &[u8]) -> Result<Lsn, StorageError> {
        self.apply(&[Change::Delete { partition, key }])
    }

    /// Applies `changes` atomically. Limits are checked for all of them
    /// before anything is written: on error, nothing is.
    pub fn apply(&self, changes: &[Change<'_>]) -> Result<Lsn, StorageError> {
        let mut ops = Vec::with_capacity(changes.len());
        for change in changes {
            ops.push(match *change {
                Change::Put {
                    partition,
                    key,
                    object,
                    encoded,
                } => {
                    check_key(key)?;
                    let value = match encoded {
                        Some(bytes) => {
                            debug_assert_eq!(encode_object(object).ok().as_deref(), Some(bytes));
                            bytes.to_vec()
                        }
                        None => encode_object(object)?,
                    };
                    WriteOp::Put {
                        key: data_key(partition, key),
                        value,
                    }
                }
                Change::Delete { partition, key } => {
                    check_key(key)?;
                    WriteOp::Delete {
                        key: data_key(partition, key),
                    }
                }
                Change::PutHint {
                    target,
                    partition,
                    key,
                    object,
                } => {
                    check_key(key)?;
                    WriteOp::Put {
                        key: hint_key(target, partition, key),
                        value: encode_object(object)?,
                    }
                }
                Change::DeleteHint {
                    target,
                    partition,
                    key,
                } => {
                    check_key(key)?;
                    WriteOp::Delete {
                        key: hint_key(target, partition, key),
                    }
                }
                Change::PutTombMark { partition, key } => WriteOp::Put {
                    key: tomb_key(partition, key),
                    value: Vec::new(),
                },
                Change::DeleteTombMark { partition, key } => WriteOp::Delete {
                    key: tomb_key(partition, key),
                },
                Change::PutMeta { name, value } => WriteOp::Put {
                    key: meta_key(name),
                    value: value.to_vec(),
                },
            });
        }
        let result = self.engine.write(ops);
        if let Some(cache) = &self.cache {
            for change in changes {
                match *change {
                    Change::Put {
                        partition,
                        key,
                        object,
                        ..
                    } if result.is_ok() => {
                        cache.insert(data_key(partition, key), Some(object.clone()))
                    }
                    Change::Put { partition, key, .. } => cache.remove(&data_key(partition, key)),
                    Change::Delete { partition, key } if result.is_ok() => {
                        cache.insert(data_key(partition, key), None)
                    }
                    Change::Delete { partition, key } => cache.remove(&data_key(partition, key)),
                    _ => {}
                }
            }
        }
        result
    }

    /// Up to `limit` objects of `partition` in key order, starting after
    /// `after` (or from the first key).
    pub fn scan_partition(
        &self,
        partition: PartitionId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Object)>, StorageError> {
        let after = after.map(|k| data_key(partition, k));
        scan_prefix(self.engine.as_ref(), &data_prefix(partition), after, limit)?
            .into_iter()
            .map(|(raw, bytes)| {
                let (_, key) = parse_data_key(&raw).ok_or_else(|| StorageError::Corrupt {
                    what: format!("data key {raw:?}"),
                    reason: "not a data key".into(),
                })?;
                let object = decode_object(&bytes, || describe(partition, key))?;
                Ok((key.to_vec(), object))
            })
            .collect()
    }

    /// The hint for `target` at `key`, if any.
    pub fn get_hint(
        &self,
        target: NodeId,
        partition: PartitionId,
        key: &[u8],
    ) -> Result<Option<Object>, StorageError> {
        check_key(key)?;
        self.engine
            .get(&hint_key(target, partition, key))?
            .map(|bytes| {
                decode_object(&bytes, || {
                    format!("hint for {target} {}", describe(partition, key))
                })
            })
            .transpose()
    }

    /// Up to `limit` hints held for `target`, in (partition, key) order,
    /// starting after `after`.
    pub fn scan_hints(
        &self,
        target: NodeId,
        after: Option<(PartitionId, &[u8])>,
        limit: usize,
    ) -> Result<Vec<StoredHint>, StorageError> {
        let after = after.map(|(p, k)| hint_key(target, p, k));
        scan_prefix(self.engine.as_ref(), &hint_prefix(target), after, limit)?
            .into_iter()
            .map(|(raw, bytes)| decode_hint(&raw, &bytes))
            .collect()
    }

    /// Every node some hint is held for, in id order.
    pub fn hint_targets(&self) -> Result<Vec<NodeId>, StorageError> {
        let mut targets = Vec::new();
        let all = all_hints_prefix();
        let all_end = prefix_end(&all);
        let mut from = all.to_vec();
        loop {
            let to = all_end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let Some((raw, bytes)) = self
                .engine
                .scan(Bound::Included(&from), to, 1)?
                .into_iter()
                .next()
            else {
                break;
            };
            let hint = decode_hint(&raw, &bytes)?;
            targets.push(hint.target);
            match prefix_end(&hint_prefix(hint.target)) {
                Some(next) => from = next,
                None => break,
            }
        }
        Ok(targets)
    }

    /// Up to `limit` tombstone marks in (partition, key) order, starting
    /// after `after`.
    pub fn scan_tomb_marks(
        &self,
        after: Option<(PartitionId, &[u8])>,
        limit: usize,
    ) -> Result<Vec<(PartitionId, Vec<u8>)>, StorageError> {
        let after = after.map(|(p, k)| tomb_key(p, k));
        scan_prefix(self.engine.as_ref(), &all_tombs_prefix(), after, limit)?
            .into_iter()
            .map(|(raw, _)| {
                parse_tomb_key(&raw)
                    .map(|(p, k)| (p, k.to_vec()))
                    .ok_or_else(|| StorageError::Corrupt {
                        what: format!("tombstone mark {raw:?}"),
                        reason: "not a tombstone mark".into(),
                    })
            })
            .collect()
    }

    /// A metadata entry.
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.engine.get(&meta_key(name))
    }

    /// Sets a metadata entry.
    pub fn put_meta(&self, name: &str, value: &[u8]) -> Result<Lsn, StorageError> {
        self.apply(&[Change::PutMeta { name, value }])
    }

    /// Makes everything applied so far durable; returns the durable LSN.
    pub fn flush(&self) -> Result<Lsn, StorageError> {
        self.engine.flush()
    }

    /// Flushes so that even a power loss keeps what was written, whatever
    /// the engine ([`Engine::sync_all`]).
    pub fn sync_all(&self) -> Result<Lsn, StorageError> {
        self.engine.sync_all()
    }

    /// The highest durable LSN.
    pub fn durable_lsn(&self) -> Lsn {
        self.engine.durable_lsn()
    }

    /// The highest applied LSN.
    pub fn applied_lsn(&self) -> Lsn {
        self.engine.applied_lsn()
    }
}

fn decode_hint(raw: &[u8], bytes: &[u8]) -> Result<StoredHint, StorageError> {
    let (target, partition, key) = parse_hint_key(raw).ok_or_else(|| StorageError::Corrupt {
        what: format!("hint key {raw:?}"),
        reason: "not a hint key".into(),
    })?;
    let object = decode_object(bytes, || {
        format!("hint for {target} {}", describe(partition, key))
    })?;
    Ok(StoredHint {
        target,
        partition,
        key: key.to_vec(),
        object,
    })
}
