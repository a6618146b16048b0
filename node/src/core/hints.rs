//! Hinted handoff: writes held for an unreachable owner, and their delivery.
//!
//! When a coordinator believes a primary down, the next live node of the
//! preference list takes the write as a fallback and stores it as a hint
//! for that primary, apart from its own data. Hints for one key merge into
//! one, so a fallback holds at most one hint per (owner, key).
//!
//! Every `handoff_interval`, a node offers the hints it holds to each owner
//! it believes up, a batch of `handoff_batch` (at most [`HANDOFF_MAX_BYTES`])
//! at a time, walking its hints for that owner with a cursor so that one
//! hint the owner cannot take never blocks the others. The owner merges
//! them into its data and acknowledges, item by item, once they are
//! durable. Only then does the fallback delete each hint, and only if it has
//! not changed since it was sent (a newer write may have merged into it
//! meanwhile; it is offered again). A lost or duplicated handoff is
//! harmless: merges are idempotent, and a hint stays until its owner has
//! acknowledged exactly that state.
//!
//! Hints are bounded by `max_hints` and `max_hint_bytes`. A fallback that is
//! full refuses the write for the unreachable owner; the coordinator counts
//! that replica as failed, the write still succeeds if it reached its
//! quorum elsewhere, and the refusal is counted on both sides
//! (`hints_overflowed`, `hints_refused_by_fallback`), never silently lost.
//! The owner then gets the data from read repair and anti-entropy.
//!
//! A hint whose owner is not a primary of its partition in the newest
//! layout (the owner left or was removed, or is losing the partition in a
//! move and may already have been pulled from) is an *orphan*: it is
//! handed to the first primary of the newest layout believed up instead
//! (or merged here, if this node is one), and sent as a repair to the
//! other primaries of the newest layout believed up. So no hint waits
//! forever for an owner that will not come back, none is delivered to a
//! copy about to be cleaned up, and a hint does not lose its copy by
//! landing on a node that already holds the write: when the coordinator
//! of a write is a node gaining its partition, it is that first primary
//! (seed 757 of the simulator lost a write acknowledged twice at W = 1
//! that way, with one lost disk).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use quorra_ring::{NodeId, PartitionId};
use tracing::debug;

use super::coordinator::Op;
use super::messages::{KeyState, PeerMessage, ReplicaError, RequestId};
use super::node::{Node, Pending};
use super::replica::storage_error;
use crate::storage::store::{Change, encode_object};
use crate::storage::{Lsn, StorageError, Store};
use crate::version::Object;

/// Most bytes of hint states in one handoff message (8 MiB), well under the
/// frame limit of the transport.
pub const HANDOFF_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Hints this node holds, by owner, which owners have a handoff in flight,
/// and where the next handoff to each owner starts.
#[derive(Debug, Default)]
pub(crate) struct HintBook {
    /// Per owner: (count, bytes).
    per_owner: BTreeMap<NodeId, (u64, u64)>,
    count: u64,
    bytes: u64,
    in_flight: BTreeSet<NodeId>,
    cursor: BTreeMap<NodeId, (PartitionId, Vec<u8>)>,
    /// Per owner: since when this node has held hints for it without a
    /// break, as seen at each handoff round (so to within one
    /// `handoff_interval`).
    held_since: BTreeMap<NodeId, Duration>,
}

