//! # The admin HTTP listener: what an operator and their tools look at
//!
//! Every node serves, over plain HTTP/1.1 on `--admin-listen ADDR`
//! ([`config::DEFAULT_ADMIN_LISTEN`] unless told otherwise; `off` for
//! none):
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
//! balancers and orchestrators call without credentials, and the page,
//! which holds no data. The probes reveal whether the node is up and
//! ready and, when it is not, why (its state, partition counts, the ids
//! of the peers it believes down). Without a token, protected paths are
//! served only to requests whose `Host` is a loopback address or
//! `localhost`, so a web page open in the operator's browser cannot read
//! them through a DNS name rebound to 127.0.0.1.
//!
//! The listener holds no state of the node: each request asks the driver
//! (the task that owns the core) through its inbox ([`query`]); the
//! listener's tasks run on the same thread as the driver (the node's
//! runtime has one), so they do little: encoding a large node's page takes
//! about 0.2 ms, and what may block (file-system and `/proc` reads) runs
//! on the blocking pool. Limits ([`config`]) bound what a misbehaving
//! client can cost: connections, their lifetime, request-head size, the
//! time to send a head, how often `/ready` reaches the driver, and the
//! time the driver may take to answer.

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
