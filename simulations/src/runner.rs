//! Running one seed: bootstrap, the safety phase, the liveness phase, the
//! checks, then a change of membership.
//!
//! 0. **Bootstrap**: every node starts knowing only its seeds; the run waits
//!    until gossip has given every node the same ring, with every node
//!    owning tokens (within [`BOOTSTRAP_LIMIT`], else the run is stuck).
//!    The layouts of these joins may still be moving data when the
//!    workload starts.
//! 1. **Safety phase**: the clients run their operations while faults are
//!    injected at the seed's rates. It has no fixed length: it ends when
//!    every operation has been issued and has ended, however slowly a
//!    hostile seed gets there, and it is declared stuck only when no
//!    operation has succeeded for [`PROGRESS_LIMIT`]. Either way the
//!    clients then stop issuing, and what is in flight ends by its reply
//!    or its client's timeout (faults still on), so the checks read a
//!    complete history; anything still open is recorded as unknown.
//!    Membership changes during it too ([`crate::changes`]: joins, leaves,
//!    deaths for good and removals), under the same faults.
//! 2. **Liveness phase**: every fault ends (crashed nodes restart, pauses
//!    end, partitions heal, the network stops losing messages). The cluster
//!    runs on its own for [`SETTLE`] so failure detection and hinted handoff
//!    can do their work, then until it is quiet (no message, request or
//!    flush in flight, no hint left, every tombstone purged, every move
//!    finished and every unowned partition dropped, one ring agreed by
//!    every member) and every replica of every key holds the same state.
//!    The checks then judge that ring's primaries. Nobody reads the keys for
//!    it: convergence comes from hinted handoff, read repair of the
//!    workload's own reads, and anti-entropy. Not getting there within
//!    [`QUIET_LIMIT`] is a liveness failure.
//! 3. **Checks** ([`crate::check`]) on the history and the final state. The
//!    checks of the final state (durability, resurrection, counters,
//!    convergence, cleanup) run only on a cluster that went quiet: on one that did
//!    not, writes may still be on their way, so they would judge a state
//!    that is not final. The report says they were skipped, and why.
//! 4. **Membership**: a new node joins and one node leaves; within
//!    [`MEMBERSHIP_LIMIT`] every remaining node must have the same ring
//!    (the newcomer owning tokens, the leaver gone), believe every running
//!    node up, and see ownership at rest (every move finished, one layout
//!    read by all; [`Check::Membership`] otherwise).

use std::time::{Duration, Instant};

use quorra_node::core::Stats;
use quorra_ring::NodeId;

use rand::RngExt;

use crate::check::{Check, FinalState, Violation, check_history, check_state};
use crate::params::Params;
use crate::sim::{Event, Sim, WorldStats};
use crate::workload::{Workload, all_keys};

/// Longest the cluster may take to form from its seeds.
pub const BOOTSTRAP_LIMIT: Duration = Duration::from_secs(60);

/// Longest a join and a leave may take to reach every node.
pub const MEMBERSHIP_LIMIT: Duration = Duration::from_secs(60);

/// How long the cluster runs on its own in each settling step.
pub const SETTLE: Duration = Duration::from_secs(5);

/// Longest the safety phase may go without any client operation
/// succeeding before the run is declared stuck (a liveness failure).
/// Fault events come every 50 to 600 ms and each lasts at most 8 s, so a
/// cluster that makes no progress for this long is not merely unlucky.
pub const PROGRESS_LIMIT: Duration = Duration::from_secs(300);

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
    /// Operations completed by clients (the sweepers' purges not counted).
    pub ops: usize,
    /// Of them, operations that succeeded.
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
    /// Simulated time the safety phase took.
    pub safety_time: Duration,
    /// Share of node-time in the safety phase spent crashed or paused.
    pub down_share: f64,
    /// Why the run did not get through its phases, each its own line
    /// (empty: it did).
    pub stuck: Vec<String>,
    /// The membership changes made during the run: when, and what.
    pub changes: Vec<(Duration, String)>,
}