impl HintBook {
    /// Counts the hints in `store`.
    pub(crate) fn load(store: &Store) -> Result<Self, StorageError> {
        let mut book = HintBook::default();
        for owner in store.hint_targets()? {
            let mut after: Option<(PartitionId, Vec<u8>)> = None;
            loop {
                let page = store.scan_hints(
                    owner,
                    after.as_ref().map(|(p, k)| (*p, k.as_slice())),
                    512,
                )?;
                let Some(last) = page.last() else { break };
                after = Some((last.partition, last.key.clone()));
                for hint in &page {
                    book.add(owner, encode_object(&hint.object)?.len() as u64);
                }
            }
        }
        Ok(book)
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn has_hints_for(&self, owner: NodeId) -> bool {
        self.per_owner.get(&owner).is_some_and(|e| e.0 > 0)
    }

    fn add(&mut self, owner: NodeId, bytes: u64) {
        let e = self.per_owner.entry(owner).or_default();
        e.0 += 1;
        e.1 += bytes;
        self.count += 1;
        self.bytes += bytes;
    }

    fn resize(&mut self, owner: NodeId, old: u64, new: u64) {
        let e = self.per_owner.entry(owner).or_default();
        e.1 = e.1 + new - old.min(e.1);
        self.bytes = self.bytes + new - old.min(self.bytes);
    }

    fn remove(&mut self, owner: NodeId, bytes: u64) {
        if let Some(e) = self.per_owner.get_mut(&owner) {
            e.0 = e.0.saturating_sub(1);
            e.1 = e.1.saturating_sub(bytes);
            if e.0 == 0 {
                self.per_owner.remove(&owner);
            }
        }
        self.count = self.count.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

impl Node {
    /// Merges `incoming` into the hint held for `owner`, within the bounds.
    pub(super) fn merge_hint(
        &mut self,
        owner: NodeId,
        partition: PartitionId,
        key: &[u8],
        incoming: &Object,
    ) -> Result<Lsn, ReplicaError> {
        if !self.options.hinted_handoff {
            return Err(ReplicaError::NotReplica(partition));
        }
        let existing = self
            .store
            .get_hint(owner, partition, key)
            .map_err(storage_error)?;
        let old_len = match &existing {
            Some(h) => encode_object(h).map_err(storage_error)?.len() as u64,
            None => 0,
        };
        let mut state = existing.clone().unwrap_or_default();
        state.merge(incoming);
        let new_len = encode_object(&state).map_err(storage_error)?.len() as u64;
        let over_count = existing.is_none() && self.hints.count() >= self.options.max_hints;
        let over_bytes = self.hints.bytes() - old_len.min(self.hints.bytes()) + new_len
            > self.options.max_hint_bytes;
        if over_count || over_bytes {
            self.stats.hints_overflowed += 1;
            return Err(ReplicaError::HintsFull);
        }
        let lsn = self
            .store
            .apply(&[Change::PutHint {
                target: owner,
                partition,
                key,
                object: &state,
            }])
            .map_err(storage_error)?;
        if existing.is_some() {
            self.hints.resize(owner, old_len, new_len);
        } else {
            self.hints.add(owner, new_len);
            self.stats.hints_stored += 1;
        }
        Ok(lsn)
    }

    /// Offers a batch of hints for every owner that has none in flight: to
    /// the owner if it is believed up and a primary of the hints'
    /// partitions in the newest layout, else (an orphan) to a primary of
    /// the newest layout (where the partition is going).
    pub(super) fn offer_hints(&mut self, now: Duration) {
        let book = &mut self.hints;
        book.held_since
            .retain(|o, _| book.per_owner.contains_key(o));
        for &owner in book.per_owner.keys() {
            book.held_since.entry(owner).or_insert(now);
        }
        if !self.options.hinted_handoff {
            return;
        }
        let owners: Vec<NodeId> = self
            .hints
            .per_owner
            .keys()
            .copied()
            .filter(|o| !self.hints.in_flight.contains(o))
            .collect();
        for owner in owners {
            let items = match self.next_hint_batch(owner) {
                Ok(items) => items,
                Err(e) => {
                    self.stats.storage_errors += 1;
                    debug!(error = %e, "reading hints failed");
                    continue;
                }
            };
            // Only to an owner in the newest layout: one that is losing the
            // partition may already have been pulled from, and would drop
            // the hint with the partition at cleanup.
            let newest = self.placement.newest();
            let (direct, orphans): (Vec<KeyState>, Vec<KeyState>) = items
                .into_iter()
                .partition(|i| newest.is_primary(i.partition, owner));
            if !direct.is_empty() && self.peers.is_up(owner) {
                self.send_handoff(now, owner, owner, direct);
            } else if !orphans.is_empty() {
                self.reroute_orphans(now, owner, orphans);
            }
        }
    }

    fn send_handoff(&mut self, now: Duration, target: NodeId, owner: NodeId, items: Vec<KeyState>) {
        let id = self.next_request_id();
        self.send(
            target,
            PeerMessage::Handoff {
                id,
                items: items.clone(),
            },
        );
        self.hints.in_flight.insert(owner);
        self.track(
            now,
            id,
            Op::Handoff {
                target,
                owner,
                items,
            },
        );
    }

    /// Hints whose owner no longer replicates their partition (it left or
    /// was removed, or the ring moved) go to a current primary instead: the
    /// first one believed up, this node included (it merges them into its
    /// own data); the others believed up get them as repairs (not waited
    /// for: anti-entropy brings them what a lost repair missed).
    fn reroute_orphans(&mut self, now: Duration, owner: NodeId, orphans: Vec<KeyState>) {
        let target_of = |node: &Node, p: PartitionId| {
            node.placement
                .newest()
                .primaries(p)
                .find(|&n| n == node.id || node.peers.is_up(n))
        };
        let Some(target) = target_of(self, orphans[0].partition) else {
            return;
        };
        let batch: Vec<KeyState> = orphans
            .into_iter()
            .filter(|i| target_of(self, i.partition) == Some(target))
            .collect();
        self.stats.hints_rerouted += batch.len() as u64;
        self.copy_orphans(now, target, &batch);
        if target != self.id {
            return self.send_handoff(now, target, owner, batch);
        }
        for item in batch {
            match self.merge_owned(now, item.partition, &item.key, &item.object) {
                // Deleted after the merge: a crash keeps the merge if it
                // keeps the deletion, and a hint merged twice is harmless.
                Ok(_) => self.delete_delivered_hint(owner, &item),
                Err(e) => {
                    self.stats.storage_errors += 1;
                    debug!(error = %e, "an orphan hint could not be merged here");
                }
            }
        }
    }

    /// Sends `orphans`, handed to `target`, to the other primaries of the
    /// newest layout believed up as repairs, and merges them here if this
    /// node is one.
    fn copy_orphans(&mut self, now: Duration, target: NodeId, orphans: &[KeyState]) {
        for item in orphans {
            let others: Vec<NodeId> = self
                .placement
                .newest()
                .primaries(item.partition)
                .filter(|&n| n != target && (n == self.id || self.peers.is_up(n)))
                .collect();
            for n in others {
                if n == self.id {
                    if let Err(e) = self.merge_owned(now, item.partition, &item.key, &item.object) {
                        self.stats.storage_errors += 1;
                        debug!(error = %e, "an orphan hint could not be copied here");
                    }
                    continue;
                }
                self.send(
                    n,
                    PeerMessage::Repair {
                        partition: item.partition,
                        key: item.key.clone(),
                        object: item.object.clone(),
                    },
                );
            }
        }
    }

    /// The next batch of hints for `owner`, from its cursor, wrapping around.
    fn next_hint_batch(&mut self, owner: NodeId) -> Result<Vec<KeyState>, StorageError> {
        let limit = self.options.handoff_batch.max(1);
        let cursor = self.hints.cursor.remove(&owner);
        let mut page = self.store.scan_hints(
            owner,
            cursor.as_ref().map(|(p, k)| (*p, k.as_slice())),
            limit,
        )?;
        if page.is_empty() && cursor.is_some() {
            page = self.store.scan_hints(owner, None, limit)?;
        }
        let mut items = Vec::with_capacity(page.len());
        let mut bytes = 0;
        let full = page.len() == limit;
        for hint in page {
            bytes += encode_object(&hint.object)?.len();
            if bytes > HANDOFF_MAX_BYTES && !items.is_empty() {
                break;
            }
            items.push(KeyState {
                partition: hint.partition,
                key: Bytes::from(hint.key),
                object: hint.object,
            });
        }
        if let Some(last) = items.last()
            && (full || bytes > HANDOFF_MAX_BYTES)
        {
            self.hints
                .cursor
                .insert(owner, (last.partition, last.key.to_vec()));
        }
        Ok(items)
    }

    /// An owner receives hints: merge each, acknowledge once durable.
    pub(super) fn on_handoff(
        &mut self,
        now: Duration,
        from: NodeId,
        id: RequestId,
        items: Vec<KeyState>,
    ) {
        let mut last = 0;
        let mut stored = Vec::with_capacity(items.len());
        for item in &items {
            let ok = self.is_primary(item.partition)
                && match self.merge_owned(now, item.partition, &item.key, &item.object) {
                    Ok(lsn) => {
                        last = last.max(lsn);
                        true
                    }
                    Err(e) => {
                        self.stats.storage_errors += 1;
                        debug!(error = %e, "a handed-off hint could not be stored");
                        false
                    }
                };
            stored.push(ok);
        }
        self.after_durable(Pending::Reply {
            lsn: last,
            to: from,
            message: PeerMessage::HandoffReply { id, stored },
        });
    }

    /// The owner (or the primary an orphan went to) acknowledged: delete
    /// each stored hint that has not changed since.
    pub(super) fn on_handoff_reply(
        &mut self,
        now: Duration,
        from: NodeId,
        id: RequestId,
        stored: Vec<bool>,
    ) {
        let ours = |op: &Op| matches!(op, Op::Handoff { target, .. } if *target == from);
        let Some(Op::Handoff { owner, items, .. }) = self.take_op_if(id, ours) else {
            return;
        };
        self.hints.in_flight.remove(&owner);
        for (item, ok) in items
            .iter()
            .zip(stored.into_iter().chain(std::iter::repeat(false)))
        {
            if ok {
                self.delete_delivered_hint(owner, item);
            }
        }
        if self.hints.has_hints_for(owner) {
            // More to hand over: do not wait a whole interval.
            self.next_handoff = self.next_handoff.min(now);
        }
    }

    /// Deletes the hint for `owner` at the item's key if it still holds the
    /// state that was delivered (a newer write may have merged into it).
    fn delete_delivered_hint(&mut self, owner: NodeId, item: &KeyState) {
        match self.store.get_hint(owner, item.partition, &item.key) {
            Ok(Some(current)) if current == item.object => {
                let bytes = encode_object(&current).map_or(0, |b| b.len() as u64);
                let deleted = self.store.apply(&[Change::DeleteHint {
                    target: owner,
                    partition: item.partition,
                    key: &item.key,
                }]);
                match deleted {
                    Ok(_) => {
                        self.hints.remove(owner, bytes);
                        self.stats.hints_delivered += 1;
                    }
                    Err(e) => {
                        self.stats.storage_errors += 1;
                        debug!(error = %e, "deleting a delivered hint failed");
                    }
                }
            }
            Ok(_) => {} // changed or gone: offered again if still there
            Err(e) => {
                self.stats.storage_errors += 1;
                debug!(error = %e, "reading a delivered hint failed");
            }
        }
    }

    /// A handoff got no answer in time.
    pub(super) fn handoff_expired(&mut self, target: NodeId, owner: NodeId) {
        self.hints.in_flight.remove(&owner);
        self.peer_timed_out(target);
    }

    /// Every node this node holds hints for, members or not.
    pub(super) fn hint_owners(&self) -> Vec<NodeId> {
        self.hints.per_owner.keys().copied().collect()
    }

    /// The hints held, per owner in id order: (owner, count, bytes, how
    /// long at `now` this node has held hints for it without a break, to
    /// within one handoff interval; an upper bound on the oldest hint's
    /// age, zero until the first handoff round saw them).
    pub fn hints_by_owner(&self, now: Duration) -> Vec<(NodeId, u64, u64, Duration)> {
        self.hints
            .per_owner
            .iter()
            .map(|(&owner, &(count, bytes))| {
                let since = self.hints.held_since.get(&owner).copied().unwrap_or(now);
                (owner, count, bytes, now.saturating_sub(since))
            })
            .collect()
    }
}
