//! Transfers yield to foreground requests: how much of its transfer budget
//! a node lets pulls use.
//!
//! A move is background work with no deadline; the requests clients are
//! waiting for are not. A fixed byte budget cannot serve both: one high
//! enough to move a terabyte in hours takes, on a busy cluster, the CPU and
//! disk that clients needed (measured on 3 loopback nodes sharing 2 cores:
//! pulling at the physical limit cut foreground throughput to 60% and
//! doubled its p99), and one low enough for a busy cluster wastes every
//! idle hour. So the budget (`transfer_bytes_per_sec`) is a ceiling, and
//! each node scales it by a *share* it adapts to what its own clients see,
//! the way a scavenger transport (LEDBAT) yields to other traffic:
//!
//! - Every second, the node takes the median latency of the client
//!   requests it answered (from when the core was handed the request to
//!   its reply, by the time passed in: the time a request waited in the
//!   driver's queue before is not in it). The smallest such median of the last
//!   [`BASE_HISTORY`] is its *base*: what its clients see when nothing
//!   else competes (while a move runs at a small share, its windows come
//!   close to that too, so the base is found even when the move started
//!   first).
//! - A second whose median exceeds the base by [`SLOWER`] (and by
//!   [`SLACK`], so microsecond jitter on a fast cluster does not count),
//!   when the node did transfer work (pulled, or served a pull) within
//!   [`RECENT_WORK`], halves the share, down to [`MIN_SHARE`]: a move
//!   always progresses. (Within a few seconds, not within that second: at
//!   a small share a pull's steps come seconds apart, and the move they
//!   belong to is still what slows clients down.) A slow second with no
//!   transfer work that recent keeps the share. Any other second grows it
//!   by [`GROWTH`], up to the whole budget. A second with fewer than [`MIN_SAMPLES`] answers has no
//!   foreground to protect and grows the share too.
//!
//! The cost of a pull falls on both ends, and mostly on the sources, which
//! serve the clients; so every source puts its share in its answers to
//! pull steps, and the node pulling paces itself by the smallest share of
//! its own and of its sources' ([`super::transfer`]). A source's share is
//! news only when it answers, and a node paced at a small share asks
//! seldom (a step may carry megabytes: at 2 MiB/s one every few
//! seconds), so between answers the puller assumes each source's share
//! grows as a source's own does when its clients are served quickly
//! ([`extrapolate`]): the next answer brings it down again if not. A
//! share neither sticks at the floor for want of news nor jumps back to
//! the whole budget. An unlimited budget (0) has nothing to scale: a node
//! told to pull without limit does.
//!
//! Everything here is a function of the times passed in: the simulator
//! replays it exactly.

use std::collections::VecDeque;
use std::time::Duration;

/// How often the share is adjusted, and the span of one median.
pub const WINDOW: Duration = Duration::from_secs(1);

/// How far back the base latency looks (two minutes): long enough to
/// remember the latency from before a move, short enough to follow a
/// lasting change of load.
pub const BASE_HISTORY: Duration = Duration::from_secs(120);

/// A window's median this many times the base means the move hurts.
pub const SLOWER: f64 = 1.25;

/// ... and at least this much above it.
pub const SLACK: Duration = Duration::from_millis(1);

/// The smallest share: 1/32 of the budget (2 MiB/s at the default 64
/// MiB/s), so a move on a saturated cluster still finishes.
pub const MIN_SHARE: f64 = 1.0 / 32.0;

/// The factor a healthy window grows the share by: from the smallest
/// share to the whole budget in 16 s.
pub const GROWTH: f64 = 1.25;

/// Answers a window needs before its median means anything.
pub const MIN_SAMPLES: usize = 16;

/// Latencies kept per window, at most: when full, every other one is
/// dropped and from then on only every other answer is kept (then every
/// fourth, ...), so the sample stays spread over the whole window.
pub const MAX_SAMPLES: usize = 1024;

/// How long after its last transfer work a slow second is still blamed
/// on the move.
pub const RECENT_WORK: Duration = Duration::from_secs(5);

