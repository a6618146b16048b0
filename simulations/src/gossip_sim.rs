//! Gossip-only simulations: membership convergence, failure detection and
//! cost, measured on clusters of real [`Gossiper`]s over a simulated
//! network (seeded, deterministic).
//!
//! `quorra-gossip-sim` prints the figures the gossip issue asks for:
//! rounds until a cluster started from three seeds agrees on its member
//! table, seconds until every node sees a crashed node down, false
//! suspicions per node-hour under message loss, and gossip bytes per node
//! per second (messages encoded with rmp-serde, as the runtime sends them).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use quorra_gossip::{
    Config, Entry, Event, GossipMessage, Gossiper, Info, Status, Target, settings_hash,
};
use quorra_ring::{NodeId, Token};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// A message in flight.
struct Flight {
    at: Duration,
    seq: u64,
    from: usize,
    to: usize,
    message: GossipMessage,
}

impl PartialEq for Flight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Flight {}
impl PartialOrd for Flight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Flight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A cluster of gossipers on a lossy network.
pub struct GossipCluster {
    /// The gossipers (index = id - 1).
    pub nodes: Vec<Gossiper>,
    /// Which are running.
    pub alive: Vec<bool>,
    /// Simulated time.
    pub now: Duration,
    /// Message loss probability.
    pub loss: f64,
    rng: Xoshiro256PlusPlus,
    queue: BinaryHeap<Reverse<Flight>>,
    seq: u64,
    /// Bytes sent per node.
    pub bytes: Vec<u64>,
    /// Down events seen: (observer, subject, time).
    pub downs: Vec<(usize, NodeId, Duration)>,
}

fn entry(id: u64, started: bool) -> Entry {
    Entry {
        id: NodeId(id),
        generation: 1,
        heartbeat: 0,
        version: 1,
        info: Info {
            status: if started {
                Status::Normal
            } else {
                Status::Joining
            },
            address: format!("n{id}"),
            zone: "z".into(),
            tokens: (0..8).map(|t| Token(id << 16 | t)).collect(),
            storage_failing: false,
            layout: Default::default(),
        },
    }
}

impl GossipCluster {
    /// `n` nodes that know only `seeds` (node indices from 1), with message
    /// loss `loss`.
    pub fn new(n: usize, seeds: usize, loss: f64, seed: u64) -> Self {
        let seed_addrs: Vec<String> = (1..=seeds.min(n)).map(|s| format!("n{s}")).collect();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let nodes = (1..=n as u64)
            .map(|id| {
                Gossiper::new(
                    entry(id, true),
                    "sim",
                    settings_hash(1024, 3),
                    seed_addrs.clone(),
                    Config::default(),
                    rng.random(),
                    Duration::ZERO,
                )
            })
            .collect();
        Self {
            alive: vec![true; n],
            nodes,
            now: Duration::ZERO,
            loss,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            bytes: vec![0; n],
            downs: Vec::new(),
        }
    }

    fn index(address: &str) -> usize {
        address
            .trim_start_matches('n')
            .parse::<usize>()
            .unwrap_or(1)
            - 1
    }

    fn flush_outbox(&mut self, i: usize) {
        while let Some((to, message)) = self.nodes[i].poll_transmit() {
            let j = match &to {
                Target::Member(_, a) | Target::Seed(a) => Self::index(a),
            };
            self.bytes[i] += rmp_serde::to_vec(&message).map_or(0, |b| b.len() as u64 + 6);
            if self.rng.random_bool(self.loss) {
                continue;
            }
            let latency = Duration::from_micros(self.rng.random_range(200..5_000));
            self.seq += 1;
            self.queue.push(Reverse(Flight {
                at: self.now + latency,
                seq: self.seq,
                from: i,
                to: j,
                message,
            }));
        }
        while let Some(e) = self.nodes[i].poll_event() {
            if let Event::Down(id) = e {
                self.downs.push((i, id, self.now));
            }
        }
    }

