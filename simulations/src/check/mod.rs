//! The checker: what must hold of every run, each check its own module.
//!
//! Safety checks (exit code 10) look at the history and at the final state
//! of every key on its primaries: [`durability`], [`resurrection`],
//! [`causality`], [`read_your_writes`], [`counters`], and for the RESP
//! string keys [`resp`] (durability, no resurrection, the latest value
//! decides, expiry, read-your-writes). The liveness checks (exit code 11):
//! [`convergence`] requires that after the healing phase every replica of
//! every key holds the same state and no hint is left undelivered;
//! [`cleanup`] that no member keeps anything of a partition it does not
//! own; [`Check::Membership`] that a join and a leave after the run reach
//! every node (see [`crate::runner`]). Every membership change of the
//! safety phase must have finished moving its data for the cluster to be
//! quiet at all (the run is stuck otherwise).
//!
//! Supersession is read off the history: a write *supersedes* the values its
//! context covered (`saw`). A write that failed or timed out may still have
//! been applied (nothing is rolled back), so it may have superseded what it
//! saw; only acknowledged writes *must* have.

pub mod causality;
pub mod cleanup;
pub mod convergence;
pub mod counters;
pub mod durability;
pub mod read_your_writes;
pub mod resp;
pub mod resurrection;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use quorra_node::version::Object;
use quorra_ring::NodeId;

use crate::history::History;
use crate::sim::Sim;
use crate::workload::key_name;

/// Which check a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// An acknowledged, unsuperseded write is missing.
    Durability,
    /// A value an acknowledged delete removed is back.
    NoResurrection,
    /// Causality broken: a read returned a value together with one that
    /// supersedes it, or an acknowledged write did not replace what it saw.
    Causality,
    /// A read missed an acknowledged write despite R + W > N and no faults.
    ReadYourWrites,
    /// A counter lost an acknowledged increment or counted one twice.
    Counters,
    /// A read returned a value after its expiry.
    Expiry,
    /// Replicas did not converge after healing.
    Convergence,
    /// A member keeps data, tombstone marks or a tree of a partition it
    /// does not own once every move finished.
    Cleanup,
    /// Gossip did not bring every node to the same ring (at the start, or
    /// after a join and a leave), or kept a live node down.
    Membership,
}

impl Check {
    /// Whether the check is about safety (else liveness).
    pub fn is_safety(self) -> bool {
        !matches!(
            self,
            Check::Convergence | Check::Cleanup | Check::Membership
        )
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Check::Durability => "durability",
            Check::NoResurrection => "no resurrection",
            Check::Causality => "causality",
            Check::ReadYourWrites => "read-your-writes",
            Check::Counters => "counters",
            Check::Expiry => "expiry",
            Check::Convergence => "convergence",
            Check::Cleanup => "cleanup",
            Check::Membership => "membership",
        })
    }
}

/// One broken promise.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The check.
    pub check: Check,
    /// The key concerned, if one.
    pub key: Option<usize>,
    /// The operation (index in the history) that shows it, if one.
    pub record: Option<usize>,
    /// What exactly.
    pub detail: String,
}

/// Every key's state on each of its primaries at the end of a run.
pub struct FinalState {
    /// Per key: each primary and its state.
    pub replicas: BTreeMap<usize, Vec<(NodeId, Option<Object>)>>,
    /// Hints still held, per node.
    pub hints_left: Vec<(NodeId, u64)>,
}

impl FinalState {
    /// Reads the final state from every node's disk.
    pub fn read(sim: &Sim, keys: usize) -> Self {
        let mut replicas = BTreeMap::new();
        for k in 0..keys {
            let key = key_name(k);
            let partition = sim.ring.partition_of_key(&key);
            let states = sim
                .ring
                .primaries(partition)
                .map(|id| {
                    let n = &sim.nodes[sim.index_of(id)];
                    let store = quorra_node::storage::Store::new(n.engine.clone());
                    (id, store.get(partition, &key).ok().flatten())
                })
                .collect();
            replicas.insert(k, states);
        }
        let hints_left = sim
            .nodes
            .iter()
            .map(|n| (n.id, n.node.as_ref().map_or(0, |node| node.hint_usage().0)))
            .collect();
        Self {
            replicas,
            hints_left,
        }
    }

    /// Whether every replica of every key agrees and no hint is left.
    pub fn converged(&self) -> bool {
        convergence::check(self).is_empty()
    }

    /// The live values of `key`, merged over its primaries.
    pub fn values(&self, key: usize) -> BTreeSet<Bytes> {
        let mut merged = Object::new();
        for (_, state) in self.replicas.get(&key).into_iter().flatten() {
            if let Some(s) = state {
                merged.merge(s);
            }
        }
        merged.live_values().cloned().collect()
    }
}

/// The checks that read only the history: they hold whatever state the
/// cluster ended in.
pub fn check_history(sim: &Sim, history: &History) -> Vec<Violation> {
    let mut v = Vec::new();
    v.extend(causality::check(history));
    v.extend(resp::check_reads(sim, history));
    // With no faults and no node dying for good (the only lost disks a
    // fault-free run has): joins and leaves alone must keep every read at
    // R after a write at W with R + W > N seeing it.
    if sim.params.faults == crate::params::FaultLevel::None && sim.disk_losses.is_empty() {
        v.extend(read_your_writes::check(history, sim.params.replicas));
    }
    v
}

/// The checks of the final state: meaningful only once the cluster is
/// quiet (nothing in flight that could still change it).
pub fn check_state(sim: &Sim, history: &History, fin: &FinalState) -> Vec<Violation> {
    let mut v = Vec::new();
    v.extend(durability::check(history, fin));
    v.extend(resurrection::check(history, fin));
    let counters_from = sim.params.keys;
    let resp_from = counters_from + crate::workload::COUNTER_KEYS;
    let counter_keys: Vec<usize> = (counters_from..resp_from).collect();
    v.extend(counters::check(history, fin, &counter_keys));
    let resp_keys: Vec<usize> = (resp_from..resp_from + crate::workload::RESP_KEYS).collect();
    v.extend(resp::check_state(sim, history, fin, &resp_keys));
    v.extend(convergence::check(fin));
    v.extend(cleanup::check(sim));
    v
}

/// The report of the first five violations, each with the operation that
/// shows it and the key's history up to it (what both harnesses print).
pub fn describe_violations(history: &History, violations: &[Violation]) -> String {
    let mut out = String::new();
    for v in violations.iter().take(5) {
        let key = v.key.map(|k| format!(" key k{k}")).unwrap_or_default();
        out.push_str(&format!("  violated {}:{key}: {}\n", v.check, v.detail));
        if let Some(i) = v.record {
            out.push_str(&format!(
                "  the operation: {}\n",
                history.records[i].describe()
            ));
        }
        if let Some(k) = v.key {
            out.push_str(&format!(
                "  history of k{k} up to that operation (latest last):\n"
            ));
            out.push_str(&history.excerpt(k, 12, v.record));
        }
    }
    if violations.len() > 5 {
        out.push_str(&format!(
            "  ... and {} more violations\n",
            violations.len() - 5
        ));
    }
    out
}
