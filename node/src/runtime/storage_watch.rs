//! The driver's watch over its storage: noticing a failure, saying so
//! without flooding the log, checking for free space, and recovering.
//!
//! When the engine fails (a full disk, an I/O error: see
//! [`crate::storage::reopen`]) the driver tells the core, which from then on
//! coordinates no write and acknowledges nothing that needs the store,
//! tells the cluster by gossip, and logs the failure once. Every
//! [`PROBE_INTERVAL`] it checks whether [`PROBE_BYTES`] can be written and
//! synced next to the data; once they can, it reopens the engine and starts
//! a new core on it, as after a crash (new incarnation, nothing unflushed
//! kept). Repeated errors meanwhile (each failed flush, each failed check)
//! are counted and summarised at most every [`LOG_EVERY`]: a full disk
//! once wrote 2.1 million identical lines in a minute, enough to fill the
//! disk that holds the log.

use std::time::{Duration, Instant};

use quorra_client::protocol::StorageStatus;
use tracing::{error, warn};

/// Pause between two checks for free space while the storage fails.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Bytes a check for free space writes and syncs: room for the engine to
/// replay its journal and flush a memtable (fjall's is 64 MiB) after the
/// reopen, so that recovery does not fill the disk again at once.
pub const PROBE_BYTES: usize = 64 * 1024 * 1024;

/// Most one repeated storage message is logged (a summary of the repeats).
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// A failure going on.
#[derive(Debug)]
pub struct Failing {
    /// When it began.
    pub since: Instant,
    /// The first error.
    pub error: String,
    /// Flushes that failed since.
    pub failed_flushes: u64,
    /// Checks for space since.
    pub probes: u64,
    /// Why the last check failed.
    pub last_probe_error: Option<String>,
    /// A check is running.
    pub probing: bool,
    /// When the next check starts.
    pub next_probe: Instant,
    /// Repeats not logged since the last summary, and when it was.
    repeats: u64,
    last_log: Instant,
}

/// What the driver knows of its storage.
#[derive(Debug, Default)]
pub struct StorageWatch {
    /// The failure going on, if any.
    pub failing: Option<Failing>,
    /// Failures recovered from.
    pub recoveries: u64,
}

impl StorageWatch {
    /// Records a failure that began with `error`; returns true if it is new
    /// (the caller tells the core and the cluster), logging it once.
    pub fn fail(&mut self, error: &str, now: Instant) -> bool {
        if self.failing.is_some() {
            return false;
        }
        error!(
            error,
            "storage failed: this node takes no writes and acknowledges nothing until it \
             recovers; it still serves reads, and checks for free space every {} s",
            PROBE_INTERVAL.as_secs()
        );
        self.failing = Some(Failing {
            since: now,
            error: error.to_string(),
            failed_flushes: 0,
            probes: 0,
            last_probe_error: None,
            probing: false,
            next_probe: now + PROBE_INTERVAL,
            repeats: 0,
            last_log: now,
        });
        true
    }

    /// A flush failed (after [`StorageWatch::fail`]).
    pub fn flush_failed(&mut self, now: Instant) {
        if let Some(f) = &mut self.failing {
            f.failed_flushes += 1;
        }
        self.repeated(now);
    }

    /// Another storage error while failing: counted, summarised at most
    /// every [`LOG_EVERY`].
    pub fn repeated(&mut self, now: Instant) {
        if let Some(f) = &mut self.failing {
            f.repeats += 1;
            f.summarise(now);
        }
    }

    /// A check for space failed with `error`.
    pub fn probe_failed(&mut self, error: &str, now: Instant) {
        if let Some(f) = &mut self.failing {
            f.probing = false;
            f.probes += 1;
            f.last_probe_error = Some(error.to_string());
            f.next_probe = now + PROBE_INTERVAL;
            f.repeats += 1;
            f.summarise(now);
        }
    }

    /// The storage recovered.
    pub fn recovered(&mut self) {
        self.failing = None;
        self.recoveries += 1;
    }

    /// The status report of `engine`.
    pub fn status(&self, engine: &str, now: Instant) -> StorageStatus {
        let f = self.failing.as_ref();
        StorageStatus {
            engine: engine.to_string(),
            failure: f.map(|f| f.error.clone()),
            failing_for_secs: f.map_or(0, |f| now.duration_since(f.since).as_secs()),
            failed_flushes: f.map_or(0, |f| f.failed_flushes),
            probes: f.map_or(0, |f| f.probes),
            last_probe_error: f.and_then(|f| f.last_probe_error.clone()),
            recoveries: self.recoveries,
        }
    }
}

impl Failing {
    /// Logs a summary of the repeats if the last was long enough ago.
    fn summarise(&mut self, now: Instant) {
        if now.duration_since(self.last_log) < LOG_EVERY {
            return;
        }
        warn!(
            error = %self.error,
            failing_for_secs = now.duration_since(self.since).as_secs(),
            failed_flushes = self.failed_flushes,
            probes = self.probes,
            last_probe_error = self.last_probe_error.as_deref().unwrap_or(""),
            repeats = self.repeats,
            "storage still failing: no writes are taken here until space is freed"
        );
        self.repeats = 0;
        self.last_log = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_logged_once_then_summarised_and_probes_back_off() {
        let t = Instant::now();
        let mut watch = StorageWatch::default();
        assert!(watch.fail("disk full", t));
        assert!(!watch.fail("disk full", t), "already failing");
        for i in 0..10_000u32 {
            watch.flush_failed(t + Duration::from_millis(u64::from(i)));
        }
        let f = watch.failing.as_ref().unwrap();
        assert_eq!(f.failed_flushes, 10_000);
        // Ten seconds of repeats: no summary yet, everything counted.
        assert_eq!(f.repeats, 10_000);
        assert_eq!(f.next_probe, t + PROBE_INTERVAL);
        watch.probe_failed("no space", t + LOG_EVERY);
        let f = watch.failing.as_ref().unwrap();
        assert_eq!(f.repeats, 0, "summarised after LOG_EVERY");
        assert_eq!(f.next_probe, t + LOG_EVERY + PROBE_INTERVAL);
        let status = watch.status("fjall", t + LOG_EVERY);
        assert_eq!(status.failure.as_deref(), Some("disk full"));
        assert_eq!((status.probes, status.failing_for_secs), (1, 60));
        watch.recovered();
        let status = watch.status("fjall", t + LOG_EVERY);
        assert_eq!((status.failure, status.recoveries), (None, 1));
    }
}