impl Report {
    /// Whether a safety check failed.
    pub fn safety_failed(&self) -> bool {
        self.violations.iter().any(|v| v.check.is_safety())
    }

    /// Whether liveness failed (no convergence, or the run got stuck).
    pub fn liveness_failed(&self) -> bool {
        !self.stuck.is_empty() || self.violations.iter().any(|v| !v.check.is_safety())
    }

    /// Share of the operations that succeeded.
    pub fn ok_share(&self) -> f64 {
        self.ops_ok as f64 / self.ops.max(1) as f64
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
        Event::Change => sim.inject_change(),
        Event::Remove { node } => sim.try_remove(node),
        Event::Replace { node } => sim.replace(node),
        Event::Restart { node } => sim.restart(node),
        Event::Resume { node } => sim.resume(node),
        Event::Heal { links } => sim.heal(links),
        client @ (Event::Reply { .. } | Event::ClientWake { .. } | Event::Sweep { .. }) => {
            return Some(client);
        }
    }
    None
}

/// Hands one event to whoever handles it.
fn dispatch(sim: &mut Sim, workload: &mut Workload, event: Event, faults: bool) {
    match dispatch_world(sim, event, faults) {
        Some(Event::Reply { tag, outcome }) => workload.on_reply(sim, tag, outcome),
        Some(Event::ClientWake { client, timeout_of }) => workload.on_wake(sim, client, timeout_of),
        Some(Event::Sweep { node }) => workload.on_sweep(sim, node),
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

/// Nothing left to do: no message, request or flush in flight, no hint,
/// tombstone or partition to drop left, ownership at rest on one ring
/// every member agrees on, and no expired value left to purge.
fn quiet(sim: &Sim) -> bool {
    sim.network_quiet()
        && sim.nodes.iter().all(|n| {
            n.node.as_ref().is_none_or(|node| {
                node.requests_in_flight() == 0
                    && node.hint_usage().0 == 0
                    && node.tombstone_count() == 0
                    && node.cleanup_pending() == 0
            })
        })
        && sim.moves_settled()
        && sim
            .agreed_ring()
            .is_some_and(|ring| expired_copies(sim, &ring).is_empty())
}

/// Copies of RESP keys, on any primary, whose latest value has expired by
/// the clock of the key's sweeper (its first primary): purges still due.
/// By the holder's own clock would be wrong: a copy can look expired to a
/// primary whose clock is ahead before the sweeper's clock gets there (and
/// before [`crate::clock`] bounded the wander, seed 7 of the 200,000-op
/// heavy runs had clocks 418 s apart).
fn expired_left(sim: &Sim) -> usize {
    expired_copies(sim, &sim.ring).len()
}

/// What node `n`'s disk holds of `key` (nothing if unreadable).
fn held(
    n: &crate::sim::SimNode,
    partition: quorra_ring::PartitionId,
    key: &[u8],
) -> Option<quorra_node::version::Object> {
    quorra_node::storage::Store::new(n.engine.clone())
        .get(partition, key)
        .ok()
        .flatten()
}

/// Each copy [`expired_left`] counts, by `ring`'s primaries: the key and
/// the node holding it.
fn expired_copies(sim: &Sim, ring: &quorra_ring::Ring) -> Vec<(usize, NodeId)> {
    let first = sim.params.keys + crate::workload::COUNTER_KEYS;
    let mut out = Vec::new();
    for k in first..first + crate::workload::RESP_KEYS {
        let key = crate::workload::key_name(k);
        let partition = ring.partition_of_key(&key);
        // Due by the clock of the node whose sweeper purges it, the first
        // primary: a copy other clocks see expired is not due before.
        let Some(sweeper) = ring.primaries(partition).next() else {
            continue;
        };
        let now_ms = sim.nodes[sim.index_of(sweeper)].local(sim.now).as_millis() as u64;
        for id in ring.primaries(partition) {
            let n = &sim.nodes[sim.index_of(id)];
            let values: Vec<bytes::Bytes> = held(n, partition, &key)
                .map(|o| o.live_values().cloned().collect())
                .unwrap_or_default();
            if !values.is_empty() && quorra_node::resp::update::visible(&values, now_ms).is_none() {
                out.push((k, id));
            }
        }
    }
    out
}

/// A node joins and a random one leaves; every remaining node must reach
/// the same ring and believe every running node up.
fn change_membership(sim: &mut Sim, workload: &mut Workload) -> Option<Violation> {
    let members = sim.members();
    let leaver = members[sim.rng.random_range(0..members.len())];
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
            && s.moves_settled()
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
            "node {} joined and node {} left, but within {}s the nodes did not agree: {}\n{}",
            newcomer + 1,
            leaver + 1,
            MEMBERSHIP_LIMIT.as_secs(),
            views.join("; "),
            sim.describe_stages()
        ),
    })
}

