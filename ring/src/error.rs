//! Errors of the ring crate.

use crate::member::NodeId;

/// Why a ring, an allocation or a plan could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Q must be a power of two no larger than the documented maximum.
    #[error(
        "partition count {count} is not a power of two between 1 and {}",
        crate::partition::MAX_PARTITIONS
    )]
    BadPartitionCount {
        /// The rejected count.
        count: u32,
    },
    /// N must be at least 1 and at most the documented maximum.
    #[error(
        "replication factor {replicas} is not between 1 and {}",
        crate::ring::MAX_REPLICAS
    )]
    BadReplicaCount {
        /// The rejected replication factor.
        replicas: usize,
    },
    /// The same node id appears twice in the member list.
    #[error("node {0} is listed twice")]
    DuplicateNode(NodeId),
    /// A node asked for more tokens than allowed, or for none.
    #[error(
        "node {node} has {count} tokens; each node needs between 1 and {}",
        crate::member::MAX_TOKENS_PER_NODE
    )]
    BadTokenCount {
        /// The node.
        node: NodeId,
        /// The rejected count.
        count: usize,
    },
    /// Tokens were requested for a node that already has some: tokens never
    /// change for a live node.
    #[error("node {0} already owns tokens; tokens never change for a live node")]
    AlreadyHasTokens(NodeId),
    /// The ring has no room left between tokens to place a new one.
    #[error("no free position left on the ring for node {0}")]
    RingFull(NodeId),
}
