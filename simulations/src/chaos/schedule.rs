//! A chaos run's plan, drawn from its seed: cluster size, workload and the
//! timed faults. Pure: the same seed gives the same plan on every machine,
//! and [`Plan::describe`] prints every drawn parameter before the run
//! starts, so a failure names what to rerun.
//!
//! What the *run* does with the plan is not deterministic (real processes,
//! real time, a real kernel): the seed fixes which faults happen when and
//! what each client sends, not how the interleavings fall. A failing seed
//! reruns the same schedule, which is what a real cluster can offer.
//!
//! Faults come one after another, each with a quiet gap before the next, so
//! a run shows the cluster passing through faults and recovering from each.
//! Partitions and loss only cut node-to-node traffic: clients reach every
//! node, so a minority side keeps taking requests (sloppy quorums, hints)
//! while it cannot see the majority.
//!
//! Membership changes run on a timeline of their own, beside the faults: a
//! new node joins through the first ones, or one of the first nodes leaves
//! (`quorra leave`: it hands every partition it loses to the new owners,
//! then stops). They are drawn after everything else, from a stream of
//! their own, so a seed's faults are those it drew before changes existed,
//! and `--changes 0` gives back exactly the earlier plan. The faults keep
//! hitting the first nodes while data moves, so sources, the nodes they
//! pull from and the coordinators of the moving partitions crash, pause
//! and lose packets mid-move; only a leaver is spared the process faults
//! and losses drawn after its leave begins (it is gone, and restarting it
//! would be a new member), and it is never node 1 (the others' seed).
//! Joiners take no fault of their own; partitions leave them out of both
//! sides, so they reach everyone. At least N = 3 members stay.
//!
//! Clocks are skewed for a whole run, not as a fault of a window: about
//! half the nodes run with their wall clock up to an hour off and all their
//! clocks up to 5% fast or slow. Nothing in the protocol may depend on
//! clocks agreeing (time reaches the core only as each node's own
//! monotonic durations); a skew that changed an outcome would be a bug.

use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;

use super::netem::Shape;
use rand::{RngExt, SeedableRng};

/// One fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nodes in different groups cannot exchange packets (both ways).
    Partition {
        /// Node indices per side.
        groups: Vec<Vec<usize>>,
    },
    /// Packets from `from` to `to` are dropped; the other way works.
    OneWay {
        /// Sender whose packets are lost.
        from: usize,
        /// Receiver that drops them.
        to: usize,
    },
    /// `node` drops this share of the packets other nodes send it.
    Loss {
        /// The node.
        node: usize,
        /// Percent of its incoming node-to-node packets dropped.
        percent: u32,
    },
    /// The packets other nodes send `node` are held for `delay ± jitter`
    /// (so they arrive out of order) and some arrive twice
    /// ([`super::netem`]).
    Jitter {
        /// The node.
        node: usize,
        /// How they are held and copied.
        shape: Shape,
    },
    /// `SIGKILL`; started again when the fault ends.
    Kill {
        /// The node.
        node: usize,
    },
    /// `SIGSTOP`; `SIGCONT` when the fault ends (a long GC pause, a frozen VM).
    Pause {
        /// The node.
        node: usize,
    },
    /// `SIGKILL` and its data directory deleted (a lost disk); started
    /// again, empty, when the fault ends.
    Wipe {
        /// The node.
        node: usize,
    },
    /// Every `fsync`/`fdatasync` of the node takes `ms` longer (a saturated
    /// or failing disk; the sync itself still happens).
    SlowDisk {
        /// The node.
        node: usize,
        /// The delay per sync, milliseconds.
        ms: u32,
    },
}

impl Fault {
    /// The fault for humans (node numbers are ids: index + 1).
    pub fn describe(&self) -> String {
        let id = |i: &usize| (i + 1).to_string();
        match self {
            Fault::Partition { groups } => {
                let sides: Vec<String> = groups
                    .iter()
                    .map(|g| g.iter().map(id).collect::<Vec<_>>().join(","))
                    .collect();
                format!("partition {}", sides.join(" | "))
            }
            Fault::OneWay { from, to } => format!("one-way: {} -> {} dropped", id(from), id(to)),
            Fault::Loss { node, percent } => format!("{percent}% loss into node {}", id(node)),
            Fault::Jitter { node, shape } => format!(
                "packets into node {} held {}±{} ms (reordered), {}% twice",
                id(node),
                shape.delay_ms,
                shape.jitter_ms,
                shape.duplicate_percent
            ),
            Fault::Kill { node } => format!("kill -9 node {}, restart", id(node)),
            Fault::Pause { node } => format!("SIGSTOP node {}, SIGCONT", id(node)),
            Fault::Wipe { node } => format!("kill -9 node {}, wipe its disk, restart", id(node)),
            Fault::SlowDisk { node, ms } => {
                format!("node {}'s disk takes {ms} ms per sync", id(node))
            }
        }
    }
}

