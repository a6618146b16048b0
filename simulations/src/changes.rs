//! Membership changes during the safety phase: joins, leaves and removals
//! under the workload and the faults.
//!
//! Every seed changes its membership [`Params::changes`] times while the
//! clients run (the first within [`FIRST_CHANGE`] of the phase's start, so
//! even a short phase sees one; the rest about every
//! [`Params::change_interval`]). Each change is drawn:
//!
//! - **one node joins**, or **two join at once** (their moves overlap);
//! - **a node leaves** (`quorra leave`: it streams what it loses, then
//!   stops for good);
//! - **a node dies for good and is removed**: it crashes, its disk is gone
//!   (recorded as a lost disk, so the checks owe nothing to copies only it
//!   held), and [`REMOVE_AFTER`] later an operator removes it through a
//!   live member (retried every [`REMOVE_RETRY`] while members refuse, as
//!   they do while they believe it up), and again if [`REMOVE_CHECK`]
//!   later some live member still does not see it gone (a removal can be
//!   lost with the member that made it). The new owners
//!   pull from the surviving owners;
//! - **a node dies for good and is replaced**: it dies as above, and
//!   [`REMOVE_AFTER`] later a new node starts with `--replace` of it,
//!   taking its tokens: the replacer pulls the dead node's partitions from
//!   the survivors, and nothing else moves.
//!
//! The cluster stays between [`MIN_MEMBERS`] and [`MAX_MEMBERS`] members
//! that are not leaving; a change that would cross a bound becomes the
//! opposite one. A node is killed for good only while fewer than a
//! minority are down, the crash rule of [`crate::faults`], and only once
//! every member reads from a layout of at least N members: a cluster
//! still forming holds some data on fewer than N nodes by construction,
//! so a death there loses it and leaves partitions unreadable until the
//! moves finish (under heavy faults they did not within 300 s: seeds 84,
//! 510 and 770 before this rule). The faults go on
//! meanwhile, so crashes, pauses, partitions and message faults hit the
//! streaming sources and targets mid-transfer.
//!
//! Not drawn yet: a lost disk on a node that is leaving (see
//! [`crate::faults`]).
//!
//! [`Params::changes`]: crate::params::Params::changes
//! [`Params::change_interval`]: crate::params::Params::change_interval

use std::time::Duration;

use rand::RngExt;

use crate::faults::minority;
use crate::sim::{Event, Sim};
use crate::workload::sweeper::SWEEP_INTERVAL;

/// The first change comes within this long of the safety phase's start.
pub const FIRST_CHANGE: Duration = Duration::from_secs(2);

/// Fewest members (not leaving, not dead) the changes leave: N.
pub const MIN_MEMBERS: usize = 3;

/// Most members the changes make.
pub const MAX_MEMBERS: usize = 8;

/// How long after a node died for good the operator removes or replaces
/// it.
pub const REMOVE_AFTER: Duration = Duration::from_secs(5);

/// How soon a refused removal (the remover still believes the node up)
/// is tried again.
pub const REMOVE_RETRY: Duration = Duration::from_secs(1);

/// How long after a removal the operator looks whether every live member
/// sees it (gossip spreads it within a few rounds).
pub const REMOVE_CHECK: Duration = Duration::from_secs(10);

/// How soon a change that found no node to act on is tried again.
const CHANGE_RETRY: Duration = Duration::from_millis(500);

/// One drawn change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Join(usize),
    Leave,
    /// A death, then a removal.
    Remove,
    /// A death, then a replacement.
    Replace,
}

