//! # quorra-ring: where every key lives
//!
//! Placement in Quorra is a pure function of two things every node and every
//! client can know: the cluster's fixed settings ([`RingConfig`]: Q
//! partitions, N replicas) and the gossiped members with their tokens. This
//! crate computes it. It does no I/O, reads no clock and draws no random
//! numbers.
//!
//! ## From key to replicas
//!
//! 1. **Hash** ([`hash`]): the key (or its `{hashtag}`) is hashed with
//!    blake3; the first 8 bytes are its position on a 64-bit ring.
//! 2. **Partition** ([`partition`]): the top log2(Q) bits of the position
//!    pick one of Q fixed, equal partitions (default 1024). Q never changes,
//!    so a partition is the unit that is stored, compared and handed off.
//! 3. **Walk** ([`walk`], [`ring`]): each node owns T tokens (default 64).
//!    From the partition's start, walk the tokens clockwise and take N
//!    distinct nodes, first one per zone while distinct zones remain, then
//!    the next nodes met. Those are the partition's *primaries*, in
//!    preference order.
//! 4. **Fallbacks** ([`Ring::preference_list`], [`Ring::sloppy_replicas`]):
//!    the walk goes on past the primaries; a coordinator that believes a
//!    primary is down sends to the next live node instead, which holds the
//!    write as a hint for that primary (a sloppy quorum).
//!
//! ## Why fixed partitions *and* tokens
//!
//! Tokens give each node many small pieces of the ring, so a joining node
//! takes a little from everyone and a failed node's load spreads over
//! everyone (Dynamo's virtual nodes). Fixed partitions give every replica
//! the same unit of data to store, scan and compare, whatever the tokens do
//! (Riak's ring). A partition is owned by the nodes its start point's walk
//! meets.
//!
//! ## Balance
//!
//! Random tokens balance poorly (the largest node holds 20–30% more than the
//! mean at T = 64), so a joining node chooses its tokens to even out the
//! partition-replicas each node holds ([`allocator`], after Cassandra's
//! replication-aware allocator). Tokens never change for a live node; the
//! ring is a function of the gossiped tokens, and the same tokens in any
//! input order give the same ring. [`plan`] grows rings node by node to
//! measure the result; with the defaults the largest node holds at most 10%
//! more than the mean for 3 to 64 nodes, and adding a node moves close to the
//! ideal 1/(S+1) of the data, all of it onto the new node.
//!
//! ## Invariants
//!
//! - A partition has min(N, nodes with tokens) distinct primaries.
//! - With Z ≥ N zones, the primaries are in N distinct zones; with Z < N they
//!   cover all Z zones.
//! - The preference list of a partition lists every member exactly once, in
//!   an order that does not depend on which nodes are down.
//! - Adding a node only ever puts *that* node into a partition's primaries.
//!
//! ## Not done here
//!
//! - Weighted nodes beyond token count: a node's fair share is proportional
//!   to its token count, nothing else.
//! - Zone-balanced capacity: with zones of unequal size, the nodes of the
//!   smaller zones necessarily hold more (a zone alone in its zone holds
//!   every partition when zones ≥ N); the allocator cannot fix that.
//! - Token removal or rebalancing of live nodes: a node keeps its tokens for
//!   life; leaving and joining again is the only way to move them.

pub mod allocator;
mod error;
pub mod hash;
pub mod member;
pub mod partition;
pub mod placement;
pub mod plan;
pub mod ring;
pub mod walk;

pub use allocator::allocate_tokens;
pub use error::RingError;
pub use hash::key_position;
pub use member::{DEFAULT_TOKENS_PER_NODE, MAX_TOKENS_PER_NODE, Member, NodeId, Token};
pub use partition::{DEFAULT_PARTITIONS, MAX_PARTITIONS, PartitionId, Partitioner};
pub use placement::{Placement, WriteGroup, WriteReplicas};
pub use ring::{
    DEFAULT_REPLICAS, MAX_REPLICAS, PreferenceList, Replica, ReplicaRole, Ring, RingConfig,
};