/// A node's clock, off from the harness's for the whole run (libfaketime,
/// preloaded into the node): its wall clock shifted by `offset_secs`, and
/// all its clocks, monotonic ones and its sleeps included, running at
/// `rate_permille` / 1000 of real time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skew {
    /// Wall-clock offset, seconds.
    pub offset_secs: i32,
    /// Clock rate, thousandths.
    pub rate_permille: u32,
}

impl Skew {
    /// The `FAKETIME` value that makes it.
    pub fn faketime(&self) -> String {
        format!(
            "{:+} x{}.{:03}",
            self.offset_secs,
            self.rate_permille / 1000,
            self.rate_permille % 1000
        )
    }

    /// For humans.
    pub fn describe(&self) -> String {
        format!(
            "wall clock {:+} s, running at {}.{:03}x",
            self.offset_secs,
            self.rate_permille / 1000,
            self.rate_permille % 1000
        )
    }
}

/// The largest wall-clock offset drawn, seconds.
const SKEW_MAX_OFFSET_SECS: i32 = 3600;
/// The largest rate difference drawn, thousandths (5%: far beyond real
/// quartz drift, within what a starved or migrated VM shows).
const SKEW_MAX_RATE_PERMILLE: u32 = 50;

/// A membership change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new node, index `node` (after the plan's first nodes), starts and
    /// joins through the first nodes.
    Join {
        /// The node.
        node: usize,
    },
    /// Node `node` is asked to leave: it moves its data to the new owners,
    /// announces `left` and stops.
    Leave {
        /// The node.
        node: usize,
    },
}

impl Change {
    /// For humans (ids: index + 1).
    pub fn describe(&self) -> String {
        match self {
            Change::Join { node } => format!("node {} joins", node + 1),
            Change::Leave { node } => format!("node {} leaves", node + 1),
        }
    }
}

/// A membership change with its time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedChange {
    /// When it starts, from the start of the workload.
    pub at: Duration,
    /// What it is.
    pub change: Change,
}

/// Most joins a plan draws (the network is made with room for them).
pub const MAX_JOINS: usize = 2;

/// No change starts later than this before the workload ends, so a leave
/// or a join is under way while clients still run.
const CHANGE_TAIL: Duration = Duration::from_secs(5);

/// A fault with its window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timed {
    /// When it starts, from the start of the workload.
    pub at: Duration,
    /// How long it lasts.
    pub lasts: Duration,
    /// What it is.
    pub fault: Fault,
}

/// Which faults a plan may draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Nemesis {
    /// No faults (a baseline: the checks must hold trivially here).
    None,
    /// Only network faults: partitions, one-way, loss.
    Network,
    /// Only process faults: kill -9, pauses, wiped disks, slow disks.
    Process,
    /// Both.
    All,
}

/// Everything a run is made of.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys for gets, puts and deletes (plus [`COUNTER_KEYS`] counters).
    pub keys: usize,
    /// How long the workload runs.
    pub duration: Duration,
    /// The faults, in start order, none overlapping.
    pub faults: Vec<Timed>,
    /// Whether node 1, which founded the cluster, restarts as it first
    /// started, without seeds (the operator reran the same command), rather
    /// than with every other node as seeds. After a wipe it then founds a
    /// cluster of its own on an empty disk until gossip reaches it, and
    /// acknowledges writes meanwhile: they must not be lost either.
    pub founder_restarts_seedless: bool,
    /// Each node's clock skew, by index (none: the harness's clock).
    pub clocks: Vec<Option<Skew>>,
    /// Membership changes, in time order (see the module doc).
    pub changes: Vec<TimedChange>,
}

/// Counter keys, incremented (the RESP gateway's `INCR` update) by one
/// operation in ten; numbered after the ordinary keys.
pub const COUNTER_KEYS: usize = 2;

/// The shortest and longest fault windows.
const FAULT_MIN: Duration = Duration::from_secs(2);
const FAULT_MAX: Duration = Duration::from_secs(8);

/// The quiet gap after each fault, at most (at least a second).
const GAP_MAX: Duration = Duration::from_secs(4);

/// Settle time at the start, before the first fault.
const LEAD_IN: Duration = Duration::from_secs(2);

