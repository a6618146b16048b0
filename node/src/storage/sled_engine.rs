//! The sled engine.
//!
//! sled 0.34.7 is the engine the design card names. One tree holds the whole
//! keyspace; a batch is one `apply_batch` (atomic), a flush is `flush()`.
//! sled's own background flusher is turned off so that durability is only
//! what our group commit asks for.
//!
//! **Durability:** on Linux, sled's flush calls `sync_file_range`, which
//! starts and waits for writeback of the written range but does not flush
//! file metadata or the drive's volatile cache. Flushed data survives a
//! process crash (`kill -9`); it is not guaranteed to survive a power loss.
//! Reported as [`Durability::OsBuffers`]. [`Engine::sync_all`], for the few
//! records that must survive a power loss on every engine, flushes and then
//! fsyncs every file of the database and its directories.

use std::ops::Bound;
use std::path::{Path, PathBuf};

use super::lsn::LsnClock;
use super::{Durability, Engine, Lsn, Pair, StorageError, WriteOp};

const NAME: &str = "sled";

/// A sled database used as an ordered map.
pub struct SledEngine {
    db: sled::Db,
    dir: PathBuf,
    lsn: LsnClock,
}

impl SledEngine {
    /// Opens or creates the database in `dir`, with a page cache of
    /// `cache` bytes (sled's default is 1 GiB whatever the budget).
    pub fn open(dir: &Path, cache: u64) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache)
            .flush_every_ms(None)
            .open()
            .map_err(|e| StorageError::engine(NAME, format!("opening {}: {e}", dir.display())))?;
        Ok(Self {
            db,
            dir: dir.to_path_buf(),
            lsn: LsnClock::default(),
        })
    }
}

/// fsyncs `path` and, for a directory, everything under it (the directory
/// itself last, so new entries in it are durable too).
fn fsync_tree(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            fsync_tree(&entry)?;
        }
    } else if !meta.is_file() {
        return Ok(());
    }
    // fsync works on a descriptor opened for reading: it flushes the
    // file's dirty pages and metadata whoever wrote them.
    std::fs::File::open(path)?.sync_all()
}

impl Engine for SledEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn durability(&self) -> Durability {
        Durability::OsBuffers
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| StorageError::engine(NAME, e))
    }

    fn write(&self, ops: Vec<WriteOp>) -> Result<Lsn, StorageError> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                WriteOp::Put { key, value } => batch.insert(key, value),
                WriteOp::Delete { key } => batch.remove(key),
            }
        }
        self.db
            .apply_batch(batch)
            .map_err(|e| StorageError::engine(NAME, e))?;
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
        self.db
            .range::<&[u8], _>((from, to))
            .take(limit)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| StorageError::engine(NAME, e))
            })
            .collect()
    }

    fn flush(&self) -> Result<Lsn, StorageError> {
        let applied = self.lsn.applied();
        self.db.flush().map_err(|e| StorageError::engine(NAME, e))?;
        Ok(self.lsn.mark_durable(applied))
    }

    fn sync_all(&self) -> Result<Lsn, StorageError> {
        let lsn = self.flush()?;
        fsync_tree(&self.dir).map_err(|e| {
            StorageError::engine(NAME, format!("fsync of {}: {e}", self.dir.display()))
        })?;
        Ok(lsn)
    }

    fn durable_lsn(&self) -> Lsn {
        self.lsn.durable()
    }

    fn applied_lsn(&self) -> Lsn {
        self.lsn.applied()
    }
}
