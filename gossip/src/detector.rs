//! The phi-accrual failure detector (Hayashibara et al., 2004), fed by
//! gossiped heartbeats.
//!
//! Instead of a yes/no timeout, the detector gives a suspicion level φ that
//! grows with the *age* of the freshest heartbeat known, scaled by how old
//! it usually gets before fresher news arrives: φ = −log10 P(news arrives
//! later than now), with that age modelled as a normal distribution fitted
//! to recent observations (Akka's variant; Cassandra's exponential model
//! reacts too slowly for a 10 s detection goal at a 1 s interval). A member
//! is suspected when φ exceeds the threshold (8 by default, as Cassandra).
//!
//! Why age and not time since arrival: heartbeats arrive *through gossip*.
//! A member bumps its heartbeat once per interval, so a heartbeat value `h`
//! was issued about `c + h·interval`, where the offset `c` is estimated as
//! the smallest `arrival − h·interval` over recent arrivals (the freshest
//! news ever seen). When a member dies, the age of its last heartbeat grows
//! from the moment it died, even at nodes the last value reaches rounds
//! later by epidemic; counting from the arrival would add that spreading
//! delay to detection, and grows with the cluster.
//!
//! Two safeguards keep lost messages from becoming false suspicion: the
//! standard deviation is never taken below a floor, and an acceptable pause
//! is added to the mean, as Akka does.

use std::collections::VecDeque;
use std::time::Duration;

/// Observations remembered per member.
pub const WINDOW: usize = 200;

/// Arrivals used to estimate the member's heartbeat clock offset.
const OFFSET_WINDOW: usize = 16;

/// Arrival history and suspicion level of one member.
#[derive(Clone, Debug)]
pub struct PhiDetector {
    /// Ages the freshest heartbeat reached before fresher news came.
    ages: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    /// Recent `arrival − heartbeat·interval`, in seconds.
    offsets: VecDeque<f64>,
    /// Freshest heartbeat seen.
    heartbeat: Option<u64>,
}

/// Tuning of the detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiParams {
    /// The members' heartbeat interval (the gossip interval).
    pub interval: Duration,
    /// Added to the mean age: an age that is never suspicious.
    pub acceptable_pause: Duration,
    /// Smallest standard deviation used.
    pub min_std_dev: Duration,
}

impl PhiDetector {
    /// A detector that has seen no heartbeat yet.
    pub fn new() -> Self {
        Self {
            ages: VecDeque::with_capacity(WINDOW),
            sum: 0.0,
            sum_sq: 0.0,
            offsets: VecDeque::with_capacity(OFFSET_WINDOW),
            heartbeat: None,
        }
    }

    fn offset(&self) -> Option<f64> {
        self.offsets.iter().copied().reduce(f64::min)
    }

    /// Age at `now` of heartbeat `value` (seconds).
    fn age(&self, now: Duration, value: u64, interval: f64) -> Option<f64> {
        Some(now.as_secs_f64() - (self.offset()? + value as f64 * interval))
    }

    /// Records that heartbeat `value` arrived at `now`. Older or equal
    /// values are ignored.
    pub fn heartbeat(&mut self, now: Duration, value: u64, params: &PhiParams) {
        if self.heartbeat.is_some_and(|h| value <= h) {
            return;
        }
        let interval = params.interval.as_secs_f64();
        if let Some(previous) = self.heartbeat
            && let Some(age) = self.age(now, previous, interval)
        {
            let age = age.max(0.0);
            if self.ages.len() == WINDOW
                && let Some(old) = self.ages.pop_front()
            {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
            self.ages.push_back(age);
            self.sum += age;
            self.sum_sq += age * age;
        }
        if self.offsets.len() == OFFSET_WINDOW {
            self.offsets.pop_front();
        }
        self.offsets
            .push_back(now.as_secs_f64() - value as f64 * interval);
        self.heartbeat = Some(value);
    }

    /// Mean and standard deviation of the ages observed, in seconds
    /// (`None` before the second heartbeat).
    pub fn age_stats(&self) -> Option<(f64, f64)> {
        if self.ages.is_empty() {
            return None;
        }
        let n = self.ages.len() as f64;
        let mean = self.sum / n;
        Some((mean, (self.sum_sq / n - mean * mean).max(0.0).sqrt()))
    }

    /// How old, at `now`, the freshest heartbeat seen is estimated to be
    /// (seconds since the member made it, by the offsets observed);
    /// `None` before the first heartbeat.
    pub fn heartbeat_age(&self, now: Duration, params: &PhiParams) -> Option<f64> {
        let age = self.age(now, self.heartbeat?, params.interval.as_secs_f64())?;
        Some(age.max(0.0))
    }

    /// The suspicion level at `now` (0 if no heartbeat was ever seen).
    pub fn phi(&self, now: Duration, params: &PhiParams) -> f64 {
        let Some(value) = self.heartbeat else {
            return 0.0;
        };
        let interval = params.interval.as_secs_f64();
        let Some(age) = self.age(now, value, interval) else {
            return 0.0;
        };
        let (mean, std) = self.age_stats().unwrap_or((interval, interval / 4.0));
        let mean = mean + params.acceptable_pause.as_secs_f64();
        let std = std.max(params.min_std_dev.as_secs_f64());
        phi(age, mean, std)
    }
}

impl Default for PhiDetector {
    fn default() -> Self {
        Self::new()
    }
}

/// −log10 of the probability that a normal(mean, std) quantity exceeds
/// `value`, with the logistic approximation of the normal tail used by
/// Akka (accurate to about 1e-3 over the range that matters).
fn phi(value: f64, mean: f64, std: f64) -> f64 {
    let y = (value - mean) / std;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    if value > mean {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> PhiParams {
        PhiParams {
            interval: Duration::from_secs(1),
            acceptable_pause: Duration::from_secs(1),
            min_std_dev: Duration::from_millis(500),
        }
    }

    #[test]
    fn regular_heartbeats_keep_phi_low_and_silence_raises_it() {
        let p = params();
        let mut d = PhiDetector::new();
        for s in 0..30 {
            d.heartbeat(Duration::from_secs(s), s, &p);
        }
        let last = Duration::from_secs(29);
        assert!(d.phi(last + Duration::from_secs(1), &p) < 1.0);
        let mut prev = 0.0;
        for ms in (0..10_000).step_by(250) {
            let v = d.phi(last + Duration::from_millis(ms), &p);
            assert!(v >= prev - 1e-9, "phi is monotone in the silence");
            prev = v;
        }
        assert!(d.phi(last + Duration::from_secs(6), &p) > 8.0);
    }

    #[test]
    fn a_late_copy_of_an_old_heartbeat_does_not_reset_suspicion() {
        let p = params();
        let mut d = PhiDetector::new();
        for s in 0..30 {
            d.heartbeat(Duration::from_secs(s), s, &p);
        }
        // The member died after heartbeat 30, issued at 30 s; this node only
        // hears of it at 36 s.
        d.heartbeat(Duration::from_secs(36), 30, &p);
        // Counting from the arrival, phi would be about 0 at 37 s.
        assert!(d.phi(Duration::from_secs(37), &p) > 3.0);
        assert!(d.phi(Duration::from_secs(39), &p) > 8.0);
    }

    #[test]
    fn no_heartbeat_no_suspicion() {
        assert_eq!(
            PhiDetector::new().phi(Duration::from_secs(100), &params()),
            0.0
        );
    }
}
