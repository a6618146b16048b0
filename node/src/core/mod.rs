//! # The node core: replica and coordinator as a sans-IO state machine
//!
//! [`Node`] is the whole protocol of one Quorra node, with no I/O: it is
//! handed client requests, peer messages and the current time, and it
//! returns messages to send, client replies and when to call it next (see
//! [`node`] for the driving contract). Storage is the one synchronous
//! dependency, through [`crate::storage::Store`]. The simulator and the
//! tokio runtime drive this same code; everything the simulator proves is
//! proven of what runs in production.
//!
//! ## A request's path
//!
//! - **Placement**: the key's partition and its preference list come from
//!   the ring ([`quorra_ring`]); while ownership moves, writes go to the
//!   owners in every active ring and reads to the read ring's. The coordinator sends to the primaries it
//!   believes up and, for each one it believes down, to the next live node
//!   of the list as a fallback (a sloppy quorum). Reachability is judged
//!   from timeouts ([`peers`]) until gossip replaces it.
//! - **Entry** ([`coordinator`]): validation, routing, the table of
//!   operations in flight and their deadlines. Every message from a peer is
//!   checked first ([`validate`]): a malformed one is dropped and counted.
//! - **Reads** ([`read`]): answer at R (PR) successful answers with every
//!   live sibling, keep tracking stragglers, then repair every primary that
//!   answered with less than the merged state (read repair).
//! - **Writes** ([`write`](mod@write), [`forward`], [`replica`]): coordinated by a
//!   primary (others forward); the coordinator stores its copy first, every
//!   replica merges the new state, a fallback keeps it as a hint, and the
//!   client is answered once W (PW) replicas hold it durably. The reply
//!   carries a receipt of who answered. An update ([`update`]) is a write
//!   whose value the coordinating primary computes from its own copy.
//! - **Hinted handoff** ([`hints`]): fallbacks hand hints to their owner
//!   when it answers again and delete them only once the owner acknowledged
//!   them durably. Hints are bounded; overflow is refused and counted.
//! - **Anti-entropy** ([`anti_entropy`]): in the background, the replicas
//!   of each partition compare Merkle trees and ship each other the keys
//!   on which they differ, within a byte budget.
//! - **Deletes and purge** ([`purge`]): a delete is a tombstone written like
//!   any value; it is purged only after every member confirms that the
//!   primaries hold it and nobody holds a hint for the key.
//!
//! ## Invariants
//!
//! - A replica never overwrites: every state it receives is merged.
//! - An acknowledgement (to a coordinator, or a coordinator's own count)
//!   leaves only when the write is durable under the sync mode.
//! - A dot is never issued twice for two values (epochs, see
//!   [`crate::version::actor`]).
//! - A hint is deleted only after its owner durably acknowledged exactly
//!   that state.
//! - A tombstone is deleted only when no node can hold an older copy.
//!
//! ## Not done here
//!
//! - Membership: the core is handed its ring and its peers' status by
//!   [`crate::membership`] (gossip and phi accrual); [`peers`] keeps the
//!   core's own timeout-based opinion in between.
//! - Which rings are active and which one reads use is decided by
//!   [`crate::membership::layouts`] from gossip; the core writes to every
//!   active ring ([`tally`] groups), reads the read ring, pulls what it
//!   gains ([`transfer`]), at a pace that yields to its clients
//!   ([`pacing`]), and drops what it owns no more ([`cleanup`]).
//! - A coordinator does not retry a failed replica with another fallback
//!   within the same request; the next request picks a new set.

pub mod anti_entropy;
pub mod cleanup;
pub mod coordinator;
pub mod dedup;
pub mod forward;
pub mod hints;
pub mod life;
pub mod messages;
pub mod node;
pub mod options;
pub mod pacing;
pub mod peers;
pub mod purge;
pub mod purged;
pub mod read;
pub mod replica;
pub mod stats;
pub mod tally;
pub mod transfer;
pub mod update;
pub mod validate;
pub mod write;

pub use messages::{
    AeAnswer, AeStep, KeyState, PeerMessage, PurgeItem, PurgeVote, ReplicaError, RequestId,
    VoteState,
};
pub use node::{ClientTag, Node, NodeError};
pub use options::{Options, ReadFanout};
pub use stats::Stats;
pub use transfer::{GainStatus, Moves};
pub use update::{Applied, Change, Updater};
