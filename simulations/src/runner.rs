//! Running one seed: bootstrap, the safety phase, the liveness phase, the
//! checks, then a change of membership.
//!
//! 0. **Bootstrap**: every node starts knowing only its seeds; the run waits
//!    until gossip has given every node the same ring, with every node
//!    owning tokens (within [`BOOTSTRAP_LIMIT`], else the run is stuck).
//!    The checks use that ring. Membership then holds still until the
//!    checks (data does not move when ownership changes yet), except for
//!    crashes and restarts, which the phi-accrual detector notices.
//! 1. **Safety phase**: the clients run their operations while faults are
//!    injected at the seed's rates.
//! 2. **Liveness phase**: every fault ends (crashed nodes restart, pauses
//!    end, partitions heal, the network stops losing messages). The cluster
//!    runs on its own for [`SETTLE`] so failure detection and hinted handoff
//!    can do their work, then until it is quiet (no message, request or
//!    flush in flight, no hint left, every tombstone purged) and every
//!    replica of every key holds the same state. Nobody reads the keys for
//!    it: convergence comes from hinted handoff, read repair of the
//!    workload's own reads, and anti-entropy. Not getting there within
//!    [`QUIET_LIMIT`] is a liveness failure.
//! 3. **Checks** ([`crate::check`]) on the history and the final state.
//! 4. **Membership**: a new node joins and one node leaves; within
//!    [`MEMBERSHIP_LIMIT`] every remaining node must have the same ring
//!    (the newcomer owning tokens, the leaver gone) and believe every
//!    running node up ([`Check::Membership`] otherwise).

use std::time::{Duration, Instant};

use quorra_node::core::Stats;

use rand::RngExt;

use crate::check::{Check, FinalState, Violation, check_all};
use crate::params::Params;
use crate::sim::{Event, Sim, WorldStats};
use crate::workload::{COUNTER_KEYS, Workload};

/// Longest the cluster may take to form from its seeds.
pub const BOOTSTRAP_LIMIT: Duration = Duration::from_secs(60);

/// Longest a join and a leave may take to reach every node.
pub const MEMBERSHIP_LIMIT: Duration = Duration::from_secs(60);

/// How long the cluster runs on its own in each settling step.
pub const SETTLE: Duration = Duration::from_secs(5);

/// Longest simulated time a safety phase may take before the run is
/// declared stuck (a liveness failure).
pub const SAFETY_LIMIT: Duration = Duration::from_secs(3_600);

/// Longest the liveness phase may take to become quiet and converged
/// after healing (tombstones wait up to a grace period per primary before
/// purging; anti-entropy compares each partition every
/// [`crate::sim::ANTI_ENTROPY_INTERVAL`]).
pub const QUIET_LIMIT: Duration = Duration::from_secs(120);

/// How long the cluster runs between two convergence checks once quiet.
pub const CONVERGE_STEP: Duration = Duration::from_millis(500);

/// What a run found.
#[derive(Debug)]
pub struct Report {
    /// The parameters.
    pub params: Params,
    /// Broken promises.
    pub violations: Vec<Violation>,
    /// Operations completed by clients.
    pub ops: usize,
    /// Operations that succeeded.
    pub ops_ok: usize,
    /// Simulated time at the end.
    pub sim_time: Duration,
    /// Wall-clock time the run took.
    pub wall: Duration,
    /// The trace fingerprint and event count, if recorded.
    pub trace: Option<(String, u64)>,
    /// What the simulated world did.
    pub world: WorldStats,
    /// The nodes' counters, summed over nodes and restarts.
    pub nodes: Stats,
    /// The history, for failure reports.
    pub history: crate::history::History,
    /// The run did not get through its phases.
    pub stuck: Option<String>,
}

impl Report {
    /// Whether a safety check failed.
    pub fn safety_failed(&self) -> bool {
        self.violations.iter().any(|v| v.check.is_safety())
    }

    /// Whether liveness failed (no convergence, or the run got stuck).
    pub fn liveness_failed(&self) -> bool {
        self.stuck.is_some() || self.violations.iter().any(|v| !v.check.is_safety())
    }
}

/// Hands a world event (nodes, network, faults) to the simulator. Client
/// events (replies, client timers) are returned for the caller to handle.
pub fn dispatch_world(sim: &mut Sim, event: Event, faults: bool) -> Option<Event> {
    match event {
        Event::Deliver { to, .. } | Event::Gossip { to, .. } => {
            if !sim.deliver(to, event) {
                sim.stats.dropped += 1;
            }
        }
        Event::Request { node, .. } => {
            sim.deliver(node, event);
        }
        Event::Timer { node, life } => sim.fire_timer(node, life),
        Event::FlushDone { node, upto, life } => sim.finish_flush(node, upto, life),
        Event::Fault => {
            if faults {
                sim.inject_fault();
            }
        }
        Event::Restart { node } => sim.restart(node),
        Event::Resume { node } => sim.resume(node),
        Event::Heal { links } => sim.heal(links),
        client @ (Event::Reply { .. } | Event::ClientWake { .. }) => return Some(client),
    }
    None
}

/// Hands one event to whoever handles it.
fn dispatch(sim: &mut Sim, workload: &mut Workload, event: Event, faults: bool) {
    match dispatch_world(sim, event, faults) {
        Some(Event::Reply { tag, outcome }) => workload.on_reply(sim, tag, outcome),
        Some(Event::ClientWake { client, timeout_of }) => workload.on_wake(sim, client, timeout_of),
        _ => {}
    }
}

