//! The byte budget that paces anti-entropy and pulls: a token bucket over
//! simulated or real time, passed in.

use std::time::Duration;

/// Bytes an exchange may still send, refilled at its rate (set at start,
/// and changed by pacing for pulls) up to one second's worth. Charges may drive it negative (a step's size is known
/// only once it is built); no new step starts until it is back at zero.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    rate: f64,
    tokens: f64,
    at: Duration,
}

impl Budget {
    /// A full budget of `rate` bytes per second at `now` (0: unlimited).
    pub(crate) fn new(rate: u64, now: Duration) -> Self {
        Self {
            rate: rate as f64,
            tokens: rate as f64,
            at: now,
        }
    }

    fn refill(&mut self, now: Duration) {
        if now > self.at {
            let earned = (now - self.at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(self.rate);
            self.at = now;
        }
    }

    /// Spends `bytes` at `now`.
    pub(crate) fn charge(&mut self, now: Duration, bytes: usize) {
        if self.rate > 0.0 {
            self.refill(now);
            self.tokens -= bytes as f64;
        }
    }

    /// Paces at `rate` bytes per second from `now` on (0: unlimited); a
    /// debt stays, and is repaid at the new rate.
    pub(crate) fn set_rate(&mut self, now: Duration, rate: f64) {
        if self.rate > 0.0 {
            self.refill(now);
        }
        self.rate = rate;
        self.tokens = self.tokens.min(rate);
        self.at = now;
    }

    /// Whether a new step may start at `now`.
    pub(crate) fn available(&mut self, now: Duration) -> bool {
        self.refill(now);
        self.rate == 0.0 || self.tokens >= 0.0
    }

    /// When the budget is back at zero (`now` if it is already), a
    /// microsecond late rather than early.
    pub(crate) fn ready_at(&self, now: Duration) -> Duration {
        if self.rate == 0.0 || self.tokens >= 0.0 {
            return now;
        }
        // A microsecond later than the exact instant, which floating point
        // may put a hair short of zero: a caller woken then finds the
        // budget available rather than waking again at the same moment.
        self.at + Duration::from_secs_f64(-self.tokens / self.rate) + Duration::from_micros(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debt_is_repaid_at_the_rate() {
        let s = Duration::from_secs;
        let mut b = Budget::new(1000, s(0));
        assert!(b.available(s(0)));
        b.charge(s(0), 3000);
        assert!(!b.available(s(0)));
        assert_eq!(b.ready_at(s(0)), s(2) + Duration::from_micros(1));
        assert!(!b.available(Duration::from_millis(1999)));
        assert!(b.available(s(2)));
    }

    #[test]
    fn a_new_rate_keeps_the_debt_and_repays_it_at_the_new_rate() {
        let s = Duration::from_secs;
        let mut b = Budget::new(1000, s(0));
        b.charge(s(0), 3000);
        b.set_rate(s(1), 500.0);
        // 1 s at 1000 repaid 1000 of the 2000 owed: 1000 left at 500/s.
        assert_eq!(b.ready_at(s(1)), s(3) + Duration::from_micros(1));
        b.set_rate(s(3), 2000.0);
        assert!(b.available(s(3)));
        b.charge(s(3), 3000);
        assert_eq!(
            b.ready_at(s(3)),
            s(3) + Duration::from_millis(1500) + Duration::from_micros(1)
        );
    }

    #[test]
    fn a_caller_woken_when_the_budget_is_ready_finds_it_available() {
        let mut b = Budget::new(1000, Duration::ZERO);
        let mut now = Duration::ZERO;
        for i in 0..10_000u32 {
            b.set_rate(now, 625.0 + f64::from(i % 7) * 0.1);
            b.charge(now, 333 + (i as usize % 13));
            now = b.ready_at(now);
            assert!(b.available(now), "step {i}: not available at {now:?}");
        }
    }

    #[test]
    fn the_budget_holds_at_most_one_second() {
        let s = Duration::from_secs;
        let mut b = Budget::new(1000, s(0));
        assert!(b.available(s(100)));
        b.charge(s(100), 1001);
        assert!(!b.available(s(100)));
    }

    #[test]
    fn zero_means_unlimited() {
        let mut b = Budget::new(0, Duration::ZERO);
        b.charge(Duration::ZERO, usize::MAX);
        assert!(b.available(Duration::ZERO));
    }
}
