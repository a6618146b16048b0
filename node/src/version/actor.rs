//! Actors: who issues the dots of a version.
//!
//! A dot is `(actor, counter)`, and the scheme is only correct if an actor
//! never issues the same dot twice for two different values of a key. The
//! counter an actor issues next is one above the highest it can see in its
//! own copy of the key, so anything that makes a node forget a key's counters
//! would make it reuse dots:
//!
//! - a crash loses writes the node applied (and sent to other replicas) but
//!   had not yet flushed;
//! - a tombstone purge deletes the key's state, counters included, while
//!   clients may still hold contexts naming the old dots;
//! - a fallback that coordinated a write hands its hint over and deletes it.
//!
//! So the actor is not the bare node id but `(node, epoch)`, and a node only
//! *continues* an epoch it finds in its own current copy of the key and that
//! belongs to its current incarnation; otherwise it opens a fresh epoch. The
//! epoch is `incarnation << 32 | sequence`: the incarnation is bumped (drawn
//! on an empty store) and persisted at every start before the node
//! coordinates anything, and the
//! sequence counts fresh epochs within one incarnation. A forgotten key or a
//! lost counter therefore always leads to a new epoch, never to a reused dot.
//! The price is one more entry in a key's clock per (coordinating node,
//! incarnation, key lifetime); entries of old epochs are not pruned.
//! Measured (`a_keys_clock_grows_by_one_entry_per_life_that_coordinated_a_write_to_it`
//! in the simulator): a node restarted 100 times, writing one key twice in
//! every life, leaves exactly 100 entries, 1,418 bytes stored for the key;
//! about 14 bytes per life that wrote it. Dropping an entry whose dots are
//! all obsolete is not safe on one replica: a lagging replica's copy of an
//! overwritten value with such a dot would come back as a live sibling
//! (the reason Riak's clock pruning can lose or revive updates). The entry
//! goes when the key does: a delete, once purged, resets its clock. A key
//! written by more than [`super::context::MAX_CONTEXT_ENTRIES`] lives
//! (4,096: three coordinators restarted daily for almost four years, each
//! writing it in every life) would hand out contexts that writes refuse.

use quorra_ring::NodeId;
use serde::{Deserialize, Serialize};

/// The issuer of dots: one node in one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The coordinating node.
    pub node: NodeId,
    /// `incarnation << 32 | sequence`, see the module documentation.
    pub epoch: u64,
}

impl Actor {
    /// The actor of `node` in `epoch`.
    pub fn new(node: NodeId, epoch: u64) -> Self {
        Self { node, epoch }
    }

    /// The incarnation part of the epoch.
    pub fn incarnation(&self) -> u32 {
        (self.epoch >> 32) as u32
    }

    /// The epoch `sequence` of `incarnation`.
    pub fn epoch_of(incarnation: u32, sequence: u32) -> u64 {
        (u64::from(incarnation) << 32) | u64::from(sequence)
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.node,
            self.incarnation(),
            self.epoch & 0xffff_ffff
        )
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
