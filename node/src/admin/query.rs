//! What the admin listener asks the driver, and the answers.
//!
//! The driver owns the core, the membership and the store, so every
//! endpoint that shows the node's state asks it, through the same inbox
//! as client requests, and the driver answers from one place
//! ([`crate::runtime::driver`]): `/v1/status` is exactly what
//! `quorra status --json` prints, because both are the driver's
//! `status()`.

use quorra_client::protocol::ClusterStatus;
use serde::Serialize;

use super::ready::Readiness;
use super::snapshot::Snapshot;

/// A question for the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// The cluster as this node sees it (`/v1/status`).
    Status,
    /// The ring: tokens and partition owners (`/v1/ring`).
    Ring,
    /// Whether the node should get traffic (`/ready`).
    Ready,
    /// Everything `/metrics` shows.
    Metrics,
}

/// The driver's answer.
#[derive(Debug)]
pub enum Answer {
    /// For [`Query::Status`].
    Status(Box<ClusterStatus>),
    /// For [`Query::Ring`].
    Ring(Box<RingView>),
    /// For [`Query::Ready`].
    Ready(Readiness),
    /// For [`Query::Metrics`].
    Metrics(Box<Snapshot>),
}

/// The ring as `/v1/ring` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RingView {
    /// The node that answered.
    pub node: u64,
    /// Q.
    pub partitions: u32,
    /// Replicas each partition has now (N, or fewer in a small cluster).
    pub replicas: u32,
    /// Every member of the newest layout with its tokens (positions on
    /// the 64-bit ring), in id order.
    pub members: Vec<RingMember>,
    /// The primaries of each partition in preference order, by partition,
    /// in the layout reads use.
    pub owners: Vec<Vec<u64>>,
    /// Partitions whose owners are changing.
    pub moving: Vec<u32>,
    /// The first token of each partition: partition `p` covers the ring
    /// from `starts[p]` up to `starts[p + 1]` (decimal strings: a 64-bit
    /// position does not fit a JSON number exactly).
    #[serde(serialize_with = "decimal")]
    pub starts: Vec<u64>,
}

/// One member of the ring.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RingMember {
    /// Node id.
    pub id: u64,
    /// Zone.
    pub zone: String,
    /// Tokens, sorted (decimal strings, as `starts`).
    #[serde(serialize_with = "decimal")]
    pub tokens: Vec<u64>,
}

/// Writes 64-bit ring positions as decimal strings.
fn decimal<S: serde::Serializer>(positions: &[u64], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(positions.iter().map(u64::to_string))
}
