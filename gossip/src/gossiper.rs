//! The gossip state machine of one node.
//!
//! Every `interval` (default 1 s, as Dynamo and Cassandra) the node bumps
//! its heartbeat and starts a round with the next live peer of a shuffled
//! round-robin (every peer once per pass: news spreads with less variance
//! than with independent random picks, so detection can be tighter); with
//! probability `unreachable / (live + 1)` it also tries one peer it believes
//! down (so partitions heal), and with a small probability, or when it knows
//! no live peer, one seed (so separately started groups find each other). A
//! round is Cassandra's three-way exchange:
//!
//! 1. **SYN** (initiator → peer): the cluster's name and settings hash, the
//!    initiator's own entry, and a digest (id, generation, heartbeat,
//!    version) of every member it knows.
//! 2. **ACK** (peer → initiator): what the initiator lacks (whole entries
//!    for new members, generations or information; heartbeat-only updates
//!    otherwise) and digests of what the peer lacks.
//! 3. **ACK2** (initiator → peer): what the peer lacked.
//!
//! Bytes per round are the digests plus what changed: a stable cluster
//! exchanges heartbeats only. A SYN from another cluster, or with other
//! fixed settings (Q, N), is refused before anything is merged.
//!
//! Heartbeat arrivals feed a [`PhiDetector`] per member; a member above the
//! threshold is *down* in this node's opinion, and *up* again when its
//! heartbeat advances. Down never changes ownership: it steers routing and
//! sloppy quorums. Left and removed members are forgotten after
//! `forget_after`, except those the caller still needs
//! ([`Gossiper::retain_gone`]: the node's layouts still hold their tokens).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use quorra_ring::NodeId;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::detector::{PhiDetector, PhiParams};
use crate::state::{Digest, Entry, Info, Status, Update};

/// How far a removal raises the removed member's generation. Entries
/// order by (generation, version), and the remover may know an older life
/// of the dead member than others do (it crashed and restarted a few
/// times before it died, while this node was cut off): a removal of that
/// older life would lose to the newer entry everywhere and be undone. A
/// dead member starts no new lives; one that was not dead after all finds
/// itself removed, as it should.
pub const REMOVAL_GAP: u64 = 1 << 16;

/// Tunables, with documented defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// Time between rounds (default 1 s).
    pub interval: Duration,
    /// φ above which a member is down (default 8, as Cassandra).
    pub phi_threshold: f64,
    /// Age of a heartbeat never considered suspicious, beyond the usual
    /// (default 1 s).
    pub acceptable_pause: Duration,
    /// Floor of the heartbeat intervals' standard deviation (default 0.5 s).
    pub min_std_dev: Duration,
    /// How long left and removed members are remembered (default 1 h).
    pub forget_after: Duration,
    /// Chance per round of also gossiping with a seed (default 0.1).
    pub seed_probability: f64,
    /// Live peers gossiped with per round (default 2).
    pub fanout: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            phi_threshold: 8.0,
            acceptable_pause: Duration::from_secs(1),
            min_std_dev: Duration::from_millis(500),
            forget_after: Duration::from_secs(3600),
            seed_probability: 0.1,
            fanout: 2,
        }
    }
}

/// Who a message goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A known member, at its address.
    Member(NodeId, String),
    /// A seed address, whoever is there.
    Seed(String),
}

/// A gossip message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipMessage {
    /// Round opening.
    Syn {
        /// Cluster name.
        cluster: String,
        /// Hash of the cluster's fixed settings.
        settings: u64,
        /// The sender's address, to answer a sender not known yet.
        address: String,
        /// What the sender knows.
        digests: Vec<Digest>,
    },
    /// Answer to a SYN.
    Ack {
        /// What the SYN's sender lacks.
        updates: Vec<Update>,
        /// What the answering node lacks.
        wants: Vec<Digest>,
        /// `updates` holds every entry the answering node gossips about, in
        /// full: the SYN's sender now knows all it knows.
        #[serde(default)]
        complete: bool,
    },
    /// Last leg: what the ACK's sender asked for.
    Ack2 {
        /// The updates.
        updates: Vec<Update>,
    },
}

