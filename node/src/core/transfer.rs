//! Streaming the partitions a node gains when ownership moves.
//!
//! Membership hands the core a [`Placement`] (the active rings and the one
//! reads use, see `membership::layouts`). A node *gains* a partition when
//! it owns it in a ring newer than the read ring but not in the read ring
//! (owning it only in an older one is losing it): it must pull what the
//! read ring's primaries hold before reads may use it. It pulls
//! only once every member writes to the newest layout (`may_pull`), so
//! every write acknowledged later reaches it directly; and it pulls from
//! **every** old primary, so every write acknowledged earlier, at any W,
//! is in what it pulls. If an old primary was removed (dead), it pulls
//! from every owner in every active ring instead, the removed ones
//! excepted: the old primaries left may lack what only the dead one held
//! of them, while owners in newer rings pulled it, or acknowledged those
//! writes themselves (see `sources`).
//!
//! A pull is an anti-entropy exchange that this node starts with one
//! source for one partition ([`super::anti_entropy`]): it compares trees
//! and brings over, in bounded batches, every state the source holds that
//! this node lacks or holds differently, merging as everything else does
//! (tombstones travel like values, so purges stay safe). The exchange is
//! paced by its own byte budget (`transfer_bytes_per_sec`), separate from
//! anti-entropy's, scaled down while clients here or at the sources see
//! slower answers ([`super::pacing`]: transfers yield to foreground
//! requests), and at most `transfer_streams` run at a time. A source
//! that fails or does not answer is retried after `transfer_retry`, the
//! other sources of the partition meanwhile; a down source is waited for
//! (the move stalls, visibly, until it is back or removed).
//!
//! A partition is complete once an exchange with each of its sources
//! finished; the node tells membership when every gained partition is
//! ([`Node::transfers_complete`]), which then announces the node synced.
//! A pull that stalls (a step unanswered within the request timeout)
//! fails like any other, and is logged: its source waits
//! `transfer_retry` while the partition's other sources go first.
//!
//! **Progress for people**: each source answers a pull's first step with
//! the number of keys it holds of the partition; the largest is the
//! partition's estimate (each source holds nearly all of it, and later
//! sources send only what the earlier ones lacked). With the time of the
//! partition's first pull, that gives a rate and an ETA per partition
//! ([`GainStatus`]) and for the node's gains together
//! ([`Node::transfers_progress`]).
//!
//! **Resuming**: progress lives in memory, and a node that restarts pulls
//! its incomplete partitions again from every source. That resumes rather
//! than restarts: a pull compares trees first, so what the node received
//! and flushed before the crash is not sent again, only the segments that
//! still differ (a crashed source's pull fails, and the partition's other
//! sources, then the source again once it is back, bring the rest the
//! same way). Merging makes anything sent twice harmless.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use quorra_ring::{NodeId, PartitionId, Placement};
use tracing::{debug, info};

use super::anti_entropy::budget::Budget;
use super::node::Node;
use super::pacing;

/// What membership tells the core besides the placement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Moves {
    /// Every member writes to the newest layout: gained partitions may be
    /// pulled.
    pub may_pull: bool,
    /// Members removed by an operator (dead): not pulled from.
    pub removed: BTreeSet<NodeId>,
    /// Names the newest layout (its digest); a new value means writes
    /// started from now on go to a new set of rings.
    pub newest: u64,
}

/// One partition being gained.
#[derive(Clone, Debug, Default)]
pub(crate) struct Gain {
    /// Sources not pulled from yet.
    pub(crate) sources: BTreeSet<NodeId>,
    /// Sources pulled from.
    pub(crate) pulled: BTreeSet<NodeId>,
    /// The source an exchange runs with now.
    pub(crate) running: Option<NodeId>,
    /// When a failed source may be tried again.
    pub(crate) retry_at: BTreeMap<NodeId, Duration>,
    /// Failed attempts.
    pub(crate) retries: u32,
    /// Why the last attempt failed.
    pub(crate) last_error: Option<String>,
    /// States received.
    pub(crate) keys: u64,
    /// The most keys a source said it holds of the partition.
    pub(crate) estimate: Option<u64>,
    /// When its first pull started.
    pub(crate) started: Option<Duration>,
    /// Bytes received.
    pub(crate) bytes: u64,
}

impl Gain {
    fn complete(&self) -> bool {
        self.sources.is_empty() && self.running.is_none()
    }
}

