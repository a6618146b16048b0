//! # quorra-simulations: whole clusters under faults, deterministically
//!
//! The simulator runs many nodes of the real Quorra core ([`quorra_node::core::Node`])
//! in one thread, with simulated time, a simulated network and simulated
//! disks, all drawn from one seed ([`params`]). Every bug it finds replays
//! exactly from the seed, as with FoundationDB's simulation, TigerBeetle's
//! VOPR and quinn-proto's tests.
//!
//! - [`sim`]: the event queue, nodes, network (latency tails, loss,
//!   duplication, partitions), disks (a flush takes time; a crash loses what
//!   was not flushed), clocks (offset and rate error), pauses.
//! - [`faults`]: random crashes, pauses and partitions at the seed's rates.
//! - [`changes`]: joins, leaves and removals of dead nodes during the
//!   safety phase, under the faults.
//! - [`workload`]: concurrent clients doing gets, puts with and without
//!   context and deletes on a small key space, increments of two counters
//!   (the RESP gateway's `INCR`), and every RESP write (`SET` with
//!   `EX`/`PX`/`KEEPTTL`/`NX`/`XX`/`GET`, `EXPIRE`, `PERSIST`, `DEL`) and
//!   `GET` on a few string keys, with each node's expiry sweeper, at mixed
//!   consistency levels.
//! - [`updater`]: the RESP updater with a log of what every coordination
//!   saw and wrote, which the RESP checks read.
//! - [`history`]: what every client operation did and saw.
//! - [`runner`]: the safety phase, the liveness phase, the checks.
//! - [`check`]: durability, no resurrection, causality, read-your-writes,
//!   counters (safety) and convergence (liveness), each its own module.
//! - [`chaos`]: the same workload and checks against real `quorra node`
//!   processes in network namespaces, under real packet and process faults.
//! - [`trace`]: a fingerprint of every event, to catch hidden
//!   nondeterminism by running a seed twice.
//!
//! The simulation works at the message level, over the sans-IO core; QUIC is
//! not simulated (as the quinn and madsim experience advises).

pub mod changes;
pub mod chaos;
pub mod check;
pub mod clock;
pub mod faults;
pub mod gossip_sim;
pub mod harness;
pub mod history;
pub mod params;
pub mod runner;
pub mod sim;
pub mod trace;
pub mod updater;
pub mod watch;
pub mod workload;
