//! Membership: gossip's member table turned into the core's ring, sans-IO.
//!
//! [`Membership`] owns the node's [`Gossiper`] and its persistent
//! [`Identity`], and is the one place that decides what the member table
//! means for the node core, so the runtime and the simulator cannot differ:
//!
//! - when the table changes, the core gets the ring of the members that own
//!   tokens (`normal` and `leaving`), with `joining` members known but owning
//!   nothing, and gone (`left`, `removed`) ones out;
//! - the core learns each member's generation, the one its forwards are
//!   addressed to (and that it heard of someone: a first life gossips
//!   generation 0 until then, [`crate::core::life`]);
//! - when the failure detector changes its mind about a peer, the core's
//!   opinion of that peer follows (down steers routing and sloppy quorum, it
//!   never changes ownership);
//! - a node without tokens chooses them once it sees another member owning
//!   some (or founds the cluster when it has no seeds), then announces
//!   itself `normal`. Nodes that join at the same moment take turns, in id
//!   order, so that each chooses against the ring with the earlier ones'
//!   tokens in it, as if they had joined one by one: once a node could
//!   choose, it ends its shadow round (it shows itself `joining`, owning
//!   nothing), waits [`JOIN_SETTLE`] for the others joining now to show
//!   themselves, then waits (up to [`JOIN_TURN_LIMIT`]) until every node
//!   it sees joining with a lower id and up has chosen. No coordinator, and
//!   a node whose view differs, or whose predecessor died, still chooses;
//! - ownership moves through layouts and trackers ([`layouts`]): the core
//!   gets the active rings and the one reads use, and this node moves its
//!   own trackers forward (acked once no older write is in flight, synced
//!   once the core has pulled every partition it gains, sync-acked to the
//!   layout it reads);
//! - a node started to **replace** a dead member (`quorra node --replace
//!   ID`) takes that member's tokens instead of choosing its own: once it
//!   has a full view it waits [`JOIN_SETTLE`], then until it believes the
//!   member down (refusing, past [`REPLACE_WAIT`], one that stays up), and
//!   in one change removes it and joins under its tokens (its entry names
//!   the member it replaces, so no node sees both own them). Only the
//!   partitions the dead member replicated move, each to the replacer,
//!   pulled from the surviving owners;
//! - leaving stamps the node's departure and announces `leaving`; once no
//!   active layout holds it any more (the others have pulled what it
//!   owned, and read without it) it announces `left`, and one
//!   [`LEAVE_STEP`] later it is [`departed`](Membership::departed) and its
//!   owner stops it.
//!
//! Like the core it is handed the time and writes through the synchronous
//! [`Store`]: the identity and the member table are saved and flushed when
//! they change (rarely: a join, a leave, a new address), so a node restarted
//! after a power cut still has its tokens and a ring at once.

pub mod identity;
pub mod layouts;

use std::time::Duration;

use quorra_gossip::{Entry, Event, GossipMessage, Gossiper, Stamp, Status, Target};
use quorra_ring::{NodeId, Ring, RingError, allocate_tokens};
use tracing::{debug, error, info, warn};

pub use identity::{Identity, own_entry};
pub use layouts::{Behind, Layouts, Stage};

use crate::core::{Moves, Node};
use crate::storage::{StorageError, Store};

/// How far above the generation members remember a node that lost its data
/// restarts. The new life counts its lives, and so its request ids, from
/// there ([`crate::core::life`]). What members remember may lag the last
/// life: a life that crashed before its first gossip round is known to no
/// one, yet its requests may sit in peers' dedup windows. Every life before
/// the lost disk took the next count, so the gap must exceed how many lives
/// in a row can pass unnoticed by gossip; 65,536 leaves room for 65,535
/// lost disks in 32 bits. Its dots need no gap: a store that lost its data
/// draws their incarnation.
pub const REBIRTH_GAP: u64 = 1 << 16;

