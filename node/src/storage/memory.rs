//! The in-memory engine: for the simulator, tests and a cache mode.
//!
//! A `BTreeMap` behind a mutex, plus an undo log of the writes applied since
//! the last flush. Flushing drops the undo log; [`MemoryEngine::crash`]
//! replays it backwards, which is exactly the simulator's crash model:
//! everything applied but not flushed is lost, everything flushed stays.
//! Outside the simulator nothing survives the process ([`Durability::Memory`]).

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
}

#[derive(Debug, Default)]
struct Inner {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `(lsn, key, previous value)` for every key written since the last
    /// flush, oldest first.
    undo: Vec<(Lsn, Vec<u8>, Option<Vec<u8>>)>,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
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
        inner.undo.retain(|(l, _, _)| *l > lsn);
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
        Durability::Memory
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
