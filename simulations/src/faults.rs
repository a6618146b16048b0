//! Random faults, drawn from the run's RNG at the run's rates.
//!
//! A fault event happens on average every `fault_interval`; it crashes a
//! node (restarted after up to `max_down`), crashes several at once (a
//! power cut: the writes none of them had flushed are lost together),
//! loses a node's whole disk (it restarts empty, under its id, after up to
//! `max_down`; at most one every [`DISK_LOSS_GAP`], from a whole cluster),
//! pauses one (up to `max_pause`), or partitions the network, symmetrically
//! (two random groups) or one way (one directed link), for up to
//! `max_partition`. Message-level faults
//! (loss, duplication, tails) are applied per message by the network.
//!
//! **A majority stays up, most of the time.** A crash or a pause is
//! injected only while fewer than [`minority`] nodes are crashed or
//! paused, and a power cut only when every node is up; the power cut may
//! take down more than a minority at once, and nothing else goes down
//! until enough of them are back. Without this bound, faults every 50 ms
//! that last up to 8 s kept the nodes of a typical heavy seed down more
//! than half of the time (median 55% of node-time, one seed in ten above
//! 87%, measured over 300 seeds), so most operations timed out and the
//! run tested recovery from unavailability, not what a cluster that
//! serves does under faults. **One split at a time**, for the same reason:
//! a symmetric partition (two random groups) starts only while no other
//! is in force. Overlapping splits every 250 ms that last up to 8 s cut
//! the network into pieces for good: heavy seed 57 (faults every 50 ms,
//! splits up to 7.5 s) completed 7 of 2,000 operations in 505 s of
//! simulated time, and a change that only moved its random draws (one
//! more per node restart) made it go 300 s with none. One-way cuts of
//! single links, loss, duplication, tails and clock skew are not bounded:
//! a minority of nodes can still be cut off from everything, and a split
//! can leave no side with a majority.

use std::time::Duration;

use rand::RngExt;

use crate::sim::{Event, Sim};

/// Least simulated time between two lost disks.
pub const DISK_LOSS_GAP: Duration = Duration::from_secs(20);

/// Most nodes crashed or paused at once outside a power cut: a minority
/// of `nodes` (at least one).
pub fn minority(nodes: usize) -> usize {
    (nodes.saturating_sub(1) / 2).max(1)
}

impl Sim {
    /// Nodes crashed or paused now (not those that left).
    pub fn unavailable(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !n.departed && !n.running())
            .count()
    }

    /// Schedules the next fault event, if the run has any.
    pub fn schedule_next_fault(&mut self) {
        if self.params.fault_interval.is_zero() {
            return;
        }
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let gap = self.params.fault_interval.mul_f64(-u.ln());
        self.schedule(self.now + gap, Event::Fault);
    }

    fn up_to(&mut self, max: Duration) -> Duration {
        Duration::from_millis(1) + max.mul_f64(self.rng.random_range(0.0..=1.0))
    }

    /// Injects one random fault and schedules the next.
    pub fn inject_fault(&mut self) {
        let n = self.nodes.len();
        let members = self.members();
        let down = self.unavailable();
        let may_stop_one = down < minority(members.len());
        match self.rng.random_range(0..10) {
            9 => {
                // A disk is lost only from a whole cluster: every member
                // running, joined and not leaving, and the last lost disk
                // (or death for good) long enough ago to be refilled.
                // Losing disks faster than repair can refill them loses
                // everything, which proves nothing. (A leaving node that
                // loses its disk forgets that it was leaving: not drawn.)
                let whole = members.iter().all(|&i| {
                    self.nodes[i]
                        .membership
                        .as_ref()
                        .is_some_and(|m| m.joined() && !m.departing())
                });
                let recovered = self
                    .disk_losses
                    .last()
                    .is_none_or(|&(_, at)| self.now >= at + DISK_LOSS_GAP);
                if whole && recovered && !members.is_empty() {
                    let i = members[self.rng.random_range(0..members.len())];
                    self.lose_disk(i);
                    let down = self.up_to(self.params.max_down);
                    self.schedule(self.now + down, Event::Restart { node: i });
                }
            }
            8 if down == 0 => {
                let alive: Vec<usize> = (0..n).filter(|&i| self.nodes[i].node.is_some()).collect();
                for i in alive {
                    if self.rng.random_bool(0.6) {
                        self.crash(i);
                        let down = self.up_to(self.params.max_down);
                        self.schedule(self.now + down, Event::Restart { node: i });
                    }
                }
            }
            0..=2 if may_stop_one => {
                let alive: Vec<usize> = (0..n).filter(|&i| self.nodes[i].node.is_some()).collect();
                if !alive.is_empty() {
                    let i = alive[self.rng.random_range(0..alive.len())];
                    self.crash(i);
                    let down = self.up_to(self.params.max_down);
                    self.schedule(self.now + down, Event::Restart { node: i });
                }
            }
            3..=4 if may_stop_one => {
                let running: Vec<usize> = (0..n).filter(|&i| self.nodes[i].running()).collect();
                if !running.is_empty() {
                    let i = running[self.rng.random_range(0..running.len())];
                    let pause = self.up_to(self.params.max_pause);
                    self.pause(i, self.now + pause);
                }
            }
            5..=6 if self.splits == 0 => {
                let mut side = vec![false; n];
                for s in side.iter_mut() {
                    *s = self.rng.random_bool(0.5);
                }
                let links: Vec<(usize, usize)> = (0..n)
                    .flat_map(|a| (0..n).map(move |b| (a, b)))
                    .filter(|&(a, b)| side[a] != side[b])
                    .collect();
                if !links.is_empty() {
                    let until = self.now + self.up_to(self.params.max_partition);
                    self.cut_links(links, until);
                }
            }
            // Not now: too many nodes are down, or a split is in force.
            0..=6 | 8 => {}
            _ => {
                let a = self.rng.random_range(0..n);
                let b = self.rng.random_range(0..n);
                if a != b {
                    let until = self.now + self.up_to(self.params.max_partition);
                    self.cut_links(vec![(a, b)], until);
                }
            }
        }
        self.schedule_next_fault();
    }
}