impl Plan {
    /// The plan of `seed`: `nodes` (3 to 5 drawn if `None`) and a workload
    /// of `duration`, with faults from `nemesis` and `changes` membership
    /// changes (1 or 2 drawn if `None`; none in the baseline nemesis).
    pub fn draw(
        seed: u64,
        nodes: Option<usize>,
        duration: Duration,
        nemesis: Nemesis,
        changes: Option<usize>,
    ) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let nodes = nodes.unwrap_or_else(|| rng.random_range(3..=5));
        let clients = rng.random_range(4..=10);
        let keys = rng.random_range(5..=20);
        let mut faults = Vec::new();
        let mut at = LEAD_IN;
        loop {
            let lasts = ms(rng.random_range(ms_of(FAULT_MIN)..=ms_of(FAULT_MAX)));
            // Every fault ends a little before the workload does, so the
            // run ends with the writes of a healed cluster.
            if nemesis == Nemesis::None || at + lasts + Duration::from_secs(1) > duration {
                break;
            }
            let fault = draw_fault(&mut rng, nodes, nemesis);
            faults.push(Timed { at, lasts, fault });
            at += lasts + ms(rng.random_range(1_000..=ms_of(GAP_MAX)));
        }
        // Drawn last, so the draws above are those of earlier versions.
        let founder_restarts_seedless = rng.random_bool(0.5);
        // Then the clocks: half the nodes skewed, none in the baseline.
        let clocks = (0..nodes)
            .map(|_| {
                let skewed = rng.random_bool(0.5);
                let skew = Skew {
                    offset_secs: rng.random_range(-SKEW_MAX_OFFSET_SECS..=SKEW_MAX_OFFSET_SECS),
                    rate_permille: rng.random_range(
                        1000 - SKEW_MAX_RATE_PERMILLE..=1000 + SKEW_MAX_RATE_PERMILLE,
                    ),
                };
                (skewed && nemesis != Nemesis::None).then_some(skew)
            })
            .collect();
        let changes = if nemesis == Nemesis::None {
            Vec::new()
        } else {
            draw_changes(seed, nodes, duration, &faults, changes)
        };
        Plan {
            seed,
            nodes,
            clients,
            keys,
            duration,
            faults,
            founder_restarts_seedless,
            clocks,
            changes,
        }
    }

    /// How many nodes join during the run.
    pub fn joiners(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| matches!(c.change, Change::Join { .. }))
            .count()
    }

    /// Every drawn parameter, one per line.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "seed {}: {} nodes, {} clients, {} keys + {} counters, workload {:?}, {} faults, {} membership changes\n",
            self.seed,
            self.nodes,
            self.clients,
            self.keys,
            COUNTER_KEYS,
            self.duration,
            self.faults.len(),
            self.changes.len()
        );
        out.push_str(if self.founder_restarts_seedless {
            "  node 1 restarts without seeds, as it first started\n"
        } else {
            "  node 1 restarts with every other node as seeds\n"
        });
        for (i, skew) in self.clocks.iter().enumerate() {
            if let Some(skew) = skew {
                out.push_str(&format!("  node {}'s clock: {}\n", i + 1, skew.describe()));
            }
        }
        for f in &self.faults {
            out.push_str(&format!(
                "  at {:>6.1}s for {:>4.1}s: {}\n",
                f.at.as_secs_f64(),
                f.lasts.as_secs_f64(),
                f.fault.describe()
            ));
        }
        for c in &self.changes {
            out.push_str(&format!(
                "  at {:>6.1}s: {}\n",
                c.at.as_secs_f64(),
                c.change.describe()
            ));
        }
        out
    }
}

/// The membership changes of `seed`, from a stream of their own (see the
/// module doc): `count` of them (1 or 2 drawn if `None`) at times drawn
/// between the lead-in and [`CHANGE_TAIL`] before the end, each a leave
/// where one is allowed and drawn, else a join while fewer than
/// [`MAX_JOINS`] happened.
fn draw_changes(
    seed: u64,
    nodes: usize,
    duration: Duration,
    faults: &[Timed],
    count: Option<usize>,
) -> Vec<TimedChange> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x6d65_6d62_6572_7321);
    let count = count.unwrap_or_else(|| rng.random_range(1..=2));
    let latest = duration.saturating_sub(CHANGE_TAIL).max(LEAD_IN);
    let mut times: Vec<Duration> = (0..count)
        .map(|_| ms(rng.random_range(ms_of(LEAD_IN)..=ms_of(latest))))
        .collect();
    times.sort_unstable();
    let mut members: Vec<usize> = (0..nodes).collect();
    let mut joined = 0;
    let mut out = Vec::new();
    for at in times {
        let leavable: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&n| n != 0 && n < nodes && !faulted_after(faults, n, at))
            .collect();
        let leave = members.len() > 3 && !leavable.is_empty() && rng.random_bool(0.5);
        let change = if leave {
            let node = leavable[rng.random_range(0..leavable.len())];
            members.retain(|&m| m != node);
            Change::Leave { node }
        } else if joined < MAX_JOINS {
            let node = nodes + joined;
            joined += 1;
            members.push(node);
            Change::Join { node }
        } else {
            continue;
        };
        out.push(TimedChange { at, change });
    }
    out
}