/// Runs the safety phase: until every operation was issued and ended, or
/// until none has succeeded for [`PROGRESS_LIMIT`] (the error says so).
/// Then the clients stop issuing and what is in flight ends.
fn safety_phase(sim: &mut Sim, workload: &mut Workload, ops: usize) -> Result<(), String> {
    // Never reached: every client ends an operation within its timeout.
    let cap = sim.now + (workload.client_timeout() + Duration::from_millis(5)) * (ops as u32 + 1);
    let finished = run_until(sim, workload, cap, true, |s, w| {
        w.done() || s.now >= w.last_ok() + PROGRESS_LIMIT
    }) && workload.done();
    workload.close();
    if finished {
        return Ok(());
    }
    let stalled_at = sim.now;
    let drain = sim.now + workload.client_timeout() * 2;
    run_until(sim, workload, drain, true, |_, w| w.idle());
    let open = workload.abandon_in_flight(sim);
    Err(format!(
        "safety phase made no progress: no operation succeeded for {}s (the last at {:.1}s), \
         {} of {ops} operations issued by {:.1}s of simulated time{}",
        PROGRESS_LIMIT.as_secs(),
        workload.last_ok().as_secs_f64(),
        workload.issued(),
        stalled_at.as_secs_f64(),
        if open > 0 {
            format!("; {open} still in flight recorded as unknown")
        } else {
            String::new()
        }
    ))
}

