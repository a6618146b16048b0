//! How many client requests a node admits at once, set by how long the
//! admitted ones wait.
//!
//! A fixed count is right for one workload only. Measured through RESP
//! (5,000 connections pipelining SETs, 3 nodes on two cores), the default
//! 4,096 per node admitted about two seconds of work: Little's law with the
//! cluster completing ~6,000 SETs/s and ~12,000 admitted gives 2 s, the
//! request timeout, so most admitted SETs failed after costing their work.
//! The right count is the cluster's throughput times the delay a client
//! should accept, and both change with the request mix, the disk and the
//! number of nodes.
//!
//! So the limit follows the delay, as CoDel does for packets: every
//! [`INTERVAL`] it looks at the *fastest* request answered in that
//! interval. If even that one took longer than the target while at least
//! [`MIN_LIMIT`] requests were in flight, the delay is a standing queue,
//! not a burst, and the limit becomes three quarters of the most requests
//! in flight during the interval (or of itself, if fewer were): shrinking
//! from the ceiling alone would take seconds when the ceiling is far above
//! what the node holds. Slow answers with few requests in flight are no
//! queue this node could shorten by refusing (a replica is down, a disk is
//! slow) and change nothing. If the fastest answer was quick, and the
//! requests in flight used at least half the limit, the limit grows by an
//! eighth, up to the configured ceiling (`--max-requests-in-flight`); a
//! limit nobody presses against is left alone, so a node idle after an
//! overload does not forget what it learned before the next one. An
//! interval in which nothing was answered changes nothing: the requests
//! that are stuck will be answered (at the latest when they time out) and
//! then count; nor does one that ended long ago (a quiet node's last
//! answer says nothing about the load when the next one comes). The
//! minimum, not a percentile, makes one slow request (a slow disk, a large
//! value) harmless: only when every answer is late does the node shed
//! more. Only answers that waited count: a request refused or rejected
//! at once (`overloaded`, invalid, a storage error) would make any queue
//! look short, so the runtime leaves it out.
//!
//! The target is a fraction ([`TARGET_OF_TIMEOUT`]) of the request timeout,
//! so that a request admitted behind a full queue still completes well
//! within it. The limit never goes below [`MIN_LIMIT`]. A cluster whose
//! requests take longer than the target even unloaded (replicas in far
//! zones with a short timeout) would be held near that floor whenever many
//! requests are in flight: its request timeout must be at least eight
//! times its unloaded latency (`quorra status` says when a node admits
//! fewer than its ceiling, and why).
//!
//! The controller is a plain value with time passed in, like the core:
//! [`super::admission`] owns the clock and the locking.

use std::time::Duration;

/// How often the limit is reconsidered.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The target delay is the request timeout divided by this: 250 ms at
/// the default 2 s timeout.
pub const TARGET_OF_TIMEOUT: u32 = 8;

/// The limit never goes below this many requests.
pub const MIN_LIMIT: usize = 32;

/// The admission limit and what it was last decided from.
#[derive(Clone, Debug)]
pub struct DelayLimit {
    ceiling: usize,
    limit: usize,
    target: Duration,
    /// When the current interval began.
    started: Duration,
    /// The fastest answer in the current interval.
    fastest: Option<Duration>,
    /// The most requests in flight at an answer in the current interval.
    peak: usize,
}

impl DelayLimit {
    /// A limit starting at, and never above, `ceiling`, aiming for answers
    /// within `request_timeout / TARGET_OF_TIMEOUT`.
    pub fn new(ceiling: usize, request_timeout: Duration) -> Self {
        let ceiling = ceiling.max(1);
        Self {
            ceiling,
            limit: ceiling,
            target: request_timeout / TARGET_OF_TIMEOUT,
            started: Duration::ZERO,
            fastest: None,
            peak: 0,
        }
    }

    /// Requests that may be admitted at once now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The limit it never exceeds.
    pub fn ceiling(&self) -> usize {
        self.ceiling
    }

    /// The delay the limit aims to keep answers within.
    pub fn target(&self) -> Duration {
        self.target
    }

    /// A request admitted at some point was answered at `now`, `delay`
    /// after; `in_flight` are still unanswered.
    pub fn answered(&mut self, now: Duration, delay: Duration, in_flight: usize) {
        self.roll(now, in_flight);
        self.fastest = Some(self.fastest.map_or(delay, |f| f.min(delay)));
        // Counting the answered one: it was in flight until now.
        self.peak = self.peak.max(in_flight + 1);
    }