/// Something the owner of the gossiper should act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A member's information changed, or a member appeared or was forgotten:
    /// the ring may have changed.
    Changed(NodeId),
    /// A member believed down is up again.
    Up(NodeId),
    /// A member is now believed down.
    Down(NodeId),
    /// A peer of another cluster, or with other settings, was refused.
    Refused {
        /// The cluster name it gave.
        cluster: String,
        /// Its settings hash.
        settings: u64,
    },
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Rounds started.
    pub rounds: u64,
    /// Messages sent.
    pub messages: u64,
    /// SYNs refused (other cluster or settings).
    pub refused: u64,
    /// Times a member was judged down.
    pub downs: u64,
}

/// The gossip state of one node.
pub struct Gossiper {
    me: NodeId,
    cluster: String,
    settings: u64,
    config: Config,
    rng: Xoshiro256PlusPlus,
    entries: BTreeMap<NodeId, Entry>,
    detectors: BTreeMap<NodeId, PhiDetector>,
    down: BTreeSet<NodeId>,
    gone_since: BTreeMap<NodeId, Duration>,
    /// Gone members not to forget whatever `forget_after` says.
    retained: BTreeSet<NodeId>,
    seeds: Vec<String>,
    /// The rest of the current round-robin pass over live peers.
    partners: Vec<NodeId>,
    next_round: Duration,
    outbox: VecDeque<(Target, GossipMessage)>,
    events: VecDeque<Event>,
    stats: GossipStats,
    /// This node's entry from an earlier life, as other members hold it
    /// (newer than this run's): the node restarted without its data.
    former: Option<Entry>,
    /// A member told this process everything it knows (a complete ACK).
    full_view: bool,
    /// A joining node advertises itself ([`Gossiper::show_joining`]).
    showing_joining: bool,
}

impl std::fmt::Debug for Gossiper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gossiper")
            .field("me", &self.me)
            .field("members", &self.entries.len())
            .field("down", &self.down)
            .finish_non_exhaustive()
    }
}