/// Runs one seed with the given parameters.
pub fn run(params: Params, record_trace: bool) -> Report {
    let started = Instant::now();
    let mut sim = Sim::new(params.clone(), record_trace);
    let mut workload = Workload::new(&sim);
    let mut stuck = Vec::new();

    run_until(&mut sim, &mut workload, BOOTSTRAP_LIMIT, false, |s, _| {
        s.agreed_ring().is_some()
    });
    match sim.agreed_ring() {
        Some(ring) => sim.ring = ring,
        None => stuck.push(format!(
            "the nodes did not agree on a ring within {}s of starting from seeds",
            BOOTSTRAP_LIMIT.as_secs()
        )),
    }
    workload.start(&mut sim);
    workload.start_sweepers(&mut sim);
    sim.schedule_next_fault();
    sim.schedule_changes();

    let safety_start = sim.now;
    let down_before = sim.node_time_down();
    if let Err(why) = safety_phase(&mut sim, &mut workload, params.ops) {
        stuck.push(why);
    }
    sim.stop_changes();
    let safety_time = sim.now - safety_start;
    let down_share = (sim.node_time_down() - down_before).as_secs_f64()
        / (safety_time.as_secs_f64() * sim.nodes.len() as f64).max(1e-9);

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
        // The checks judge the ring the members agree on now.
        sim.ring = sim.agreed_ring().expect("quiet means agreed");
        if FinalState::read(&sim, all_keys(&params)).converged() {
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
    // Only gossip and timers are left once quiet, and nothing is issued.
    debug_assert!(workload.idle());

    workload.history.disk_losses = sim.disk_losses.clone();
    workload.history.applications = sim.updater.log();
    let fin = FinalState::read(&sim, all_keys(&params));
    let mut violations = check_history(&sim, &workload.history);
    if became_quiet {
        violations.extend(check_state(&sim, &workload.history, &fin));
    } else {
        let (hints, tombstones) = sim
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .fold((0, 0), |(h, t), n| {
                (h + n.hint_usage().0, t + n.tombstone_count())
            });
        stuck.push(format!(
            "the cluster did not become quiet within {}s of healing: {hints} hint(s), \
             {tombstones} tombstone(s) and {} expired value(s) not purged left, {} event(s) \
             other than gossip and timers queued; the checks of the final state (durability, \
             resurrection, counters, convergence) were skipped, as writes may still be on \
             their way",
            QUIET_LIMIT.as_secs(),
            expired_left(&sim),
            sim.busy_events(),
        ));
        if sim.agreed_ring().is_none() {
            let views: Vec<String> = sim
                .nodes
                .iter()
                .filter(|n| !n.departed)
                .map(|n| {
                    let members = n.membership.as_ref().and_then(|m| m.ring().ok()).map_or(
                        "not running".to_string(),
                        |r| {
                            let ids: Vec<String> = r.node_ids().map(|id| id.to_string()).collect();
                            format!("[{}]", ids.join(" "))
                        },
                    );
                    format!("node {}: {members}", n.id)
                })
                .collect();
            stuck.push(format!(
                "the members do not agree on one ring: {}\n{}",
                views.join("; "),
                sim.describe_stages()
            ));
        }
        let cleaning: Vec<String> = sim
            .nodes
            .iter()
            .filter_map(|n| {
                let pending = n.node.as_ref()?.cleanup_pending();
                (pending > 0).then(|| format!("node {}: {pending}", n.id))
            })
            .collect();
        if !cleaning.is_empty() {
            stuck.push(format!("partitions still to drop: {}", cleaning.join(", ")));
        }
        if !sim.moves_settled() {
            stuck.push(format!(
                "ownership is still moving:\n{}",
                sim.describe_stages()
            ));
        }
        for (k, id) in expired_copies(&sim, &sim.ring) {
            let key = crate::workload::key_name(k);
            let partition = sim.ring.partition_of_key(&key);
            let states: Vec<String> = sim
                .ring
                .primaries(partition)
                .map(|p| {
                    let n = &sim.nodes[sim.index_of(p)];
                    let shown =
                        held(n, partition, &key)
                            .as_ref()
                            .map_or("nothing".to_string(), |o| {
                                let v: Vec<String> =
                                    o.live_values().map(crate::history::show).collect();
                                format!(
                                    "[{}]{}",
                                    v.join(", "),
                                    if o.is_tombstone() { " tombstone" } else { "" }
                                )
                            });
                    format!(
                        "node {p} (clock {} ms): {shown}",
                        n.local(sim.now).as_millis()
                    )
                })
                .collect();
            stuck.push(format!(
                "k{k} has an expired value not purged on node {id}; its primaries hold: {}",
                states.join("; ")
            ));
        }
    }
    violations.sort_by_key(|x| (x.check, x.key));
    if stuck.is_empty() {
        violations.extend(change_membership(&mut sim, &mut workload));
    }
    let mut nodes = sim.retired.clone();
    for n in sim.nodes.iter().filter_map(|n| n.node.as_ref()) {
        nodes.absorb(n.stats());
    }
    let history = std::mem::take(&mut workload.history);
    let clients = || {
        history
            .records
            .iter()
            .filter(|r| r.client != crate::workload::SWEEPER)
    };
    Report {
        ops: clients().count(),
        ops_ok: clients().filter(|r| r.ok()).count(),
        params,
        violations,
        sim_time: sim.now,
        wall: started.elapsed(),
        trace: sim.trace.as_ref().map(|t| t.digest()),
        world: sim.stats.clone(),
        nodes,
        history,
        safety_time,
        down_share,
        stuck,
        changes: std::mem::take(&mut sim.changes),
    }
}