/// Runs events until `until` (simulated time) or until `stop` holds.
fn run_until(
    sim: &mut Sim,
    workload: &mut Workload,
    until: Duration,
    faults: bool,
    stop: impl Fn(&Sim, &Workload) -> bool,
) -> bool {
    loop {
        if stop(sim, workload) {
            return true;
        }
        match sim.peek_time() {
            Some(t) if t <= until => {}
            _ => {
                // Nothing happens before `until`: time still passes.
                sim.now = sim.now.max(until);
                return false;
            }
        }
        let event = sim.next_event().expect("peeked");
        dispatch(sim, workload, event, faults);
    }
}

fn quiet(sim: &Sim) -> bool {
    sim.network_quiet()
        && sim.nodes.iter().all(|n| {
            n.node.as_ref().is_none_or(|node| {
                node.requests_in_flight() == 0
                    && node.hint_usage().0 == 0
                    && node.tombstone_count() == 0
            })
        })
}

/// A node joins and a random one leaves; every remaining node must reach
/// the same ring and believe every running node up.
fn change_membership(sim: &mut Sim, workload: &mut Workload) -> Option<Violation> {
    let before = sim.nodes.len();
    let leaver = sim.rng.random_range(0..before);
    let newcomer = sim.add_node();
    if let Err(e) = sim.leave(leaver) {
        return Some(Violation {
            check: Check::Membership,
            key: None,
            record: None,
            detail: format!("node {} could not leave: {e}", leaver + 1),
        });
    }
    let limit = sim.now + MEMBERSHIP_LIMIT;
    let settled = |s: &Sim| {
        s.nodes[leaver].departed
            && s.nobody_suspected()
            && s.agreed_ring().is_some_and(|ring| {
                let ids: Vec<_> = ring.node_ids().collect();
                ids.contains(&s.nodes[newcomer].id) && !ids.contains(&s.nodes[leaver].id)
            })
    };
    if run_until(sim, workload, limit, false, |s, _| settled(s)) {
        return None;
    }
    let views: Vec<String> = sim
        .nodes
        .iter()
        .filter_map(|n| {
            let m = n.membership.as_ref()?;
            let members: Vec<String> = m
                .gossip()
                .entries()
                .map(|e| {
                    let down = if m.gossip().is_up(e.id) { "" } else { " down" };
                    format!("{}:{}{down}", e.id, e.info.status.name())
                })
                .collect();
            Some(format!("node {} sees [{}]", n.id, members.join(" ")))
        })
        .collect();
    Some(Violation {
        check: Check::Membership,
        key: None,
        record: None,
        detail: format!(
            "node {} joined and node {} left, but within {}s the nodes did not agree: {}",
            newcomer + 1,
            leaver + 1,
            MEMBERSHIP_LIMIT.as_secs(),
            views.join("; ")
        ),
    })
}

/// Runs one seed with the given parameters.
pub fn run(params: Params, record_trace: bool) -> Report {
    let started = Instant::now();
    let mut sim = Sim::new(params.clone(), record_trace);
    let mut workload = Workload::new(&sim);
    let mut stuck = None;

    run_until(&mut sim, &mut workload, BOOTSTRAP_LIMIT, false, |s, _| {
        s.agreed_ring().is_some()
    });
    match sim.agreed_ring() {
        Some(ring) => sim.ring = ring,
        None => {
            stuck = Some(format!(
                "the nodes did not agree on a ring within {}s of starting from seeds",
                BOOTSTRAP_LIMIT.as_secs()
            ))
        }
    }
    workload.start(&mut sim);
    sim.schedule_next_fault();

    if !run_until(&mut sim, &mut workload, SAFETY_LIMIT, true, |_, w| w.done()) {
        stuck = Some(format!(
            "safety phase did not finish: {} of {} operations issued by {:.1}s of simulated time",
            workload.issued(),
            params.ops,
            sim.now.as_secs_f64()
        ));
    }

    sim.heal_everything();
    let settle = sim.now + SETTLE;
    run_until(&mut sim, &mut workload, settle, false, |_, _| false);
    let limit = sim.now + QUIET_LIMIT;
    let mut became_quiet = false;
    loop {
        if !run_until(&mut sim, &mut workload, limit, false, |s, _| quiet(s)) {
            break;
        }
        became_quiet = true;
        if FinalState::read(&sim, params.keys + COUNTER_KEYS).converged() {
            break;
        }
        // Quiet but not converged: background repair runs on timers.
        let next = sim.now + CONVERGE_STEP;
        run_until(&mut sim, &mut workload, next.min(limit), false, |_, _| {
            false
        });
        if sim.now >= limit {
            break;
        }
    }
    if !became_quiet && stuck.is_none() {
        let (hints, tombstones) = sim
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .fold((0, 0), |(h, t), n| {
                (h + n.hint_usage().0, t + n.tombstone_count())
            });
        stuck = Some(format!(
            "the cluster did not become quiet within {}s of healing: {hints} hint(s) and {tombstones} tombstone(s) left",
            QUIET_LIMIT.as_secs()
        ));
    }

    workload.history.disk_losses = sim.disk_losses.clone();
    let fin = FinalState::read(&sim, params.keys + COUNTER_KEYS);
    let mut violations = check_all(&sim, &workload.history, &fin);
    if stuck.is_none() {
        violations.extend(change_membership(&mut sim, &mut workload));
    }
    let mut nodes = sim.retired.clone();
    for n in sim.nodes.iter().filter_map(|n| n.node.as_ref()) {
        nodes.absorb(n.stats());
    }
    let history = std::mem::take(&mut workload.history);
    Report {
        ops: history.records.len(),
        ops_ok: history.records.iter().filter(|r| r.ok()).count(),
        params,
        violations,
        sim_time: sim.now,
        wall: started.elapsed(),
        trace: sim.trace.as_ref().map(|t| t.digest()),
        world: sim.stats.clone(),
        nodes,
        history,
        stuck,
    }
}