    /// Closes the interval if it is over, and decides from it.
    pub fn roll(&mut self, now: Duration, in_flight: usize) {
        if now < self.started + INTERVAL {
            return;
        }
        let floor = MIN_LIMIT.min(self.ceiling);
        let stale = now >= self.started + 2 * INTERVAL;
        let peak = self.peak.max(in_flight);
        match self.fastest {
            _ if stale => {}
            Some(fastest) if fastest > self.target && peak >= MIN_LIMIT => {
                let base = self.limit.min(peak);
                self.limit = (base - base / 4).max(floor);
            }
            // Slow, but no queue this node could shorten.
            Some(fastest) if fastest > self.target => {}
            Some(_) if peak >= self.limit / 2 => {
                self.limit = (self.limit + (self.limit / 8).max(1)).min(self.ceiling);
            }
            _ => {}
        }
        self.started = now;
        self.fastest = None;
        self.peak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs `intervals` intervals in which requests are answered after
    /// `delays` each while `demand` are wanted in flight (as many as the
    /// limit lets in), starting at `at`; returns the time after.
    fn run(
        limit: &mut DelayLimit,
        at: Duration,
        intervals: u64,
        delays: &[u64],
        demand: usize,
    ) -> Duration {
        let mut now = at;
        for _ in 0..intervals {
            for (i, d) in delays.iter().enumerate() {
                let in_flight = demand.min(limit.limit());
                limit.answered(now + ms(i as u64), ms(*d), in_flight);
            }
            now += INTERVAL;
        }
        now
    }

    #[test]
    fn a_standing_queue_shrinks_the_limit_to_the_floor_and_short_waits_bring_it_back() {
        let mut limit = DelayLimit::new(4096, TIMEOUT);
        assert_eq!(limit.target(), ms(250));
        let now = run(&mut limit, Duration::ZERO, 3, &[400, 900, 1200], 100_000);
        assert!(
            limit.limit() < 4096 && limit.limit() > MIN_LIMIT,
            "{limit:?}"
        );
        let now = run(&mut limit, now, 40, &[400, 900, 1200], 100_000);
        assert_eq!(limit.limit(), MIN_LIMIT);
        run(&mut limit, now, 60, &[5, 12], 100_000);
        assert_eq!(limit.limit(), 4096, "back to the ceiling, never above");
    }

    #[test]
    fn a_ceiling_far_above_what_is_in_flight_shrinks_from_what_is() {
        let mut limit = DelayLimit::new(1_000_000, TIMEOUT);
        run(&mut limit, Duration::ZERO, 2, &[800], 20_000);
        assert!(limit.limit() < 16_000, "{limit:?}");
    }

    #[test]
    fn one_fast_answer_in_an_interval_means_no_standing_queue() {
        let mut limit = DelayLimit::new(1000, TIMEOUT);
        // Slow answers (a slow disk, a big value) beside fast ones.
        run(&mut limit, Duration::ZERO, 20, &[1900, 20, 1800], 5000);
        assert_eq!(limit.limit(), 1000);
    }

    #[test]
    fn silence_changes_nothing_and_only_demand_grows_the_limit() {
        let mut limit = DelayLimit::new(1000, TIMEOUT);
        let now = run(&mut limit, Duration::ZERO, 5, &[600], 5000);
        // Closes the last interval with answers.
        limit.roll(now, 7);
        let shrunk = limit.limit();
        assert!(shrunk < 1000);
        for i in 1..20 {
            limit.roll(now + INTERVAL * i, 7);
        }
        assert_eq!(
            limit.limit(),
            shrunk,
            "stuck requests are judged when answered"
        );
        let now = run(&mut limit, now + INTERVAL * 20, 20, &[3], 2);
        assert_eq!(limit.limit(), shrunk, "fast answers, but nobody wants more");
        run(&mut limit, now, 20, &[3], 5000);
        assert!(limit.limit() > shrunk, "fast answers and demand");
    }

    #[test]
    fn a_quiet_node_keeps_its_limit_after_a_slow_answer() {
        let mut limit = DelayLimit::new(4096, TIMEOUT);
        // A lone request timed out (a replica was down); the next answer
        // comes minutes later.
        limit.answered(ms(50), ms(2000), 0);
        limit.answered(ms(180_000), ms(4), 0);
        limit.roll(ms(180_150), 0);
        assert_eq!(limit.limit(), 4096);
        // Light traffic, every answer slow: no queue to shorten.
        let now = run(&mut limit, ms(200_000), 20, &[700, 900], 5);
        assert_eq!(limit.limit(), 4096);
        // A slow answer among many in flight, then a long silence: what
        // the load was minutes ago decides nothing now.
        limit.answered(now + ms(500), ms(900), 200);
        limit.answered(now + ms(300_000), ms(4), 0);
        assert_eq!(limit.limit(), 4096);
    }

    #[test]
    fn a_ceiling_below_the_floor_is_the_limit() {
        let mut limit = DelayLimit::new(3, TIMEOUT);
        run(&mut limit, Duration::ZERO, 10, &[1500], 100);
        assert_eq!(limit.limit(), 3);
    }
}
