//! The applied/durable LSN pair every engine keeps.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Lsn;

/// Counts applied write batches and remembers how far a flush reached.
///
/// A batch takes its LSN *after* the engine accepted it, and a flush reads
/// the applied LSN *before* it syncs; so every LSN a flush reports durable
/// belongs to a batch that was in the engine when the sync began.
#[derive(Debug, Default)]
pub(crate) struct LsnClock {
    applied: AtomicU64,
    durable: AtomicU64,
}

impl LsnClock {
    /// Numbers a batch the engine has just accepted.
    pub(crate) fn next_applied(&self) -> Lsn {
        self.applied.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn applied(&self) -> Lsn {
        self.applied.load(Ordering::SeqCst)
    }

    pub(crate) fn durable(&self) -> Lsn {
        self.durable.load(Ordering::SeqCst)
    }

    /// Records that everything up to `lsn` is durable.
    pub(crate) fn mark_durable(&self, lsn: Lsn) -> Lsn {
        self.durable.fetch_max(lsn, Ordering::SeqCst).max(lsn)
    }

    /// Forgets writes after the durable LSN (the simulator's crash).
    pub(crate) fn roll_back_to_durable(&self) {
        self.applied.store(self.durable(), Ordering::SeqCst);
    }

    /// Forgets writes after `lsn`, durable ones too (a power loss of an
    /// engine whose flush is weaker than an fsync).
    pub(crate) fn roll_back_to(&self, lsn: Lsn) {
        self.durable.store(lsn, Ordering::SeqCst);
        self.applied.store(lsn, Ordering::SeqCst);
    }
}