/// How long a node that could choose its tokens waits first, so that the
/// nodes joining at the same moment see each other: two gossip rounds, the
/// seed's to learn of each joiner and the joiners' to learn the seed's
/// table. Without turns, nine nodes started together each chose against
/// the founder alone and left it 4.7% of the ring instead of 10%.
pub const JOIN_SETTLE: Duration = Duration::from_secs(2);

/// Longest a joining node waits for its turn (for the joining nodes with
/// lower ids it sees up to choose first) after [`JOIN_SETTLE`]. A turn
/// takes one token choice and one announcement (tenths of a second); a
/// predecessor that takes longer is slow or gone, and is not waited for.
pub const JOIN_TURN_LIMIT: Duration = Duration::from_secs(10);

/// Longest a replacing node waits, after [`JOIN_SETTLE`], to believe the
/// member it replaces down. The failure detector judges a silent member
/// down within seconds (phi accrual over the gossip interval); one still
/// up after this long is alive, and replacing it is refused.
pub const REPLACE_WAIT: Duration = Duration::from_secs(30);

/// How long a node that has left keeps running, so the news reaches
/// everyone.
pub const LEAVE_STEP: Duration = Duration::from_secs(3);

/// Where a departure stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Departure {
    Staying,
    /// `leaving` announced; it waits until no active layout holds it.
    Leaving,
    /// `left` announced at this time; the node stops one step later.
    Left(Duration),
    /// The news has had its time: the node should stop.
    Departed,
}

/// A node's membership: its gossiper, its identity, and the glue to the
/// core.
pub struct Membership {
    gossip: Gossiper,
    identity: Identity,
    store: Store,
    /// Whether the node was given seeds (else it may found a cluster).
    has_seeds: bool,
    /// Tokens to choose when joining.
    tokens: usize,
    departure: Departure,
    /// The node's id belongs to a departed member: it does not join.
    refused: bool,
    /// Where its join stands, once it could choose tokens.
    join: Option<Joining>,
    /// The dead member whose tokens it takes, instead of choosing.
    replace: Option<NodeId>,
    /// Why the node cannot go on (a replacement refused): its owner stops
    /// it with this message.
    failure: Option<String>,
    /// The (read, floor) layouts derived last: they never go back.
    reached: (Stamp, Stamp),
    /// The stage of the transitions, derived last.
    stage: Option<Stage>,
}