/// The node's transfers.
#[derive(Debug)]
pub(crate) struct Transfers {
    pub(crate) gains: BTreeMap<PartitionId, Gain>,
    pub(crate) moves: Moves,
    pub(crate) running: usize,
    /// Paces pulls: `transfer_bytes_per_sec` scaled by `share`.
    pub(crate) budget: Budget,
    /// The share of the budget in force ([`super::pacing`]).
    pub(crate) share: f64,
    /// The shares sources put in their latest answers, and when.
    pub(crate) source_shares: BTreeMap<NodeId, (f64, Duration)>,
}

impl Transfers {
    pub(crate) fn new(rate: u64, now: Duration) -> Self {
        Self {
            gains: BTreeMap::new(),
            moves: Moves::default(),
            running: 0,
            budget: Budget::new(rate, now),
            share: 1.0,
            source_shares: BTreeMap::new(),
        }
    }
}

/// Whom a node gaining `p` pulls it from: every primary of the read ring
/// but itself. If one of them was removed (dead), what only it held among
/// them may still be on owners in newer rings (they pulled it, or took
/// writes acknowledged with it), so then every owner in every active ring
/// is a source, removed ones excepted: a write acknowledged by any member
/// still alive is among them.
fn sources(
    placement: &Placement,
    p: PartitionId,
    me: NodeId,
    removed: &BTreeSet<NodeId>,
) -> BTreeSet<NodeId> {
    let read: Vec<NodeId> = placement.read_ring().primaries(p).collect();
    let all = if read.iter().any(|n| removed.contains(n)) {
        placement.owners(p)
    } else {
        read
    };
    all.into_iter()
        .filter(|n| *n != me && !removed.contains(n))
        .collect()
}

/// What one partition's move looks like, for operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GainStatus {
    /// The partition.
    pub partition: PartitionId,
    /// Sources still to pull from.
    pub waiting_on: Vec<NodeId>,
    /// Sources pulled from.
    pub pulled: Vec<NodeId>,
    /// Failed attempts, and the last error.
    pub retries: u32,
    /// The last error.
    pub last_error: Option<String>,
    /// States and bytes received so far.
    pub keys: u64,
    /// Bytes received so far.
    pub bytes: u64,
    /// Keys the partition holds, as its sources told (the most any told);
    /// `None` before one answered.
    pub estimate_keys: Option<u64>,
    /// When its first pull started (node time), if one did.
    pub started: Option<Duration>,
}

/// The rate and ETA of a node's gains together: states received by all
/// of them, finished ones included, over the time since the first of them
/// started, and the states the unfinished ones still lack (one with no
/// estimate yet counted at the mean estimate of all) at that rate. So the
/// figures stay known while only partitions not started yet remain.
/// `None`s while unknown.
fn overall_progress<'a>(
    gains: impl Iterator<Item = &'a Gain> + Clone,
    now: Duration,
) -> (Option<f64>, Option<f64>) {
    let Some(first) = gains.clone().filter_map(|g| g.started).min() else {
        return (None, None);
    };
    let secs = now.saturating_sub(first).as_secs_f64();
    let received: u64 = gains.clone().map(|g| g.keys).sum();
    let rate = (secs > 0.0).then(|| received as f64 / secs);
    let known: Vec<u64> = gains.clone().filter_map(|g| g.estimate).collect();
    let mean = if known.is_empty() {
        None
    } else {
        Some(known.iter().sum::<u64>() as f64 / known.len() as f64)
    };
    let mut left = 0.0;
    for g in gains.filter(|g| !g.complete()) {
        let Some(estimate) = g.estimate.map(|e| e as f64).or(mean) else {
            return (rate, None);
        };
        left += (estimate - g.keys as f64).max(0.0);
    }
    let eta = match rate {
        _ if left == 0.0 => Some(0.0),
        Some(r) if r > 0.0 => Some(left / r),
        _ => None,
    };
    (rate, eta)
}

impl GainStatus {
    /// Keys per second since its first pull started, at `now`.
    pub fn keys_per_sec(&self, now: Duration) -> Option<f64> {
        self.per_sec(self.keys, now)
    }

    /// Bytes per second since its first pull started, at `now`.
    pub fn bytes_per_sec(&self, now: Duration) -> Option<f64> {
        self.per_sec(self.bytes, now)
    }

