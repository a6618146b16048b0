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

use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
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
            Fault::Kill { node } => format!("kill -9 node {}, restart", id(node)),
            Fault::Pause { node } => format!("SIGSTOP node {}, SIGCONT", id(node)),
            Fault::Wipe { node } => format!("kill -9 node {}, wipe its disk, restart", id(node)),
            Fault::SlowDisk { node, ms } => {
                format!("node {}'s disk takes {ms} ms per sync", id(node))
            }
        }
    }
}

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
    /// of `duration`, with faults from `nemesis`.
    pub fn draw(seed: u64, nodes: Option<usize>, duration: Duration, nemesis: Nemesis) -> Self {
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
        Plan {
            seed,
            nodes,
            clients,
            keys,
            duration,
            faults,
            founder_restarts_seedless,
        }
    }

    /// Every drawn parameter, one per line.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "seed {}: {} nodes, {} clients, {} keys + {} counters, workload {:?}, {} faults\n",
            self.seed,
            self.nodes,
            self.clients,
            self.keys,
            COUNTER_KEYS,
            self.duration,
            self.faults.len()
        );
        out.push_str(if self.founder_restarts_seedless {
            "  node 1 restarts without seeds, as it first started\n"
        } else {
            "  node 1 restarts with every other node as seeds\n"
        });
        for f in &self.faults {
            out.push_str(&format!(
                "  at {:>6.1}s for {:>4.1}s: {}\n",
                f.at.as_secs_f64(),
                f.lasts.as_secs_f64(),
                f.fault.describe()
            ));
        }
        out
    }
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
        match rng.random_range(0..4) {
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
            _ => Fault::Loss {
                node,
                percent: rng.random_range(10..=60),
            },
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
        let a = Plan::draw(7, None, d, Nemesis::All);
        let b = Plan::draw(7, None, d, Nemesis::All);
        assert_eq!(a.describe(), b.describe());
        let c = Plan::draw(8, None, d, Nemesis::All);
        assert_ne!(a.describe(), c.describe());
    }

    #[test]
    fn faults_do_not_overlap_end_before_the_workload_and_name_real_nodes() {
        for seed in 0..200 {
            let d = Duration::from_secs(45);
            let p = Plan::draw(seed, None, d, Nemesis::All);
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
    fn a_nemesis_draws_only_its_kind() {
        let d = Duration::from_secs(120);
        for seed in 0..50 {
            let net = Plan::draw(seed, Some(3), d, Nemesis::Network);
            assert!(net.faults.iter().all(|f| matches!(
                f.fault,
                Fault::Partition { .. } | Fault::OneWay { .. } | Fault::Loss { .. }
            )));
            let procs = Plan::draw(seed, Some(3), d, Nemesis::Process);
            assert!(procs.faults.iter().all(|f| matches!(
                f.fault,
                Fault::Kill { .. }
                    | Fault::Pause { .. }
                    | Fault::Wipe { .. }
                    | Fault::SlowDisk { .. }
            )));
            assert!(
                Plan::draw(seed, Some(3), d, Nemesis::None)
                    .faults
                    .is_empty()
            );
        }
    }
}
