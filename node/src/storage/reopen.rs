//! An engine that notices its own failure and can be opened again in
//! place: how a node gets over a full disk or an I/O error without a
//! restart of its process.
//!
//! A failed write or flush leaves an engine in a state nobody should
//! trust: fjall poisons itself after a failed fsync (as PostgreSQL does
//! since fsyncgate) and refuses every later write, and even an engine that
//! does not cannot say which of the writes since the last good flush
//! reached the disk. So [`Reopenable`] records the first engine error
//! ([`Reopenable::failure`]); the driver then stops acknowledging, keeps
//! serving reads, and once space is back ([`Reopenable::probe_space`])
//! closes the engine and opens it again ([`Reopenable::reopen`]). What the
//! reopened engine holds is what a crash would have left: every flushed
//! write, so every acknowledged one, and of the writes that were waiting
//! for the failed flush any part or none (an engine may write out what it
//! buffered as it closes; those writes were never acknowledged, and their
//! clients were told they may or may not have been applied). The node
//! core is started afresh on it, as after a crash, under a new
//! incarnation, so no dot is ever issued twice.
//!
//! Errors of the caller's input (an empty or oversized key or value) are
//! not failures of the engine and are not recorded.
//!
//! LSNs keep growing across a reopen (the new engine's are offset by the
//! last LSN of the old one), so nothing that compares them goes backwards;
//! while a reopen has failed and the engine is closed, the durable LSN
//! stays what the old engine had made durable, so a core still waiting on
//! it never takes an unflushed write for a durable one.

use std::io::Write;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::{Durability, Engine, EngineKind, Lsn, Pair, StorageError, WriteOp, open_engine_with};

/// Name of the file [`Reopenable::probe_space`] writes, next to the engine's
/// directory.
pub const PROBE_FILE: &str = "space-probe";

/// An engine of `kind` in `dir` that records its failure and can be opened
/// again (see the module documentation).
pub struct Reopenable {
    kind: EngineKind,
    dir: PathBuf,
    /// The engine's block cache, in bytes.
    block_cache: u64,
    inner: RwLock<Option<Arc<dyn Engine>>>,
    /// The first engine error since the engine was (re)opened.
    failure: Mutex<Option<StorageError>>,
    /// Engine errors since the engine was (re)opened.
    errors: AtomicU64,
    /// Added to the current engine's LSNs.
    base: AtomicU64,
    /// The durable and applied LSNs the engine had when it was closed: what
    /// they stay while a reopen has failed, so that nothing written since
    /// the last good flush is taken for durable.
    closed_at: Mutex<(Lsn, Lsn)>,
}

impl std::fmt::Debug for Reopenable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reopenable")
            .field("kind", &self.kind)
            .field("dir", &self.dir)
            .field("failure", &self.failure())
            .finish_non_exhaustive()
    }
}

impl Reopenable {
    /// Opens (or creates) an engine of `kind` in `dir`, with a block cache
    /// of `block_cache` bytes.
    pub fn open(kind: EngineKind, dir: &Path, block_cache: u64) -> Result<Self, StorageError> {
        Ok(Self {
            kind,
            dir: dir.to_path_buf(),
            block_cache,
            inner: RwLock::new(Some(open_engine_with(kind, dir, block_cache)?)),
            failure: Mutex::new(None),
            errors: AtomicU64::new(0),
            base: AtomicU64::new(0),
            closed_at: Mutex::new((0, 0)),
        })
    }

