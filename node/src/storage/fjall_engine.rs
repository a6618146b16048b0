//! The fjall engine (default).
//!
//! fjall is a maintained, pure-Rust LSM tree with a write-ahead journal. One
//! keyspace holds the whole key space; a batch is one fjall write batch
//! (atomic). The journal is persisted manually: commits stay in fjall's
//! buffer until our flush hands them to the kernel (`persist(Buffer)`) and
//! `fdatasync`s the journal file outside fjall's lock
//! ([`super::journal_sync`]: a slow disk then delays acknowledgements, not
//! every write the node applies), so nothing is half-durable behind our
//! back and one flush makes a whole group of writes durable. Values above [`BLOB_THRESHOLD`] are stored
//! apart from the tree (key-value separation), so large values do not bloat
//! compactions.
//!
//! **Durability:** flushed writes survive process crashes and power loss
//! ([`Durability::Fsync`]). A failed fsync is final (fjall poisons the
//! database, [`JournalSync`] refuses every later sync, as PostgreSQL does
//! after fsyncgate): every later flush fails with a clear error rather than
//! pretending, and the engine is reopened ([`super::reopen`]).

use std::ops::Bound;
use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};

use super::journal_sync::{JournalSync, Synced};
use super::lsn::LsnClock;
use super::{Durability, Engine, Lsn, Pair, StorageError, WriteOp};

const NAME: &str = "fjall";
const KEYSPACE: &str = "quorra";

/// Values at least this large are kept in blob files (16 KiB).
pub const BLOB_THRESHOLD: u32 = 16 * 1024;

/// A fjall database used as an ordered map.
pub struct FjallEngine {
    db: Database,
    keyspace: Keyspace,
    lsn: LsnClock,
    journal: JournalSync,
}

impl FjallEngine {
    /// Opens or creates the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let err =
            |e: fjall::Error| StorageError::engine(NAME, format!("opening {}: {e}", dir.display()));
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .open()
            .map_err(err)?;
        let keyspace = db
            .keyspace(KEYSPACE, || {
                KeyspaceCreateOptions::default()
                    .manual_journal_persist(true)
                    .with_kv_separation(Some(
                        KvSeparationOptions::default().separation_threshold(BLOB_THRESHOLD),
                    ))
            })
            .map_err(err)?;
        Ok(Self {
            db,
            keyspace,
            lsn: LsnClock::default(),
            journal: JournalSync::new(dir),
        })
    }
}

impl Engine for FjallEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn durability(&self) -> Durability {
        Durability::Fsync
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.keyspace
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| StorageError::engine(NAME, e))
    }

    fn write(&self, ops: Vec<WriteOp>) -> Result<Lsn, StorageError> {
        // fjall asserts on empty keys and keys above 65,535 bytes; turn
        // those into errors before they can panic.
        for op in &ops {
            let key = match op {
                WriteOp::Put { key, .. } | WriteOp::Delete { key } => key,
            };
            if key.is_empty() {
                return Err(StorageError::EmptyKey);
            }
            if key.len() > usize::from(u16::MAX) {
                return Err(StorageError::KeyTooLarge {
                    len: key.len(),
                    max: usize::from(u16::MAX),
                });
            }
        }
        let mut batch = self.db.batch().durability(None);
        for op in ops {
            match op {
                WriteOp::Put { key, value } => batch.insert(&self.keyspace, key, value),
                WriteOp::Delete { key } => batch.remove(&self.keyspace, key),
            }
        }
        batch.commit().map_err(|e| StorageError::engine(NAME, e))?;
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
        self.keyspace
            .range::<&[u8], _>((from, to))
            .take(limit)
            .map(|guard| {
                guard
                    .into_inner()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| StorageError::engine(NAME, e))
            })
            .collect()
    }

    fn flush(&self) -> Result<Lsn, StorageError> {
        let applied = self.lsn.applied();
        self.db
            .persist(PersistMode::Buffer)
            .map_err(|e| StorageError::engine(NAME, e))?;
        let synced = self
            .journal
            .sync()
            .map_err(|e| StorageError::engine(NAME, format!("fdatasync of the journal: {e}")))?;
        if synced == Synced::NoJournal {
            self.db
                .persist(PersistMode::SyncData)
                .map_err(|e| StorageError::engine(NAME, e))?;
        }
        Ok(self.lsn.mark_durable(applied))
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

    #[test]
    fn fjall_keeps_its_journal_where_the_flush_syncs_it() {
        // If a fjall upgrade moved or renamed its journal, the flush would
        // fall back to fjall's own persist (correct, but stalling on a slow
        // disk); this says so at once.
        let dir = tempfile::tempdir().unwrap();
        let engine = FjallEngine::open(dir.path()).unwrap();
        engine
            .write(vec![WriteOp::Put {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            }])
            .unwrap();
        let lsn = engine.flush().unwrap();
        assert_eq!(engine.durable_lsn(), lsn);
        assert!(matches!(engine.journal.sync().unwrap(), Synced::Journals(ids) if !ids.is_empty()));
    }
}
