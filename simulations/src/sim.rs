//! The simulated world: nodes, network, disks and clocks on one event queue.
//!
//! Everything happens on one thread, in the order of a priority queue keyed
//! by (simulated time, insertion number), so a run is a pure function of its
//! seed. Each node is the real [`Node`] over a [`MemoryEngine`] whose crash
//! model loses whatever was not flushed. The simulator plays the driver's
//! part exactly as the runtime does: feed inputs, send what the node wants
//! sent, flush when it asks (a flush takes simulated time, and a crash
//! before it completes loses the writes it covered), and release
//! acknowledgements after.
//!
//! Membership is gossip, as in the runtime: every node runs the real
//! [`Membership`] (gossiper, phi-accrual detector, token choice), starts
//! knowing only seeds (node 1 founds the cluster, the others join through
//! the first three nodes), and its core takes its ring and its opinions of
//! peers from it. Gossip messages cross the same faulty network as core
//! messages, but are their own event so that "quiet" ignores them.
//!
//! Faults live at the message level, as TigerBeetle's VOPR and turmoil do:
//! latency with a long tail (so reordering), loss, duplication, directed
//! partitions, crashes, pauses (a paused node's inputs wait for it), and a
//! per-node clock with an offset and a rate error whose effect stays
//! bounded ([`crate::clock`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use quorra_client::{Outcome, Request};
use quorra_gossip::{Config as GossipConfig, GossipMessage, Gossiper, Target, settings_hash};
use quorra_node::core::{ClientTag, Node, Options, PeerMessage};
use quorra_node::membership::{Identity, Membership, identity, own_entry};
use quorra_node::storage::memory::MemoryEngine;
use quorra_node::storage::{Engine, Lsn, Store};
use quorra_ring::{Member, NodeId, Ring};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::clock::Clock;
use crate::params::Params;
use crate::trace::Trace;
use crate::watch::Watch;

/// How often each node compares each partition it replicates with another
/// replica. Shorter than the runtime's default, as every interval of the
/// simulator is (64 partitions, a few keys).
pub const ANTI_ENTROPY_INTERVAL: Duration = Duration::from_secs(2);

/// Something that happens at a point of simulated time.
#[derive(Debug)]
pub enum Event {
    /// A message arrives at node `to`.
    Deliver {
        /// Receiving node index.
        to: usize,
        /// Sending node index.
        from: usize,
        /// The message.
        message: PeerMessage,
    },
    /// A gossip message arrives at node `to`.
    Gossip {
        /// Receiving node index.
        to: usize,
        /// Sending node index.
        from: usize,
        /// The message.
        message: GossipMessage,
    },
    /// A node's timer fires (ignored unless it is the node's current one).
    Timer {
        /// Node index.
        node: usize,
        /// The node's life the timer belongs to.
        life: u64,
    },
    /// A node's flush completes, making writes up to `upto` durable.
    FlushDone {
        /// Node index.
        node: usize,
        /// LSN the flush covers.
        upto: Lsn,
        /// The node's life the flush belongs to.
        life: u64,
    },
    /// A client request reaches a node.
    Request {
        /// Node index.
        node: usize,
        /// The client's tag.
        tag: ClientTag,
        /// The request.
        request: Request,
    },
    /// A reply reaches its client.
    Reply {
        /// The client's tag.
        tag: ClientTag,
        /// The outcome.
        outcome: Outcome,
    },
    /// Node `node`'s expiry sweeper walks its partitions (see
    /// [`crate::workload`]).
    Sweep {
        /// Node index.
        node: usize,
    },
    /// A client's own timer (think time over, or request timeout).
    ClientWake {
        /// Client index.
        client: usize,
        /// The tag it waits on, if it is a timeout.
        timeout_of: Option<ClientTag>,
    },
    /// Time for the next random fault.
    Fault,
    /// Time for the next membership change ([`crate::changes`]).
    Change,
    /// An operator removes dead node `node` (retried until it is).
    Remove {
        /// Node index.
        node: usize,
    },
    /// An operator starts a new node in the place of dead node `node`.
    Replace {
        /// Node index of the dead node.
        node: usize,
    },
    /// A crashed node starts again.
    Restart {
        /// Node index.
        node: usize,
    },
    /// A paused node resumes.
    Resume {
        /// Node index.
        node: usize,
    },
    /// A partition ends.
    Heal {
        /// The directed links it had cut.
        links: Vec<(usize, usize)>,
    },
}