/// A join under way (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Joining {
    /// Others joining now show themselves until then.
    Settling(Duration),
    /// Waiting for its turn, until then at most.
    Turn(Duration),
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("node", &self.identity.node)
            .field("gossip", &self.gossip)
            .field("departure", &self.departure)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Membership of the node with `identity`, gossiping with `gossip`,
    /// saving to `store`; `has_seeds` says whether it may found a cluster,
    /// `tokens` how many tokens it chooses when it joins.
    pub fn new(
        identity: Identity,
        gossip: Gossiper,
        store: Store,
        has_seeds: bool,
        tokens: usize,
    ) -> Self {
        // The layout it read before a restart (its saved sync_ack): reads
        // never go back to a layout whose owners may have cleaned up.
        let reached = (identity.layout.sync_ack.stamp, Stamp::ZERO);
        // A leave a restart interrupted goes on (see `own_entry`); a node
        // that had announced `left` announces it again for one
        // [`LEAVE_STEP`] and stops.
        let departure = if identity.left {
            Departure::Left(Duration::ZERO)
        } else if identity.layout.departed.is_some() {
            Departure::Leaving
        } else {
            Departure::Staying
        };
        Self {
            gossip,
            identity,
            store,
            has_seeds,
            tokens,
            departure,
            refused: false,
            join: None,
            replace: None,
            failure: None,
            reached,
            stage: None,
        }
    }

    /// Makes this node, when it joins, take the tokens of dead member
    /// `dead` (see the module documentation). Ignored, with a warning, by a
    /// node that has joined already (a replacer restarted after it took the
    /// place).
    pub fn set_replace(&mut self, dead: NodeId) {
        if self.joined() {
            warn!(
                replaces = dead.0,
                "this node has joined already; --replace ignored"
            );
            return;
        }
        self.replace = Some(dead);
    }

    /// Why the node cannot go on, if it cannot: its owner stops it.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The stage of ownership transitions, as derived last.
    pub fn stage(&self) -> Option<&Stage> {
        self.stage.as_ref()
    }

    /// The gossiper (member table, failure detector opinions).
    pub fn gossip(&self) -> &Gossiper {
        &self.gossip
    }

    /// The node's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The address a member gossips from, if known.
    pub fn address(&self, id: NodeId) -> Option<&str> {
        self.gossip.entry(id).map(|e| e.info.address.as_str())
    }

    /// Whether the node has left and the news has had its time: stop it.
    pub fn departed(&self) -> bool {
        self.departure == Departure::Departed
    }

    /// Whether the node is leaving or has left.
    pub fn departing(&self) -> bool {
        self.departure != Departure::Staying
    }

    /// Whether the node owns tokens (it has joined).
    pub fn joined(&self) -> bool {
        !self.identity.tokens.is_empty()
    }

    /// The newest layout's ring: where ownership is going (members whose
    /// tokens are in it, and the others known, owning nothing).
    pub fn ring(&self) -> Result<Ring, RingError> {
        let layouts = Layouts::new(self.identity.settings, self.gossip.entries());
        layouts.ring(layouts.newest_stamp())
    }

    /// Hands the core the ring of the members remembered from the last run,
    /// and founds a new cluster if this node is alone, has no tokens and no
    /// seeds.
    pub fn start(&mut self, node: &mut Node) -> Result<(), StorageError> {
        self.apply_ring(node);
        if !self.joined() && !self.has_seeds && self.gossip.entries().count() == 1 {
            info!(cluster = %self.identity.cluster, partitions = self.identity.settings.partitions,
                  replicas = self.identity.settings.replicas, "founding a new cluster");
            self.choose_tokens(node, &[])?;
        }
        Ok(())
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Duration {
        let join = match self.join {
            Some(Joining::Settling(at) | Joining::Turn(at)) => at,
            None => Duration::MAX,
        };
        let next = self.gossip.poll_timeout().min(join);
        match self.departure {
            Departure::Left(at) => next.min(at + LEAVE_STEP),
            Departure::Staying | Departure::Leaving | Departure::Departed => next,
        }
    }

    /// Runs gossip rounds and moves a departure along.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.gossip.handle_timeout(now);
        match self.departure {
            Departure::Leaving if self.out_of_every_layout() => {
                self.departure = Departure::Left(now);
                self.identity.left = true;
                self.set_status(Status::Left);
                info!("left the cluster: every partition it owned is held by its new owners");
            }
            Departure::Left(at) if now >= at + LEAVE_STEP => self.departure = Departure::Departed,
            _ => {}
        }
    }

    /// Whether this node departed the layouts and no active one still
    /// holds it: every member reads without it.
    fn out_of_every_layout(&self) -> bool {
        let departed = self.gossip.own().info.layout.departed;
        match (&self.stage, departed) {
            (Some(stage), Some(d)) => stage.floor.stamp >= d,
            _ => false,
        }
    }

    /// A gossip message from peer `from`.
    pub fn handle_message(&mut self, now: Duration, from: NodeId, message: GossipMessage) {
        self.gossip.handle_message(now, from, message);
    }

    /// The next gossip message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(Target, GossipMessage)> {
        self.gossip.poll_transmit()
    }

    /// Applies what gossip learned to the core (ring, peer opinions), joins
    /// when it is time, and saves a changed member table. Call after every
    /// batch of inputs, with the time.
    pub fn process(&mut self, now: Duration, node: &mut Node) -> Result<(), StorageError> {
        let mut changed = false;
        let mut went_down = false;
        while let Some(event) = self.gossip.poll_event() {
            match event {
                Event::Changed(id) => {
                    debug!(member = id.0, "member table changed");
                    changed = true;
                }
                Event::Up(id) => {
                    info!(peer = id.0, "peer is up");
                    node.handle_peer_status(id, true);
                }
                Event::Down(id) => {
                    warn!(peer = id.0, "peer is down (phi accrual)");
                    node.handle_peer_status(id, false);
                    went_down = true;
                }
                Event::Refused { cluster, settings } => {
                    warn!(
                        their_cluster = %cluster,
                        their_settings = settings,
                        our_cluster = %self.identity.cluster,
                        our_settings = quorra_gossip::settings_hash(self.identity.settings.partitions, self.identity.settings.replicas),
                        "gossip from a node of another cluster or with other partitions/replicas refused"
                    );
                }
            }
        }
        // One ring and one save per batch, however many members changed.
        if changed && self.take_place_back(node)? {
            return self.process(now, node);
        }
        if changed {
            self.apply_ring(node);
            self.save_members()?;
        }
        // Re-stamping looks at every tracker, and a stopped leaver can only
        // show up with a new floor (a changed table) or a new down verdict:
        // both only then, not on every batch.
        if (changed && self.restamp_if_late())
            || self.follow_layouts(node)?
            || ((changed || went_down) && self.retire_stopped_leavers())
        {
            // Its own entry changed: the stage may move on.
            return self.process(now, node);
        }
        if !self.may_join() {
            self.join = None;
            return Ok(());
        }
        match self.join {
            None => {
                // Out of the shadow round: the others joining now see it.
                self.gossip.show_joining();
                self.gossip.announce();
                self.join = Some(Joining::Settling(now + JOIN_SETTLE));
                return Ok(());
            }
            Some(Joining::Settling(at)) if now < at => return Ok(()),
            Some(Joining::Settling(_)) => {
                // A replacer takes no turn (it chooses nothing): it waits
                // to believe the dead member down instead.
                let wait = if self.replace.is_some() {
                    REPLACE_WAIT
                } else {
                    JOIN_TURN_LIMIT
                };
                self.join = Some(Joining::Turn(now + wait));
            }
            Some(Joining::Turn(_)) => {}
        }
        if let (Some(dead), Some(Joining::Turn(limit))) = (self.replace, self.join) {
            if !self.replace_dead(now, limit, node, dead)? {
                return Ok(());
            }
            self.join = None;
            return self.process(now, node);
        }
        let waiting_for = self.joining_before_me();
        if let Some(Joining::Turn(limit)) = self.join
            && !waiting_for.is_empty()
            && now < limit
        {
            return Ok(());
        }
        self.join = None;
        self.choose_tokens(node, &waiting_for)?;
        // Announcing the tokens changed this node's own entry.
        self.process(now, node)
    }

    /// The members joining with a lower id than this node's, and up: the
    /// ones whose turn comes first.
    fn joining_before_me(&self) -> Vec<NodeId> {
        self.gossip
            .entries()
            .filter(|e| {
                e.id < self.identity.node
                    && e.info.status == Status::Joining
                    && self.gossip.is_up(e.id)
            })
            .map(|e| e.id)
            .collect()
    }

    /// Takes the tokens of dead member `dead` once this node believes it
    /// down (see the module documentation); refuses, and fails the node,
    /// if `dead` is this node, unknown, gone, owns no tokens, or is still
    /// up at `limit`. Returns whether it took them.
    fn replace_dead(
        &mut self,
        now: Duration,
        limit: Duration,
        node: &mut Node,
        dead: NodeId,
    ) -> Result<bool, StorageError> {
        let entry = self.gossip.entry(dead).cloned();
        let refusal = match &entry {
            _ if dead == self.identity.node => Some(format!(
                "this node is node {dead}: a node restarted without its data under its own id takes its place back by itself; start it without --replace"
            )),
            None => Some(format!("node {dead} is not a member of this cluster")),
            Some(e) if e.info.status.gone() => Some(format!(
                "node {dead} is already {}: its tokens left the ring; start this node without --replace to join",
                e.info.status.name()
            )),
            Some(e) if e.info.tokens.is_empty() || !e.info.status.owns_tokens() => Some(format!(
                "node {dead} owns no tokens (it is {}); start this node without --replace to join",
                e.info.status.name()
            )),
            Some(_) => None,
        };
        if let Some(why) = refusal {
            return Ok(self.fail_replace(why));
        }
        let entry = entry.expect("an unknown member is refused above");
        if self.gossip.is_up(dead) {
            if now >= limit {
                return Ok(self.fail_replace(format!(
                    "node {dead} is up (still heard after {}s): replace only a node that died for good",
                    REPLACE_WAIT.as_secs()
                )));
            }
            return Ok(false);
        }
        if entry.info.zone != self.identity.zone {
            warn!(replaces = dead.0, their_zone = %entry.info.zone, our_zone = %self.identity.zone,
                  "replacing a node of another zone: zone-aware placement moves more than its partitions");
        }
        let stamp = self.next_stamp();
        self.gossip.remove(dead, stamp);
        self.replace = None;
        self.announce_joined(node, entry.info.tokens, stamp, Some(dead))?;
        info!(
            node = self.identity.node.0,
            replaces = dead.0,
            tokens = self.identity.tokens.len(),
            "took the tokens of a dead node; now normal, pulling its partitions from the survivors"
        );
        Ok(true)
    }

    /// Refuses the replacement and fails the node with `why`; returns
    /// false (nothing taken).
    fn fail_replace(&mut self, why: String) -> bool {
        error!("{why}");
        self.replace = None;
        self.refused = true;
        self.failure = Some(why);
        false
    }

    /// Whether the node may choose its tokens: it has none, has not left
    /// and is not refused, has a full view, and sees a member owning some.
    fn may_join(&self) -> bool {
        !self.joined()
            && !self.identity.left
            && !self.refused
            && self.gossip.has_full_view()
            && self
                .gossip
                .entries()
                .any(|e| e.id != self.identity.node && e.info.status.owns_tokens())
    }

    /// A node that restarted without its data, under an id the cluster
    /// still knows as a member owning tokens, takes its place back: the
    /// same tokens, a generation [`REBIRTH_GAP`] above the earlier life's (so
    /// members take its new entry, and its core never reuses that life's
    /// request ids or epochs), and
    /// it is `normal` again at once. Anti-entropy, hinted handoff and read
    /// repair then refill its data. Returns whether it did.
    fn take_place_back(&mut self, node: &mut Node) -> Result<bool, StorageError> {
        let Some(former) = self.gossip.former().cloned() else {
            return Ok(false);
        };
        let tokens = if self.joined() {
            if former.info.tokens != self.identity.tokens {
                error!(
                    generation = former.generation,
                    "another process runs, or ran, as this node with other tokens; \
                     two nodes must never share an id"
                );
                self.gossip.clear_former();
                return Ok(false);
            }
            // This node took its place back from a member that knew less
            // than another: step above the newer entry too.
            self.identity.tokens.clone()
        } else if former.info.status.owns_tokens() && !former.info.tokens.is_empty() {
            former.info.tokens.clone()
        } else {
            error!(
                status = former.info.status.name(),
                "this node's id belongs to a member that is {}; start it with a new id",
                former.info.status.name()
            );
            self.refused = true;
            self.gossip.clear_former();
            return Ok(false);
        };
        let above = former.generation.max(self.gossip.own().generation) + REBIRTH_GAP;
        let Ok(generation) = u32::try_from(above) else {
            error!("the earlier life's generation is out of range");
            self.gossip.clear_former();
            return Ok(false);
        };
        node.adopt_generation(generation)?;
        self.identity.tokens = tokens.clone();
        let mut info = self.gossip.own().info.clone();
        info.tokens = tokens;
        // Its stamps and trackers are the earlier life's: the cluster's
        // layouts do not change because it lost its data.
        info.layout = former.info.layout;
        self.identity.layout = info.layout;
        if info.layout.departed.is_some() && self.departure == Departure::Staying {
            // It was leaving when it lost its data: the leave goes on (the
            // others pull from the old owners that kept theirs).
            self.departure = Departure::Leaving;
        }
        info.status = match self.departure {
            Departure::Staying => Status::Normal,
            Departure::Leaving => Status::Leaving,
            Departure::Left(_) | Departure::Departed => info.status,
        };
        self.gossip.restart_as(u64::from(generation), info);
        self.gossip.announce();
        self.identity.version = self.gossip.own().version;
        identity::save(&self.store, &self.identity)?;
        warn!(
            node = self.identity.node.0,
            generation,
            tokens = self.identity.tokens.len(),
            "this node restarted without its data; it takes its place back with its tokens, \
             and anti-entropy refills it"
        );
        self.apply_ring(node);
        Ok(true)
    }

    /// Starts leaving: stamps the departure and announces `leaving`; `left`
    /// follows once no active layout holds this node. Refused (with the reason) if the node is already leaving or has not
    /// joined.
    pub fn leave(&mut self) -> Result<(), String> {
        if self.departing() {
            return Err("this node is already leaving".into());
        }
        if !self.joined() {
            return Err("this node has not joined yet".into());
        }
        self.departure = Departure::Leaving;
        let mut layout = self.gossip.own().info.layout;
        layout.departed = Some(self.next_stamp());
        self.identity.layout = layout;
        let mut info = self.gossip.own().info.clone();
        info.layout = layout;
        self.gossip.set_info(info);
        self.set_status(Status::Leaving);
        Ok(())
    }

    /// A stamp for a change this node makes now: one above every stamp and
    /// tracker it knows.
    fn next_stamp(&self) -> Stamp {
        Stamp {
            counter: Layouts::next_counter(self.gossip.entries()),
            by: self.identity.node,
        }
    }

    /// Announces that member `id`, dead for good, is removed. Refused for
    /// this node, unknown or gone members, and members believed up.
    pub fn remove(&mut self, id: NodeId) -> Result<(), String> {
        if id == self.identity.node {
            return Err("a node cannot remove itself; use `quorra leave`".into());
        }
        match self.gossip.entry(id) {
            None => Err(format!("node {id} is not a member")),
            Some(e) if e.info.status.gone() => {
                Err(format!("node {id} is already {}", e.info.status.name()))
            }
            Some(_) if self.gossip.is_up(id) => Err(format!(
                "node {id} is up; remove only a node that died for good (stop it, or let it `quorra leave`)"
            )),
            Some(_) => {
                let stamp = self.next_stamp();
                self.gossip.remove(id, stamp);
                Ok(())
            }
        }
    }

    /// Saves the member table and the identity (at shutdown).
    pub fn save(&self) -> Result<(), StorageError> {
        self.save_members()?;
        identity::save(&self.store, &self.identity)
    }

    /// Tells the cluster whether this node's storage is failing (see
    /// [`quorra_gossip::Info::storage_failing`]). Not saved: a node whose
    /// storage recovers starts a new life with it cleared.
    pub fn set_storage_failing(&mut self, failing: bool) {
        if self.gossip.own().info.storage_failing == failing {
            return;
        }
        let mut info = self.gossip.own().info.clone();
        info.storage_failing = failing;
        self.gossip.set_info(info);
        self.gossip.announce();
    }

    fn set_status(&mut self, status: Status) {
        let mut info = self.gossip.own().info.clone();
        info.status = status;
        self.gossip.set_info(info);
        self.gossip.announce();
        self.identity.version = self.gossip.own().version;
        if let Err(e) = identity::save(&self.store, &self.identity) {
            error!(error = %e, "saving the identity failed");
        }
    }

    fn apply_ring(&mut self, node: &mut Node) {
        for e in self.gossip.entries() {
            if e.id == self.identity.node {
                continue;
            }
            if let Ok(incarnation) = u32::try_from(e.generation) {
                node.handle_peer_incarnation(e.id, incarnation);
            }
            node.handle_peer_storage(e.id, e.info.storage_failing);
        }
        // A first life heard of another node: it leaves generation 0.
        self.gossip.advance_generation(u64::from(node.started_as()));
        let layouts = Layouts::new(self.identity.settings, self.gossip.entries());
        match layouts.stage(self.reached) {
            Ok(stage) => {
                self.reached = (stage.read.stamp, stage.floor.stamp);
                let moves = Moves {
                    may_pull: stage.all_acked,
                    removed: stage.removed.clone(),
                    newest: stage.newest.digest,
                };
                node.handle_placement(stage.placement.clone(), moves);
                // A gone member whose departure is above the floor is in a
                // layout some member may still read or write: its entry
                // must outlive gossip's forgetting, or that layout would
                // change under the members still using it.
                let floor = stage.floor.stamp;
                let needed = self
                    .gossip
                    .entries()
                    .filter(|e| e.info.status.gone())
                    .filter(|e| e.info.layout.departed.is_some_and(|d| d > floor))
                    .map(|e| e.id)
                    .collect();
                self.gossip.retain_gone(needed);
                self.stage = Some(stage);
            }
            Err(e) => error!(error = %e, "the member table does not form a ring"),
        }
    }

    /// Moves this node's own trackers forward as far as it may (see
    /// [`layouts`]): acked once no write it started under an older newest
    /// layout is in flight, synced once every member acked and the core
    /// pulled every partition it gains, sync-acked to the layout it reads.
    /// Returns whether they moved (they were saved and announced).
    fn follow_layouts(&mut self, node: &Node) -> Result<bool, StorageError> {
        let Some(stage) = &self.stage else {
            return Ok(false);
        };
        let own = self.gossip.own().info.layout;
        let mut layout = own;
        if layout.ack != stage.newest && !node.older_writes_in_flight() {
            layout.ack = stage.newest;
        }
        if stage.all_acked && layout.sync != stage.newest && node.transfers_complete() {
            layout.sync = stage.newest;
        }
        if layout.sync_ack != stage.read {
            layout.sync_ack = stage.read;
        }
        if layout == own {
            return Ok(false);
        }
        debug!(ack = %layout.ack.stamp, sync = %layout.sync.stamp, sync_ack = %layout.sync_ack.stamp,
               "following the layouts");
        self.set_layout(layout)?;
        Ok(true)
    }

    /// A member still `leaving` here whose departure every member reads
    /// past (the floor is above it: nobody reads or writes it any more) and
    /// that is down stopped before its own `left` reached this node; this
    /// node announces it `left` for it, or it would stay `leaving` in every
    /// table forever. Returns whether it did.
    fn retire_stopped_leavers(&mut self) -> bool {
        let Some(stage) = &self.stage else {
            return false;
        };
        let floor = stage.floor.stamp;
        let stopped: Vec<NodeId> = self
            .gossip
            .entries()
            .filter(|e| e.id != self.identity.node && e.info.status == Status::Leaving)
            .filter(|e| e.info.layout.departed.is_some_and(|d| d <= floor))
            .filter(|e| !self.gossip.is_up(e.id))
            .map(|e| e.id)
            .collect();
        let mut retired = false;
        for id in stopped {
            info!(
                member = id.0,
                "a member that left stopped before its `left` came; marked left"
            );
            retired |= self.gossip.mark_left(id);
        }
        retired
    }

    /// Gives this node's entry `layout`, saved before it is announced (a
    /// tracker is a promise about what the node does after a restart too).
    fn set_layout(&mut self, layout: quorra_gossip::Layout) -> Result<(), StorageError> {
        let mut info = self.gossip.own().info.clone();
        info.layout = layout;
        self.gossip.set_info(info);
        self.identity.layout = layout;
        self.identity.version = self.gossip.own().version;
        identity::save(&self.store, &self.identity)?;
        self.save_members()?;
        self.gossip.announce();
        Ok(())
    }

    /// A change this node made whose stamp is at or below a layout some
    /// member followed without knowing of it (two changes made at the same
    /// moment) is stamped again, above everything, so layouts already
    /// followed keep their members. Returns whether it did.
    fn restamp_if_late(&mut self) -> bool {
        let own = self.gossip.own().info.layout;
        let layouts = Layouts::new(self.identity.settings, self.gossip.entries());
        let me = self.identity.node;
        let late = |stamp: Option<Stamp>| {
            stamp.is_some_and(|s| {
                self.gossip.entries().any(|e| {
                    let l = &e.info.layout;
                    [l.ack, l.sync, l.sync_ack]
                        .iter()
                        .any(|&t| layouts.followed_without(t, me, s))
                })
            })
        };
        // Once it departed, its join is old news (and a layout without its
        // join looks like one after its departure).
        let joined_late = own.departed.is_none() && late(own.joined);
        let departed_late = late(own.departed);
        if !joined_late && !departed_late {
            return false;
        }
        let stamp = self.next_stamp();
        let mut layout = own;
        if joined_late {
            layout.joined = Some(stamp);
        }
        if departed_late {
            layout.departed = Some(stamp);
        }
        warn!(%stamp, "an ownership change of this node was made at the same time as another; stamped again");
        if let Err(e) = self.set_layout(layout) {
            error!(error = %e, "saving the new stamp failed");
        }
        true
    }

    /// Chooses this node's tokens against the ring it sees, once, and
    /// announces itself `normal`. `not_waited` are joining nodes with lower
    /// ids that did not choose within [`JOIN_TURN_LIMIT`].
    fn choose_tokens(
        &mut self,
        node: &mut Node,
        not_waited: &[NodeId],
    ) -> Result<(), StorageError> {
        let ring = match self.ring() {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "cannot build the ring to choose tokens");
                return Ok(());
            }
        };
        let owners = ring
            .members()
            .iter()
            .filter(|m| !m.tokens.is_empty())
            .count();
        let tokens =
            match allocate_tokens(&ring, self.identity.node, &self.identity.zone, self.tokens) {
                Ok(t) => t,
                Err(e) => {
                    error!(error = %e, "cannot choose tokens");
                    return Ok(());
                }
            };
        let joined = self.next_stamp();
        self.announce_joined(node, tokens, joined, None)?;
        info!(
            node = self.identity.node.0,
            tokens = self.identity.tokens.len(),
            chosen_among = owners,
            ?not_waited,
            "tokens chosen; now normal"
        );
        Ok(())
    }

    /// Puts this node's `tokens` into the layouts at stamp `joined` (in
    /// place of member `replaces`, if some) and announces it `normal`.
    fn announce_joined(
        &mut self,
        node: &mut Node,
        tokens: Vec<quorra_ring::Token>,
        joined: Stamp,
        replaces: Option<NodeId>,
    ) -> Result<(), StorageError> {
        self.identity.tokens = tokens.clone();
        self.identity.layout.joined = Some(joined);
        self.identity.layout.replaces = replaces;
        let mut info = self.gossip.own().info.clone();
        info.tokens = tokens;
        info.status = Status::Normal;
        info.layout.joined = Some(joined);
        info.layout.replaces = replaces;
        self.gossip.set_info(info);
        self.gossip.announce();
        self.identity.version = self.gossip.own().version;
        identity::save(&self.store, &self.identity)?;
        self.apply_ring(node);
        Ok(())
    }

    /// Saves the member table durably: it changes rarely, and a node that
    /// lost it would restart with a ring of itself alone.
    fn save_members(&self) -> Result<(), StorageError> {
        let members: Vec<Entry> = self.gossip.entries().cloned().collect();
        identity::save_members(&self.store, &members)?;
        self.store.flush().map(|_| ())
    }
}
