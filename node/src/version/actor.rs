//! Actors: who issues the dots of a version.
//!
//! A dot is `(actor, counter)`, and the whole scheme is only correct if no
//! actor ever issues the same dot twice for two different values. A node
//! that crashes can lose the last counters it issued (applied, sent to other
//! replicas, but not yet flushed locally) and, after restart, issue them
//! again for new writes; a later merge would then silently keep one of two
//! different values under the same dot. So the actor is not the bare node
//! id but the node id *and its incarnation*, a number the node bumps and
//! persists before it coordinates any write after an unclean restart (Riak
//! solved the same problem with vnode epochs). Clean restarts keep the
//! incarnation, so clocks grow by an entry per crash, not per restart.

use quorra_ring::NodeId;
use serde::{Deserialize, Serialize};

/// The issuer of dots: one node in one incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The coordinating node.
    pub node: NodeId,
    /// Bumped after every unclean restart of that node.
    pub incarnation: u32,
}

impl Actor {
    /// The actor of `node` in its `incarnation`.
    pub fn new(node: NodeId, incarnation: u32) -> Self {
        Self { node, incarnation }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.node, self.incarnation)
    }
}

/// One event: the `counter`-th write coordinated by `actor` on a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// Who issued it.
    pub actor: Actor,
    /// The actor's counter for this key, from 1.
    pub counter: u64,
}
