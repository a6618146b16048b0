//! The in-memory engine: for the simulator, tests and a cache mode.
//!
//! A `BTreeMap` behind a mutex, plus an undo log of the writes applied since
//! the last flush. Flushing drops the undo log; [`MemoryEngine::crash`]
//! replays it backwards, which is exactly the simulator's crash model:
//! everything applied but not flushed is lost, everything flushed stays.
//! Outside the simulator nothing survives the process ([`Durability::Memory`]).
//!
//! [`MemoryEngine::with_os_buffers`] models an engine whose flush only
//! reaches the OS (sled's): flushed writes survive [`MemoryEngine::crash`]
//! but not [`MemoryEngine::power_loss`], which also undoes everything since
//! the last [`Engine::sync_all`]. Tests use it to show what must be synced.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use super::lsn::LsnClock;
use super::{Durability, Engine, Lsn, Pair, StorageError, WriteOp};

/// An ordered map in memory with a crash model.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    inner: Mutex<Inner>,
    lsn: LsnClock,
    /// A flush reaches the OS only (see the module documentation).
    os_buffers: bool,
}

#[derive(Debug, Default)]
struct Inner {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `(lsn, key, previous value)` for every key written since the last
    /// flush, oldest first.
    undo: Vec<(Lsn, Vec<u8>, Option<Vec<u8>>)>,
    /// With OS buffers: the same for writes flushed since the last sync.
    unsynced: Vec<(Lsn, Vec<u8>, Option<Vec<u8>>)>,
    /// With OS buffers: the LSN the last sync covered.
    synced: Lsn,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty engine whose flush reaches only the OS's buffers: a
    /// [`MemoryEngine::power_loss`] undoes what was not synced.
    pub fn with_os_buffers() -> Self {
        Self {
            os_buffers: true,
            ..Self::default()
        }
    }

    /// Simulates a power loss: a crash, and with OS buffers every write
    /// since the last [`Engine::sync_all`] is lost too. Returns how many
    /// key writes were undone.
    pub fn power_loss(&self) -> usize {
        let crashed = self.crash();
        let mut inner = self.lock();
        let undone = inner.unsynced.len();
        while let Some((_, key, previous)) = inner.unsynced.pop() {
            match previous {
                Some(value) => inner.map.insert(key, value),
                None => inner.map.remove(&key),
            };
        }
        if self.os_buffers {
            self.lsn.roll_back_to(inner.synced);
        }
        crashed + undone
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent (each
        // write is applied op by op with its undo entry first), so a poisoned
        // lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Simulates a crash: every write not yet flushed is lost. Returns how
    /// many key writes were undone.
    pub fn crash(&self) -> usize {
        let mut inner = self.lock();
        let undone = inner.undo.len();
        while let Some((_, key, previous)) = inner.undo.pop() {
            match previous {
                Some(value) => inner.map.insert(key, value),
                None => inner.map.remove(&key),
            };
        }
        self.lsn.roll_back_to_durable();
        undone
    }

    /// Makes writes up to `lsn` durable and no later ones: the simulator's
    /// flush, which started when `lsn` was the last applied write and
    /// completes after writes that came in while it ran.
    pub fn flush_upto(&self, lsn: Lsn) -> Lsn {
        let mut inner = self.lock();
        let lsn = lsn.min(self.lsn.applied());
        let (flushed, volatile): (Vec<_>, Vec<_>) = std::mem::take(&mut inner.undo)
            .into_iter()
            .partition(|(l, _, _)| *l <= lsn);
        inner.undo = volatile;
        if self.os_buffers {
            inner.unsynced.extend(flushed);
        }
        self.lsn.mark_durable(lsn)
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and values stored (not counting overhead).
    pub fn bytes(&self) -> usize {
        self.lock().map.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn durability(&self) -> Durability {
        if self.os_buffers {
            Durability::OsBuffers
        } else {
            Durability::Memory
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock().map.get(key).cloned())
    }

    fn write(&self, ops: Vec<WriteOp>) -> Result<Lsn, StorageError> {
        let mut inner = self.lock();
        let lsn = self.lsn.applied() + 1;
        for op in ops {
            let (key, previous) = match op {
                WriteOp::Put { key, value } => {
                    let previous = inner.map.insert(key.clone(), value);
                    (key, previous)
                }
                WriteOp::Delete { key } => {
                    let previous = inner.map.remove(&key);
                    (key, previous)
                }
            };
            inner.undo.push((lsn, key, previous));
        }
        Ok(self.lsn.next_applied())
    }

    fn scan(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>, StorageError> {
        if super::inverted(from, to) {
            return Ok(Vec::new());
        }
        let inner = self.lock();
        Ok(inner
            .map
            .range::<[u8], _>((from, to))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&self) -> Result<Lsn, StorageError> {
        Ok(self.flush_upto(self.lsn.applied()))
    }

    fn sync_all(&self) -> Result<Lsn, StorageError> {
        let lsn = self.flush()?;
        let mut inner = self.lock();
        inner.unsynced.clear();
        inner.synced = lsn;
        Ok(lsn)
    }

    fn durable_lsn(&self) -> Lsn {
        self.lsn.durable()
    }

    fn applied_lsn(&self) -> Lsn {
        self.lsn.applied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> WriteOp {
        WriteOp::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn crash_keeps_exactly_what_was_flushed() {
        let e = MemoryEngine::new();
        e.write(vec![put("a", "1"), put("b", "1")]).unwrap();
        assert_eq!(e.flush().unwrap(), 1);
        e.write(vec![put("a", "2"), WriteOp::Delete { key: "b".into() }])
            .unwrap();
        e.write(vec![put("c", "3")]).unwrap();
        assert_eq!(e.applied_lsn(), 3);
        assert_eq!(e.crash(), 3);
        assert_eq!(e.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(e.get(b"b").unwrap(), Some(b"1".to_vec()));
        assert_eq!(e.get(b"c").unwrap(), None);
        assert_eq!(e.applied_lsn(), 1);
        assert_eq!(e.durable_lsn(), 1);
    }

    #[test]
    fn with_os_buffers_a_power_loss_keeps_only_what_was_synced() {
        let e = MemoryEngine::with_os_buffers();
        e.write(vec![put("a", "1")]).unwrap();
        e.sync_all().unwrap();
        e.write(vec![put("a", "2"), put("b", "2")]).unwrap();
        e.flush().unwrap();
        e.write(vec![put("c", "3")]).unwrap();
        // A process crash keeps what was flushed...
        assert_eq!(e.crash(), 1);
        assert_eq!(e.get(b"a").unwrap(), Some(b"2".to_vec()));
        // ...a power loss only what was synced.
        assert_eq!(e.power_loss(), 2);
        assert_eq!(e.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(e.get(b"b").unwrap(), None);
        assert_eq!((e.applied_lsn(), e.durable_lsn()), (1, 1));
        // Without OS buffers a flush is as good as a sync.
        let plain = MemoryEngine::new();
        plain.write(vec![put("a", "1")]).unwrap();
        plain.flush().unwrap();
        assert_eq!(plain.power_loss(), 0);
        assert_eq!(plain.get(b"a").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn partial_flush_keeps_later_writes_volatile() {
        let e = MemoryEngine::new();
        e.write(vec![put("a", "1")]).unwrap();
        e.write(vec![put("b", "2")]).unwrap();
        assert_eq!(e.flush_upto(1), 1);
        e.crash();
        assert_eq!(e.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(e.get(b"b").unwrap(), None);
    }
}