impl Gossiper {
    /// A gossiper for `own` (its entry, with the generation of this run),
    /// in cluster `cluster` with settings hash `settings`, knowing `seeds`.
    pub fn new(
        own: Entry,
        cluster: impl Into<String>,
        settings: u64,
        seeds: Vec<String>,
        config: Config,
        rng_seed: u64,
        now: Duration,
    ) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(rng_seed ^ own.id.0.rotate_left(29));
        let first = config.interval.mul_f64(rng.random_range(0.0..1.0));
        let me = own.id;
        let own_address = own.info.address.clone();
        let mut entries = BTreeMap::new();
        entries.insert(me, own);
        Self {
            me,
            cluster: cluster.into(),
            settings,
            config,
            rng,
            entries,
            detectors: BTreeMap::new(),
            down: BTreeSet::new(),
            gone_since: BTreeMap::new(),
            retained: BTreeSet::new(),
            seeds: seeds.into_iter().filter(|s| *s != own_address).collect(),
            partners: Vec::new(),
            next_round: now + first,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            stats: GossipStats::default(),
            former: None,
            full_view: false,
            showing_joining: false,
        }
    }

    /// This node's entry from an earlier life, if a member told of one
    /// newer (by generation, then version) than this run's: the node
    /// restarted without its data (a lost disk, a wiped directory) under an
    /// id the cluster still knows.
    pub fn former(&self) -> Option<&Entry> {
        self.former.as_ref()
    }

    /// Whether a member has told this process everything it knows, in one
    /// message. A joining node waits for that before it chooses tokens, so
    /// that a partial or stale message (a late answer to an earlier life)
    /// cannot hide that the cluster knows this node already.
    pub fn has_full_view(&self) -> bool {
        self.full_view
    }

    /// Forgets [`Gossiper::former`] (it was acted on, or refused).
    pub fn clear_former(&mut self) {
        self.former = None;
    }

    /// Takes this node's place back after [`Gossiper::former`]: runs as
    /// `generation` (above the former one) with `info`, at a version above
    /// the former's, so every member takes the new entry over the old.
    pub fn restart_as(&mut self, generation: u64, info: Info) {
        let version = self.former.take().map_or(0, |f| f.version) + 1;
        let own = self.entries.get_mut(&self.me).expect("own entry");
        own.generation = generation;
        own.heartbeat = 0;
        own.version = own.version.max(version);
        own.info = info;
        self.events.push_back(Event::Changed(self.me));
    }

    /// Moves this run to `generation` (above its own) with everything else
    /// as it is: peers take the entry as a restart's. For a node whose
    /// first life on a store gossiped generation 0 until it heard of
    /// another node.
    pub fn advance_generation(&mut self, generation: u64) {
        let own = self.entries.get_mut(&self.me).expect("own entry");
        if generation > own.generation {
            own.generation = generation;
            own.heartbeat = 0;
            self.events.push_back(Event::Changed(self.me));
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// Seeds known.
    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// Every known entry, in id order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// One member's entry.
    pub fn entry(&self, id: NodeId) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// This node's own entry.
    pub fn own(&self) -> &Entry {
        &self.entries[&self.me]
    }

    /// Whether this node believes `id` up (itself always; unknown never).
    pub fn is_up(&self, id: NodeId) -> bool {
        id == self.me || (self.entries.contains_key(&id) && !self.down.contains(&id))
    }

    /// Members believed down, in id order.
    pub fn down(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.down.iter().copied()
    }

    /// Counters.
    pub fn stats(&self) -> &GossipStats {
        &self.stats
    }

    /// The current suspicion level of a member.
    pub fn phi(&self, id: NodeId, now: Duration) -> f64 {
        self.detectors
            .get(&id)
            .map_or(0.0, |d| d.phi(now, &self.phi_params()))
    }

    /// How old a member's freshest heartbeat is at `now`, in seconds
    /// (`None` if none was seen since this node started).
    pub fn heartbeat_age(&self, id: NodeId, now: Duration) -> Option<f64> {
        self.detectors
            .get(&id)?
            .heartbeat_age(now, &self.phi_params())
    }

    /// Mean and standard deviation of the age a member's freshest heartbeat
    /// reaches here before fresher news arrives (seconds).
    pub fn age_stats(&self, id: NodeId) -> Option<(f64, f64)> {
        self.detectors.get(&id)?.age_stats()
    }

    fn phi_params(&self) -> PhiParams {
        PhiParams {
            interval: self.config.interval,
            acceptable_pause: self.config.acceptable_pause,
            min_std_dev: self.config.min_std_dev,
        }
    }

    /// Adds entries remembered from an earlier run (so a restarted node
    /// knows its peers and its ring at once). They count as information,
    /// not as heartbeats: the detector starts afresh.
    pub fn remember(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for e in entries {
            if e.id == self.me || e.id.0 == 0 {
                continue;
            }
            match self.entries.get_mut(&e.id) {
                Some(held) => {
                    held.merge(&e);
                }
                None => {
                    self.entries.insert(e.id, e);
                }
            }
        }
    }

    /// Replaces this node's information (tokens chosen, status changed).
    pub fn set_info(&mut self, info: Info) {
        let own = self.entries.get_mut(&self.me).expect("own entry");
        if own.info != info {
            own.info = info;
            own.version += 1;
            self.events.push_back(Event::Changed(self.me));
        }
    }

    /// Every other member not gone (left or removed), in id order.
    fn peers(&self) -> Vec<NodeId> {
        self.entries
            .values()
            .filter(|e| e.id != self.me && !e.info.status.gone())
            .map(|e| e.id)
            .collect()
    }

    /// Sends a SYN to every known member now, without waiting for rounds:
    /// for news everyone should hear at once (a node joined, is leaving).
    pub fn announce(&mut self) {
        let peers = self.peers();
        for id in peers {
            if let Some(to) = self.target(id) {
                let syn = self.syn();
                self.send(to, syn);
            }
        }
    }

    /// Announces, on behalf of a member that died for good, that it is
    /// removed, by the ownership change `departed`. Returns false if the
    /// member is unknown or is this node.
    pub fn remove(&mut self, id: NodeId, departed: crate::Stamp) -> bool {
        self.retire(id, Status::Removed, Some(departed))
    }

    /// Announces, on behalf of a member that left but stopped before its
    /// own `left` reached this node (the layouts no longer hold it, and it
    /// is down), that it is `left`. Returns false if the member is unknown
    /// or is this node.
    pub fn mark_left(&mut self, id: NodeId) -> bool {
        self.retire(id, Status::Left, None)
    }

    /// Gives another member's entry a gone `status` (and its departure, if
    /// given), above any life of it this node has not seen yet (see
    /// [`REMOVAL_GAP`]).
    fn retire(&mut self, id: NodeId, status: Status, departed: Option<crate::Stamp>) -> bool {
        if id == self.me {
            return false;
        }
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        entry.info.status = status;
        if departed.is_some() {
            entry.info.layout.departed = departed;
        }
        entry.generation += REMOVAL_GAP;
        // Two members may remove the same one, each with its own stamp,
        // from the same (generation, version): digests compare only those,
        // so equal pairs with different contents would never converge. The
        // stamp goes into the version: different removals, different
        // versions, and the higher wins everywhere.
        let salt = departed.map_or(0, |d| (d.counter << 20) | (d.by.0 & 0xF_FFFF));
        entry.version += 1 + salt;
        self.events.push_back(Event::Changed(id));
        true
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(Target, GossipMessage)> {
        self.outbox.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Duration {
        self.next_round
    }

    fn target(&self, id: NodeId) -> Option<Target> {
        self.entries
            .get(&id)
            .map(|e| Target::Member(id, e.info.address.clone()))
    }

    fn send(&mut self, to: Target, message: GossipMessage) {
        self.stats.messages += 1;
        self.outbox.push_back((to, message));
    }

    /// A round's opening. In its shadow round a node asks for everything
    /// (no digests), whatever it remembers from an earlier life: only an
    /// answer with every entry whole gives it the full view it needs to
    /// join, and digests of remembered entries would get deltas instead (a
    /// joining node that restarted then never joined).
    fn syn(&self) -> GossipMessage {
        let digests = if self.shadow() {
            Vec::new()
        } else {
            self.advertised().map(Entry::digest).collect()
        };
        GossipMessage::Syn {
            cluster: self.cluster.clone(),
            settings: self.settings,
            address: self.own().info.address.clone(),
            digests,
        }
    }

    /// Whether this node is still in its shadow round: joining, it does not
    /// advertise itself (Cassandra's shadow round) until it has learned the
    /// whole member table and shows itself ([`Gossiper::show_joining`]), so
    /// a node that restarted without its data cannot overwrite what members
    /// know of its earlier life before it has learned of it.
    fn shadow(&self) -> bool {
        self.own().info.status == Status::Joining && !self.showing_joining
    }

    /// Ends the shadow round of a joining node: from now on it advertises
    /// its `joining` entry (owning nothing), so that nodes joining at the
    /// same moment see each other before they choose tokens. Call once it
    /// has a full view and no earlier life of it was found.
    pub fn show_joining(&mut self) {
        if self.showing_joining || self.own().info.status != Status::Joining {
            return;
        }
        self.showing_joining = true;
        let own = self.entries.get_mut(&self.me).expect("own entry");
        own.version += 1;
        self.events.push_back(Event::Changed(self.me));
    }

    /// The entries this node gossips about: all, but its own while joining.
    fn advertised(&self) -> impl Iterator<Item = &Entry> {
        let shadow = self.shadow();
        self.entries
            .values()
            .filter(move |e| !(shadow && e.id == self.me))
    }

    /// Time passed: heartbeat, a round, failure detection, forgetting.
    pub fn handle_timeout(&mut self, now: Duration) {
        if now < self.next_round {
            return;
        }
        self.next_round = now
            + self
                .config
                .interval
                .mul_f64(self.rng.random_range(0.9..1.1));
        self.stats.rounds += 1;
        if let Some(own) = self.entries.get_mut(&self.me) {
            own.heartbeat += 1;
        }
        self.round();
        self.detect(now);
        self.forget(now);
    }

    fn round(&mut self) {
        let peers = self.peers();
        let (live, dead): (Vec<NodeId>, Vec<NodeId>) =
            peers.into_iter().partition(|id| !self.down.contains(id));
        let mut targets = Vec::new();
        for _ in 0..self.config.fanout.min(live.len()) {
            if let Some(peer) = self.next_partner(&live)
                && !targets.contains(&peer)
            {
                targets.push(peer);
            }
        }
        // Cassandra's chance of also trying an unreachable member: certain
        // once they outnumber the live ones.
        let try_dead = (dead.len() as f64 / (live.len() + 1) as f64).min(1.0);
        if !dead.is_empty() && self.rng.random_bool(try_dead) {
            targets.push(dead[self.rng.random_range(0..dead.len())]);
        }
        let mut messages: Vec<Target> = targets
            .into_iter()
            .filter_map(|id| self.target(id))
            .collect();
        if !self.seeds.is_empty()
            && (live.is_empty()
                || self
                    .rng
                    .random_bool(self.config.seed_probability.clamp(0.0, 1.0)))
        {
            let seed = self.seeds[self.rng.random_range(0..self.seeds.len())].clone();
            if !messages
                .iter()
                .any(|t| matches!(t, Target::Member(_, a) if *a == seed))
            {
                messages.push(Target::Seed(seed));
            }
        }
        for to in messages {
            let syn = self.syn();
            self.send(to, syn);
        }
    }

    /// The next live peer of a shuffled round-robin over `live`: every peer
    /// is picked once per pass, which spreads news with less variance than
    /// independent random picks (and so lets the detector be tighter).
    fn next_partner(&mut self, live: &[NodeId]) -> Option<NodeId> {
        while let Some(id) = self.partners.pop() {
            if live.contains(&id) {
                return Some(id);
            }
        }
        if live.is_empty() {
            return None;
        }
        let mut pass = live.to_vec();
        for i in (1..pass.len()).rev() {
            let j = self.rng.random_range(0..=i);
            pass.swap(i, j);
        }
        let first = pass.pop();
        self.partners = pass;
        first
    }

    fn detect(&mut self, now: Duration) {
        let params = self.phi_params();
        // A member known but never heard from in this life (remembered from
        // the last run, or learned second-hand with no newer heartbeat
        // since) is watched from now on, as if its heartbeat had just
        // arrived: one that died while this node was down is then judged
        // down like any other, instead of looking up forever.
        let unwatched: Vec<(NodeId, u64)> = self
            .entries
            .values()
            .filter(|e| e.id != self.me && !e.info.status.gone())
            .filter(|e| !self.detectors.contains_key(&e.id))
            .map(|e| (e.id, e.heartbeat))
            .collect();
        for (id, heartbeat) in unwatched {
            self.detectors
                .entry(id)
                .or_default()
                .heartbeat(now, heartbeat, &params);
        }
        let suspects: Vec<NodeId> = self
            .detectors
            .iter()
            .filter(|(id, d)| {
                !self.down.contains(id)
                    && self.entries.get(id).is_some_and(|e| !e.info.status.gone())
                    && d.phi(now, &params) > self.config.phi_threshold
            })
            .map(|(id, _)| *id)
            .collect();
        for id in suspects {
            debug!(node = self.me.0, peer = id.0, "peer believed down");
            self.down.insert(id);
            self.stats.downs += 1;
            self.events.push_back(Event::Down(id));
        }
    }

    /// Keeps the entries of the gone members in `ids` however long ago
    /// they left or were removed, until a later call leaves them out: the
    /// caller still computes ownership from them (a layout some member may
    /// still read or write holds their tokens). Forgetting such an entry
    /// would change that layout after the fact. One that is no longer
    /// retained is forgotten once `forget_after` has passed since it was
    /// first seen gone.
    pub fn retain_gone(&mut self, ids: BTreeSet<NodeId>) {
        self.retained = ids;
    }

    fn forget(&mut self, now: Duration) {
        for e in self.entries.values() {
            if e.info.status.gone() {
                self.gone_since.entry(e.id).or_insert(now);
            }
        }
        let expired: Vec<NodeId> = self
            .gone_since
            .iter()
            .filter(|(id, _)| !self.retained.contains(id))
            .filter(|(_, since)| now.saturating_sub(**since) >= self.config.forget_after)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.gone_since.remove(&id);
            if id != self.me && self.entries.remove(&id).is_some() {
                self.detectors.remove(&id);
                self.down.remove(&id);
                self.events.push_back(Event::Changed(id));
            }
        }
    }

    /// Merges an update received at `now`.
    fn apply(&mut self, now: Duration, update: Update) {
        let (id, merged) = match update {
            Update::Full(entry) => {
                let id = entry.id;
                if id == self.me || id.0 == 0 {
                    // Only this node changes its own entry... except to be
                    // removed, which it honours (and leaves at once).
                    if id == self.me
                        && entry.info.status == Status::Removed
                        && entry.generation == self.own().generation
                    {
                        warn!(
                            node = id.0,
                            "this node was removed from the cluster by an operator"
                        );
                        let own = self.entries.get_mut(&self.me).expect("own entry");
                        own.merge(&entry);
                        self.events.push_back(Event::Changed(id));
                    } else if id == self.me
                        && ((self.shadow() && entry.info.status != Status::Joining)
                            || (entry.generation, entry.version)
                                > (self.own().generation, self.own().version))
                        && self.former.as_ref().is_none_or(|f| {
                            (f.generation, f.version) < (entry.generation, entry.version)
                        })
                    {
                        warn!(
                            node = id.0,
                            generation = entry.generation,
                            version = entry.version,
                            "members know this node from an earlier life"
                        );
                        self.former = Some(entry);
                        self.events.push_back(Event::Changed(id));
                    }
                    return;
                }
                let merged = match self.entries.get_mut(&id) {
                    Some(held) => {
                        if entry.generation > held.generation {
                            // A restart: its heartbeats start over.
                            self.detectors.remove(&id);
                        }
                        held.merge(&entry)
                    }
                    None => {
                        self.entries.insert(id, entry);
                        crate::state::Merged {
                            info: true,
                            heartbeat: true,
                        }
                    }
                };
                (id, merged)
            }
            Update::Heartbeat {
                id,
                generation,
                heartbeat,
            } => {
                if id == self.me {
                    return;
                }
                let advanced = self
                    .entries
                    .get_mut(&id)
                    .is_some_and(|e| e.merge_heartbeat(generation, heartbeat));
                (
                    id,
                    crate::state::Merged {
                        info: false,
                        heartbeat: advanced,
                    },
                )
            }
        };
        if merged.info {
            self.events.push_back(Event::Changed(id));
        }
        if merged.heartbeat {
            let params = self.phi_params();
            let value = self.entries.get(&id).map_or(0, |e| e.heartbeat);
            self.detectors
                .entry(id)
                .or_default()
                .heartbeat(now, value, &params);
            if self.down.remove(&id) {
                debug!(node = self.me.0, peer = id.0, "peer is up again");
                self.events.push_back(Event::Up(id));
            }
        }
    }

    /// A gossip message from member `from` arrived (the runtime has
    /// authenticated the sender as a node of the cluster CA).
    pub fn handle_message(&mut self, now: Duration, from: NodeId, message: GossipMessage) {
        match message {
            GossipMessage::Syn {
                cluster,
                settings,
                address,
                digests,
            } => {
                if cluster != self.cluster || settings != self.settings {
                    self.stats.refused += 1;
                    self.events.push_back(Event::Refused { cluster, settings });
                    return;
                }
                if from == self.me {
                    return;
                }
                let theirs: BTreeMap<NodeId, Digest> = digests.iter().map(|d| (d.id, *d)).collect();
                let updates: Vec<Update> = self
                    .advertised()
                    .filter_map(|e| e.update_for(theirs.get(&e.id)))
                    .collect();
                // A member's entry of this node is from an earlier life if
                // it is newer than this run's (only a node changes its own
                // entry) or if this node is still joining: it is wanted
                // whole, so the node learns it restarted without its data
                // before choosing tokens.
                let own = self.own();
                let shadow = self.shadow();
                let wants: Vec<Digest> = digests
                    .iter()
                    .filter(|d| {
                        d.id != self.me
                            || shadow
                            || (d.generation, d.version) > (own.generation, own.version)
                    })
                    .filter_map(|d| match self.entries.get(&d.id) {
                        Some(_) if d.id == self.me => Some(Digest {
                            generation: 0,
                            heartbeat: 0,
                            version: 0,
                            ..*d
                        }),
                        None => Some(Digest {
                            generation: 0,
                            heartbeat: 0,
                            version: 0,
                            ..*d
                        }),
                        Some(e) if e.behind(d) => Some(e.digest()),
                        Some(_) => None,
                    })
                    .collect();
                // An unknown sender's entry comes with the ACK2 it will send
                // (it is among the wants); answer at the address it gave.
                let to = self.target(from).unwrap_or(Target::Member(from, address));
                let complete = updates.len() == self.advertised().count()
                    && updates.iter().all(|u| matches!(u, Update::Full(_)));
                self.send(
                    to,
                    GossipMessage::Ack {
                        updates,
                        wants,
                        complete,
                    },
                );
            }
            GossipMessage::Ack {
                updates,
                wants,
                complete,
            } => {
                self.full_view |= complete;
                for u in updates {
                    self.apply(now, u);
                }
                let shadow = self.shadow();
                let answer: Vec<Update> = wants
                    .iter()
                    .filter(|d| !(shadow && d.id == self.me))
                    .filter_map(|d| {
                        let known = (d.generation, d.version, d.heartbeat) != (0, 0, 0);
                        self.entries
                            .get(&d.id)
                            .and_then(|e| e.update_for(known.then_some(d)))
                    })
                    .collect();
                if !answer.is_empty()
                    && let Some(to) = self.target(from)
                {
                    self.send(to, GossipMessage::Ack2 { updates: answer });
                }
            }
            GossipMessage::Ack2 { updates } => {
                for u in updates {
                    self.apply(now, u);
                }
            }
        }
    }
}
