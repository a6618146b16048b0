//! What a node remembers about itself and the cluster across restarts.
//!
//! Stored in the node's own store (metadata keyspace), flushed on change:
//! its id, the cluster's name and fixed settings (Q, N), its zone and
//! tokens (chosen once, kept for life), and the last member table it knew,
//! so a restarted node rejoins with the same tokens and finds its peers
//! without seeds.

use quorra_ring::{NodeId, RingConfig, Token};
use serde::{Deserialize, Serialize};

use super::membership::MemberRecord;
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
    /// Q and N, once the node created or joined a cluster.
    pub settings: Option<RingConfig>,
    /// The node's zone.
    pub zone: String,
    /// The node's tokens (empty until it joined).
    pub tokens: Vec<Token>,
    /// Version of this node's member record.
    pub version: u64,
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

/// Stores the identity durably.
pub fn save(store: &Store, identity: &Identity) -> Result<(), StorageError> {
    let bytes = rmp_serde::to_vec(identity).map_err(|e| corrupt(IDENTITY_KEY, e))?;
    store.put_meta(IDENTITY_KEY, &bytes)?;
    store.flush().map(|_| ())
}

/// The stored member table.
pub fn load_members(store: &Store) -> Result<Vec<MemberRecord>, StorageError> {
    Ok(store
        .get_meta(MEMBERS_KEY)?
        .map(|b| rmp_serde::from_slice(&b).map_err(|e| corrupt(MEMBERS_KEY, e)))
        .transpose()?
        .unwrap_or_default())
}

/// Stores the member table (made durable by the next flush).
pub fn save_members(store: &Store, records: &[MemberRecord]) -> Result<(), StorageError> {
    let bytes = rmp_serde::to_vec(records).map_err(|e| corrupt(MEMBERS_KEY, e))?;
    store.put_meta(MEMBERS_KEY, &bytes).map(|_| ())
}
