//! Making fjall's journal durable without holding fjall's journal lock.
//!
//! fjall's `persist(SyncData)` calls `fdatasync` while it holds the lock
//! every write batch needs to append to the journal. On a disk whose flush
//! takes seconds (a full device queue, a sector being retried, a noisy
//! neighbour on shared storage) every write the driver applies meanwhile
//! waits for that lock, so the whole node stalls: it coordinates nothing,
//! answers no replica, gossips nothing, for as long as each flush takes
//! (measured: with a 2 s `fdatasync` on one of three nodes, a quarter of
//! all quorum writes timed out, though the other two replicas were
//! enough for every one of them).
//!
//! So a flush here is two steps:
//!
//! 1. `persist(Buffer)`, under fjall's lock: fjall's in-process buffer is
//!    handed to the kernel (a `write`, microseconds); every batch committed
//!    before it is now in the page cache of the active journal file;
//! 2. `fdatasync` of the journal files through descriptors of our own,
//!    outside fjall's lock, while the node goes on applying the next batches.
//!    `fdatasync` makes the *file's* data durable (POSIX: "all modified data
//!    of the file referred to by fd"), whichever descriptor asks.
//!
//! Why step 2 cannot miss a batch of step 1: fjall writes every batch
//! through one journal writer into one active file, `<dir>/<id>.jnl`, and
//! seals a journal with `fsync` (under its lock, after our hand-off) before
//! it moves to the next; it deletes only sealed journals. Step 2 syncs
//! *every* journal file in the directory, not only the newest: a rotation
//! that failed after creating the next file leaves the writer on the old
//! one, with an empty newer file beside it (fjall then poisons the
//! database, but only after releasing its lock, so a batch can slip in
//! between). Sealed journals are clean, so syncing them again costs a
//! system call each, not a write; fjall keeps a handful at most (one per
//! memtable not yet on disk). A journal that vanished between the listing
//! and the open was sealed and is skipped.
//!
//! This leans on fjall's journal layout (checked against the version in
//! Cargo.lock, and by the tests below): if a later fjall stops keeping
//! `*.jnl` files in its directory, [`JournalSync::sync`] finds none and
//! the engine falls back to fjall's own `persist(SyncData)`, slow-disk
//! stall and all, rather than acknowledging anything unflushed.
//!
//! A failed `fdatasync` is final for this engine (after fsyncgate, the
//! kernel may have dropped the dirty pages it could not write, and a retry
//! that succeeds proves nothing): [`JournalSync`] refuses every later sync,
//! and the node stops acknowledging writes ([`super::reopen`]). Known gap,
//! not closed here: an in-place reopen after such an *I/O error* (rather
//! than a full disk) may replay journal records that are still in the page
//! cache but never reached the disk, and append after them; descriptors
//! are kept open per journal file so that a write-back error of one is
//! reported to us, not only to whoever syncs first.
//!
//! What still waits for the disk under fjall's lock: sealing a journal when
//! a memtable is rotated (an `fsync` of the old file, of the new one, and of
//! the directory). That is once per memtable (tens of MiB of writes), not
//! once per batch.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The suffix of fjall's journal files.
const JOURNAL_SUFFIX: &str = ".jnl";

/// Syncs the journal files of the fjall database in `dir`.
#[derive(Debug)]
pub(super) struct JournalSync {
    dir: PathBuf,
    /// Our descriptor of every journal file seen and still present, kept
    /// open so that a write-back error of that file is reported to us.
    open: Mutex<BTreeMap<u64, File>>,
    failed: AtomicBool,
}

/// What [`JournalSync::sync`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Synced {
    /// These journals (by id) are durable up to the hand-off.
    Journals(Vec<u64>),
    /// No journal file was found: the caller must sync by other means.
    NoJournal,
}

impl JournalSync {
    /// For the database in `dir`.
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            open: Mutex::new(BTreeMap::new()),
            failed: AtomicBool::new(false),
        }
    }

    /// Makes every journal file durable (step 2 of the module
    /// documentation). Call only after fjall's buffer was handed off.
    pub(super) fn sync(&self) -> io::Result<Synced> {
        if self.failed.load(Ordering::Acquire) {
            return Err(io::Error::other(
                "an earlier fdatasync of the journal failed; the engine must be reopened",
            ));
        }
        let ids = journals(&self.dir)?;
        if ids.is_empty() {
            return Ok(Synced::NoJournal);
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|id, _| ids.contains(id));
        let mut synced = Vec::with_capacity(ids.len());
        for id in ids {
            let file = match open.entry(id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    match File::open(self.dir.join(format!("{id}{JOURNAL_SUFFIX}"))) {
                        Ok(file) => e.insert(file),
                        // Deleted since the listing: it was sealed (synced).
                        Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(err),
                    }
                }
            };
            file.sync_data().inspect_err(|_| {
                self.failed.store(true, Ordering::Release);
            })?;
            synced.push(id);
        }
        Ok(Synced::Journals(synced))
    }
}

/// The ids of the `<id>.jnl` files in `dir`, ascending.
fn journals(dir: &Path) -> io::Result<BTreeSet<u64>> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(JOURNAL_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.insert(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_journal_file_is_synced_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert!(journals(dir.path()).unwrap().is_empty());
        for name in ["lock", "version", "7.jnl", "12.jnl", "x.jnl", "3.jnl.tmp"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("keyspaces")).unwrap();
        let sync = JournalSync::new(dir.path());
        assert_eq!(sync.sync().unwrap(), Synced::Journals(vec![7, 12]));
        // A sealed journal deleted, a new one started: descriptors follow.
        std::fs::remove_file(dir.path().join("7.jnl")).unwrap();
        std::fs::write(dir.path().join("13.jnl"), b"").unwrap();
        assert_eq!(sync.sync().unwrap(), Synced::Journals(vec![12, 13]));
        let open: Vec<u64> = sync.open.lock().unwrap().keys().copied().collect();
        assert_eq!(open, [12, 13]);
    }

    #[test]
    fn without_a_journal_file_the_caller_is_told_to_sync_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lock"), b"").unwrap();
        assert_eq!(
            JournalSync::new(dir.path()).sync().unwrap(),
            Synced::NoJournal
        );
    }
}
