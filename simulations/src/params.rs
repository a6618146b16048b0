//! Everything a simulation run depends on, drawn from its seed.
//!
//! One seed decides the cluster size, the workload and every fault rate; the
//! command line may pin some of them. The run prints every drawn parameter
//! before it starts, so a failure report says exactly what was simulated.

use std::fmt::Write;
use std::time::Duration;

use quorra_node::core::ReadFanout;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// How hostile the environment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultLevel {
    /// A perfect network and no failures.
    None,
    /// Occasional loss, duplication, a crash or a pause now and then.
    Light,
    /// Frequent loss, duplication, long tails, partitions, crashes, pauses,
    /// lost disks and skew, as hostile as the cluster can be while a
    /// majority of its nodes stays up outside power cuts (see
    /// [`crate::faults`]): partitions are not bounded, so quorums still fail.
    Heavy,
}

impl std::str::FromStr for FaultLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(FaultLevel::None),
            "light" => Ok(FaultLevel::Light),
            "heavy" => Ok(FaultLevel::Heavy),
            _ => Err(format!(
                "unknown fault level {s:?}; expected none, light or heavy"
            )),
        }
    }
}

impl std::fmt::Display for FaultLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FaultLevel::None => "none",
            FaultLevel::Light => "light",
            FaultLevel::Heavy => "heavy",
        })
    }
}

/// What the command line pins instead of drawing.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Cluster size.
    pub nodes: Option<usize>,
    /// Client operations in the safety phase.
    pub ops: Option<usize>,
    /// Fault level.
    pub faults: Option<FaultLevel>,
    /// Turn read repair off.
    pub no_read_repair: bool,
    /// Turn sloppy quorum and hinted handoff off.
    pub no_hinted_handoff: bool,
    /// Turn Merkle anti-entropy off.
    pub no_anti_entropy: bool,
    /// Print every change of this key on any node (see [`crate::watch`]).
    pub watch_key: Option<usize>,
    /// Membership changes in the safety phase (0: none).
    pub changes: Option<usize>,
}

/// The parameters of one run.
#[derive(Clone, Debug)]
pub struct Params {
    /// The seed everything comes from.
    pub seed: u64,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Replicas per key (N).
    pub replicas: usize,
    /// Partitions (Q).
    pub partitions: u32,
    /// Tokens per node (T).
    pub tokens: usize,
    /// Keys the workload uses (small, so operations collide).
    pub keys: usize,
    /// Concurrent clients, one operation in flight each.
    pub clients: usize,
    /// Client operations in the safety phase.
    pub ops: usize,
    /// Fault level.
    pub faults: FaultLevel,
    /// Fastest message delivery.
    pub latency_min: Duration,
    /// Slowest usual delivery.
    pub latency_max: Duration,
    /// Probability a message takes the long tail.
    pub tail_probability: f64,
    /// Slowest tail delivery.
    pub tail_max: Duration,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Mean time between fault events (zero: no fault events).
    pub fault_interval: Duration,
    /// Longest a crashed node stays down.
    pub max_down: Duration,
    /// Longest pause of a node.
    pub max_pause: Duration,
    /// Longest partition.
    pub max_partition: Duration,
    /// Largest clock rate error, in parts per million.
    pub max_drift_ppm: u32,
    /// Largest clock offset.
    pub max_offset: Duration,
    /// Slowest flush of a node's disk.
    pub max_flush: Duration,
    /// Read repair on.
    pub read_repair: bool,
    /// Whom reads ask: their quorum (reserves on failure or after a
    /// delay), or every replica. One seed in four asks every replica.
    pub read_fanout: ReadFanout,
    /// Sloppy quorum and hinted handoff on.
    pub hinted_handoff: bool,
    /// Merkle anti-entropy on.
    pub anti_entropy: bool,
    /// The nodes' request timeout.
    pub request_timeout: Duration,
    /// The nodes' tombstone grace.
    pub tombstone_grace: Duration,
    /// Most bytes of hints a node holds.
    pub max_hint_bytes: u64,
    /// How long gossip remembers a member that left or was removed (not
    /// drawn: the production default; scripted tests shorten it).
    pub forget_after: Duration,
    /// Key whose every change is printed (not drawn; changes no outcome).
    pub watch_key: Option<usize>,
    /// Node 1 restarts without seeds, as it first started (not drawn;
    /// scripted tests set it): after a lost disk it founds a cluster of its
    /// own until gossip reaches it.
    pub founder_restarts_seedless: bool,
    /// Bytes per second a node pulls, at most, for partitions it gains
    /// (not drawn: the production default; scripted tests lower it).
    pub transfer_bytes_per_sec: u64,
    /// Membership changes injected in the safety phase (joins, leaves,
    /// removes of dead nodes; see [`crate::changes`]): at least one.
    pub changes: usize,
    /// Mean time between two of them (the first comes within
    /// [`crate::changes::FIRST_CHANGE`] of the safety phase's start).
    pub change_interval: Duration,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}

impl Params {
    /// Q and N.
    pub fn ring_config(&self) -> quorra_ring::RingConfig {
        quorra_ring::RingConfig {
            partitions: self.partitions,
            replicas: self.replicas,
        }
    }

