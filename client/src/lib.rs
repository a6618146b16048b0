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
//! ## The client
//!
//! [`Client`] ([`sdk`]) connects over QUIC with mutual TLS ([`tls`]),
//! learns the routing table from any node and sends each request straight
//! to a replica of its key ([`routing`]), over one long-lived stream per
//! node carrying length-prefixed frames ([`wire`], [`protocol`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), quorra_client::ClientError> {
//! use quorra_client::{Client, ClientConfig, Consistency, Context, TlsFiles};
//! let tls = TlsFiles::in_dir(std::path::Path::new(".quorra/tls"), "client");
//! let client = Client::connect(ClientConfig::new(vec!["127.0.0.1:7401".parse().unwrap()], tls)).await?;
//! client.put("user:1", "ada", &Context::empty(), Consistency::QUORUM).await?;
//! let read = client.get("user:1", Consistency::QUORUM).await?;
//! // Write again with what was read: replaces exactly those siblings.
//! client.put("user:1", "ada lovelace", &read.context, Consistency::QUORUM).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod consistency;
pub mod context;
pub mod limits;
pub mod protocol;
pub mod routing;
pub mod sdk;
pub mod tls;
pub mod wire;

pub use api::{Outcome, Receipt, ReplicaAnswer, Request, RequestError, Response};
pub use consistency::{Consistency, ConsistencyError, Level, Quorum};
pub use context::Context;
pub use limits::{MAX_KEY_LEN, MAX_VALUE_LEN};
pub use sdk::{Client, ClientConfig, ClientError};
pub use tls::TlsFiles;
