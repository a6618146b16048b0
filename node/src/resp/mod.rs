//! # Speaking Redis: the RESP gateway (in progress)
//!
//! Every node will answer the Redis protocol on `--resp-listen`, backed by
//! the replicated cluster, so Redis clients and tools work against Quorra
//! (issue 7). What exists so far:
//!
//! - [`codec`]: RESP2/RESP3 framing: pipelined requests parsed off a
//!   connection buffer without copying, replies encoded for the
//!   connection's protocol version, every limit a documented constant.
//! - [`value`]: what a Redis key holds inside a Quorra value (strings and
//!   PN-counters with a hybrid-logical-clock stamp and an expiry), and how
//!   a key's siblings resolve to one value, the same on every node.
//!
//! - [`command`]: requests parsed into commands, with Redis's own error
//!   strings for unknown commands, wrong arity, syntax and numbers.
//!
//! Still to come: executing commands against the cluster, the
//! per-connection server, and the daemon flag.

pub mod codec;
pub mod command;
pub mod value;
