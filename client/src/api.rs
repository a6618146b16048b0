//! Requests, results and errors: what travels between a client and the node
//! that coordinates its request.
//!
//! A read answers with every live sibling and the context covering them; an
//! empty list means the key is absent (never written, or deleted) and the
//! context still matters: a write with it replaces the tombstone cleanly.
//! A write answers with the siblings the coordinator holds after it, and
//! their context, so a client can write again without reading (its next
//! write replaces exactly what it was shown). Every successful answer carries
//! a [`Receipt`]: which replicas answered and whether any of them was a
//! fallback standing in for an unreachable owner.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::consistency::{Consistency, ConsistencyError};
use crate::context::Context;

/// One request from a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Read every sibling of `key`.
    Get {
        /// The key.
        key: Bytes,
        /// R (and PR).
        consistency: Consistency,
    },
    /// Write `value`, replacing what `context` covers.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// From an earlier read or write of this key; empty for a blind write.
        context: Context,
        /// W (and PW).
        consistency: Consistency,
    },
    /// Delete what `context` covers (a tombstone).
    Delete {
        /// The key.
        key: Bytes,
        /// From an earlier read or write of this key.
        context: Context,
        /// W (and PW).
        consistency: Consistency,
    },
    /// Change the key by `update`, an operation the coordinating primary
    /// applies to its own copy of the key (read-modify-write in one step,
    /// with no other write of that node in between) and writes back with
    /// that copy's context, like a put. What `update` means is up to the
    /// node's updater: the RESP gateway uses it for `SET`, `INCR` and
    /// `EXPIRE`. The answer is in [`Response::answer`].
    Update {
        /// The key.
        key: Bytes,
        /// The encoded operation.
        update: Bytes,
        /// W (and PW).
        consistency: Consistency,
    },
}

impl Request {
    /// The key the request is about.
    pub fn key(&self) -> &Bytes {
        match self {
            Request::Get { key, .. }
            | Request::Put { key, .. }
            | Request::Delete { key, .. }
            | Request::Update { key, .. } => key,
        }
    }

    /// The requested consistency.
    pub fn consistency(&self) -> Consistency {
        match self {
            Request::Get { consistency, .. }
            | Request::Put { consistency, .. }
            | Request::Delete { consistency, .. }
            | Request::Update { consistency, .. } => *consistency,
        }
    }

    /// Whether the request writes.
    pub fn is_write(&self) -> bool {
        !matches!(self, Request::Get { .. })
    }
}

/// A replica that answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAnswer {
    /// The node that answered.
    pub node: u64,
    /// Set when the node is a fallback holding the data for this owner.
    pub fallback_for: Option<u64>,
}

/// Which replicas answered before the coordinator replied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The replicas that answered (read) or acknowledged durably (write).
    pub answered: Vec<ReplicaAnswer>,
}

impl Receipt {
    /// Whether any answer came from a fallback rather than an owner.
    pub fn used_fallback(&self) -> bool {
        self.answered.iter().any(|a| a.fallback_for.is_some())
    }
}

/// The result of a successful request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Live siblings (read: all that answered replicas hold; write: what the
    /// coordinator holds after the write). Empty: the key is absent.
    pub values: Vec<Bytes>,
    /// Context covering `values`; pass it to the next write of this key.
    pub context: Context,
    /// Who answered.
    pub receipt: Receipt,
    /// What an [`Request::Update`] answered (its updater decides); `None`
    /// for every other request.
    #[serde(default)]
    pub answer: Option<Bytes>,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RequestError {
    /// The request itself is invalid (empty or oversized key, oversized
    /// value, malformed context); retrying will not help.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The consistency level cannot be met with this key's replicas.
    #[error(transparent)]
    Consistency(#[from] ConsistencyError),
    /// Not enough replicas answered in time. A write may still have been
    /// applied by the replicas that did answer, and more may follow.
    #[error(
        "quorum not reached: {succeeded} of {required} required answers \
         ({primaries_succeeded} of {primaries_required} from primaries)"
    )]
    QuorumNotReached {
        /// Answers required.
        required: usize,
        /// Answers received.
        succeeded: usize,
        /// Of the required, how many had to come from primaries.
        primaries_required: usize,
        /// Answers received from primaries.
        primaries_succeeded: usize,
    },
    /// No node could coordinate the request.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The coordinator's storage failed (disk full, I/O error).
    #[error("storage error on the coordinator: {0}")]
    Storage(String),
    /// The coordinator sheds load: it holds as many requests as it may
    /// ([`Options::max_requests_in_flight`] on the node). It did not start
    /// this one, so nothing of it was applied and it is safe to retry, with
    /// backoff or through another node.
    ///
    /// [`Options::max_requests_in_flight`]: https://docs.rs/quorra-node
    #[error("overloaded: {0}")]
    Overloaded(String),
}

/// What a request ends with.
pub type Outcome = Result<Response, RequestError>;
