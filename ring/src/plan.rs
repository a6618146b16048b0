//! Cluster plans: what a ring would look like, and what a change would move.
//!
//! A plan grows a ring the way a real cluster grows, one node joining at a
//! time and allocating its tokens against the ring it sees, then optionally
//! adds more nodes and compares. It is what `quorra ring plan` prints, and
//! what the balance and movement goals are measured on.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::RingError;
use crate::allocator::allocate_tokens;
use crate::member::{Member, NodeId};
use crate::ring::{Ring, RingConfig};

/// What to plan.
#[derive(Clone, Copy, Debug)]
pub struct PlanSpec {
    /// Nodes in the cluster before any change.
    pub nodes: usize,
    /// Number of zones; nodes are assigned to them round-robin.
    pub zones: usize,
    /// Tokens per node, T.
    pub tokens: usize,
    /// Q and N.
    pub config: RingConfig,
    /// Nodes to add after the first `nodes` joined.
    pub add: usize,
}

/// One node's place in a planned ring.
#[derive(Clone, Debug, Serialize)]
pub struct NodeShare {
    /// Node id (1-based in a plan).
    pub id: NodeId,
    /// Zone name.
    pub zone: String,
    /// Tokens owned.
    pub tokens: usize,
    /// Partition-replicas held.
    pub partition_replicas: u64,
    /// Fraction of all partition-replicas held.
    pub share: f64,
    /// Whether the node is one of the nodes the plan adds.
    pub added: bool,
}

/// Partition-replicas that change hands between two rings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Movement {
    /// Partition-replicas held by a node in the new ring that did not hold
    /// them in the old one.
    pub moved: u64,
    /// Partition-replicas in the new ring.
    pub total: u64,
    /// Of `moved`, how many went to nodes that were already members.
    pub onto_existing_nodes: u64,
}

impl Movement {
    /// `moved / total`.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.moved as f64 / self.total as f64
        }
    }
}

/// The outcome of a plan.
#[derive(Clone, Debug, Serialize)]
pub struct PlanReport {
    /// Every node of the final ring, in id order.
    pub nodes: Vec<NodeShare>,
    /// Largest over mean partition-replicas in the final ring.
    pub balance: f64,
    /// The balance before the added nodes joined (only with `add`).
    pub balance_before: Option<f64>,
    /// What adding nodes moves (only with `add`).
    pub movement: Option<Movement>,
    /// The ideal fraction to move, `add / (nodes + add)` (only with `add`).
    pub ideal_moved_fraction: Option<f64>,
}

/// Adds node `id` in `zone` to `ring`, allocating `tokens` tokens for it.
pub fn join(ring: &Ring, id: NodeId, zone: &str, tokens: usize) -> Result<Ring, RingError> {
    let chosen = allocate_tokens(ring, id, zone, tokens)?;
    let mut members = ring.members();
    members.retain(|m| m.id != id);
    members.push(Member::new(id, zone, chosen));
    Ring::new(ring.config(), members)
}

/// The zone name a plan gives node number `id` (1-based) among `zones`.
pub fn plan_zone(id: u64, zones: usize) -> String {
    format!("z{}", (id - 1) % zones.max(1) as u64 + 1)
}

/// Grows a ring of `count` nodes (ids `first..first+count`) on top of `ring`.
pub fn grow(
    ring: &Ring,
    first: u64,
    count: usize,
    zones: usize,
    tokens: usize,
) -> Result<Ring, RingError> {
    let mut ring = ring.clone();
    for id in first..first + count as u64 {
        ring = join(&ring, NodeId(id), &plan_zone(id, zones), tokens)?;
    }
    Ok(ring)
}

/// What changes hands between `old` and `new` (same Q).
pub fn movement(old: &Ring, new: &Ring) -> Movement {
    let old_members: BTreeSet<NodeId> = old.node_ids().collect();
    let mut m = Movement::default();
    for p in new.partitioner().iter() {
        let before: BTreeSet<NodeId> = old.primaries(p).collect();
        for node in new.primaries(p) {
            m.total += 1;
            if !before.contains(&node) {
                m.moved += 1;
                if old_members.contains(&node) {
                    m.onto_existing_nodes += 1;
                }
            }
        }
    }
    m
}

/// Runs a plan.
pub fn plan(spec: PlanSpec) -> Result<PlanReport, RingError> {
    let empty = Ring::new(spec.config, Vec::new())?;
    let before = grow(&empty, 1, spec.nodes, spec.zones, spec.tokens)?;
    let (after, movement_info) = if spec.add > 0 {
        let after = grow(
            &before,
            spec.nodes as u64 + 1,
            spec.add,
            spec.zones,
            spec.tokens,
        )?;
        let m = movement(&before, &after);
        (after, Some(m))
    } else {
        (before.clone(), None)
    };
    let total = (after.partitioner().count() as u64) * after.effective_replicas() as u64;
    let counts = after.partition_replica_counts();
    let members = after.members();
    let nodes = counts
        .into_iter()
        .zip(members)
        .map(|((id, count), member)| NodeShare {
            id,
            zone: member.zone,
            tokens: member.tokens.len(),
            partition_replicas: count,
            share: if total == 0 {
                0.0
            } else {
                count as f64 / total as f64
            },
            added: id.0 > spec.nodes as u64,
        })
        .collect();
    Ok(PlanReport {
        nodes,
        balance: after.balance(),
        balance_before: (spec.add > 0).then(|| before.balance()),
        movement: movement_info,
        ideal_moved_fraction: (spec.add > 0)
            .then(|| spec.add as f64 / (spec.nodes + spec.add) as f64),
    })
}
