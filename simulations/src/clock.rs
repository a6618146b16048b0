//! A simulated node's clock: an offset, and a rate error whose effect a
//! time service keeps bounded.
//!
//! A clock that runs fast or slow by a fixed rate for a whole run drifts
//! without bound: 1% over the hours of simulated time a long heavy run
//! takes is minutes, which no cluster with NTP ever sees, and against which
//! the expiry checks ("absent on every node within the skew of its
//! expiry") would prove nothing. So a clock here runs at `1 ± drift` but
//! wanders at most [`MAX_WANDER`] from its offset: its error is a triangle
//! wave of slope `drift` and amplitude [`MAX_WANDER`], as when NTP slews a
//! clock back (it never steps it, so a node's clock never goes backwards).
//! Two nodes' clocks are thus within the difference of their offsets plus
//! twice [`MAX_WANDER`] of each other, whatever the length of the run.

use std::time::Duration;

/// Farthest a clock's rate error takes it from its offset.
pub const MAX_WANDER: Duration = Duration::from_millis(500);

/// A node's clock (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Added to the global time.
    offset: Duration,
    /// Rate error while wandering (e.g. 0.01: 1% fast, then 1% slow).
    drift: f64,
}

impl Clock {
    /// A clock `offset` ahead of global time whose rate is off by `drift`
    /// (|drift| < 1).
    pub fn new(offset: Duration, drift: f64) -> Self {
        assert!(drift.abs() < 1.0, "a clock rate error of {drift}");
        Self { offset, drift }
    }

    /// The clock's reading at global time `now`.
    pub fn local(&self, now: Duration) -> Duration {
        let t = now.as_nanos() as f64;
        let read = self.offset.as_nanos() as f64 + t + self.wander(t);
        Duration::from_nanos(read.max(0.0) as u64)
    }

    /// The earliest global time at which the clock reads at least `local`
    /// (so a timer never fires before its deadline).
    pub fn global(&self, local: Duration) -> Duration {
        // The reading is within MAX_WANDER of offset + global time, and
        // grows with it: a binary search over nanoseconds.
        let target = local.saturating_sub(self.offset);
        let mut lo = target.saturating_sub(MAX_WANDER + Duration::from_millis(1));
        let mut hi = target + MAX_WANDER + Duration::from_millis(1);
        if self.local(lo) >= local {
            return lo;
        }
        while hi - lo > Duration::from_nanos(1) {
            let mid = lo + (hi - lo) / 2;
            if self.local(mid) >= local {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }

    /// The clock's error at global time `t` nanoseconds, beyond its offset.
    fn wander(&self, t: f64) -> f64 {
        let slope = self.drift.abs();
        if slope == 0.0 {
            return 0.0;
        }
        let amplitude = MAX_WANDER.as_nanos() as f64;
        let period = 4.0 * amplitude / slope;
        let s = t % period;
        let w = if s < period / 4.0 {
            slope * s
        } else if s < 3.0 * period / 4.0 {
            amplitude - slope * (s - period / 4.0)
        } else {
            -amplitude + slope * (s - 3.0 * period / 4.0)
        };
        w * self.drift.signum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_stays_within_its_bound_never_goes_back_and_inverts_exactly() {
        for (offset_ms, drift) in [(0, 0.0), (1_371, 0.0125), (17, -0.02), (2_000, 0.000_3)] {
            let clock = Clock::new(Duration::from_millis(offset_ms), drift);
            let offset = Duration::from_millis(offset_ms);
            let mut last = Duration::ZERO;
            // Ten hours, in uneven steps.
            let mut now = Duration::ZERO;
            while now < Duration::from_secs(36_000) {
                let local = clock.local(now);
                assert!(local >= last, "{offset_ms} {drift}: went back at {now:?}");
                let error = local.as_secs_f64() - now.as_secs_f64() - offset.as_secs_f64();
                assert!(
                    error.abs() <= MAX_WANDER.as_secs_f64() + 1e-6,
                    "{offset_ms} {drift}: {error} s off at {now:?}"
                );
                let back = clock.global(local);
                assert!(clock.local(back) >= local);
                assert!(back.is_zero() || clock.local(back - Duration::from_nanos(1)) < local);
                last = local;
                now += Duration::from_millis(997 + now.as_millis() as u64 % 13_001);
            }
        }
    }

    #[test]
    fn a_clock_runs_at_its_rate_while_it_wanders() {
        let clock = Clock::new(Duration::ZERO, 0.01);
        let ten = clock.local(Duration::from_secs(10));
        assert!((ten.as_secs_f64() - 10.1).abs() < 1e-6, "{ten:?}");
    }
}
