//! # The real-process chaos harness (`quorra-chaos`)
//!
//! The simulator proves the core's logic; this proves the binary: QUIC and
//! TLS, the tokio driver, group commit on a real disk, gossip over
//! datagrams, each under real faults. It runs N real `quorra node`
//! processes, each in its own network namespace with its own address
//! ([`net`]), drives them with real SDK clients ([`workload`]) while a
//! seeded nemesis ([`schedule`]) partitions the network (majority/minority,
//! one node cut off, one-way), drops packets at random, delays, reorders
//! and duplicates them ([`netem`]), kills nodes with `SIGKILL`, pauses them
//! with `SIGSTOP`, wipes and slows their disks and skews their clocks
//! ([`cluster`]), and nodes join and leave meanwhile; then heals
//! everything, lets the cluster settle, reads every replica's state off
//! its disk and judges the history with the simulator's own checks
//! ([`crate::check`]): durability, no resurrection, causality, counters
//! (by their bounds: the per-coordination log the exact check reads exists
//! only in the simulator) and convergence ([`run`]).
//!
//! Some of the clients' counter increments go over real RESP connections
//! ([`resp`]).
//!
//! Needs root (namespaces, `iptables`). Everything it makes is named
//! `qc<pid>...` and removed at the end, on failure and on Ctrl-C too.

pub mod cluster;
pub mod net;
pub mod netem;
pub mod resp;
pub mod run;
pub mod schedule;
pub mod workload;