    fn per_sec(&self, count: u64, now: Duration) -> Option<f64> {
        let secs = now.checked_sub(self.started?)?.as_secs_f64();
        (secs > 0.0).then(|| count as f64 / secs)
    }

    /// Seconds until it is received at the rate so far, if the estimate
    /// and a rate are known.
    pub fn eta_secs(&self, now: Duration) -> Option<f64> {
        let left = self.estimate_keys?.saturating_sub(self.keys);
        if left == 0 {
            return Some(0.0);
        }
        let rate = self.keys_per_sec(now).filter(|&r| r > 0.0)?;
        Some(left as f64 / rate)
    }
}

impl Node {
    /// Recomputes what this node gains under the new placement: partitions
    /// it owns in a ring newer than the read ring but not in the read ring. A gain already
    /// under way keeps the sources it pulled from (what they held is here,
    /// and later writes reach this node directly).
    pub(super) fn transfers_placement_changed(&mut self, placement: &Placement) {
        let me = self.id;
        let read = placement.read_ring();
        let removed = self.transfers.moves.removed.clone();
        let mut gains = std::mem::take(&mut self.transfers.gains);
        let mut next = BTreeMap::new();
        for p in read.partitioner().iter() {
            if !placement.gains(p, me) {
                continue;
            }
            let mut gain = gains.remove(&p).unwrap_or_default();
            gain.sources = sources(placement, p, me, &removed)
                .into_iter()
                .filter(|n| !gain.pulled.contains(n) && gain.running != Some(*n))
                .collect();
            next.insert(p, gain);
        }
        for (p, gain) in gains {
            if gain.running.is_some() {
                // Its exchange ends on its own; nothing waits for it.
                debug!(partition = %p, "no longer gained");
            }
        }
        self.transfers.gains = next;
    }

    /// Whether every partition this node gains has been pulled from each
    /// of its sources.
    pub fn transfers_complete(&self) -> bool {
        self.transfers.gains.values().all(Gain::complete)
    }

    /// The partitions this node is gaining, with their progress.
    pub fn transfers(&self) -> Vec<GainStatus> {
        self.transfers
            .gains
            .iter()
            .filter(|(_, g)| !g.complete())
            .map(|(&partition, g)| GainStatus {
                partition,
                waiting_on: g.sources.iter().copied().chain(g.running).collect(),
                pulled: g.pulled.iter().copied().collect(),
                retries: g.retries,
                last_error: g.last_error.clone(),
                keys: g.keys,
                bytes: g.bytes,
                estimate_keys: g.estimate,
                started: g.started,
            })
            .collect()
    }

    /// The keys per second and the seconds left of this node's gains
    /// together, at `now` (see [`overall_progress`]).
    pub fn transfers_progress(&self, now: Duration) -> (Option<f64>, Option<f64>) {
        overall_progress(self.transfers.gains.values(), now)
    }

    /// Starts pulls, within the limits, for partitions whose sources are
    /// up and not waiting for a retry.
    pub(super) fn transfers_tick(&mut self, now: Duration) {
        if !self.transfers.moves.may_pull {
            return;
        }
        self.transfers_pace(now);
        while self.transfers.running < self.options.transfer_streams
            && self.transfers.budget.available(now)
        {
            let next = self.transfers.gains.iter().find_map(|(&p, g)| {
                if g.running.is_some() {
                    return None;
                }
                g.sources
                    .iter()
                    .find(|&&s| {
                        self.peers.is_up(s) && g.retry_at.get(&s).is_none_or(|&at| at <= now)
                    })
                    .map(|&s| (p, s))
            });
            let Some((partition, source)) = next else {
                return;
            };
            let gain = self.transfers.gains.get_mut(&partition).expect("found");
            gain.sources.remove(&source);
            gain.running = Some(source);
            gain.started.get_or_insert(now);
            self.transfers.running += 1;
            self.stats.transfers_started += 1;
            if !self.ae_start_with(now, partition, source, true) {
                self.transfer_ended(
                    now,
                    partition,
                    source,
                    Err("cannot read the partition".into()),
                );
            }
        }
    }

