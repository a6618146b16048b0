//! Who is on the ring: node ids, tokens and zones.
//!
//! A member is what gossip carries about a node that matters for placement:
//! its id, its zone and its tokens. Tokens are chosen once, when the node
//! first joins (see [`crate::allocator`]), and kept for the node's life, so
//! the ring is a pure function of the members' gossiped state.

use serde::{Deserialize, Serialize};

/// A node's identity in the cluster: chosen once, persisted, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A position on the 64-bit ring owned by one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Token(pub u64);

/// Default tokens per node, T.
pub const DEFAULT_TOKENS_PER_NODE: usize = 64;
/// Most tokens one node may own; more only slows the ring down.
pub const MAX_TOKENS_PER_NODE: usize = 4096;

/// One node as the ring sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's id.
    pub id: NodeId,
    /// Failure domain (rack, availability zone). Replicas of a partition go
    /// to distinct zones while distinct zones remain.
    pub zone: String,
    /// The node's tokens. A member with no tokens owns nothing.
    pub tokens: Vec<Token>,
}

impl Member {
    /// A member with the given id, zone and tokens.
    pub fn new(id: NodeId, zone: impl Into<String>, tokens: Vec<Token>) -> Self {
        Self {
            id,
            zone: zone.into(),
            tokens,
        }
    }
}