/// The share of the transfer budget a node allows, and what it is
/// derived from.
#[derive(Debug)]
pub(crate) struct Pacing {
    share: f64,
    /// When the current window ends.
    window_end: Duration,
    /// Latencies (µs) of client requests answered in the current window.
    samples: Vec<u32>,
    /// Answers recorded in the current window, kept or not.
    answered: usize,
    /// One answer in `stride` is kept (see [`MAX_SAMPLES`]).
    stride: usize,
    /// When the node last pulled, or served a pull.
    last_work: Option<Duration>,
    /// Medians of earlier windows (µs), with when each ended, oldest first.
    medians: VecDeque<(Duration, u32)>,
}

impl Pacing {
    pub(crate) fn new(now: Duration) -> Self {
        Self {
            share: 1.0,
            window_end: now + WINDOW,
            samples: Vec::new(),
            answered: 0,
            stride: 1,
            last_work: None,
            medians: VecDeque::new(),
        }
    }

    /// The share of the budget pulls may use now, in (0, 1].
    pub(crate) fn share(&self) -> f64 {
        self.share
    }

    /// The base latency: the smallest window median remembered.
    #[cfg(test)]
    pub(crate) fn base(&self) -> Option<Duration> {
        self.base_us().map(|us| Duration::from_micros(us.into()))
    }

    fn base_us(&self) -> Option<u32> {
        self.medians.iter().map(|&(_, m)| m).min()
    }

