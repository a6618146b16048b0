//! Updates: read-modify-write on the coordinating primary's copy.
//!
//! A put replaces what its context covers, so a client that wants to
//! change a value ("add 1", "set only if absent", "keep the value, change
//! its expiry") must read, compute and write back, and two clients doing
//! that at once through the same node race each other. A
//! [`quorra_client::Request::Update`] moves the computation into the
//! coordinator instead: the primary that coordinates the write (others
//! forward it, as a put) hands the live values of its own copy of the key
//! to an [`Updater`], and writes what it returns with that copy's context,
//! in one step of the single-threaded core. Updates through one
//! coordinator are therefore serialized, and the write supersedes exactly
//! what the coordinator has seen; what it has not seen (a concurrent write
//! through another primary) stays a sibling, as for any put.
//!
//! The updater is also told the [`Actor`] the write will be issued under.
//! An actor is continued only while the coordinator's copy holds every dot
//! it issued for the key (see [`crate::version::actor`]), so a per-actor
//! entry in the value (a PN-counter's, say) always grows from its own last
//! value: increments through different nodes, or on both sides of a
//! partition, are never lost when siblings are merged.
//!
//! An update whose result depends on what the key holds (a conditional
//! write, a delete, an increment's answer) first **reads at the request's
//! read quorum** ([`Updater::reads_first`]) and merges what the replicas
//! answered into the coordinator's copy before applying it: a coordinator
//! that missed a write (it was down, or cut off) still sees it, so `DEL`
//! of a key written through another node deletes it, and R + W > N gives
//! read-your-writes as for gets and puts. An update that replaces whatever
//! is there (a plain `SET`) skips the read.
//!
//! An updater may also ask for a **fresh writer** ([`Applied::fresh_writer`])
//! when it starts something anew: a counter created where the copy holds
//! none may meet, when siblings merge, an older counter that a concurrent
//! writer kept alive, and its entry must not be one this node used before.
//!
//! What an update means is not the core's business: the node is given an
//! updater in its [`super::Options`] (the RESP gateway's, in the daemon),
//! and a node without one refuses updates.

use std::fmt::Debug;

use bytes::Bytes;

use crate::version::Actor;

/// What an update does to the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing: the coordinator answers at once, without a write.
    Keep,
    /// Write this value, replacing every value the coordinator holds.
    Put(Bytes),
    /// Delete the key (a tombstone replacing every value the coordinator holds).
    Delete,
}

/// The result of applying an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The change to write.
    pub change: Change,
    /// What the client is told on success ([`quorra_client::Response::answer`]).
    pub answer: Bytes,
    /// Issue the write under an actor this node never used before (the
    /// core then applies the update again with it).
    pub fresh_writer: bool,
}

/// Interprets updates. Implementations must be pure functions of their
/// arguments: the simulator replays them.
pub trait Updater: Debug + Send + Sync {
    /// Applies `update` to the live values of the coordinator's copy
    /// (`values`, in the copy's order; empty: absent), as `writer`. An
    /// error is the client's (a malformed update, a value of the wrong
    /// kind) and reaches it as [`quorra_client::RequestError::Invalid`]
    /// with this message.
    fn apply(&self, update: &[u8], values: &[Bytes], writer: Actor) -> Result<Applied, String>;

    /// Whether `update` depends on what the key holds, so the coordinator
    /// reads at the request's read quorum before applying it.
    fn reads_first(&self, update: &[u8]) -> bool;
}
