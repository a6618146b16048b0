//! # quorra-gossip: who is in the cluster, and who is alive
//!
//! Membership without a central component. Each node gossips once a second
//! with a random peer; what one node learns, everyone learns within
//! O(log N) rounds. The member table is a function of the entries gossiped
//! ([`state`]): each member owns its entry (generation, heartbeat, version,
//! information), and merging views is a join, so all nodes converge to the
//! same table and so compute the same ring.
//!
//! - [`state`]: entries, digests, updates and the merge rule.
//! - [`gossiper`]: the SYN/ACK/ACK2 exchange, rounds, refusing other
//!   clusters, joining, leaving, removal, forgetting.
//! - [`detector`]: phi-accrual failure detection fed by heartbeats.
//!
//! Like the node core, this is a sans-IO state machine: `handle_*` take the
//! current time, `poll_*` return messages, events and the next wake-up, the
//! RNG is seeded by the caller. The runtime carries the messages over QUIC;
//! the simulator carries them over its simulated network.
//!
//! ## Life of a member
//!
//! `joining` (known, no tokens yet) → `normal` (owns tokens) → `leaving`
//! (announced, still owns) → `left` (owns nothing). A member that died for
//! good is `removed` by any node an operator asks. Left and removed members
//! are forgotten after `forget_after`. A node that restarts bumps its
//! generation; its new entry replaces the old everywhere.
//!
//! ## Not done here
//!
//! - Digests list every member: a SYN costs O(N) bytes, about 20 bytes per
//!   member. Fine for the clusters Quorra targets (tens of nodes); very large
//!   clusters would want Scuttlebutt-style deltas per peer.
//! - No data moves when ownership changes; that is the node's business.

pub mod detector;
pub mod gossiper;
pub mod state;

pub use detector::{PhiDetector, PhiParams};
pub use gossiper::{Config, Event, GossipMessage, GossipStats, Gossiper, Target};
pub use state::{Digest, Entry, Info, Layout, Merged, Stamp, Status, Tracker, Update};

/// A stable 64-bit hash of a cluster's fixed settings (partitions and
/// replicas): nodes with different settings must not form one cluster.
pub fn settings_hash(partitions: u32, replicas: usize) -> u64 {
    // FNV-1a: tiny, stable across versions and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in partitions
        .to_le_bytes()
        .into_iter()
        .chain((replicas as u64).to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
