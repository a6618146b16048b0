//! The fjall engine (default).
//!
//! fjall is a maintained, pure-Rust LSM tree with a write-ahead journal. One
//! keyspace holds the whole key space; a batch is one fjall write batch
//! (atomic). The journal is persisted manually: commits stay in fjall's
//! buffer until our flush hands them to the kernel (`persist(Buffer)`) and
//! `fdatasync`s the journal file outside fjall's lock
//! ([`super::journal_sync`]: a slow disk then delays acknowledgements, not
//! every write the node applies), so nothing is half-durable behind our
//! back and one flush makes a whole group of writes durable.
//!
//! ## Options, and why (measured with `tests/bench/scale.sh`)
//!
//! - **Index and filter blocks pinned in memory at every level.** fjall
//!   pins them for the first two levels only and loads the others through
//!   the block cache. Once a node held more than the cache (1,000,000 keys
//!   of 1 KiB), every point lookup that missed it read and checksummed a
//!   deeper table's whole index block again: three quarters of a node's
//!   time went to `pread` and xxhash, and reads ran at a third of their
//!   small-data rate. Pinned, a lookup reads one data block at most. The
//!   cost is memory outside the block cache, a few bytes per key (counted
//!   in the budget's share for everything else, [`super::budget`]).
//! - **Values of [`BLOB_THRESHOLD`] and more kept apart from the tree**
//!   (key-value separation, fjall's blob files). With 1 KiB values inline,
//!   compaction rewrote every value about ten times on its way down the
//!   levels, and compaction took as much CPU as serving requests; apart,
//!   compaction moves keys and small handles, and a value is written once
//!   (and again only when its blob file is mostly stale: fjall's blob GC).
//!   A lookup of such a value costs one more read, from the blob file.
//! - **A block cache sized from the node's memory budget** (fjall's default
//!   is 32 MiB whatever the machine).
//!
//! fjall stores a keyspace's options with it when it creates it, and never
//! changes them after, so options are versioned by keyspace name
//! ([`KEYSPACE`]). A data directory made with earlier options
//! ([`LEGACY_KEYSPACES`]) has its records moved into a keyspace with the
//! current ones when it is opened ([`FjallEngine::open`]), in atomic
//! batches that insert into the new keyspace and remove from the old (one
//! journal record each), so a crash half-way leaves every record in
//! exactly one of them and the next open finishes the move; then the old
//! keyspace is dropped. A record whose key the new keyspace already holds
//! (only after a downgrade, which is not supported, wrote to the old one)
//! is combined by the caller's rule ([`super::upgrade::combine`]: objects
//! are merged, nothing is put over anything); one that cannot be combined
//! goes to [`UNMOVED_KEYSPACE`], which the node never reads, for an
//! operator, so that the old keyspace can always be dropped and nothing in
//! it can come back later. The old keyspace's files are freed only when
//! it is dropped, so the move needs about as much free space as the old
//! keyspace takes: it checks first, and refuses to start with the figures
//! rather than fill the disk half-way.
//!
//! **Durability:** flushed writes survive process crashes and power loss
//! ([`Durability::Fsync`]). A failed fsync is final (fjall poisons the
//! database, [`JournalSync`] refuses every later sync, as PostgreSQL does
//! after fsyncgate): every later flush fails with a clear error rather than
//! pretending, and the engine is reopened ([`super::reopen`]).

use std::ops::Bound;
use std::path::Path;
use std::time::{Duration, Instant};

use fjall::config::PinningPolicy;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};
use tracing::info;

use super::journal_sync::{JournalSync, Synced};
use super::lsn::LsnClock;
use super::{Durability, Engine, Lsn, Pair, StorageError, WriteOp};

const NAME: &str = "fjall";

/// The keyspace holding the node's records, named for the options it was
/// created with (see the module doc): version 2 pins index and filter
/// blocks and separates values from [`BLOB_THRESHOLD`].
pub const KEYSPACE: &str = "quorra-2";

/// Keyspaces of earlier options, whose records are moved into [`KEYSPACE`]
/// when the engine opens: `quorra` (version 1: fjall's default pinning,
/// values separated from 16 KiB).
pub const LEGACY_KEYSPACES: [&str; 1] = ["quorra"];

/// Values (encoded objects) at least this large are kept in blob files:
/// 1 KiB, fjall's own default.
pub const BLOB_THRESHOLD: u32 = 1024;

/// Where records of a legacy keyspace that cannot be combined with the
/// current keyspace's are kept, for an operator; the node never reads it.
pub const UNMOVED_KEYSPACE: &str = "quorra-unmoved";

/// Free space the move from a legacy keyspace wants beyond what is left to
/// copy: room for the journal and the new keyspace's compactions.
const MOVE_SPACE_MARGIN: u64 = 256 << 20;

/// Bytes moved per atomic batch from a legacy keyspace, at most (one
/// larger record moves alone).
const MOVE_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// How often a move from a legacy keyspace logs its progress.
const MOVE_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What the engine does with a record moving from a legacy keyspace whose
/// key the current keyspace already holds: `(key, present, moving)` gives
/// the value to keep, or `None` to leave the record where it is.
pub type Combine<'a> = &'a dyn Fn(&[u8], &[u8], &[u8]) -> Option<Vec<u8>>;

/// A fjall database used as an ordered map.
pub struct FjallEngine {
    db: Database,
    keyspace: Keyspace,
    lsn: LsnClock,
    journal: JournalSync,
}

fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .manual_journal_persist(true)
        .max_memtable_size(super::budget::MEMTABLE_BYTES)
        .index_block_pinning_policy(PinningPolicy::all(true))
        .filter_block_pinning_policy(PinningPolicy::all(true))
        .with_kv_separation(Some(
            KvSeparationOptions::default().separation_threshold(BLOB_THRESHOLD),
        ))
}

