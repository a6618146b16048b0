//! # quorra-client: what a Quorra user holds in their hands
//!
//! This crate is the public face of Quorra. It holds the types an
//! application sees: per-request [`Consistency`] levels, the [`Context`]
//! that carries causality from a read to the write that follows it, and the
//! documented [`limits`]. The QUIC client SDK builds on these types (see the
//! runtime issue); nodes use the same types, so a client and a node can never
//! disagree on what `quorum` means.
//!
//! ## Reads, writes and siblings
//!
//! A read returns every *sibling* (concurrent value) of a key, plus an opaque
//! context. A write sent with that context replaces exactly the siblings the
//! read saw; a write without one is concurrent with everything already
//! stored and becomes a sibling of it. Nothing is resolved by timestamps
//! behind the user's back.
//!
//! ## Not here yet
//!
//! The network client itself (connect, retries, zero-hop routing) comes with
//! the runtime; this crate currently holds the shared vocabulary: the
//! [`api`] types a node's coordinator answers with.

pub mod api;
pub mod consistency;
pub mod context;
pub mod limits;

pub use api::{Outcome, Receipt, ReplicaAnswer, Request, RequestError, Response};
pub use consistency::{Consistency, ConsistencyError, Level, Quorum};
pub use context::Context;
pub use limits::{MAX_KEY_LEN, MAX_VALUE_LEN};
