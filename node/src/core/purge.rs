//! Tombstone purge: deleting a deleted key for good, without resurrection.
//!
//! A delete leaves a tombstone: the key's state with only tombstone
//! siblings. It must stay until no copy of anything older can reach a
//! replica again, or that copy would bring the deleted value back. With
//! sloppy quorums, older copies can sit on *any* node, as hints. So:
//!
//! 1. Each primary marks keys whose state is a tombstone (a `t` record in
//!    the same atomic batch as the state), remembering since when and at
//!    which LSN.
//! 2. Every `purge_interval`, a primary picks tombstones that are durable
//!    and older than `tombstone_grace` (longer than any message can be in
//!    flight) and asks **every member** in one `PurgeCheck`: does it agree
//!    (a primary holding exactly this tombstone durably, or nothing at all),
//!    and does it hold any hint for the key (everyone)? The first primary of
//!    the partition does this after one grace period, the k-th after k+1,
//!    so the others only act when the first cannot (it holds nothing, or
//!    is down).
//! 3. Only if every member answered, every other primary agrees and nobody
//!    holds a hint, it deletes its copy and tells the other primaries to
//!    delete theirs (`Purge`), each comparing the digest of its state first:
//!    a key written meanwhile is not purged.
//!
//! A primary that holds nothing agrees because it cannot bring anything
//! back; read repair, for its part, does not send a tombstone to a primary
//! that holds nothing (see [`super::coordinator`]), so a purge racing a read
//! does not leave a lone tombstone behind.
//!
//! Any member unreachable, any doubt: nothing is purged, and the check is
//! tried again later. This is garage's "delete once every replica
//! acknowledged", extended to the fallbacks a sloppy quorum may have used;
//! it costs one message to every member per batch of tombstones.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use quorra_ring::{NodeId, PartitionId};
use tracing::debug;

use super::coordinator::Op;
use super::messages::{PeerMessage, PurgeItem, PurgeVote, RequestId};
use super::node::Node;
use crate::storage::store::{Change, encode_object};
use crate::storage::{Lsn, StorageError, Store};
use crate::version::Object;

/// A key known to be a tombstone on this node.
#[derive(Clone, Copy, Debug)]
struct Mark {
    since: Duration,
    lsn: Lsn,
}

/// Tombstone marks of owned keys, and those in a purge check now.
#[derive(Debug, Default)]
pub(crate) struct Tombstones {
    marks: BTreeMap<(PartitionId, Bytes), Mark>,
    checking: BTreeSet<(PartitionId, Bytes)>,
}

/// A purge check in flight.
#[derive(Debug)]
pub(crate) struct PurgeRound {
    items: Vec<PurgeItem>,
    waiting: BTreeSet<NodeId>,
    votes: BTreeMap<NodeId, Vec<PurgeVote>>,
}

impl Tombstones {
    /// Loads the marks from storage; grace restarts at `now` (a restart
    /// forgets how old they were, which only delays purging).
    pub(crate) fn load(store: &Store, now: Duration) -> Result<Self, StorageError> {
        let mut t = Tombstones::default();
        let mut after: Option<(PartitionId, Vec<u8>)> = None;
        loop {
            let page =
                store.scan_tomb_marks(after.as_ref().map(|(p, k)| (*p, k.as_slice())), 1024)?;
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            for (p, key) in page {
                t.marks
                    .insert((p, Bytes::from(key)), Mark { since: now, lsn: 0 });
            }
        }
        Ok(t)
    }

    pub(crate) fn contains(&self, partition: PartitionId, key: &[u8]) -> bool {
        self.marks
            .contains_key(&(partition, Bytes::copy_from_slice(key)))
    }

    /// Records that the owned key is (or is no longer) a tombstone.
    pub(crate) fn note(
        &mut self,
        partition: PartitionId,
        key: &[u8],
        tombstone: bool,
        now: Duration,
        lsn: Lsn,
    ) {
        let k = (partition, Bytes::copy_from_slice(key));
        if tombstone {
            self.marks.insert(k, Mark { since: now, lsn });
        } else {
            self.marks.remove(&k);
        }
    }

    /// Number of tombstones held.
    pub(crate) fn len(&self) -> usize {
        self.marks.len()
    }
}

fn digest(object: &Object) -> Result<[u8; 32], StorageError> {
    Ok(*blake3::hash(&encode_object(object)?).as_bytes())
}

impl Node {
    /// Number of tombstones this node holds as a primary.
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// Digest of the owned state of a key, if it is a tombstone.
    fn tombstone_digest(&self, partition: PartitionId, key: &[u8]) -> Option<[u8; 32]> {
        match self.store.get(partition, key) {
            Ok(Some(state)) if state.is_tombstone() => digest(&state).ok(),
            _ => None,
        }
    }

    fn holds_any_hint(&self, partition: PartitionId, key: &[u8]) -> bool {
        self.hints.count() > 0
            && self.members().into_iter().any(|owner| {
                // A storage error counts as "maybe": never purge on doubt.
                !matches!(self.store.get_hint(owner, partition, key), Ok(None))
            })
    }

