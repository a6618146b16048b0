//! The messages nodes exchange.
//!
//! Every request carries an id chosen by its sender, unique per sender;
//! replies echo it. Messages are idempotent where the network may duplicate
//! them: writes, repairs and handoffs merge, purges compare before deleting,
//! and a forwarded client request is executed once per (sender, id).
//! They are plain data (serde), so the simulator passes them as values and
//! the runtime encodes them with rmp-serde.

use bytes::Bytes;
use quorra_client::{Outcome, Request};
use quorra_ring::{NodeId, PartitionId};
use serde::{Deserialize, Serialize};

use crate::version::Object;

/// A sender-local request id.
pub type RequestId = u64;

/// Why a replica could not do what it was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReplicaError {
    /// Its storage failed (full disk, I/O error, corrupt record).
    #[error("storage: {0}")]
    Storage(String),
    /// It holds as many hints as it may; the write for the unreachable owner
    /// was not kept here.
    #[error("hint store full")]
    HintsFull,
    /// It is not a replica of that partition.
    #[error("not a replica of {0}")]
    NotReplica(PartitionId),
    /// Anti-entropy is turned off on it.
    #[error("anti-entropy is off")]
    AntiEntropyOff,
}

/// One key's state in a handoff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// The key's partition.
    pub partition: PartitionId,
    /// The key.
    pub key: Bytes,
    /// Its state.
    pub object: Object,
}

/// A tombstone proposed for purging, identified by the digest of its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeItem {
    /// The key's partition.
    pub partition: PartitionId,
    /// The key.
    pub key: Bytes,
    /// blake3 of the encoded tombstone state.
    pub digest: [u8; 32],
}

/// What a member holds of a key proposed for purging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoteState {
    /// Not a primary of the key.
    NotReplica,
    /// A primary holding exactly the proposed tombstone, durably.
    Same,
    /// A primary holding nothing for the key.
    Nothing,
    /// A primary holding something else (sent, so the proposer can merge it).
    Other(Object),
}

/// One member's answer about one purge item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeVote {
    /// What the member holds of the key as a primary.
    pub state: VoteState,
    /// The member holds a copy of the key other than its own as a
    /// primary: a hint (for any owner), or what is left of a partition it
    /// owns no more and has not dropped yet ([`super::cleanup`]).
    pub holds_copy: bool,
}

/// One key and its state, as anti-entropy ships it.
pub type KeyObject = (Bytes, Object);

/// One step of an anti-entropy exchange, initiator → replica (see
/// [`super::anti_entropy`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AeStep {
    /// My root; answer with your branches if yours differs.
    Root(u64),
    /// Send your segment hashes under these branches.
    Branches(Vec<u32>),
    /// My keys (with leaf hashes) in these segments: answer with what you
    /// hold that differs, and the keys you want from me.
    Keys {
        /// The segments compared.
        segments: Vec<u32>,
        /// Every key I hold in them, with its leaf hash.
        keys: Vec<(Bytes, u64)>,
    },
    /// States you wanted, or held older: merge them. No answer.
    Push(Vec<KeyObject>),
}

/// A replica's answer to an [`AeStep`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AeAnswer {
    /// Our roots are equal.
    InSync,
    /// My branch hashes (roots differ).
    Branches(Vec<u64>),
    /// My branch hashes, and how many keys I hold of the partition: the
    /// answer to a pull's first step, so the node gaining the partition
    /// can estimate the move. (A node that predates it fails that pull,
    /// and retries it; repairs never see it.)
    Sized {
        /// As in [`AeAnswer::Branches`].
        branches: Vec<u64>,
        /// Keys (tombstones included) in my tree of the partition.
        keys: u64,
    },
    /// My segment hashes under each branch asked, in the order asked.
    Segments(Vec<Vec<u64>>),
    /// What differs in the segments compared.
    Delta {
        /// States I hold that you lack or hold differently.
        objects: Vec<KeyObject>,
        /// Keys you hold that I lack or hold differently.
        want: Vec<Bytes>,
        /// More of my states differ in these segments than one message
        /// carries: ask for them again.
        #[serde(default)]
        more: bool,
    },
}

