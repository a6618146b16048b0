//! # quorra-node: the peer
//!
//! Everything a Quorra node is made of, below the network:
//!
//! - [`version`]: how a key's concurrent values are kept and reconciled.
//!   Each key is a dotted version vector set ([`version::DvvSet`]) of
//!   siblings; a read hands out an opaque context, a write with that context
//!   replaces exactly what the reader saw, concurrent writes become siblings,
//!   deletes are tombstones with a context. Dots are issued per node
//!   *epoch*, so a crash, a purge or a handed-over hint can never make two
//!   different values share a dot.
//! - [`storage`]: one synchronous [`storage::Engine`] trait with three
//!   engines (fjall, the default, whose flush is an fdatasync; sled, whose
//!   flush is only `sync_file_range`; memory, with the simulator's crash
//!   model), a typed [`storage::Store`] that keeps owned data, hints and
//!   metadata apart and enforces the size limits, and the group-commit policy
//!   ([`storage::GroupCommit`]) that decides when acknowledgements may leave.
//!
//! ## Design rules
//!
//! The replica and coordinator logic that will sit on top of these is a
//! sans-IO state machine: it is handed messages, client requests and the
//! current time, and returns what to send and when to wake it. It never
//! reads a clock, spawns a task or opens a socket; storage is called
//! synchronously through the trait. Both the tokio runtime and the
//! deterministic simulator drive that same code.
//!
//! ## Not here yet
//!
//! The coordinator/replica state machine (quorums, sloppy quorum, hinted
//! handoff, read repair), the QUIC runtime and the daemon come with their
//! own issues. Today the `quorra` binary offers `quorra ring plan`.

pub mod core;
pub mod membership;
pub mod runtime;
pub mod storage;
pub mod version;
