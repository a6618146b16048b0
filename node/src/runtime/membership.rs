//! Who is in the cluster, until gossip replaces this.
//!
//! Each node keeps a table of member records (id, address, zone, tokens,
//! and a version the member bumps whenever its own record changes) and
//! pushes the whole table to a few members every second; a record with a
//! higher version replaces the one held. It is a naive push-pull exchange
//! of full state: enough to form a cluster from seeds and to carry tokens,
//! with cost proportional to cluster size. The gossip issue replaces it
//! with digests and phi-accrual failure detection.
//!
//! A node joins by sending its record (without tokens) to its seeds; a seed
//! answers with its table and the cluster's fixed settings (Q, N). The
//! joiner then chooses tokens against the ring it sees, bumps its record
//! and pushes it to everyone. The ring every node uses is a pure function
//! of this table.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use quorra_ring::{Member, NodeId, Ring, RingConfig, Token};
use serde::{Deserialize, Serialize};

/// What the cluster knows of one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Node id.
    pub id: NodeId,
    /// Address peers and clients connect to.
    pub address: String,
    /// Zone.
    pub zone: String,
    /// Tokens (empty while joining).
    pub tokens: Vec<Token>,
    /// Bumped by the member whenever it changes its own record.
    pub version: u64,
}

/// The member table of one node.
#[derive(Clone, Debug)]
pub struct Membership {
    me: NodeId,
    records: BTreeMap<NodeId, MemberRecord>,
}

impl Membership {
    /// A table holding `records` (our own among them).
    pub fn new(me: NodeId, records: impl IntoIterator<Item = MemberRecord>) -> Self {
        Self {
            me,
            records: records.into_iter().map(|r| (r.id, r)).collect(),
        }
    }

    /// Merges records received from a peer. Returns whether anything
    /// changed. Records claiming this node's id are ignored: only this node
    /// changes its own record.
    pub fn merge(&mut self, incoming: &[MemberRecord]) -> bool {
        let mut changed = false;
        for r in incoming {
            if r.id == self.me || r.id.0 == 0 {
                continue;
            }
            let newer = self
                .records
                .get(&r.id)
                .is_none_or(|held| r.version > held.version);
            if newer {
                self.records.insert(r.id, r.clone());
                changed = true;
            }
        }
        changed
    }

    /// Replaces this node's own record.
    pub fn set_own(&mut self, record: MemberRecord) {
        self.records.insert(record.id, record);
    }

    /// This node's own record.
    pub fn own(&self) -> Option<&MemberRecord> {
        self.records.get(&self.me)
    }

    /// Every record, in id order.
    pub fn records(&self) -> Vec<MemberRecord> {
        self.records.values().cloned().collect()
    }

    /// One member's record.
    pub fn get(&self, id: NodeId) -> Option<&MemberRecord> {
        self.records.get(&id)
    }

    /// The address of a member.
    pub fn address(&self, id: NodeId) -> Option<SocketAddr> {
        self.records.get(&id)?.address.parse().ok()
    }

    /// Whether a member other than this node has tokens.
    pub fn others_have_tokens(&self) -> bool {
        self.records
            .values()
            .any(|r| r.id != self.me && !r.tokens.is_empty())
    }

    /// The ring of this table under `config`.
    pub fn ring(&self, config: RingConfig) -> Result<Ring, quorra_ring::RingError> {
        Ring::new(
            config,
            self.records
                .values()
                .map(|r| Member::new(r.id, r.zone.clone(), r.tokens.clone())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, version: u64, tokens: &[u64]) -> MemberRecord {
        MemberRecord {
            id: NodeId(id),
            address: format!("127.0.0.1:{}", 7400 + id),
            zone: "z".into(),
            tokens: tokens.iter().map(|&t| Token(t)).collect(),
            version,
        }
    }

    #[test]
    fn newer_versions_win_and_own_record_is_ours() {
        let mut m = Membership::new(NodeId(1), [record(1, 3, &[1])]);
        assert!(m.merge(&[record(2, 1, &[])]));
        assert!(!m.merge(&[record(2, 1, &[5])]), "same version: kept");
        assert!(m.merge(&[record(2, 2, &[5])]));
        assert!(
            !m.merge(&[record(1, 99, &[])]),
            "nobody else changes our record"
        );
        assert_eq!(m.own().unwrap().version, 3);
        assert!(m.others_have_tokens());
        let ring = m.ring(RingConfig::default()).unwrap();
        assert_eq!(ring.token_count(), 2);
        assert_eq!(
            m.address(NodeId(2)),
            Some("127.0.0.1:7402".parse().unwrap())
        );
    }
}
