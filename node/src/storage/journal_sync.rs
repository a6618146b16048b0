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
//! 2. `fdatasync` of that file through a descriptor of our own, outside
//!    fjall's lock, while the node goes on applying the next batches.
//!    `fdatasync` makes the *file's* data durable (POSIX: "all modified data
//!    of the file referred to by fd"), whichever descriptor asks.
//!
//! Why step 2 cannot miss a batch of step 1: the journal is one file at a
//! time, `<dir>/<id>.jnl`, and fjall seals a journal with `fsync` (under its
//! lock, after our buffer hand-off) before it opens the next one. So the
//! newest journal when step 2 looks is the file step 1 wrote to, or a newer
//! one, in which case the file step 1 wrote to was sealed, so durable. A
//! journal that vanished between the listing and the open was sealed too
//! (fjall deletes only sealed journals whose memtables are on disk).
//!
//! This leans on fjall's journal layout (checked against the version in
//! Cargo.lock, and by the tests below): if a later fjall stops keeping
//! `*.jnl` files in its directory, [`JournalSync::sync`] finds none and
//! the engine falls back to fjall's own `persist(SyncData)`, slow-disk
//! stall and all, rather than acknowledging anything unflushed.
//!
//! A failed `fdatasync` is final for the engine (after fsyncgate, the
//! kernel may have dropped the dirty pages it could not write, and a retry
//! that succeeds proves nothing): [`JournalSync`] refuses every later sync,
//! and [`super::reopen`] reopens the engine, recovering what the journal
//! really holds.
//!
//! What still waits for the disk under fjall's lock: sealing a journal when
//! a memtable is rotated (an `fsync` of the old file, of the new one, and of
//! the directory). That is once per memtable (tens of MiB of writes), not
//! once per batch.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The suffix of fjall's journal files.
const JOURNAL_SUFFIX: &str = ".jnl";

/// Syncs the active journal file of the fjall database in `dir`.
#[derive(Debug)]
pub(super) struct JournalSync {
    dir: PathBuf,
    /// The journal last synced and our descriptor of it, kept open so
    /// that a write-back error of that file is reported to us.
    open: Mutex<Option<(u64, File)>>,
    failed: AtomicBool,
}

/// What [`JournalSync::sync`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Synced {
    /// The active journal (or a newer one) is durable up to the hand-off.
    Journal,
    /// No journal file was found: the caller must sync by other means.
    NoJournal,
}

impl JournalSync {
    /// For the database in `dir`.
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            open: Mutex::new(None),
            failed: AtomicBool::new(false),
        }
    }

    /// Makes the newest journal file durable (step 2 of the module
    /// documentation). Call only after fjall's buffer was handed off.
    pub(super) fn sync(&self) -> io::Result<Synced> {
        if self.failed.load(Ordering::Acquire) {
            return Err(io::Error::other(
                "an earlier fdatasync of the journal failed; the engine must be reopened",
            ));
        }
        let Some(newest) = newest_journal(&self.dir)? else {
            return Ok(Synced::NoJournal);
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.as_ref().is_none_or(|(id, _)| *id != newest) {
            match File::open(self.dir.join(format!("{newest}{JOURNAL_SUFFIX}"))) {
                Ok(file) => *open = Some((newest, file)),
                // Deleted since the listing: sealed (synced) and replaced.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    *open = None;
                    return Ok(Synced::Journal);
                }
                Err(e) => return Err(e),
            }
        }
        let (_, file) = open.as_ref().expect("opened above");
        file.sync_data().inspect_err(|_| {
            self.failed.store(true, Ordering::Release);
        })?;
        Ok(Synced::Journal)
    }
}

/// The highest id among the `<id>.jnl` files in `dir`.
fn newest_journal(dir: &Path) -> io::Result<Option<u64>> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(JOURNAL_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        newest = newest.max(Some(id));
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_journal_is_the_highest_id_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_journal(dir.path()).unwrap(), None);
        for name in ["lock", "version", "7.jnl", "12.jnl", "x.jnl", "3.jnl.tmp"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("keyspaces")).unwrap();
        assert_eq!(newest_journal(dir.path()).unwrap(), Some(12));
        let sync = JournalSync::new(dir.path());
        assert_eq!(sync.sync().unwrap(), Synced::Journal);
        assert_eq!(
            sync.open.lock().unwrap().as_ref().map(|(id, _)| *id),
            Some(12)
        );
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
