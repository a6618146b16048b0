//! # The admin HTTP listener: what an operator and their tools look at
//!
//! `quorra node --admin-listen ADDR` serves, over plain HTTP/1.1:
//!
//! | path | what | token |
//! | --- | --- | --- |
//! | `/health` | `200 ok` while the process serves HTTP | no |
//! | `/ready` | `200` when the node should get traffic, else `503` with a JSON reason ([`ready`]) | no |
//! | `/metrics` | Prometheus text format ([`metrics`], [`snapshot`]) | yes |
//! | `/v1/status` | the JSON `quorra status --json` prints | yes |
//! | `/v1/ring` | tokens and partition owners ([`query::RingView`]) | yes |
//! | `/` | the live status page ([`page`]) | no (it fetches with the token) |
//!
//! A non-loopback address needs `--admin-token`; requests then carry
//! `Authorization: Bearer TOKEN`, except the two probes, which load
//! balancers and orchestrators call without credentials and which reveal
//! only whether the node is up and ready.
//!
//! The listener holds no state of the node: each request asks the driver
//! (the task that owns the core) through its inbox ([`query`]) and
//! encodes the answer off the driver. Limits ([`config`]) bound what a
//! misbehaving client can cost: connections, request-head size, the time
//! to send a head, and the time the driver may take to answer.

pub mod config;
pub mod metrics;
pub mod page;
pub mod query;
pub mod ready;
pub mod server;
pub mod snapshot;

pub use config::AdminConfig;
pub use metrics::Metrics;
pub use query::{Answer, Query};
pub use server::AdminServer;