    /// Starts a purge check for old enough tombstones this node leads.
    pub(super) fn sweep_tombstones(&mut self, now: Duration) {
        let durable = self.store.durable_lsn();
        let grace = self.options.tombstone_grace;
        let candidates: Vec<(PartitionId, Bytes)> = self
            .tombstones
            .marks
            .iter()
            .filter(|(k, m)| {
                m.since + grace <= now && m.lsn <= durable && !self.tombstones.checking.contains(*k)
            })
            .filter(|((p, _), m)| {
                // The k-th primary steps in after k+1 grace periods.
                let rank = self.ring.primaries(*p).position(|n| n == self.id);
                rank.is_some_and(|k| m.since + grace * (k as u32 + 1) <= now)
            })
            .map(|(k, _)| k.clone())
            .take(self.options.purge_batch)
            .collect();
        let mut items = Vec::new();
        for (partition, key) in candidates {
            match self.tombstone_digest(partition, &key) {
                Some(digest) if !self.holds_any_hint(partition, &key) => items.push(PurgeItem {
                    partition,
                    key,
                    digest,
                }),
                Some(_) => {}
                None => {
                    // Not a tombstone any more: the mark is stale.
                    self.tombstones.marks.remove(&(partition, key));
                }
            }
        }
        if items.is_empty() {
            return;
        }
        for item in &items {
            self.tombstones
                .checking
                .insert((item.partition, item.key.clone()));
        }
        let others: BTreeSet<NodeId> = self.peers.all().collect();
        let mut round = PurgeRound {
            items,
            waiting: others.clone(),
            votes: BTreeMap::new(),
        };
        if others.is_empty() {
            return self.conclude_purge(&mut round);
        }
        let id = self.next_request_id();
        for node in others {
            self.send(
                node,
                PeerMessage::PurgeCheck {
                    id,
                    items: round.items.clone(),
                },
            );
        }
        self.track(now, id, Op::PurgeCheck(round));
    }

    pub(super) fn on_purge_check(&mut self, from: NodeId, id: RequestId, items: Vec<PurgeItem>) {
        let durable = self.store.durable_lsn();
        let votes = items
            .iter()
            .map(|item| {
                let durable_mark = self
                    .tombstones
                    .marks
                    .get(&(item.partition, item.key.clone()))
                    .is_some_and(|m| m.lsn <= durable);
                let agrees = self.is_primary(item.partition)
                    && match self.store.get(item.partition, &item.key) {
                        Ok(None) => true,
                        Ok(Some(_)) => {
                            durable_mark
                                && self.tombstone_digest(item.partition, &item.key)
                                    == Some(item.digest)
                        }
                        Err(_) => false,
                    };
                PurgeVote {
                    holds_tombstone: agrees,
                    holds_hint: self.holds_any_hint(item.partition, &item.key),
                }
            })
            .collect();
        self.send(from, PeerMessage::PurgeCheckReply { id, votes });
    }

    pub(super) fn on_purge_check_reply(
        &mut self,
        _now: Duration,
        from: NodeId,
        id: RequestId,
        votes: Vec<PurgeVote>,
    ) {
        let Some(Op::PurgeCheck(mut round)) = self.take_op(id) else {
            return;
        };
        if round.waiting.remove(&from) && votes.len() == round.items.len() {
            round.votes.insert(from, votes);
        }
        if round.waiting.is_empty() {
            self.conclude_purge(&mut round);
        } else {
            self.put_op(id, Op::PurgeCheck(round));
        }
    }

    /// Every member voted: purge what everyone agrees on.
    fn conclude_purge(&mut self, round: &mut PurgeRound) {
        let mut agreed = Vec::new();
        for (i, item) in round.items.iter().enumerate() {
            self.tombstones
                .checking
                .remove(&(item.partition, item.key.clone()));
            let primaries: Vec<NodeId> = self.ring.primaries(item.partition).collect();
            let all_hold = primaries
                .iter()
                .filter(|&&n| n != self.id)
                .all(|n| round.votes.get(n).is_some_and(|v| v[i].holds_tombstone));
            let no_hints = round.votes.values().all(|v| !v[i].holds_hint)
                && round.votes.len() == self.peers.all().count();
            if all_hold && no_hints {
                agreed.push(item.clone());
            }
        }
        // Tell the others only about what this node could purge itself: a
        // state that changed meanwhile means a new write is on its way.
        agreed.retain(|item| self.purge_if_unchanged(item));
        if agreed.is_empty() {
            return;
        }
        let others: BTreeSet<NodeId> = agreed
            .iter()
            .flat_map(|item| self.ring.primaries(item.partition).collect::<Vec<_>>())
            .filter(|&n| n != self.id)
            .collect();
        for node in others {
            let items: Vec<PurgeItem> = agreed
                .iter()
                .filter(|item| self.ring.is_primary(item.partition, node))
                .cloned()
                .collect();
            self.send(node, PeerMessage::Purge { items });
        }
    }

    pub(super) fn purge_round_expired(&mut self, round: PurgeRound) {
        for item in round.items {
            self.tombstones.checking.remove(&(item.partition, item.key));
        }
    }

    pub(super) fn on_purge(&mut self, items: Vec<PurgeItem>) {
        for item in &items {
            if self.is_primary(item.partition) {
                self.purge_if_unchanged(item);
            }
        }
    }

    /// Deletes the owned tombstone if its state still has the item's
    /// digest. Returns whether it did.
    fn purge_if_unchanged(&mut self, item: &PurgeItem) -> bool {
        if self.tombstone_digest(item.partition, &item.key) != Some(item.digest) {
            return false;
        }
        let result = self.store.apply(&[
            Change::Delete {
                partition: item.partition,
                key: &item.key,
            },
            Change::DeleteTombMark {
                partition: item.partition,
                key: &item.key,
            },
        ]);
        match result {
            Ok(_) => {
                self.tombstones
                    .marks
                    .remove(&(item.partition, item.key.clone()));
                self.stats.tombstones_purged += 1;
                true
            }
            Err(e) => {
                self.stats.storage_errors += 1;
                debug!(error = %e, "purging a tombstone failed");
                false
            }
        }
    }
}
