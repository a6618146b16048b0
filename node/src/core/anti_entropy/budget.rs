//! The byte budget that paces anti-entropy: a token bucket over simulated
//! or real time, passed in.

use std::time::Duration;

/// Bytes anti-entropy may still send, refilled at a fixed rate up to one
/// second's worth. Charges may drive it negative (a step's size is known
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

    /// Whether a new step may start at `now`.
    pub(crate) fn available(&mut self, now: Duration) -> bool {
        self.refill(now);
        self.rate == 0.0 || self.tokens >= 0.0
    }

    /// When the budget is back at zero (`now` if it is already).
    pub(crate) fn ready_at(&self, now: Duration) -> Duration {
        if self.rate == 0.0 || self.tokens >= 0.0 {
            return now;
        }
        self.at + Duration::from_secs_f64(-self.tokens / self.rate)
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
        assert_eq!(b.ready_at(s(0)), s(2));
        assert!(!b.available(Duration::from_millis(1999)));
        assert!(b.available(s(2)));
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