impl Event {
    /// Timers, client wakes, sweeps, faults and gossip: events that never
    /// stop coming, so they do not keep the cluster from being quiet.
    fn background(&self) -> bool {
        matches!(
            self,
            Event::Timer { .. }
                | Event::ClientWake { .. }
                | Event::Sweep { .. }
                | Event::Fault
                | Event::Change
                | Event::Gossip { .. }
        )
    }
}

struct Scheduled {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One simulated node: the real core plus its disk, clock and state.
pub struct SimNode {
    /// The node's id.
    pub id: NodeId,
    /// Its disk, which outlives crashes.
    pub engine: Arc<MemoryEngine>,
    /// Started with `--replace` of this dead member (on every start, as
    /// the flag stays on a command line; ignored once it joined).
    pub replaces: Option<NodeId>,
    /// The running core, `None` while crashed.
    pub node: Option<Node>,
    /// Its membership, `None` while crashed.
    pub membership: Option<Membership>,
    /// The node left the cluster and stopped for good, or died for good
    /// ([`crate::changes`]): it never runs again.
    pub departed: bool,
    /// Down verdicts of this process's gossiper already counted.
    downs_counted: u64,
    /// Bumped at every crash; events of an earlier life are dropped.
    pub life: u64,
    /// Until when the node is paused.
    pub paused_until: Option<Duration>,
    /// Since when the node is crashed or paused (for [`Sim::node_time_down`]).
    unavailable_since: Option<Duration>,
    /// Inputs that arrived while paused, in arrival order.
    held: Vec<Event>,
    /// Global time of the node's scheduled timer.
    timer_at: Option<Duration>,
    /// A flush is in progress.
    flushing: bool,
    /// The node's clock.
    clock: Clock,
}

impl SimNode {
    /// The node's clock reading at global time `now`.
    pub fn local(&self, now: Duration) -> Duration {
        self.clock.local(now)
    }

    /// The earliest global time at which the node's clock reads at least
    /// `local` (so a timer never fires before its deadline).
    fn global(&self, local: Duration) -> Duration {
        self.clock.global(local)
    }

    /// Whether the node is running (not crashed, not paused).
    pub fn running(&self) -> bool {
        self.node.is_some() && self.paused_until.is_none()
    }
}

/// Counters of what the simulated world did.
#[derive(Clone, Debug, Default)]
pub struct WorldStats {
    /// Messages delivered.
    pub delivered: u64,
    /// Messages lost (loss, partition, dead receiver).
    pub dropped: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Crashes.
    pub crashes: u64,
    /// Disks lost (the node came back empty).
    pub disk_losses: u64,
    /// Pauses.
    pub pauses: u64,
    /// Partitions.
    pub partitions: u64,
    /// Writes lost by crashes before a flush.
    pub writes_lost_in_crashes: u64,
    /// Gossip messages sent.
    pub gossip_messages: u64,
    /// Times a node judged a peer down (phi accrual).
    pub gossip_downs: u64,
    /// Node-time spent crashed or paused, summed over nodes (faults that
    /// ended; [`Sim::node_time_down`] adds those still going on).
    pub node_down: Duration,
}

/// The simulated cluster.
pub struct Sim {
    /// The run's parameters.
    pub params: Params,
    /// Global simulated time.
    pub now: Duration,
    /// The RNG every random choice is drawn from.
    pub rng: Xoshiro256PlusPlus,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    /// The nodes.
    pub nodes: Vec<SimNode>,
    /// The ring the nodes agreed on at the end of the bootstrap, then
    /// (membership changes during the run) the one they agree on once the
    /// liveness phase is quiet: the checks read primaries from it.
    pub ring: Ring,
    /// Directed links cut by partitions (with a count, partitions may overlap).
    cut: BTreeMap<(usize, usize), u32>,
    /// Partitions of more than one link in force (the random faults start
    /// a split only when none is, see [`crate::faults`]).
    pub splits: usize,
    /// Whether loss, duplication and tails apply (off in the liveness phase).
    pub network_faults: bool,
    /// The determinism trace, if recording.
    pub trace: Option<Trace>,
    /// The watched key, if any.
    watch: Option<Watch>,
    /// Counters.
    pub stats: WorldStats,
    /// Counters of node processes that crashed.
    pub retired: quorra_node::core::Stats,
    /// Disks lost: (node id, when).
    pub disk_losses: Vec<(u64, Duration)>,
    /// The updater every node runs with, and its log of applications.
    pub updater: crate::updater::RecordingUpdater,
    /// Membership changes still to inject ([`crate::changes`]).
    pub changes_left: usize,
    /// The membership changes made: when, and what.
    pub changes: Vec<(Duration, String)>,
}

impl Sim {
    /// Builds the cluster of `params`, every node started at time zero
    /// knowing only its seeds: the ring forms by gossip (see
    /// [`Sim::agreed_ring`]).
    pub fn new(params: Params, record_trace: bool) -> Self {
        let rng = Xoshiro256PlusPlus::seed_from_u64(params.seed);
        let empty = Ring::new(params.ring_config(), Vec::new()).expect("valid ring settings");
        let watch = params.watch_key.map(Watch::new);
        let mut sim = Sim {
            params,
            now: Duration::ZERO,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes: Vec::new(),
            ring: empty,
            cut: BTreeMap::new(),
            splits: 0,
            network_faults: true,
            trace: record_trace.then(Trace::default),
            watch,
            stats: WorldStats::default(),
            retired: quorra_node::core::Stats::default(),
            disk_losses: Vec::new(),
            updater: crate::updater::RecordingUpdater::default(),
            changes_left: 0,
            changes: Vec::new(),
        };
        for _ in 0..sim.params.nodes {
            sim.add_node();
        }
        sim
    }