    /// An exchange pulling `partition` from `source` ended.
    pub(super) fn transfer_ended(
        &mut self,
        now: Duration,
        partition: PartitionId,
        source: NodeId,
        result: Result<(), String>,
    ) {
        self.transfers.running = self.transfers.running.saturating_sub(1);
        let retry = self.options.transfer_retry;
        let Some(gain) = self.transfers.gains.get_mut(&partition) else {
            return;
        };
        if gain.running != Some(source) {
            return;
        }
        gain.running = None;
        match result {
            Ok(()) => {
                gain.pulled.insert(source);
                if gain.complete() {
                    self.stats.transfers_completed += 1;
                    // A cluster forming gains every partition empty: one
                    // line per partition only when it brought something.
                    if gain.keys > 0 {
                        info!(%partition, keys = gain.keys, bytes = gain.bytes, "partition received");
                    } else {
                        debug!(%partition, "partition received, empty");
                    }
                    if self.transfers_complete() {
                        info!(
                            partitions = self.transfers.gains.len(),
                            "every gained partition received"
                        );
                    }
                }
            }
            Err(e) => {
                info!(%partition, source = source.0, error = %e, retries = gain.retries + 1,
                      "pull failed; the partition's other sources go first, this one again later");
                gain.retries += 1;
                gain.last_error = Some(e);
                // Tried again only if it still is a source: the placement
                // may have changed while the pull ran (a source that no
                // longer owns the partition refuses every pull).
                let still = sources(
                    &self.placement,
                    partition,
                    self.id,
                    &self.transfers.moves.removed,
                )
                .contains(&source);
                if still {
                    gain.retry_at.insert(source, now + retry);
                    gain.sources.insert(source);
                }
                self.stats.transfers_failed += 1;
            }
        }
    }

    /// Sets the limits on pulls, each if given: bytes per second (0:
    /// unlimited) and partitions at a time (at least 1); returns them as
    /// they are now. A pull under way keeps running; new ones follow the
    /// new limits.
    pub fn set_transfer_limits(
        &mut self,
        now: Duration,
        bytes_per_sec: Option<u64>,
        streams: Option<usize>,
    ) -> (u64, usize) {
        if let Some(rate) = bytes_per_sec {
            self.options.transfer_bytes_per_sec = rate;
            self.transfers.budget = Budget::new(rate, now);
            self.transfers.share = 1.0;
            self.transfers_pace(now);
        }
        if let Some(n) = streams {
            self.options.transfer_streams = n.max(1);
        }
        info!(
            bytes_per_sec = self.options.transfer_bytes_per_sec,
            streams = self.options.transfer_streams,
            "limits on pulls changed"
        );
        (
            self.options.transfer_bytes_per_sec,
            self.options.transfer_streams,
        )
    }

    /// A source answered a step of a pull, with the share of the budget
    /// it allows (`None` from a node that predates pacing).
    pub(super) fn transfer_paced(&mut self, now: Duration, source: NodeId, share: Option<f64>) {
        self.pacing.transfer_work(now);
        if let Some(share) = share {
            self.transfers.source_shares.insert(source, (share, now));
        }
        self.transfers_pace(now);
    }

    /// Puts in force on the budget, if it changed, the share pulls may use
    /// now: the smallest of this node's and of its sources' (each grown
    /// since it was reported, see [`pacing::extrapolate`]; one grown back
    /// to 1 is forgotten).
    pub(super) fn transfers_pace(&mut self, now: Duration) {
        self.pacing.roll(now);
        let mut share = self.pacing.share();
        self.transfers
            .source_shares
            .retain(|_, &mut (reported, at)| {
                let grown = pacing::extrapolate(reported, now.saturating_sub(at));
                share = share.min(grown);
                grown < 1.0
            });
        if share != self.transfers.share {
            self.transfers.share = share;
            let rate = self.options.transfer_bytes_per_sec as f64 * share;
            self.transfers.budget.set_rate(now, rate);
        }
    }

    /// The share of the budget this node allows pulls from it and its own
    /// ([`super::pacing`]), from what its clients saw.
    pub fn allowed_share(&self) -> f64 {
        self.pacing.share()
    }

    /// Bytes per second pulls may use now (`None`: unlimited).
    pub fn transfer_limit(&self) -> Option<u64> {
        let rate = self.options.transfer_bytes_per_sec;
        (rate > 0).then(|| ((rate as f64 * self.transfers.share).round() as u64).max(1))
    }

    /// A source of `partition` said it holds `keys` of it.
    pub(super) fn transfer_sized(&mut self, partition: PartitionId, keys: u64) {
        if let Some(gain) = self.transfers.gains.get_mut(&partition) {
            gain.estimate = Some(gain.estimate.map_or(keys, |e| e.max(keys)));
        }
    }