impl Sim {
    /// Members that are not leaving, have not left and are not dead.
    pub fn staying_members(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !n.departed)
            .filter(|n| n.membership.as_ref().is_none_or(|m| !m.departing()))
            .count()
    }

    /// Starts the safety phase's changes: the first within
    /// [`FIRST_CHANGE`].
    pub fn schedule_changes(&mut self) {
        self.changes_left = self.params.changes;
        if self.changes_left > 0 {
            let at = self.now + FIRST_CHANGE.mul_f64(self.rng.random_range(0.05..=1.0));
            self.schedule(at, Event::Change);
        }
    }

    /// No more changes (the safety phase ended); removals already decided
    /// still happen.
    pub fn stop_changes(&mut self) {
        self.changes_left = 0;
    }

    /// Nodes that can act now: running, joined, not leaving.
    fn settled_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                let n = &self.nodes[i];
                n.running()
                    && n.membership
                        .as_ref()
                        .is_some_and(|m| m.joined() && !m.departing())
            })
            .collect()
    }

    /// Draws and makes one change, then schedules the next.
    pub fn inject_change(&mut self) {
        if self.changes_left == 0 {
            return;
        }
        let staying = self.staying_members();
        let mut change = match self.rng.random_range(0..5) {
            0 => Change::Join(1),
            1 => Change::Join(2),
            2 => Change::Leave,
            3 => Change::Remove,
            _ => Change::Replace,
        };
        if let Change::Join(k) = change {
            if staying + k > MAX_MEMBERS {
                change = Change::Leave;
            }
        } else if staying <= MIN_MEMBERS {
            change = Change::Join(1);
        }
        let done = match change {
            Change::Join(k) => {
                for _ in 0..k {
                    let i = self.start_newcomer(None);
                    self.log_change(format!("node {} joins", i + 1));
                }
                true
            }
            Change::Leave => {
                let candidates = self.settled_nodes();
                if candidates.is_empty() {
                    false
                } else {
                    let i = candidates[self.rng.random_range(0..candidates.len())];
                    let left = self.leave(i).is_ok();
                    if left {
                        self.log_change(format!("node {} leaves", i + 1));
                    }
                    left
                }
            }
            Change::Remove | Change::Replace => {
                let candidates = self.settled_nodes();
                if candidates.is_empty()
                    || self.unavailable() >= minority(self.members().len())
                    || !self.fully_replicated()
                {
                    false
                } else {
                    let i = candidates[self.rng.random_range(0..candidates.len())];
                    self.kill_for_good(i);
                    self.log_change(format!("node {} dies for good", i + 1));
                    let then = if change == Change::Remove {
                        Event::Remove { node: i }
                    } else {
                        Event::Replace { node: i }
                    };
                    self.schedule(self.now + REMOVE_AFTER, then);
                    true
                }
            }
        };
        if done {
            self.changes_left -= 1;
            if self.changes_left == 0 {
                return;
            }
            let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
            let gap = self.params.change_interval.mul_f64(-u.ln());
            self.schedule(self.now + gap, Event::Change);
        } else {
            self.schedule(self.now + CHANGE_RETRY, Event::Change);
        }
    }

    /// Whether every running member reads from a layout of at least N
    /// members. Before (a cluster still forming), some data has fewer than
    /// N copies by construction, and a death loses what only it held and
    /// leaves its partitions without a readable replica until the moves
    /// finish: not a fault the cluster is built to mask.
    fn fully_replicated(&self) -> bool {
        let n = self.params.replicas;
        self.nodes.iter().filter(|x| x.running()).all(|x| {
            x.membership
                .as_ref()
                .and_then(|m| m.stage())
                .is_some_and(|st| {
                    let owning = st.placement.read_ring().members();
                    owning.iter().filter(|m| !m.tokens.is_empty()).count() >= n
                })
        })
    }

    /// Crashes node `i` and never restarts it: its disk counts as lost.
    pub fn kill_for_good(&mut self, i: usize) {
        self.crash(i);
        self.nodes[i].departed = true;
        self.disk_losses.push((self.nodes[i].id.0, self.now));
    }

    /// An operator removes dead node `i` through a live member, and looks
    /// again [`REMOVE_CHECK`] later: while some live member does not see it
    /// gone, it removes it again through one that does not (a removal
    /// gossiped by a member that died before it spread is lost, and the
    /// operator sees the node listed still). Each member refuses while it
    /// believes `i` up.
    pub fn try_remove(&mut self, i: usize) {
        let id = self.nodes[i].id;
        let knows = |sim: &Sim, r: usize| {
            sim.nodes[r]
                .membership
                .as_ref()
                .is_some_and(|m| m.gossip().entry(id).is_none_or(|e| e.info.status.gone()))
        };
        let settled = self.settled_nodes();
        if !settled.is_empty() && settled.iter().all(|&r| knows(self, r)) {
            return;
        }
        for remover in settled {
            if knows(self, remover) {
                continue;
            }
            let Some(m) = self.nodes[remover].membership.as_mut() else {
                continue;
            };
            if m.remove(id).is_ok() {
                self.log_change(format!("node {} removed by node {}", i + 1, remover + 1));
                self.after_input(remover);
                // Gossip spreads it meanwhile; looked at again later.
                self.schedule(self.now + REMOVE_CHECK, Event::Remove { node: i });
                return;
            }
        }
        self.schedule(self.now + REMOVE_RETRY, Event::Remove { node: i });
    }

    /// An operator starts a new node to replace dead node `i`.
    pub fn replace(&mut self, i: usize) {
        let j = self.start_newcomer(Some(self.nodes[i].id));
        self.log_change(format!("node {} replaces node {}", j + 1, i + 1));
    }

    /// Starts a new node (replacing `replaces`, if some) with its clients'
    /// expiry sweeper; returns its index.
    fn start_newcomer(&mut self, replaces: Option<quorra_ring::NodeId>) -> usize {
        let i = self.add_node_replacing(replaces);
        let at = self.now + SWEEP_INTERVAL;
        self.schedule(at, Event::Sweep { node: i });
        i
    }

    fn log_change(&mut self, what: String) {
        if let Some(trace) = &mut self.trace {
            trace.transition(self.now, usize::MAX, "membership change");
        }
        self.changes.push((self.now, what));
    }
}