    /// A client request was answered `latency` after it arrived.
    pub(crate) fn answered(&mut self, now: Duration, latency: Duration) {
        self.roll(now);
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        if self.answered.is_multiple_of(self.stride) {
            self.samples.push(us);
            if self.samples.len() == MAX_SAMPLES {
                let mut i = 0;
                self.samples.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
        }
        self.answered += 1;
    }

    /// The node pulled, or served a pull, at `now`.
    pub(crate) fn transfer_work(&mut self, now: Duration) {
        self.roll(now);
        self.last_work = Some(now);
    }

    /// Closes every window that ended by `now`, adjusting the share.
    pub(crate) fn roll(&mut self, now: Duration) {
        while now >= self.window_end {
            let end = self.window_end;
            self.close_window(end);
            // A long silence closes one window, not one per second of it.
            self.window_end = if now >= end + WINDOW {
                now + WINDOW
            } else {
                end + WINDOW
            };
        }
    }

    fn close_window(&mut self, end: Duration) {
        let work = self.last_work.is_some_and(|at| at + RECENT_WORK >= end);
        self.answered = 0;
        self.stride = 1;
        while self
            .medians
            .front()
            .is_some_and(|&(at, _)| at + BASE_HISTORY < end)
        {
            self.medians.pop_front();
        }
        let n = self.samples.len();
        let median = (n >= MIN_SAMPLES).then(|| *self.samples.select_nth_unstable(n / 2).1);
        self.samples.clear();
        let Some(median) = median else {
            return self.grow();
        };
        // The base before this window: a window is not judged by itself.
        let base = self.base_us();
        self.medians.push_back((end, median));
        let hurts = base.is_some_and(|base| {
            let (base, median) = (f64::from(base), f64::from(median));
            median > base * SLOWER && median - base > SLACK.as_micros() as f64
        });
        match (hurts, work) {
            (true, true) => self.share = (self.share / 2.0).max(MIN_SHARE),
            (true, false) => {}
            (false, _) => self.grow(),
        }
    }

    fn grow(&mut self) {
        self.share = (self.share * GROWTH).min(1.0);
    }
}

/// What a share reported `ago` has grown to if every window closed since
/// was a quick one: by [`GROWTH`] per whole [`WINDOW`], up to 1.
pub(crate) fn extrapolate(share: f64, ago: Duration) -> f64 {
    let windows = (ago.as_nanos() / WINDOW.as_nanos()).min(64) as i32;
    (share * GROWTH.powi(windows)).min(1.0)
}

/// A share as it travels in a source's answers: in 1/65,535ths.
pub(crate) fn encode_share(share: f64) -> u16 {
    (share.clamp(0.0, 1.0) * f64::from(u16::MAX)).round() as u16
}

/// A share from a source's answer; at least [`MIN_SHARE`], whatever a
/// peer sent.
pub(crate) fn decode_share(share: u16) -> f64 {
    (f64::from(share) / f64::from(u16::MAX)).clamp(MIN_SHARE, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Feeds `n` answers of `latency` spread over the window starting at
    /// `start`, with transfer work if `work`, and closes it.
    fn window(p: &mut Pacing, start: Duration, latency: Duration, n: u64, work: bool) {
        for i in 0..n {
            let at = start + WINDOW * (i as u32) / (n as u32);
            p.answered(at, latency);
            if work {
                p.transfer_work(at);
            }
        }
        p.roll(start + WINDOW);
    }

    #[test]
    fn a_move_that_slows_clients_down_is_halved_to_the_floor_and_grows_back_after() {
        let mut p = Pacing::new(Duration::ZERO);
        let mut t = Duration::ZERO;
        // Before the move: 5 ms.
        for _ in 0..10 {
            window(&mut p, t, MS(5), 100, false);
            t += WINDOW;
        }
        assert_eq!(p.share(), 1.0);
        assert_eq!(p.base(), Some(MS(5)));
        // The move makes it 8 ms: halved every second, down to the floor.
        let mut shares = Vec::new();
        for _ in 0..7 {
            window(&mut p, t, MS(8), 100, true);
            t += WINDOW;
            shares.push(p.share());
        }
        assert_eq!(shares[..5], [0.5, 0.25, 0.125, 0.0625, MIN_SHARE]);
        assert_eq!(p.share(), MIN_SHARE);
        // Clients are back at 6 ms (within 1.25x): it grows again.
        window(&mut p, t, MS(6), 100, true);
        t += WINDOW;
        assert_eq!(p.share(), MIN_SHARE * GROWTH);
        for _ in 0..20 {
            window(&mut p, t, MS(6), 100, true);
            t += WINDOW;
        }
        assert_eq!(p.share(), 1.0);
    }

    #[test]
    fn a_slow_second_is_blamed_on_recent_transfer_work_only() {
        let mut p = Pacing::new(Duration::ZERO);
        window(&mut p, Duration::ZERO, MS(5), 100, false);
        window(&mut p, WINDOW, MS(50), 100, false);
        assert_eq!(p.share(), 1.0, "no move: nothing to blame");
        p.transfer_work(WINDOW * 2);
        let mut t = WINDOW * 2;
        let mut shares = Vec::new();
        while t < WINDOW * 2 + RECENT_WORK + WINDOW * 3 {
            window(&mut p, t, MS(50), 100, false);
            shares.push(p.share());
            t += WINDOW;
        }
        // Halved in the seconds up to RECENT_WORK after the work, then
        // kept while clients are still slow.
        assert_eq!(
            shares,
            [
                0.5, 0.25, 0.125, 0.0625, MIN_SHARE, MIN_SHARE, MIN_SHARE, MIN_SHARE
            ]
        );
        let mut p = Pacing::new(Duration::ZERO);
        window(&mut p, Duration::ZERO, MS(5), 100, false);
        p.transfer_work(WINDOW);
        window(&mut p, WINDOW, MS(50), 100, false);
        assert_eq!(p.share(), 0.5);
        for i in 2..10 {
            window(&mut p, WINDOW * i, MS(50), 100, false);
        }
        assert_eq!(p.share(), 1.0 / 32.0);
        window(&mut p, WINDOW * 10, MS(5), 100, false);
        assert_eq!(p.share(), MIN_SHARE * GROWTH, "quick again: grows");
    }

    #[test]
    fn a_rise_within_the_slack_or_the_ratio_is_not_a_hurt() {
        let mut p = Pacing::new(Duration::ZERO);
        // 200 µs to 900 µs: 4.5x, but within the 1 ms slack.
        window(
            &mut p,
            Duration::ZERO,
            Duration::from_micros(200),
            100,
            false,
        );
        window(&mut p, WINDOW, Duration::from_micros(900), 100, true);
        assert_eq!(p.share(), 1.0);
        // 10 ms to 12 ms: 2 ms more, but within 1.25x.
        let mut p = Pacing::new(Duration::ZERO);
        window(&mut p, Duration::ZERO, MS(10), 100, false);
        window(&mut p, WINDOW, MS(12), 100, true);
        assert_eq!(p.share(), 1.0);
    }

    #[test]
    fn too_few_answers_say_nothing_and_the_share_grows() {
        let mut p = Pacing::new(Duration::ZERO);
        window(&mut p, Duration::ZERO, MS(5), 100, false);
        window(&mut p, WINDOW, MS(50), 100, true);
        assert_eq!(p.share(), 0.5);
        window(&mut p, WINDOW * 2, MS(500), MIN_SAMPLES as u64 - 1, true);
        assert_eq!(p.share(), 0.5 * GROWTH);
    }

    #[test]
    fn the_base_is_the_smallest_median_of_the_last_two_minutes() {
        let mut p = Pacing::new(Duration::ZERO);
        window(&mut p, Duration::ZERO, MS(2), 100, false);
        let mut t = WINDOW;
        while t < BASE_HISTORY {
            window(&mut p, t, MS(9), 100, false);
            t += WINDOW;
        }
        assert_eq!(p.base(), Some(MS(2)));
        window(&mut p, t, MS(9), 100, false);
        window(&mut p, t + WINDOW, MS(9), 100, false);
        assert_eq!(p.base(), Some(MS(9)), "the 2 ms window aged out");
    }

    #[test]
    fn the_median_ignores_a_slow_tail_and_a_long_silence_closes_one_window() {
        let mut p = Pacing::new(Duration::ZERO);
        for i in 0..100 {
            let latency = if i % 10 == 0 { MS(900) } else { MS(4) };
            p.answered(MS(i * 10), latency);
        }
        p.roll(WINDOW);
        assert_eq!(p.base(), Some(MS(4)));
        // An hour with nothing: one more window closes, empty.
        p.roll(Duration::from_secs(3600));
        assert_eq!(p.medians.len(), 1);
        p.answered(Duration::from_secs(3600), MS(1));
        assert_eq!(p.samples.len(), 1);
    }

    #[test]
    fn a_busy_window_s_median_is_of_the_whole_window_not_its_end() {
        // 100,000 answers: the first 60% quick, the last 40% slow. Kept
        // from the whole window, the median is a quick one; kept from its
        // end only, it would be slow.
        let mut p = Pacing::new(Duration::ZERO);
        let n = 100_000u32;
        for i in 0..n {
            let latency = if i < n / 100 * 60 { MS(2) } else { MS(40) };
            p.answered(WINDOW * i / n, latency);
            assert!(p.samples.len() < MAX_SAMPLES);
        }
        p.roll(WINDOW);
        assert_eq!(p.base(), Some(MS(2)));
    }

    #[test]
    fn a_source_share_not_heard_again_grows_as_the_source_s_own_would() {
        assert_eq!(extrapolate(0.5, Duration::ZERO), 0.5);
        assert_eq!(extrapolate(0.5, WINDOW - Duration::from_nanos(1)), 0.5);
        assert!((extrapolate(MIN_SHARE, WINDOW * 2) - MIN_SHARE * GROWTH * GROWTH).abs() < 1e-12);
        assert_eq!(
            extrapolate(MIN_SHARE, Duration::from_secs(86_400 * 365)),
            1.0
        );
        assert_eq!(extrapolate(MIN_SHARE, Duration::from_secs(16)), 1.0);
    }

    #[test]
    fn a_share_survives_the_wire_and_a_peer_cannot_stop_a_move() {
        for share in [MIN_SHARE, 0.5, 1.0] {
            assert!((decode_share(encode_share(share)) - share).abs() < 1e-4);
        }
        assert_eq!(decode_share(0), MIN_SHARE);
    }
}
