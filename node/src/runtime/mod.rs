//! # The runtime: the node core on tokio, quinn and a real disk
//!
//! Everything the sans-IO core ([`crate::core`]) does not: sockets, TLS,
//! clocks, threads, signals, and the disk flush of group commit. The
//! runtime adds no protocol logic of its own to requests: [`driver`] feeds
//! the core exactly as the simulator does. The pieces:
//!
//! - [`daemon`]: `quorra node` start-up checks, run, graceful shutdown;
//! - [`driver`]: the task that owns the core and its membership, and runs
//!   group commit;
//! - [`storage_watch`]: a failed store (full disk, I/O error) noticed,
//!   reported without flooding the log, and recovered from in place;
//! - [`transport`]: the QUIC endpoint, one long-lived stream per peer and
//!   per client, frames in and out;
//! - [`tls`]: mutual TLS against the cluster CA, node certificates for peers;
//! - [`certs`]: `quorra cert init|issue`;
//! - [`admission`] and [`delay_limit`]: how many client requests a node
//!   takes at once, set by how long the admitted ones wait.
//!
//! The admin HTTP listener ([`crate::admin`]) runs beside the driver on the
//! same single-threaded runtime; the RESP gateway ([`crate::resp`]) runs on
//! a thread and runtime of its own, so that thousands of connections
//! flooding it cannot take the driver's turns. Both reach the core only
//! through the driver's inbox.

pub mod admission;
pub mod certs;
pub mod daemon;
pub mod delay_limit;
pub mod driver;
pub mod storage_watch;
pub mod tls;
pub mod transport;
