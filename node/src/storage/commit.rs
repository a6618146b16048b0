//! Group commit: when to flush, and when an acknowledgement may go out.
//!
//! Drivers (the runtime and the simulator) apply a batch of inputs to the
//! core, then ask [`GroupCommit`] whether to flush, and release the
//! acknowledgements whose writes are durable. One flush covers every write
//! of the batch, so the cost of an fsync is shared by all of them.
//!
//! - [`SyncMode::Always`] (default): flush after every batch that wrote
//!   something; an acknowledgement waits until its write's LSN is durable.
//!   Nothing acknowledged is lost on power loss (with an engine whose flush
//!   is an fsync).
//! - [`SyncMode::Periodic`]: flush at most every `interval`; acknowledge as
//!   soon as the write is applied. Faster; a power loss (or, with the memory
//!   engine's crash model, a crash) may lose the last `interval` of
//!   acknowledged writes. Cassandra's `commitlog_sync: periodic` makes the
//!   same trade.
//!
//! Time is passed in as a [`Duration`] since an arbitrary origin: this type
//! never reads a clock.

use std::time::Duration;

use super::Lsn;

/// Default interval of [`SyncMode::Periodic`]: 50 ms.
pub const DEFAULT_PERIODIC_INTERVAL: Duration = Duration::from_millis(50);

/// How long after a failed flush the next is tried. A failed flush does
/// not heal by itself (a full disk, a poisoned engine: see
/// [`super::reopen`]); retrying at once only spins and floods the log.
pub const FLUSH_RETRY: Duration = Duration::from_secs(1);

/// When writes are made durable relative to their acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Flush per batch; acknowledge only durable writes.
    #[default]
    Always,
    /// Flush every `interval`; acknowledge applied writes.
    Periodic {
        /// Time between flushes.
        interval: Duration,
    },
}

impl std::fmt::Display for SyncMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncMode::Always => f.write_str("always"),
            SyncMode::Periodic { interval } => write!(f, "periodic ({} ms)", interval.as_millis()),
        }
    }
}

/// Tracks flushes for one store under one [`SyncMode`].
///
/// The driver asks [`GroupCommit::poll_flush`] after each batch of inputs;
/// when it says yes, a flush is considered in progress until
/// [`GroupCommit::flushed`], and no other is asked for meanwhile.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    mode: SyncMode,
    last_flush: Option<Duration>,
    in_progress: bool,
    /// After a failed flush: not another before this.
    retry_at: Option<Duration>,
}

impl GroupCommit {
    /// A tracker for `mode`; nothing flushed yet.
    pub fn new(mode: SyncMode) -> Self {
        Self {
            mode,
            last_flush: None,
            in_progress: false,
            retry_at: None,
        }
    }

    /// The mode.
    pub fn mode(&self) -> SyncMode {
        self.mode
    }

    /// Whether an acknowledgement that depends on the write with `lsn` may
    /// be released when `durable` is the durable LSN.
    pub fn can_acknowledge(&self, lsn: Lsn, durable: Lsn) -> bool {
        match self.mode {
            SyncMode::Always => lsn <= durable,
            SyncMode::Periodic { .. } => true,
        }
    }

    /// Whether the driver should flush now.
    pub fn flush_due(&self, now: Duration, applied: Lsn, durable: Lsn) -> bool {
        if applied <= durable || self.in_progress || self.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        match self.mode {
            SyncMode::Always => true,
            SyncMode::Periodic { interval } => self
                .last_flush
                .is_none_or(|last| now.saturating_sub(last) >= interval),
        }
    }

    /// If a flush is due now, records that one starts and returns true: the
    /// driver must then flush and call [`GroupCommit::flushed`].
    pub fn poll_flush(&mut self, now: Duration, applied: Lsn, durable: Lsn) -> bool {
        if !self.flush_due(now, applied, durable) {
            return false;
        }
        self.in_progress = true;
        self.last_flush = Some(now);
        true
    }

    /// When a periodic flush will next be due if no input arrives (`None`:
    /// in `always` mode, where the driver flushes after each batch of
    /// inputs; while a flush is in progress; or when nothing is pending).
    pub fn next_flush_at(&self, applied: Lsn, durable: Lsn) -> Option<Duration> {
        if applied <= durable || self.in_progress {
            return None;
        }
        if let Some(at) = self.retry_at {
            return Some(at);
        }
        match self.mode {
            SyncMode::Always => None,
            SyncMode::Periodic { interval } => Some(
                self.last_flush
                    .map_or(Duration::ZERO, |last| last + interval),
            ),
        }
    }

    /// Records that the flush in progress completed.
    pub fn flushed(&mut self, _now: Duration) {
        self.in_progress = false;
        self.retry_at = None;
    }

    /// Records that the flush in progress failed: nothing it covered is
    /// durable, and the next flush waits [`FLUSH_RETRY`].
    pub fn failed(&mut self, now: Duration) {
        self.in_progress = false;
        self.retry_at = Some(now + FLUSH_RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_acknowledges_only_durable_writes() {
        let mut g = GroupCommit::new(SyncMode::Always);
        assert!(!g.can_acknowledge(3, 2));
        assert!(g.can_acknowledge(2, 2));
        assert!(!g.poll_flush(Duration::ZERO, 2, 2), "nothing to flush");
        assert!(g.poll_flush(Duration::ZERO, 3, 2));
        assert!(!g.poll_flush(Duration::ZERO, 4, 2), "one flush at a time");
        assert_eq!(g.next_flush_at(4, 2), None);
        g.flushed(Duration::from_millis(1));
        assert!(g.poll_flush(Duration::from_millis(1), 4, 3));
    }

    #[test]
    fn a_failed_flush_is_retried_after_a_pause_not_at_once() {
        let mut g = GroupCommit::new(SyncMode::Always);
        let t = Duration::from_secs(10);
        assert!(g.poll_flush(t, 3, 2));
        g.failed(t);
        assert!(!g.can_acknowledge(3, 2), "nothing it covered is durable");
        assert!(!g.poll_flush(t + Duration::from_millis(1), 4, 2));
        assert_eq!(g.next_flush_at(4, 2), Some(t + FLUSH_RETRY));
        assert!(g.poll_flush(t + FLUSH_RETRY, 4, 2));
        g.flushed(t + FLUSH_RETRY);
        assert!(
            g.poll_flush(t + FLUSH_RETRY, 5, 4),
            "flushes as before once one succeeds"
        );
    }

    #[test]
    fn periodic_acknowledges_at_once_and_flushes_on_schedule() {
        let interval = Duration::from_millis(50);
        let mut g = GroupCommit::new(SyncMode::Periodic { interval });
        assert!(g.can_acknowledge(10, 0));
        assert!(g.poll_flush(Duration::from_millis(100), 1, 0));
        g.flushed(Duration::from_millis(101));
        assert!(!g.poll_flush(Duration::from_millis(120), 5, 1));
        assert_eq!(g.next_flush_at(5, 1), Some(Duration::from_millis(150)));
        assert!(g.poll_flush(Duration::from_millis(150), 5, 1));
        assert_eq!(g.next_flush_at(5, 5), None);
    }
}
