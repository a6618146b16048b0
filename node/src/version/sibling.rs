//! What a sibling holds: a value, or a tombstone.
//!
//! A delete is a write like any other: a [`Sibling::Tombstone`] written with
//! the context of a read, so it replaces exactly what the deleter saw and
//! stays concurrent with anything it did not see (a concurrent put survives
//! a delete). A key whose siblings are all tombstones reads as absent; its
//! state is kept until every replica holds it, then purged (the node core
//! decides when), so an old replica cannot bring the value back.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::dvvset::DvvSet;

/// One sibling of a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sibling {
    /// A value written by a put.
    Value(Bytes),
    /// A delete.
    Tombstone,
}

impl Sibling {
    /// The value, unless this is a tombstone.
    pub fn value(&self) -> Option<&Bytes> {
        match self {
            Sibling::Value(v) => Some(v),
            Sibling::Tombstone => None,
        }
    }
}

/// The stored state of one key.
pub type Object = DvvSet<Sibling>;

impl Object {
    /// The live values (tombstones left out).
    pub fn live_values(&self) -> impl Iterator<Item = &Bytes> {
        self.values().filter_map(Sibling::value)
    }

    /// Whether the key reads as absent: nothing written, or only tombstones.
    pub fn is_absent(&self) -> bool {
        self.values().all(|s| matches!(s, Sibling::Tombstone))
    }

    /// Whether the key holds only tombstones (and so may be purged once
    /// every replica holds this state).
    pub fn is_tombstone(&self) -> bool {
        !self.is_empty() && self.is_absent()
    }
}
