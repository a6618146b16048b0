//! What a node remembers about itself and the cluster across restarts.
//!
//! Stored in the node's own store (metadata keyspace): its id, the
//! cluster's name and fixed settings (Q, N), its zone and tokens (chosen
//! once, kept for life), the version of its gossip information, and the
//! member entries it last knew, so a restarted node has a ring at once and
//! finds its peers without seeds. The identity is synced on change so that
//! it survives even a power loss on every engine ([`Store::sync_all`]:
//! sled's flush alone would not); the member table is flushed with it or
//! by the next flush.

use quorra_gossip::{Entry, Info, Layout, Status};
use quorra_ring::{NodeId, RingConfig, Token};
use serde::{Deserialize, Serialize};

use crate::storage::{StorageError, Store};

const IDENTITY_KEY: &str = "identity";
const MEMBERS_KEY: &str = "members";

/// A node's persistent identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The node's id.
    pub node: NodeId,
    /// The cluster's name.
    pub cluster: String,
    /// Q and N.
    pub settings: RingConfig,
    /// The node's zone.
    pub zone: String,
    /// The node's tokens (empty until it joined).
    pub tokens: Vec<Token>,
    /// Version of this node's gossip information.
    pub version: u64,
    /// The node left the cluster (it must not serve again as a member).
    pub left: bool,
    /// Its part in ownership changes (its stamps and trackers, see
    /// [`super::layouts`]), gossiped in its entry.
    #[serde(default)]
    pub layout: Layout,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        what: what.into(),
        reason: e.to_string(),
    }
}

/// The stored identity, if any.
pub fn load(store: &Store) -> Result<Option<Identity>, StorageError> {
    store
        .get_meta(IDENTITY_KEY)?
        .map(|b| rmp_serde::from_slice(&b).map_err(|e| corrupt(IDENTITY_KEY, e)))
        .transpose()
}

/// Stores the identity so that even a power loss keeps it, whatever the
/// engine ([`Store::sync_all`]): a node that came back without it would
/// join again under a new id and new tokens, or forget that it left.
pub fn save(store: &Store, identity: &Identity) -> Result<(), StorageError> {
    let bytes = rmp_serde::to_vec(identity).map_err(|e| corrupt(IDENTITY_KEY, e))?;
    store.put_meta(IDENTITY_KEY, &bytes)?;
    store.sync_all().map(|_| ())
}

/// The stored member entries.
pub fn load_members(store: &Store) -> Result<Vec<Entry>, StorageError> {
    Ok(store
        .get_meta(MEMBERS_KEY)?
        .map(|b| rmp_serde::from_slice(&b).map_err(|e| corrupt(MEMBERS_KEY, e)))
        .transpose()?
        .unwrap_or_default())
}

/// Stores the member entries (made durable by the next flush).
pub fn save_members(store: &Store, members: &[Entry]) -> Result<(), StorageError> {
    let bytes = rmp_serde::to_vec(members).map_err(|e| corrupt(MEMBERS_KEY, e))?;
    store.put_meta(MEMBERS_KEY, &bytes).map(|_| ())
}

/// The gossip entry of a node starting with `identity` at `address`.
pub fn own_entry(identity: &Identity, address: &str, generation: u32) -> Entry {
    Entry {
        id: identity.node,
        generation: u64::from(generation),
        heartbeat: 0,
        version: identity.version,
        info: Info {
            // A node that stamped its departure and restarted before it
            // left is still leaving: its data still has to move.
            status: if identity.left {
                Status::Left
            } else if identity.layout.departed.is_some() {
                Status::Leaving
            } else if identity.tokens.is_empty() {
                Status::Joining
            } else {
                Status::Normal
            },
            address: address.to_string(),
            zone: identity.zone.clone(),
            tokens: identity.tokens.clone(),
            storage_failing: false,
            layout: identity.layout,
        },
    }
}