/// Whether a fault that is not over by `at` is a process fault on `node`
/// or drops packets into or out of it alone (partitions, whose sides are
/// whole sets of nodes, do not count).
fn faulted_after(faults: &[Timed], node: usize, at: Duration) -> bool {
    faults.iter().any(|f| {
        f.at + f.lasts > at
            && match &f.fault {
                Fault::Partition { .. } => false,
                Fault::OneWay { from, to } => *from == node || *to == node,
                Fault::Loss { node: n, .. }
                | Fault::Jitter { node: n, .. }
                | Fault::Kill { node: n }
                | Fault::Pause { node: n }
                | Fault::Wipe { node: n }
                | Fault::SlowDisk { node: n, .. } => *n == node,
            }
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ms_of(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn draw_fault(rng: &mut Xoshiro256PlusPlus, nodes: usize, nemesis: Nemesis) -> Fault {
    let node = rng.random_range(0..nodes);
    let network = match nemesis {
        Nemesis::Network => true,
        Nemesis::Process => false,
        Nemesis::All | Nemesis::None => rng.random_bool(0.5),
    };
    if network {
        match rng.random_range(0..5) {
            // Majority | minority: the minority picked at random.
            0 => {
                let mut order: Vec<usize> = (0..nodes).collect();
                shuffle(rng, &mut order);
                let minority = rng.random_range(1..=(nodes - 1) / 2);
                let mut small = order[..minority].to_vec();
                let mut large = order[minority..].to_vec();
                small.sort_unstable();
                large.sort_unstable();
                Fault::Partition {
                    groups: vec![large, small],
                }
            }
            // One node cut off from everyone.
            1 => Fault::Partition {
                groups: vec![(0..nodes).filter(|&n| n != node).collect(), vec![node]],
            },
            2 => {
                let to = (node + rng.random_range(1..nodes)) % nodes;
                Fault::OneWay { from: node, to }
            }
            3 => Fault::Loss {
                node,
                percent: rng.random_range(10..=60),
            },
            _ => {
                let delay_ms = rng.random_range(5..=80);
                Fault::Jitter {
                    node,
                    shape: Shape {
                        delay_ms,
                        jitter_ms: rng.random_range(0..=delay_ms),
                        duplicate_percent: rng.random_range(0..=10),
                    },
                }
            }
        }
    } else {
        match rng.random_range(0..12) {
            0..=4 => Fault::Kill { node },
            5..=8 => Fault::Pause { node },
            9 => Fault::Wipe { node },
            _ => Fault::SlowDisk {
                node,
                ms: rng.random_range(200..=3_000),
            },
        }
    }
}

fn shuffle(rng: &mut Xoshiro256PlusPlus, v: &mut [usize]) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_plan_and_different_seeds_differ() {
        let d = Duration::from_secs(60);
        let a = Plan::draw(7, None, d, Nemesis::All, None);
        let b = Plan::draw(7, None, d, Nemesis::All, None);
        assert_eq!(a.describe(), b.describe());
        let c = Plan::draw(8, None, d, Nemesis::All, None);
        assert_ne!(a.describe(), c.describe());
    }

    #[test]
    fn faults_do_not_overlap_end_before_the_workload_and_name_real_nodes() {
        for seed in 0..200 {
            let d = Duration::from_secs(45);
            let p = Plan::draw(seed, None, d, Nemesis::All, None);
            assert!(!p.faults.is_empty(), "seed {seed} drew no fault");
            let mut free_from = Duration::ZERO;
            for f in &p.faults {
                assert!(f.at >= free_from, "seed {seed}: overlapping faults");
                free_from = f.at + f.lasts;
                assert!(free_from < d, "seed {seed}: a fault outlasts the workload");
                let named: Vec<usize> = match &f.fault {
                    Fault::Partition { groups } => {
                        assert!(
                            groups.iter().all(|g| !g.is_empty()),
                            "seed {seed}: empty side"
                        );
                        let mut all: Vec<usize> = groups.concat();
                        all.sort_unstable();
                        assert_eq!(all, (0..p.nodes).collect::<Vec<_>>(), "seed {seed}");
                        all
                    }
                    Fault::OneWay { from, to } => {
                        assert_ne!(from, to, "seed {seed}");
                        vec![*from, *to]
                    }
                    Fault::Loss { node, .. }
                    | Fault::Jitter { node, .. }
                    | Fault::Kill { node }
                    | Fault::Pause { node }
                    | Fault::Wipe { node }
                    | Fault::SlowDisk { node, .. } => vec![*node],
                };
                assert!(named.iter().all(|&n| n < p.nodes), "seed {seed}");
            }
        }
    }

    #[test]
    fn clock_skews_stay_within_their_bounds_and_spare_the_baseline() {
        let d = Duration::from_secs(60);
        let mut skewed = 0;
        for seed in 0..100 {
            let p = Plan::draw(seed, None, d, Nemesis::All, None);
            assert_eq!(p.clocks.len(), p.nodes);
            for skew in p.clocks.iter().flatten() {
                skewed += 1;
                assert!(skew.offset_secs.abs() <= SKEW_MAX_OFFSET_SECS);
                assert!(skew.rate_permille.abs_diff(1000) <= SKEW_MAX_RATE_PERMILLE);
            }
            let none = Plan::draw(seed, None, d, Nemesis::None, None);
            assert!(none.clocks.iter().all(Option::is_none), "seed {seed}");
        }
        assert!(skewed > 50, "only {skewed} skewed clocks in 100 plans");
        let skew = Skew {
            offset_secs: -90,
            rate_permille: 1_042,
        };
        assert_eq!(skew.faketime(), "-90 x1.042");
    }

    #[test]
    fn a_nemesis_draws_only_its_kind() {
        let d = Duration::from_secs(120);
        for seed in 0..50 {
            let net = Plan::draw(seed, Some(3), d, Nemesis::Network, None);
            assert!(net.faults.iter().all(|f| matches!(
                f.fault,
                Fault::Partition { .. }
                    | Fault::OneWay { .. }
                    | Fault::Loss { .. }
                    | Fault::Jitter { .. }
            )));
            let procs = Plan::draw(seed, Some(3), d, Nemesis::Process, None);
            assert!(procs.faults.iter().all(|f| matches!(
                f.fault,
                Fault::Kill { .. }
                    | Fault::Pause { .. }
                    | Fault::Wipe { .. }
                    | Fault::SlowDisk { .. }
            )));
            assert!(
                Plan::draw(seed, Some(3), d, Nemesis::None, None)
                    .faults
                    .is_empty()
            );
        }
    }

    #[test]
    fn changes_keep_three_members_spare_leavers_and_leave_the_faults_as_they_were() {
        let d = Duration::from_secs(40);
        let (mut joins, mut leaves) = (0, 0);
        for seed in 0..300 {
            let p = Plan::draw(seed, None, d, Nemesis::All, None);
            let without = Plan::draw(seed, None, d, Nemesis::All, Some(0));
            assert!(without.changes.is_empty());
            assert_eq!(
                p.faults, without.faults,
                "seed {seed}: changes moved the faults"
            );
            assert_eq!(p.clocks, without.clocks, "seed {seed}");
            assert!((1..=2).contains(&p.changes.len()), "seed {seed}");
            let mut members = p.nodes;
            let mut next_joiner = p.nodes;
            let mut last = Duration::ZERO;
            for c in &p.changes {
                assert!(c.at >= last && c.at + CHANGE_TAIL <= d, "seed {seed}");
                last = c.at;
                match c.change {
                    Change::Join { node } => {
                        assert_eq!(node, next_joiner, "seed {seed}");
                        next_joiner += 1;
                        members += 1;
                        joins += 1;
                    }
                    Change::Leave { node } => {
                        assert!(node != 0 && node < p.nodes, "seed {seed}");
                        assert!(!faulted_after(&p.faults, node, c.at), "seed {seed}");
                        members -= 1;
                        leaves += 1;
                    }
                }
                assert!(members >= 3, "seed {seed}");
            }
            assert_eq!(p.joiners(), next_joiner - p.nodes);
            assert!(p.joiners() <= MAX_JOINS);
            assert!(
                Plan::draw(seed, None, d, Nemesis::None, None)
                    .changes
                    .is_empty()
            );
        }
        assert!(joins > 100 && leaves > 50, "{joins} joins, {leaves} leaves");
    }
}