    /// Adds a node with a fresh disk and a clock of its own, and starts it;
    /// it joins through the seeds. Returns its index.
    pub fn add_node(&mut self) -> usize {
        self.add_node_replacing(None)
    }

    /// Adds a node, started to replace member `replaces` if some, and
    /// starts it; returns its index.
    pub fn add_node_replacing(&mut self, replaces: Option<NodeId>) -> usize {
        let p = &self.params;
        let drift = if p.max_drift_ppm == 0 {
            0.0
        } else {
            f64::from(self.rng.random_range(0..=2 * p.max_drift_ppm)) / 1e6
                - f64::from(p.max_drift_ppm) / 1e6
        };
        let offset = p.max_offset.mul_f64(self.rng.random_range(0.0..=1.0));
        let i = self.nodes.len();
        self.nodes.push(SimNode {
            id: NodeId(i as u64 + 1),
            engine: Arc::new(MemoryEngine::new()),
            replaces,
            node: None,
            membership: None,
            departed: false,
            downs_counted: 0,
            life: 0,
            paused_until: None,
            unavailable_since: None,
            held: Vec::new(),
            timer_at: None,
            flushing: false,
            clock: Clock::new(offset, drift),
        });
        self.start_node(i);
        i
    }

    /// The members: indices of the nodes that have not left or died, in
    /// order.
    pub fn members(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].departed)
            .collect()
    }

    /// The gossip address of node `i`.
    pub fn address(i: usize) -> String {
        format!("sim-node-{}", i + 1)
    }

    /// The node index of a gossip address.
    fn index_of_address(&self, address: &str) -> Option<usize> {
        let i = address.strip_prefix("sim-node-")?.parse::<usize>().ok()?;
        (1..=self.nodes.len()).contains(&i).then(|| i - 1)
    }

    /// The ring every running node has, once they all have the same one
    /// and every node that has not left owns tokens in it.
    pub fn agreed_ring(&self) -> Option<Ring> {
        let mut agreed: Option<(Ring, Vec<Member>)> = None;
        for n in &self.nodes {
            if n.departed {
                continue;
            }
            let m = n.membership.as_ref()?;
            let ring = m.ring().ok()?;
            let members = ring.members();
            if !members.iter().any(|x| x.id == n.id && !x.tokens.is_empty()) {
                return None;
            }
            match &agreed {
                None => agreed = Some((ring, members)),
                Some((_, seen)) if *seen == members => {}
                Some(_) => return None,
            }
        }
        let (ring, members) = agreed?;
        (members.len() == self.members().len()).then_some(ring)
    }

    /// Whether every running node that has not left sees ownership at
    /// rest: one active layout, read by everyone.
    pub fn moves_settled(&self) -> bool {
        self.nodes
            .iter()
            .filter(|n| !n.departed && n.running())
            .all(|n| {
                n.membership
                    .as_ref()
                    .and_then(|m| m.stage())
                    .is_some_and(|s| s.placement.is_stable() && s.read == s.newest)
            })
    }

    /// Each running node's view of the layouts, for reports.
    pub fn describe_stages(&self) -> String {
        let mut out = Vec::new();
        for n in self.nodes.iter().filter(|n| n.running()) {
            let Some(stage) = n.membership.as_ref().and_then(|m| m.stage()) else {
                continue;
            };
            let behind: Vec<String> = stage
                .behind
                .iter()
                .filter(|(_, b)| b.ack || b.sync || b.sync_ack)
                .map(|(id, b)| {
                    let mut what = String::new();
                    for (flag, name) in [(b.ack, "a"), (b.sync, "s"), (b.sync_ack, "k")] {
                        if flag {
                            what.push_str(name);
                        }
                    }
                    format!("{id}:{what}")
                })
                .collect();
            let gains = n.node.as_ref().map(|c| c.transfers()).unwrap_or_default();
            let gaining = match gains.first() {
                None => "0".to_string(),
                Some(g) => format!(
                    "{} (first: {} waiting on {:?}, pulled {:?}, {} retries, last error {:?})",
                    gains.len(),
                    g.partition,
                    g.waiting_on,
                    g.pulled,
                    g.retries,
                    g.last_error
                ),
            };
            let members: Vec<String> = n
                .membership
                .as_ref()
                .map(|m| {
                    m.gossip()
                        .entries()
                        .map(|e| {
                            let l = &e.info.layout;
                            let stamp = |s: Option<quorra_gossip::Stamp>| {
                                s.map_or("-".into(), |s| s.to_string())
                            };
                            let replaces =
                                l.replaces.map_or(String::new(), |r| format!(" for {r}"));
                            format!(
                                "{}:{}({}..{}{replaces})",
                                e.id,
                                e.info.status.name(),
                                stamp(l.joined),
                                stamp(l.departed)
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(format!(
                "node {}: newest {} read {} floor {} rings {} all_acked {} gaining {} behind [{}] members [{}]",
                n.id,
                stage.newest.stamp,
                stage.read.stamp,
                stage.floor.stamp,
                stage.placement.rings().len(),
                stage.all_acked,
                gaining,
                behind.join(" "),
                members.join(" ")
            ));
        }
        out.join("\n")
    }

    /// Whether every running node believes every other running node up.
    pub fn nobody_suspected(&self) -> bool {
        self.nodes.iter().all(|n| {
            n.membership.as_ref().is_none_or(|m| {
                self.nodes
                    .iter()
                    .filter(|o| o.node.is_some())
                    .all(|o| m.gossip().is_up(o.id))
            })
        })
    }

    /// The options every simulated node runs with.
    pub fn node_options(&self, node: usize) -> Options {
        Options {
            request_timeout: self.params.request_timeout,
            probe_interval: Duration::from_millis(200),
            handoff_interval: Duration::from_millis(200),
            purge_interval: Duration::from_millis(500),
            tombstone_grace: self.params.tombstone_grace,
            read_repair: self.params.read_repair,
            read_fanout: self.params.read_fanout,
            hinted_handoff: self.params.hinted_handoff,
            anti_entropy: self.params.anti_entropy,
            anti_entropy_interval: ANTI_ENTROPY_INTERVAL,
            max_hint_bytes: self.params.max_hint_bytes,
            transfer_bytes_per_sec: self.params.transfer_bytes_per_sec,
            // Each life of a node draws anew, as a restarted process does
            // (its first incarnation on a lost disk among others).
            rng_seed: self.params.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ node as u64
                ^ self.nodes[node].life.rotate_left(40),
            // The RESP gateway's updater, as the daemon gives every node
            // (pure, so simulated updates replay exactly), with a log.
            updater: Some(Arc::new(self.updater.clone())),
            ..Options::default()
        }
    }

    /// Gossip's settings: the production defaults, but for how long gone
    /// members are remembered, which scripted tests may shorten.
    pub fn gossip_config(&self) -> GossipConfig {
        GossipConfig {
            forget_after: self.params.forget_after,
            ..GossipConfig::default()
        }
    }

    fn start_node(&mut self, i: usize) {
        let local = self.nodes[i].local(self.now);
        let id = self.nodes[i].id;
        let store = Store::new(self.nodes[i].engine.clone());
        let identity = identity::load(&store)
            .expect("a simulated disk reads")
            .unwrap_or_else(|| Identity {
                node: id,
                cluster: "sim".into(),
                settings: self.params.ring_config(),
                zone: "default".into(),
                tokens: Vec::new(),
                version: 0,
                left: false,
                layout: Default::default(),
            });
        let remembered = identity::load_members(&store).expect("a simulated disk reads");
        let alone = Ring::new(
            identity.settings,
            [Member::new(
                id,
                identity.zone.clone(),
                identity.tokens.clone(),
            )],
        )
        .expect("a ring of one");
        let mut node = Node::new(id, alone, store.clone(), self.node_options(i), local)
            .expect("a simulated node starts");
        // Node 1 founds the cluster; the others join through the first
        // three that have not left (or died), and so does node 1 when it
        // restarts (after losing its disk, it must find the cluster again
        // rather than found another), unless a test has it restart as it
        // first started.
        let seeds: Vec<String> =
            if i == 0 && (self.nodes[0].life == 0 || self.params.founder_restarts_seedless) {
                Vec::new()
            } else {
                (0..self.nodes.len())
                    .filter(|&s| s != i && !self.nodes[s].departed)
                    .take(3)
                    .map(Self::address)
                    .collect()
            };
        let has_seeds = !seeds.is_empty();
        let mut gossip = Gossiper::new(
            own_entry(&identity, &Self::address(i), node.started_as()),
            identity.cluster.clone(),
            settings_hash(identity.settings.partitions, identity.settings.replicas),
            seeds,
            self.gossip_config(),
            self.params.seed ^ u64::from(node.started_as()),
            local,
        );
        gossip.remember(remembered);
        let mut membership =
            Membership::new(identity, gossip, store, has_seeds, self.params.tokens);
        if let Some(dead) = self.nodes[i].replaces {
            membership.set_replace(dead);
        }
        membership
            .start(&mut node)
            .expect("a simulated disk writes");
        self.nodes[i].node = Some(node);
        self.nodes[i].membership = Some(membership);
        self.nodes[i].downs_counted = 0;
        self.nodes[i].timer_at = None;
        self.nodes[i].flushing = false;
        self.after_input(i);
    }

    /// Schedules `event` at global time `at`.
    pub fn schedule(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: at.max(self.now),
            seq: self.seq,
            event,
        }));
    }

    /// Pops the next event, advancing time. `None` when nothing is left.
    pub fn next_event(&mut self) -> Option<Event> {
        let Reverse(s) = self.queue.pop()?;
        self.now = s.at;
        Some(s.event)
    }

    /// Time of the next event, if any.
    pub fn peek_time(&self) -> Option<Duration> {
        self.queue.peek().map(|Reverse(s)| s.at)
    }

    /// Whether any message, client request or reply, or flush is still in
    /// flight (only timers, client wakes, faults and gossip, which never
    /// stops, left).
    pub fn network_quiet(&self) -> bool {
        self.queue.iter().all(|Reverse(s)| s.event.background())
            && self.nodes.iter().all(|n| !n.flushing && n.held.is_empty())
    }

    /// Events queued other than timers, client wakes, faults and gossip:
    /// what keeps the cluster from being quiet.
    pub fn busy_events(&self) -> usize {
        self.queue
            .iter()
            .filter(|Reverse(s)| !s.event.background())
            .count()
    }

    /// A draw of one network delay.
    fn delay(&mut self) -> Duration {
        let p = &self.params;
        if self.network_faults
            && p.tail_probability > 0.0
            && self.rng.random_bool(p.tail_probability)
        {
            let (lo, hi) = (p.latency_max, p.tail_max.max(p.latency_max));
            return lo + (hi - lo).mul_f64(self.rng.random_range(0.0..=1.0));
        }
        let (lo, hi) = (p.latency_min, p.latency_max);
        lo + (hi - lo).mul_f64(self.rng.random_range(0.0..=1.0))
    }

    /// Puts a message from node `from` to node `to` on the wire.
    fn transmit(&mut self, from: usize, to: usize, message: PeerMessage) {
        self.wire(from, to, Event::Deliver { to, from, message });
    }

    /// Puts `event` (a delivery from `from` to `to`) on the wire, with the
    /// network's loss, duplication, delay and partitions.
    fn wire(&mut self, from: usize, to: usize, event: Event) {
        if self.cut.contains_key(&(from, to))
            || (self.network_faults
                && self.params.loss > 0.0
                && self.rng.random_bool(self.params.loss))
        {
            self.stats.dropped += 1;
            return;
        }
        if self.network_faults
            && self.params.duplicate > 0.0
            && self.rng.random_bool(self.params.duplicate)
        {
            self.stats.duplicated += 1;
            let twin = match &event {
                Event::Deliver { message, .. } => Event::Deliver {
                    to,
                    from,
                    message: message.clone(),
                },
                Event::Gossip { message, .. } => Event::Gossip {
                    to,
                    from,
                    message: message.clone(),
                },
                other => unreachable!("not a message: {other:?}"),
            };
            let at = self.now + self.delay();
            self.schedule(at, twin);
        }
        let at = self.now + self.delay();
        self.schedule(at, event);
    }

    /// Index of a node id.
    pub fn index_of(&self, id: NodeId) -> usize {
        (id.0 - 1) as usize
    }

    /// Hands an input to node `i`, or holds it while the node is paused.
    /// Returns false if the node is crashed (the input is lost).
    pub fn deliver(&mut self, i: usize, event: Event) -> bool {
        if self.nodes[i].node.is_none() {
            return false;
        }
        if self.nodes[i].paused_until.is_some() {
            self.nodes[i].held.push(event);
            return true;
        }
        let local = self.nodes[i].local(self.now);
        // Names the node on its log lines (QUORRA_SIM_LOG, see main.rs).
        let _span = tracing::info_span!(target: "quorra_node", "sim", node = i + 1, ms = self.now.as_millis() as u64).entered();
        if let Some(trace) = &mut self.trace {
            trace.input(self.now, i, &event);
        }
        let cause = self.watch.is_some().then(|| format!("{event:?}"));
        if let Event::FlushDone { upto, .. } = event {
            self.nodes[i].engine.flush_upto(upto);
            self.nodes[i].flushing = false;
        }
        let n = &mut self.nodes[i];
        let (Some(node), Some(membership)) = (n.node.as_mut(), n.membership.as_mut()) else {
            unreachable!("checked above");
        };
        match event {
            Event::Deliver { from, message, .. } => {
                self.stats.delivered += 1;
                node.handle_message(local, NodeId(from as u64 + 1), message);
            }
            Event::Gossip { from, message, .. } => {
                membership.handle_message(local, NodeId(from as u64 + 1), message);
            }
            Event::Request { tag, request, .. } => node.handle_client(local, tag, request),
            Event::Timer { .. } => {
                node.handle_timeout(local);
                membership.handle_timeout(local);
            }
            Event::FlushDone { .. } => node.handle_flushed(local),
            other => unreachable!("not a node input: {other:?}"),
        }
        self.after_input(i);
        if let (Some(watch), Some(cause)) = (&mut self.watch, cause) {
            watch.observe(self.now, &self.ring, &self.nodes, i, &cause);
        }
        true
    }

    /// Carries out what node `i` asked for: sends, replies, flush, timer;
    /// stops it for good once it has left the cluster.
    pub(crate) fn after_input(&mut self, i: usize) {
        let _span = tracing::info_span!(target: "quorra_node", "sim", node = i + 1, ms = self.now.as_millis() as u64).entered();
        let local = self.nodes[i].local(self.now);
        let mut sends = Vec::new();
        let mut gossip = Vec::new();
        let mut replies = Vec::new();
        let (flush, timer, departed, downs, failure) = {
            let n = &mut self.nodes[i];
            let (Some(node), Some(membership)) = (n.node.as_mut(), n.membership.as_mut()) else {
                unreachable!("after_input on a stopped node");
            };
            membership
                .process(local, node)
                .expect("a simulated disk writes");
            while let Some(out) = membership.poll_transmit() {
                gossip.push(out);
            }
            while let Some(out) = node.poll_transmit() {
                sends.push(out);
            }
            while let Some(reply) = node.poll_reply() {
                replies.push(reply);
            }
            (
                node.poll_flush(local),
                node.poll_timeout().min(membership.poll_timeout()),
                membership.departed(),
                membership.gossip().stats().downs,
                membership.failure().map(str::to_string),
            )
        };
        self.stats.gossip_downs += downs - self.nodes[i].downs_counted;
        self.nodes[i].downs_counted = downs;
        for (target, message) in gossip {
            let address = match &target {
                Target::Member(_, address) | Target::Seed(address) => address,
            };
            if let Some(to) = self.index_of_address(address) {
                self.stats.gossip_messages += 1;
                self.wire(
                    i,
                    to,
                    Event::Gossip {
                        to,
                        from: i,
                        message,
                    },
                );
            }
        }
        for (to, message) in sends {
            let to = self.index_of(to);
            self.transmit(i, to, message);
        }
        for (tag, outcome) in replies {
            if let Some(trace) = &mut self.trace {
                trace.reply(self.now, tag, &outcome);
            }
            let at = self.now + self.delay();
            self.schedule(at, Event::Reply { tag, outcome });
        }
        if flush {
            self.nodes[i].flushing = true;
            let upto = self.nodes[i].engine.applied_lsn();
            let took = self
                .params
                .max_flush
                .mul_f64(self.rng.random_range(0.1..=1.0));
            let life = self.nodes[i].life;
            self.schedule(
                self.now + took,
                Event::FlushDone {
                    node: i,
                    upto,
                    life,
                },
            );
        }
        if let Some(why) = &failure {
            // A node that cannot go on (a refused replacement) exits, as
            // the daemon does.
            self.changes
                .push((self.now, format!("node {} refused: {why}", i + 1)));
        }
        if departed || failure.is_some() {
            if let Some(trace) = &mut self.trace {
                trace.transition(self.now, i, "departed");
            }
            self.stop(i);
            self.nodes[i].departed = true;
            return;
        }
        let at = self.nodes[i].global(timer).max(self.now);
        if self.nodes[i].timer_at.is_none_or(|t| t != at) {
            self.nodes[i].timer_at = Some(at);
            let life = self.nodes[i].life;
            self.schedule(at, Event::Timer { node: i, life });
        }
    }

    /// A timer event: runs it if it is the node's current timer.
    pub fn fire_timer(&mut self, i: usize, life: u64) {
        if self.nodes[i].life != life || self.nodes[i].timer_at != Some(self.now) {
            return;
        }
        self.nodes[i].timer_at = None;
        self.deliver(i, Event::Timer { node: i, life });
    }

    /// A flush completion, unless the node crashed since it started.
    pub fn finish_flush(&mut self, i: usize, upto: Lsn, life: u64) {
        if self.nodes[i].life != life {
            return;
        }
        self.deliver(
            i,
            Event::FlushDone {
                node: i,
                upto,
                life,
            },
        );
    }

    /// Crashes node `i`: everything not flushed is lost.
    pub fn crash(&mut self, i: usize) {
        if self.nodes[i].node.is_none() {
            return;
        }
        if let Some(trace) = &mut self.trace {
            trace.transition(self.now, i, "crash");
        }
        self.stats.crashes += 1;
        self.mark_unavailable(i);
        self.stats.writes_lost_in_crashes += self.nodes[i].engine.crash() as u64;
        self.stop(i);
        if let Some(watch) = &mut self.watch {
            watch.observe(self.now, &self.ring, &self.nodes, i, &"a crash");
        }
    }

    /// Crashes node `i` and loses its whole disk: it comes back empty at
    /// its next restart, under the same id.
    pub fn lose_disk(&mut self, i: usize) {
        if self.nodes[i].node.is_none() {
            return;
        }
        self.crash(i);
        if let Some(trace) = &mut self.trace {
            trace.transition(self.now, i, "disk lost");
        }
        self.stats.disk_losses += 1;
        self.disk_losses.push((self.nodes[i].id.0, self.now));
        self.nodes[i].engine = Arc::new(MemoryEngine::new());
    }

    /// Ends node `i`'s process (its disk stays as it is).
    fn stop(&mut self, i: usize) {
        if let Some(node) = &self.nodes[i].node {
            self.retired.absorb(node.stats());
        }
        let n = &mut self.nodes[i];
        n.node = None;
        n.membership = None;
        n.life += 1;
        n.paused_until = None;
        n.held.clear();
        n.timer_at = None;
        n.flushing = false;
    }

    /// Restarts a crashed node from its disk.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].node.is_some() || self.nodes[i].departed {
            return;
        }
        if let Some(trace) = &mut self.trace {
            trace.transition(self.now, i, "restart");
        }
        self.start_node(i);
        self.mark_available(i);
    }

    fn mark_unavailable(&mut self, i: usize) {
        let now = self.now;
        self.nodes[i].unavailable_since.get_or_insert(now);
    }

    fn mark_available(&mut self, i: usize) {
        if let Some(since) = self.nodes[i].unavailable_since.take() {
            self.stats.node_down += self.now - since;
        }
    }

    /// Node-time spent crashed or paused so far, summed over nodes.
    pub fn node_time_down(&self) -> Duration {
        let ongoing: Duration = self
            .nodes
            .iter()
            .filter_map(|n| n.unavailable_since)
            .map(|since| self.now - since)
            .sum();
        self.stats.node_down + ongoing
    }

    /// Node `i` starts leaving the cluster: `leaving`, then `left`, then it
    /// stops for good.
    pub fn leave(&mut self, i: usize) -> Result<(), String> {
        let membership = self.nodes[i]
            .membership
            .as_mut()
            .ok_or_else(|| format!("node {} is not running", i + 1))?;
        membership.leave()?;
        if let Some(trace) = &mut self.trace {
            trace.transition(self.now, i, "leave");
        }
        self.after_input(i);
        Ok(())
    }

    /// Pauses a running node until `until`.
    pub fn pause(&mut self, i: usize, until: Duration) {
        if !self.nodes[i].running() {
            return;
        }
        if let Some(trace) = &mut self.trace {
            trace.transition(self.now, i, "pause");
        }
        self.stats.pauses += 1;
        self.mark_unavailable(i);
        self.nodes[i].paused_until = Some(until);
        self.schedule(until, Event::Resume { node: i });
    }

    /// Resumes a paused node and hands it what arrived meanwhile.
    pub fn resume(&mut self, i: usize) {
        if self.nodes[i].paused_until.take().is_none() {
            return;
        }
        if let Some(trace) = &mut self.trace {
            trace.transition(self.now, i, "resume");
        }
        self.mark_available(i);
        let held = std::mem::take(&mut self.nodes[i].held);
        for event in held {
            match event {
                Event::Timer { life, .. } => {
                    // The node's clock jumped: run its timers now.
                    if life == self.nodes[i].life {
                        self.nodes[i].timer_at = None;
                        self.deliver(i, Event::Timer { node: i, life });
                    }
                }
                other => {
                    self.deliver(i, other);
                }
            }
        }
        if self.nodes[i].node.is_some() {
            self.after_input(i);
        }
    }

    /// Cuts the directed links `links` until `until`.
    pub fn cut_links(&mut self, links: Vec<(usize, usize)>, until: Duration) {
        if let Some(trace) = &mut self.trace {
            trace.transition(self.now, usize::MAX, "partition");
        }
        self.stats.partitions += 1;
        if links.len() > 1 {
            self.splits += 1;
        }
        for &l in &links {
            *self.cut.entry(l).or_default() += 1;
        }
        self.schedule(until, Event::Heal { links });
    }

    /// Restores links cut by one partition.
    pub fn heal(&mut self, links: Vec<(usize, usize)>) {
        if links.len() > 1 {
            self.splits = self.splits.saturating_sub(1);
        }
        for l in links {
            if let Some(count) = self.cut.get_mut(&l) {
                *count -= 1;
                if *count == 0 {
                    self.cut.remove(&l);
                }
            }
        }
    }

    /// Ends every fault: restarts, resumes, heals, and a clean network.
    pub fn heal_everything(&mut self) {
        self.network_faults = false;
        self.cut.clear();
        self.splits = 0;
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_none() {
                self.restart(i);
            } else if self.nodes[i].paused_until.is_some() {
                self.resume(i);
            }
        }
    }
}
