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

use std::time::Duration;

use rand::RngExt;

use crate::sim::{Event, Sim};

/// Least simulated time between two lost disks.
pub const DISK_LOSS_GAP: Duration = Duration::from_secs(20);

impl Sim {
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
        match self.rng.random_range(0..10) {
            9 => {
                // A disk is lost only from a whole cluster: every node
                // running and joined, and the last lost disk long enough
                // ago to be refilled. Losing disks faster than repair can
                // refill them loses everything, which proves nothing.
                let whole = self
                    .nodes
                    .iter()
                    .all(|node| node.membership.as_ref().is_some_and(|m| m.joined()));
                let recovered = self
                    .disk_losses
                    .last()
                    .is_none_or(|&(_, at)| self.now >= at + DISK_LOSS_GAP);
                if whole && recovered {
                    let i = self.rng.random_range(0..n);
                    self.lose_disk(i);
                    let down = self.up_to(self.params.max_down);
                    self.schedule(self.now + down, Event::Restart { node: i });
                }
            }
            8 => {
                let alive: Vec<usize> = (0..n).filter(|&i| self.nodes[i].node.is_some()).collect();
                for i in alive {
                    if self.rng.random_bool(0.6) {
                        self.crash(i);
                        let down = self.up_to(self.params.max_down);
                        self.schedule(self.now + down, Event::Restart { node: i });
                    }
                }
            }
            0..=2 => {
                let alive: Vec<usize> = (0..n).filter(|&i| self.nodes[i].node.is_some()).collect();
                if !alive.is_empty() {
                    let i = alive[self.rng.random_range(0..alive.len())];
                    self.crash(i);
                    let down = self.up_to(self.params.max_down);
                    self.schedule(self.now + down, Event::Restart { node: i });
                }
            }
            3..=4 => {
                let running: Vec<usize> = (0..n).filter(|&i| self.nodes[i].running()).collect();
                if !running.is_empty() {
                    let i = running[self.rng.random_range(0..running.len())];
                    let pause = self.up_to(self.params.max_pause);
                    self.pause(i, self.now + pause);
                }
            }
            5..=6 => {
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
