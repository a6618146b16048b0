//! # Speaking Redis: the RESP gateway
//!
//! Every node started with `--resp-listen` answers the Redis protocol,
//! backed by the replicated cluster, so Redis clients and tools (redis-cli,
//! redis-benchmark, any client library) work against Quorra; any node
//! behaves as one Redis. The pieces, from the socket in:
//!
//! - [`gateway`]: the listener (TCP, or TLS with [`tls`]), the password
//!   rule, the gateway's thread, and its one way into the node: requests
//!   through the driver's inbox, as QUIC clients' requests arrive.
//! - [`connection`]: one connection's loop: pipelined requests parsed and
//!   run as a batch, concurrently where their keys differ, answered in order.
//! - [`codec`]: RESP2/RESP3 framing, every limit a documented constant.
//! - [`command`]: requests parsed into commands, with Redis's own error
//!   strings for unknown commands, wrong arity, syntax and numbers.
//! - [`exec`]: each command as gets, puts and updates.
//! - [`update`]: what `SET`, `INCR`, `EXPIRE` and `DEL` do to a key's value,
//!   applied by the coordinating primary to its own copy.
//! - [`value`]: what a Redis key holds inside a Quorra value (strings and
//!   PN-counters with a hybrid-logical-clock stamp and an expiry), and how
//!   a key's siblings resolve to one value, the same on every node.
//! - [`keyspace`]: the `DBSIZE` estimate and the expiry sweeper.
//! - [`info`], [`table`]: `INFO`, `CONFIG GET`, `HELLO`, `COMMAND`.

pub mod codec;
pub mod command;
pub mod connection;
pub mod exec;
pub mod gateway;
pub mod info;
pub mod keyspace;
pub mod table;
pub mod tls;
pub mod update;
pub mod value;

pub use gateway::{Facts, Gateway, RespConfig};
pub use update::RespUpdater;