    /// Counts what a pull of `partition` brought.
    pub(super) fn transfer_received(&mut self, partition: PartitionId, keys: usize, bytes: usize) {
        if let Some(gain) = self.transfers.gains.get_mut(&partition) {
            gain.keys += keys as u64;
            gain.bytes += bytes as u64;
        }
        self.stats.transfer_keys += keys as u64;
        self.stats.transfer_bytes += bytes as u64;
    }

    /// When transfers next need `handle_timeout`: the earliest moment a
    /// pull can start (`Duration::ZERO` if one can start now, so that the
    /// next pull follows the one that just ended without waiting for
    /// another timer), or `None` if none can start before something else
    /// happens (a source coming up, a pull ending, a new placement).
    pub(super) fn transfers_next_wake(&self) -> Option<Duration> {
        if !self.transfers.moves.may_pull || self.transfers.running >= self.options.transfer_streams
        {
            return None;
        }
        let next = self
            .transfers
            .gains
            .values()
            .filter(|g| g.running.is_none())
            .flat_map(|g| {
                g.sources
                    .iter()
                    .filter(|&&s| self.peers.is_up(s))
                    .map(|s| g.retry_at.get(s).copied().unwrap_or(Duration::ZERO))
            })
            .min();
        next.map(|at| at.max(self.transfers.budget.ready_at(Duration::ZERO)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gain(keys: u64, estimate: Option<u64>, started: Option<u64>) -> GainStatus {
        GainStatus {
            partition: PartitionId(0),
            waiting_on: Vec::new(),
            pulled: Vec::new(),
            retries: 0,
            last_error: None,
            keys,
            bytes: keys * 100,
            estimate_keys: estimate,
            started: started.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_gain_s_rate_and_eta_follow_what_it_received_since_it_started() {
        let now = Duration::from_secs(20);
        let g = gain(500, Some(2000), Some(10));
        assert_eq!(g.keys_per_sec(now), Some(50.0));
        assert_eq!(g.eta_secs(now), Some(30.0));
        // More received than a source held (several sources): done.
        assert_eq!(gain(2100, Some(2000), Some(10)).eta_secs(now), Some(0.0));
        // Not started, or nothing received yet: no rate, no ETA.
        assert_eq!(gain(0, Some(2000), None).eta_secs(now), None);
        assert_eq!(gain(0, Some(2000), Some(10)).eta_secs(now), None);
        assert_eq!(gain(500, None, Some(10)).eta_secs(now), None);
    }

    fn part(keys: u64, estimate: Option<u64>, started: Option<u64>, done: bool) -> Gain {
        let mut g = Gain {
            keys,
            estimate,
            started: started.map(Duration::from_secs),
            ..Gain::default()
        };
        if !done {
            g.sources.insert(NodeId(1));
        }
        g
    }

    #[test]
    fn the_overall_eta_counts_unsized_partitions_at_the_mean_estimate() {
        let now = Duration::from_secs(20);
        // 1000 received in the 10 s since the first started: 100 keys/s;
        // left: 1000 + 500 + (mean 1250 for the unsized one) = 2750.
        let gains = [
            part(1000, Some(2000), Some(10), false),
            part(0, Some(500), None, false),
            part(0, None, None, false),
        ];
        let (rate, eta) = overall_progress(gains.iter(), now);
        assert_eq!(rate, Some(100.0));
        assert_eq!(eta, Some(27.5));
        let unknown = [part(0, None, None, false)];
        assert_eq!(overall_progress(unknown.iter(), now), (None, None));
    }

    #[test]
    fn the_overall_eta_stays_known_while_only_unstarted_partitions_remain() {
        let now = Duration::from_secs(20);
        // Two finished: 1000 keys in the 10 s since the first started,
        // 100 keys/s. The one left has not started: 300 keys at that
        // rate, or, not sized yet, the mean size (500).
        let mut gains = [
            part(600, Some(600), Some(10), true),
            part(400, Some(400), Some(12), true),
            part(0, Some(300), None, false),
        ];
        assert_eq!(
            overall_progress(gains.iter(), now),
            (Some(100.0), Some(3.0))
        );
        gains[2].estimate = None;
        assert_eq!(
            overall_progress(gains.iter(), now),
            (Some(100.0), Some(5.0))
        );
    }
}