/// A message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Coordinator → replica: send your state of `key`.
    Read {
        /// Request id.
        id: RequestId,
        /// The key's partition.
        partition: PartitionId,
        /// The key.
        key: Bytes,
        /// Set when the receiver is asked as a fallback for this owner.
        hint_for: Option<NodeId>,
    },
    /// Replica → coordinator: my state (`None`: I have nothing).
    ReadReply {
        /// Request id.
        id: RequestId,
        /// The state, or why it could not be read.
        result: Result<Option<Object>, ReplicaError>,
    },
    /// Coordinator → replica: merge this state and acknowledge once durable.
    Write {
        /// Request id.
        id: RequestId,
        /// The key's partition.
        partition: PartitionId,
        /// The key.
        key: Bytes,
        /// The coordinator's state after the write.
        object: Object,
        /// Set when the receiver is a fallback: keep it as a hint for this owner.
        hint_for: Option<NodeId>,
    },
    /// Replica → coordinator: merged and durable (or why not).
    WriteReply {
        /// Request id.
        id: RequestId,
        /// Success, or why the write was not kept.
        result: Result<(), ReplicaError>,
    },
    /// Read repair: merge this state. No reply.
    Repair {
        /// The key's partition.
        partition: PartitionId,
        /// The key.
        key: Bytes,
        /// The merged state the coordinator saw.
        object: Object,
    },
    /// A client write sent to a primary, which coordinates it.
    Forward {
        /// Request id.
        id: RequestId,
        /// The incarnation of the primary it is meant for, as the sender
        /// knows it from gossip (`None`: the sender knows none). A primary
        /// running another incarnation drops it: it may be a late copy of a
        /// forward an earlier incarnation executed, whose record of that
        /// died with it.
        to: Option<u32>,
        /// The client's request.
        request: Request,
    },
    /// The outcome of a forwarded request.
    ForwardReply {
        /// Request id.
        id: RequestId,
        /// What the client gets.
        outcome: Outcome,
    },
    /// Fallback → owner: hints held for you; acknowledge once durable.
    Handoff {
        /// Request id.
        id: RequestId,
        /// The hinted states.
        items: Vec<KeyState>,
    },
    /// Owner → fallback: which items are merged and durable, in order (an
    /// item that failed stays a hint and is offered again later).
    HandoffReply {
        /// Request id.
        id: RequestId,
        /// One flag per item.
        stored: Vec<bool>,
    },
    /// Do you hold these tombstones, or hints for these keys?
    PurgeCheck {
        /// Request id.
        id: RequestId,
        /// The tombstones.
        items: Vec<PurgeItem>,
    },
    /// One vote per item, in order.
    PurgeCheckReply {
        /// Request id.
        id: RequestId,
        /// The votes.
        votes: Vec<PurgeVote>,
    },
    /// Delete these tombstones if your state still has this digest.
    Purge {
        /// The tombstones.
        items: Vec<PurgeItem>,
    },
    /// An anti-entropy step for `partition`.
    AntiEntropy {
        /// Request id (unused for a push).
        id: RequestId,
        /// The partition whose replicas are compared.
        partition: PartitionId,
        /// The step.
        step: AeStep,
        /// The initiator pulls a partition it gains ([`crate::core::transfer`]):
        /// served, and paced, as a transfer rather than as anti-entropy.
        #[serde(default)]
        stream: bool,
    },
    /// The answer to an anti-entropy step.
    AntiEntropyReply {
        /// Request id.
        id: RequestId,
        /// The answer, or why the replica cannot take part.
        result: Result<AeAnswer, ReplicaError>,
        /// To a pull: the share of its transfer budget the source allows
        /// now, in 1/65,535ths ([`crate::core::pacing`]); `None` to
        /// anti-entropy, and from a node that predates it. Left out of
        /// the encoding when `None`, so a node that predates it still
        /// reads every anti-entropy answer (a pull between releases fails
        /// either way: the older one does not read `stream`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        share: Option<u16>,
    },
    /// Are you there?
    Ping {
        /// Request id.
        id: RequestId,
    },
    /// I am.
    Pong {
        /// Request id.
        id: RequestId,
    },
}

impl PeerMessage {
    /// A short name of the message kind, for traces and statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerMessage::Read { .. } => "read",
            PeerMessage::ReadReply { .. } => "read-reply",
            PeerMessage::Write { .. } => "write",
            PeerMessage::WriteReply { .. } => "write-reply",
            PeerMessage::Repair { .. } => "repair",
            PeerMessage::Forward { .. } => "forward",
            PeerMessage::ForwardReply { .. } => "forward-reply",
            PeerMessage::Handoff { .. } => "handoff",
            PeerMessage::HandoffReply { .. } => "handoff-reply",
            PeerMessage::PurgeCheck { .. } => "purge-check",
            PeerMessage::PurgeCheckReply { .. } => "purge-check-reply",
            PeerMessage::Purge { .. } => "purge",
            PeerMessage::AntiEntropy { .. } => "anti-entropy",
            PeerMessage::AntiEntropyReply { .. } => "anti-entropy-reply",
            PeerMessage::Ping { .. } => "ping",
            PeerMessage::Pong { .. } => "pong",
        }
    }
}