    /// The first engine error since the engine was (re)opened, if any.
    pub fn failure(&self) -> Option<StorageError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Engine errors since the engine was (re)opened.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether `bytes` can be written and synced next to the engine's
    /// directory now: writes a file that large, syncs it and removes it.
    pub fn probe_space(&self, bytes: usize) -> std::io::Result<()> {
        let path = self.dir.parent().unwrap_or(&self.dir).join(PROBE_FILE);
        let result = (|| {
            let mut file = std::fs::File::create(&path)?;
            let chunk = vec![0u8; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len());
                file.write_all(&chunk[..n])?;
                left -= n;
            }
            file.sync_all()
        })();
        let _ = std::fs::remove_file(&path);
        result
    }

    /// Closes the engine and opens it again from what is on disk, forgetting
    /// the failure. On an error the engine stays closed (every call fails)
    /// and the reopen may be tried again.
    pub fn reopen(&self) -> Result<(), StorageError> {
        if self.kind == EngineKind::Memory {
            return Err(StorageError::engine(
                self.kind.name(),
                "the memory engine keeps nothing to reopen from",
            ));
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = inner.take() {
            let base = self.base();
            *self.closed_at.lock().unwrap_or_else(|p| p.into_inner()) =
                (base + old.durable_lsn(), base + old.applied_lsn());
            // The old engine must be gone (its files unlocked, its threads
            // stopped) before the new one opens the same directory.
            drop(old);
        }
        let engine = open_engine_with(self.kind, &self.dir, self.block_cache)?;
        // Only now do the new engine's LSNs start after the old one's.
        self.base.store(self.closed_at().1, Ordering::SeqCst);
        *inner = Some(engine);
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.errors.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn engine(&self) -> Result<Arc<dyn Engine>, StorageError> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                StorageError::engine(self.kind.name(), "closed for a reopen that failed")
            })
    }

    /// Records `result`'s engine error, if it is one.
    fn noted<T>(&self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e @ StorageError::Engine { .. }) = &result {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| e.clone());
        }
        result
    }

    fn base(&self) -> Lsn {
        self.base.load(Ordering::SeqCst)
    }

    fn closed_at(&self) -> (Lsn, Lsn) {
        *self.closed_at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Engine for Reopenable {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn durability(&self) -> Durability {
        self.engine().map_or(Durability::Memory, |e| e.durability())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.noted(self.engine().and_then(|e| e.get(key)))
    }

    fn write(&self, ops: Vec<WriteOp>) -> Result<Lsn, StorageError> {
        let lsn = self.noted(self.engine().and_then(|e| e.write(ops)))?;
        Ok(self.base() + lsn)
    }

    fn scan(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>, StorageError> {
        self.noted(self.engine().and_then(|e| e.scan(from, to, limit)))
    }

    fn flush(&self) -> Result<Lsn, StorageError> {
        let lsn = self.noted(self.engine().and_then(|e| e.flush()))?;
        Ok(self.base() + lsn)
    }

    fn sync_all(&self) -> Result<Lsn, StorageError> {
        let lsn = self.noted(self.engine().and_then(|e| e.sync_all()))?;
        Ok(self.base() + lsn)
    }

    fn durable_lsn(&self) -> Lsn {
        match self.engine() {
            Ok(e) => self.base() + e.durable_lsn(),
            Err(_) => self.closed_at().0,
        }
    }

    fn applied_lsn(&self) -> Lsn {
        match self.engine() {
            Ok(e) => self.base() + e.applied_lsn(),
            Err(_) => self.closed_at().1,
        }
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
    fn a_reopen_keeps_what_was_flushed_and_lsns_keep_growing() {
        for kind in [EngineKind::Fjall, EngineKind::Sled] {
            let dir = tempfile::tempdir().unwrap();
            let engine = Reopenable::open(kind, &dir.path().join("e"), 1 << 20).unwrap();
            engine.write(vec![put("a", "1")]).unwrap();
            let durable = engine.flush().unwrap();
            assert_eq!(durable, 1, "{kind}");
            engine.reopen().unwrap();
            assert_eq!(engine.get(b"a").unwrap(), Some(b"1".to_vec()), "{kind}");
            assert!(engine.applied_lsn() >= durable, "{kind}");
            let next = engine.write(vec![put("b", "2")]).unwrap();
            assert!(next > durable, "{kind}: {next} after {durable}");
            assert_eq!(engine.flush().unwrap(), next, "{kind}");
            assert_eq!(engine.failure(), None);
        }
    }

    #[test]
    fn a_failed_reopen_does_not_take_unflushed_writes_for_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e");
        let engine = Reopenable::open(EngineKind::Fjall, &path, 1 << 20).unwrap();
        engine.write(vec![put("a", "1")]).unwrap();
        let durable = engine.flush().unwrap();
        let unflushed = engine.write(vec![put("b", "2")]).unwrap();
        assert!(unflushed > durable);
        // The directory cannot be opened again: the reopen fails.
        let held = path.with_extension("held");
        std::fs::rename(&path, &held).unwrap();
        std::fs::write(&path, b"not a directory").unwrap();
        assert!(engine.reopen().is_err());
        assert_eq!(engine.durable_lsn(), durable, "nothing new is durable");
        assert_eq!(engine.applied_lsn(), unflushed);
        assert!(engine.get(b"a").is_err(), "closed: every call fails");
        // Once it can be opened, LSNs go on after the old engine's.
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(&held, &path).unwrap();
        engine.reopen().unwrap();
        assert_eq!(engine.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert!(engine.write(vec![put("c", "3")]).unwrap() > unflushed);
    }

    #[test]
    fn input_errors_are_not_failures_and_memory_does_not_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Reopenable::open(EngineKind::Fjall, &dir.path().join("e"), 1 << 20).unwrap();
        assert!(engine.write(vec![put("", "x")]).is_err());
        assert_eq!(engine.failure(), None);
        let memory = Reopenable::open(EngineKind::Memory, dir.path(), 1 << 20).unwrap();
        assert!(memory.reopen().is_err());
        assert!(engine.probe_space(1 << 20).is_ok());
        assert!(!dir.path().join(PROBE_FILE).exists(), "the probe cleans up");
    }
}
