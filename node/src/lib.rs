//! # quorra-node: the peer
//!
//! Everything a Quorra node is made of:
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
//! - [`core`]: the replica and coordinator state machine (quorums, write
//!   forwarding, sloppy quorum, hinted handoff, read repair, Merkle
//!   anti-entropy, tombstone purge).
//! - [`membership`]: gossip's member table turned into the core's ring and
//!   peer opinions; joining and leaving; the node's persistent identity.
//! - [`resp`]: the Redis protocol gateway.
//! - [`runtime`]: tokio, quinn and a real disk around the two above; the
//!   `quorra` binary's commands live in `cli`.
//! - [`admin`]: the operator's HTTP port: Prometheus metrics, health and
//!   readiness, the status JSON and a live status page.
//!
//! ## Design rules
//!
//! [`core`] and [`membership`] are sans-IO state machines: they are handed
//! messages, client requests and the current time, and return what to send
//! and when to wake them. They never read a clock, spawn a task or open a
//! socket; storage is called synchronously through the trait. Both the
//! tokio runtime and the deterministic simulator drive that same code.

pub mod admin;
pub mod core;
pub mod membership;
pub mod resp;
pub mod runtime;
pub mod storage;
pub mod version;