    /// Draws the parameters of `seed`, then applies `overrides`.
    pub fn draw(seed: u64, overrides: &Overrides) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5157_4f52_5241_5349);
        let faults = overrides.faults.unwrap_or(match rng.random_range(0..10) {
            0 => FaultLevel::None,
            1..=4 => FaultLevel::Light,
            _ => FaultLevel::Heavy,
        });
        let nodes = overrides.nodes.unwrap_or(rng.random_range(3..=7));
        let latency_min = us(rng.random_range(50..500));
        let latency_max = latency_min + us(rng.random_range(100..5_000));
        let mut p = Params {
            seed,
            nodes,
            replicas: 3.min(nodes),
            partitions: 64,
            tokens: 8,
            keys: rng.random_range(4..=24),
            clients: rng.random_range(2..=8),
            ops: overrides.ops.unwrap_or(2_000),
            faults,
            latency_min,
            latency_max,
            tail_probability: 0.0,
            tail_max: latency_max,
            loss: 0.0,
            duplicate: 0.0,
            fault_interval: Duration::ZERO,
            max_down: Duration::ZERO,
            max_pause: Duration::ZERO,
            max_partition: Duration::ZERO,
            max_drift_ppm: 0,
            max_offset: Duration::ZERO,
            max_flush: us(rng.random_range(50..20_000)),
            read_repair: !overrides.no_read_repair,
            read_fanout: ReadFanout::Quorum,
            hinted_handoff: !overrides.no_hinted_handoff,
            anti_entropy: !overrides.no_anti_entropy,
            request_timeout: ms(500),
            tombstone_grace: ms(5_000),
            max_hint_bytes: 256 * 1024 * 1024,
            forget_after: quorra_gossip::Config::default().forget_after,
            watch_key: overrides.watch_key,
            founder_restarts_seedless: false,
            transfer_bytes_per_sec: quorra_node::core::Options::default().transfer_bytes_per_sec,
            changes: 1,
            change_interval: Duration::ZERO,
        };
        match faults {
            FaultLevel::None => {}
            FaultLevel::Light => {
                p.tail_probability = rng.random_range(0.0..0.02);
                p.tail_max = latency_max + ms(rng.random_range(5..50));
                p.loss = rng.random_range(0.0..0.01);
                p.duplicate = rng.random_range(0.0..0.01);
                p.fault_interval = ms(rng.random_range(500..3_000));
                p.max_down = ms(rng.random_range(50..1_000));
                p.max_pause = ms(rng.random_range(10..300));
                p.max_partition = ms(rng.random_range(50..1_000));
                p.max_drift_ppm = rng.random_range(0..1_000);
                p.max_offset = ms(rng.random_range(0..100));
            }
            FaultLevel::Heavy => {
                p.tail_probability = rng.random_range(0.01..0.1);
                p.tail_max = latency_max + ms(rng.random_range(20..2_500));
                p.loss = rng.random_range(0.01..0.1);
                p.duplicate = rng.random_range(0.01..0.05);
                p.fault_interval = ms(rng.random_range(50..600));
                p.max_down = ms(rng.random_range(100..8_000));
                p.max_pause = ms(rng.random_range(50..1_500));
                p.max_partition = ms(rng.random_range(100..8_000));
                p.max_drift_ppm = rng.random_range(0..20_000);
                p.max_offset = ms(rng.random_range(0..2_000));
            }
        }
        // Drawn last, so the draws above are what they were before it.
        if rng.random_range(0..4) == 0 {
            p.read_fanout = ReadFanout::All;
        }
        p.changes = overrides.changes.unwrap_or(rng.random_range(1..=4));
        p.change_interval = ms(rng.random_range(1_000..10_000));
        p
    }

    /// Every parameter, on one line, `name=value`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "seed={} nodes={} replicas={} partitions={} tokens={} keys={} clients={} ops={} faults={} \
             latency={}..{}us tail={:.3}@{}ms loss={:.3} dup={:.3} fault_interval={}ms \
             max_down={}ms max_pause={}ms max_partition={}ms drift<={}ppm offset<={}ms flush<={}us \
             read_repair={} read_fanout={:?} hinted_handoff={} anti_entropy={} request_timeout={}ms \
             tombstone_grace={}ms changes={} change_interval={}ms",
            self.seed,
            self.nodes,
            self.replicas,
            self.partitions,
            self.tokens,
            self.keys,
            self.clients,
            self.ops,
            self.faults,
            self.latency_min.as_micros(),
            self.latency_max.as_micros(),
            self.tail_probability,
            self.tail_max.as_millis(),
            self.loss,
            self.duplicate,
            self.fault_interval.as_millis(),
            self.max_down.as_millis(),
            self.max_pause.as_millis(),
            self.max_partition.as_millis(),
            self.max_drift_ppm,
            self.max_offset.as_millis(),
            self.max_flush.as_micros(),
            self.read_repair,
            self.read_fanout,
            self.hinted_handoff,
            self.anti_entropy,
            self.request_timeout.as_millis(),
            self.tombstone_grace.as_millis(),
            self.changes,
            self.change_interval.as_millis(),
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_parameters() {
        let a = Params::draw(42, &Overrides::default()).describe();
        let b = Params::draw(42, &Overrides::default()).describe();
        assert_eq!(a, b);
        assert_ne!(a, Params::draw(43, &Overrides::default()).describe());
    }

    #[test]
    fn overrides_win() {
        let o = Overrides {
            nodes: Some(5),
            ops: Some(10),
            faults: Some(FaultLevel::None),
            no_read_repair: true,
            no_hinted_handoff: false,
            no_anti_entropy: true,
            watch_key: None,
            changes: Some(0),
        };
        let p = Params::draw(1, &o);
        assert_eq!((p.nodes, p.ops, p.faults), (5, 10, FaultLevel::None));
        assert_eq!(p.loss, 0.0);
        assert!(!p.read_repair && p.hinted_handoff && !p.anti_entropy);
        assert_eq!(p.changes, 0);
    }
}