    /// Runs until `until`.
    pub fn run_until(&mut self, until: Duration) {
        loop {
            let next_timer = self
                .nodes
                .iter()
                .zip(&self.alive)
                .filter(|(_, a)| **a)
                .map(|(g, _)| g.poll_timeout())
                .min()
                .unwrap_or(until);
            let next_msg = self.queue.peek().map_or(Duration::MAX, |Reverse(f)| f.at);
            let next = next_timer.min(next_msg);
            if next > until {
                self.now = until;
                return;
            }
            self.now = next;
            if next_msg <= next_timer {
                let Reverse(f) = self.queue.pop().expect("peeked");
                if self.alive[f.to] && self.alive[f.from] {
                    let from = self.nodes[f.from].id();
                    self.nodes[f.to].handle_message(self.now, from, f.message);
                    self.flush_outbox(f.to);
                }
            } else {
                for i in 0..self.nodes.len() {
                    if self.alive[i] && self.nodes[i].poll_timeout() <= self.now {
                        self.nodes[i].handle_timeout(self.now);
                        self.flush_outbox(i);
                    }
                }
            }
        }
    }

    /// Whether every running node holds the same member table (ids and
    /// information versions) covering every node.
    pub fn agree(&self) -> bool {
        let want = self.nodes.len();
        let mut views = self
            .nodes
            .iter()
            .map(|g| g.entries().map(|e| (e.id, e.version)).collect::<Vec<_>>());
        let Some(first) = views.next() else {
            return true;
        };
        first.len() == want && views.all(|v| v == first)
    }
}

/// Rounds (gossip intervals) until a cluster of `n` started from 3 seeds agrees.
pub fn convergence_rounds(n: usize, seed: u64) -> Option<u64> {
    let mut c = GossipCluster::new(n, 3, 0.0, seed);
    for round in 1..=60 {
        c.run_until(Duration::from_secs(round));
        if c.agree() {
            return Some(round);
        }
    }
    None
}

/// Seconds from a crash until every other node sees the crashed node down
/// (after a warm-up), with message loss `loss`.
pub fn detection_seconds(n: usize, loss: f64, seed: u64) -> Option<f64> {
    let mut c = GossipCluster::new(n, 3, loss, seed);
    let warmup = Duration::from_secs(60);
    c.run_until(warmup);
    c.downs.clear();
    let victim = n - 1;
    c.alive[victim] = false;
    c.run_until(warmup + Duration::from_secs(60));
    let subject = NodeId(n as u64);
    let mut worst = 0.0f64;
    for observer in (0..n).filter(|&o| o != victim) {
        let seen = c
            .downs
            .iter()
            .find(|(o, s, _)| *o == observer && *s == subject)?;
        worst = worst.max((seen.2 - warmup).as_secs_f64());
    }
    Some(worst)
}

/// False suspicions per node-hour for `n` live nodes over `minutes` of
/// simulated time with message loss `loss`.
pub fn false_positives_per_node_hour(n: usize, loss: f64, minutes: u64, seed: u64) -> (usize, f64) {
    let mut c = GossipCluster::new(n, 3, loss, seed);
    let warmup = Duration::from_secs(30);
    c.run_until(warmup);
    c.downs.clear();
    c.run_until(warmup + Duration::from_secs(minutes * 60));
    let count = c.downs.len();
    (count, count as f64 / (n as f64 * minutes as f64 / 60.0))
}

/// Gossip bytes sent per node per second in a stable cluster of `n`.
pub fn bytes_per_node_second(n: usize, seed: u64) -> f64 {
    let mut c = GossipCluster::new(n, 3, 0.0, seed);
    c.run_until(Duration::from_secs(60));
    let before: u64 = c.bytes.iter().sum();
    c.run_until(Duration::from_secs(120));
    let after: u64 = c.bytes.iter().sum();
    (after - before) as f64 / (n as f64 * 60.0)
}