impl FjallEngine {
    /// Opens or creates the database in `dir`, with a block cache of
    /// `block_cache` bytes; records of a legacy keyspace are moved into the
    /// current one first, `combine` deciding for keys held by both.
    pub fn open(dir: &Path, block_cache: u64, combine: Combine<'_>) -> Result<Self, StorageError> {
        let err =
            |e: fjall::Error| StorageError::engine(NAME, format!("opening {}: {e}", dir.display()));
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .cache_size(block_cache)
            .open()
            .map_err(err)?;
        let keyspace = db.keyspace(KEYSPACE, keyspace_options).map_err(err)?;
        for legacy in LEGACY_KEYSPACES {
            if db.keyspace_exists(legacy) {
                move_legacy(&db, dir, legacy, &keyspace, combine).map_err(|e| {
                    StorageError::engine(
                        NAME,
                        format!(
                            "moving {} to the current storage options (keyspace {KEYSPACE}): {e}",
                            dir.display()
                        ),
                    )
                })?;
            }
        }
        Ok(Self {
            db,
            keyspace,
            lsn: LsnClock::default(),
            journal: JournalSync::new(dir),
        })
    }
}

/// Moves every record of keyspace `name` into `to`, then drops `name`
/// (see the module doc).
fn move_legacy(
    db: &Database,
    dir: &Path,
    name: &str,
    to: &Keyspace,
    combine: Combine<'_>,
) -> Result<(), MoveError> {
    let from = db.keyspace(name, KeyspaceCreateOptions::default)?;
    check_space(dir, from.disk_space().saturating_sub(to.disk_space()))?;
    let estimate = from.approximate_len();
    info!(
        from = name,
        to = KEYSPACE,
        records = estimate,
        "moving the store to the current storage options; the node serves once this is done"
    );
    let started = Instant::now();
    let mut logged = started;
    let (mut moved, mut set_aside) = (0u64, 0u64);
    let mut after: Option<fjall::UserKey> = None;
    loop {
        let lower = after.clone().map_or(Bound::Unbounded, Bound::Excluded);
        let mut batch = db.batch();
        let (mut bytes, mut last) = (0usize, None);
        for guard in from.range::<fjall::UserKey, _>((lower, Bound::Unbounded)) {
            let (key, value) = guard.into_inner()?;
            last = Some(key.clone());
            let keep = match to.get(&key)? {
                None => Some(value.to_vec()),
                Some(present) => combine(&key, &present, &value),
            };
            match keep {
                Some(value) => {
                    bytes += key.len() + value.len();
                    batch.insert(to, key.clone(), value);
                    batch.remove(&from, key);
                    moved += 1;
                }
                None => {
                    let unmoved = db.keyspace(UNMOVED_KEYSPACE, KeyspaceCreateOptions::default)?;
                    batch.insert(&unmoved, key.clone(), value);
                    batch.remove(&from, key);
                    set_aside += 1;
                }
            }
            if bytes >= MOVE_BATCH_BYTES {
                break;
            }
        }
        let Some(last) = last else { break };
        after = Some(last);
        batch.commit()?;
        if logged.elapsed() >= MOVE_PROGRESS_EVERY {
            logged = Instant::now();
            info!(
                moved,
                of_about = estimate,
                "moving the store to the current storage options"
            );
        }
    }
    db.persist(PersistMode::SyncAll)?;
    db.delete_keyspace(from)?;
    if set_aside > 0 {
        tracing::warn!(
            keyspace = UNMOVED_KEYSPACE,
            records = set_aside,
            "records that could not be combined with the current keyspace's were set aside; the node does not read them"
        );
    }
    info!(
        moved,
        secs = started.elapsed().as_secs_f64(),
        "the store is on the current storage options"
    );
    Ok(())
}

/// Why a move from a legacy keyspace stopped.
#[derive(Debug, thiserror::Error)]
enum MoveError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] fjall::Error),
    /// The file system lacks the room the move needs.
    #[error(
        "it needs about {need} MiB free on the data directory's file system and {free} MiB are: \
         free some space and start again, or start this node on an empty data directory under \
         the same --node-id with --seeds (it takes its place back and its data comes back from \
         the other replicas)"
    )]
    Space {
        /// MiB needed.
        need: u64,
        /// MiB free.
        free: u64,
    },
}

/// Whether `dir`'s file system has room to copy `bytes` more (and a
/// margin); an unknown figure is taken as room.
fn check_space(dir: &Path, bytes: u64) -> Result<(), MoveError> {
    let need = bytes + MOVE_SPACE_MARGIN;
    let Ok(v) = rustix::fs::statvfs(dir) else {
        return Ok(());
    };
    let free = v.f_bavail.saturating_mul(v.f_frsize);
    if free < need {
        return Err(MoveError::Space {
            need: need >> 20,
            free: free >> 20,
        });
    }
    Ok(())
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
    fn a_move_that_cannot_fit_is_refused_with_the_figures() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_space(dir.path(), 1 << 60).unwrap_err().to_string();
        assert!(
            err.contains("MiB free") && err.contains("--node-id"),
            "{err}"
        );
        check_space(dir.path(), 0).unwrap();
    }

    #[test]
    fn fjall_keeps_its_journal_where_the_flush_syncs_it() {
        // If a fjall upgrade moved or renamed its journal, the flush would
        // fall back to fjall's own persist (correct, but stalling on a slow
        // disk); this says so at once.
        let dir = tempfile::tempdir().unwrap();
        let engine =
            FjallEngine::open(dir.path(), 1 << 20, &super::super::upgrade::combine).unwrap();
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
