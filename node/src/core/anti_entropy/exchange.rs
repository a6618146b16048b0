//! One anti-entropy exchange: the initiator's side and the replica's side.
//! The protocol is described in the [module above](super).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use quorra_merkle::{BRANCHES, FANOUT, differing};
use quorra_ring::{NodeId, PartitionId};
use rand::RngExt;
use tracing::{debug, trace};

use super::trees::scan;
use super::{AE_MAX_BYTES, AE_MAX_KEYS};
use crate::core::coordinator::Op;
use crate::core::messages::{AeAnswer, AeStep, KeyObject, PeerMessage, ReplicaError, RequestId};
use crate::core::node::Node;
use crate::core::pacing;
use crate::storage::StorageError;
use crate::storage::store::encode_object;
use crate::version::Object;

/// Segments whose keys one `Keys` step considers at most.
const SEGMENTS_PER_STEP: usize = 256;

/// What the initiator asked last, to read the answer.
#[derive(Debug)]
enum Asked {
    Root,
    Branches(Vec<u32>),
    /// The segments whose keys were listed (none for a push).
    Keys(Vec<u32>),
}

/// The initiator's state of one exchange.
#[derive(Debug)]
pub(crate) struct Exchange {
    peer: NodeId,
    partition: PartitionId,
    /// A pull of a gained partition ([`crate::core::transfer`]), not a
    /// repair.
    pub(crate) stream: bool,
    /// A segment could not be compared (it holds more than a message):
    /// a pull that skipped one is not complete.
    skipped: bool,
    /// Differing segments not yet compared key by key, in order.
    segments: VecDeque<u32>,
    asked: Asked,
}

fn object_size(key: &[u8], object: &Object) -> usize {
    key.len() + encode_object(object).map_or(0, |b| b.len())
}

fn objects_size(objects: &[KeyObject]) -> usize {
    objects.iter().map(|(k, o)| object_size(k, o)).sum()
}

/// Bytes of keys, hashes and states in a step (framing not counted).
fn step_size(step: &AeStep) -> usize {
    match step {
        AeStep::Root(_) => 8,
        AeStep::Branches(b) => 4 * b.len(),
        AeStep::Keys { segments, keys } => {
            4 * segments.len() + keys.iter().map(|(k, _)| k.len() + 8).sum::<usize>()
        }
        AeStep::Push(objects) => objects_size(objects),
    }
}

fn answer_size(answer: &AeAnswer) -> usize {
    match answer {
        AeAnswer::InSync => 1,
        AeAnswer::Branches(b) => 8 * b.len(),
        AeAnswer::Sized { branches, .. } => 8 * branches.len() + 8,
        AeAnswer::Segments(runs) => runs.iter().map(|r| 8 * r.len()).sum(),
        AeAnswer::Delta { objects, want, .. } => {
            objects_size(objects) + want.iter().map(|k| k.len()).sum::<usize>()
        }
    }
}

impl Node {
    /// Starts an exchange of `partition` with a random other primary
    /// believed up.
    pub(super) fn ae_start(&mut self, now: Duration, partition: PartitionId) {
        let others: Vec<NodeId> = self
            .ring()
            .primaries(partition)
            .filter(|&n| n != self.id && self.peers.is_up(n))
            .collect();
        if others.is_empty() {
            return;
        }
        let peer = others[self.rng.random_range(0..others.len())];
        if self.ae_start_with(now, partition, peer, false) {
            self.stats.ae_exchanges += 1;
            self.ae.running += 1;
        }
    }

    /// Starts an exchange of `partition` with `peer`: a repair, or a pull
    /// (`stream`). Returns false if this node cannot read its partition.
    pub(crate) fn ae_start_with(
        &mut self,
        now: Duration,
        partition: PartitionId,
        peer: NodeId,
        stream: bool,
    ) -> bool {
        let root = match self.ae_tree(partition) {
            Ok(tree) => tree.root(),
            Err(e) => {
                self.stats.storage_errors += 1;
                debug!(error = %e, %partition, "anti-entropy cannot read its partition");
                return false;
            }
        };
        trace!(%partition, peer = peer.0, stream, "anti-entropy exchange starts");
        let exchange = Exchange {
            peer,
            partition,
            stream,
            skipped: false,
            segments: VecDeque::new(),
            asked: Asked::Root,
        };
        self.ae_send(now, exchange, AeStep::Root(root));
        true
    }

    /// The budget an exchange is paced by.
    fn exchange_budget(&mut self, stream: bool) -> &mut super::budget::Budget {
        if stream {
            &mut self.transfers.budget
        } else {
            &mut self.ae.budget
        }
    }

    /// Sends the exchange's next step now, charging the budget.
    pub(super) fn ae_send(&mut self, now: Duration, mut exchange: Exchange, step: AeStep) {
        exchange.asked = match &step {
            AeStep::Root(_) => Asked::Root,
            AeStep::Branches(b) => Asked::Branches(b.clone()),
            AeStep::Keys { segments, .. } => Asked::Keys(segments.clone()),
            AeStep::Push(_) => Asked::Keys(Vec::new()),
        };
        let size = step_size(&step);
        self.exchange_budget(exchange.stream).charge(now, size);
        self.stats.ae_bytes_sent += size as u64;
        let id = self.next_request_id();
        let (peer, partition, stream) = (exchange.peer, exchange.partition, exchange.stream);
        self.send(
            peer,
            PeerMessage::AntiEntropy {
                id,
                partition,
                step,
                stream,
            },
        );
        self.track(now, id, Op::Exchange(exchange));
    }

    /// Sends the next step when the budget allows, or parks it.
    fn ae_continue(&mut self, now: Duration, exchange: Exchange, step: AeStep) {
        if self.exchange_budget(exchange.stream).available(now) {
            self.ae_send(now, exchange, step);
        } else {
            self.ae.parked.push_back((exchange, step));
        }
    }

    /// An exchange ended: `Err` says why it did not complete.
    fn ae_finish(&mut self, now: Duration, exchange: &Exchange, result: Result<(), &str>) {
        if exchange.stream {
            let result = match result {
                Ok(()) if exchange.skipped => Err("a segment too large to compare".to_string()),
                r => r.map_err(str::to_string),
            };
            return self.transfer_ended(now, exchange.partition, exchange.peer, result);
        }
        self.ae.running = self.ae.running.saturating_sub(1);
        match result {
            Ok(()) => self.ae.note_synced(exchange.partition, now),
            Err(_) => self.stats.ae_failed += 1,
        }
    }

    /// An exchange got no answer in time.
    pub(crate) fn ae_expired(&mut self, now: Duration, exchange: Exchange) {
        debug!(partition = %exchange.partition, peer = exchange.peer.0, "anti-entropy step timed out");
        self.ae_finish(now, &exchange, Err("the source did not answer in time"));
    }

    /// The initiator reads a replica's answer and takes the next step.
    pub(crate) fn on_ae_reply(
        &mut self,
        now: Duration,
        from: NodeId,
        id: RequestId,
        (result, share): (Result<AeAnswer, ReplicaError>, Option<u16>),
    ) {
        let ours = |op: &Op| matches!(op, Op::Exchange(e) if e.peer == from);
        let Some(Op::Exchange(mut exchange)) = self.take_op_if(id, ours) else {
            return;
        };
        if exchange.stream {
            self.transfer_paced(now, from, share.map(pacing::decode_share));
        }
        self.exchange_budget(exchange.stream)
            .charge(now, result.as_ref().map_or(1, answer_size));
        let partition = exchange.partition;
        if (!exchange.stream && !self.options.anti_entropy) || !self.is_primary(partition) {
            return self.ae_finish(now, &exchange, Err("this node no longer replicates it"));
        }
        let answer = match result {
            Ok(answer) => answer,
            Err(e) => {
                debug!(error = %e, %partition, peer = from.0, "anti-entropy refused");
                return self.ae_finish(now, &exchange, Err("the source refused"));
            }
        };
        if let AeAnswer::Sized { keys, .. } = &answer
            && exchange.stream
        {
            self.transfer_sized(partition, *keys);
        }
        let step = match (
            std::mem::replace(&mut exchange.asked, Asked::Keys(Vec::new())),
            answer,
        ) {
            (_, AeAnswer::InSync) => {
                self.stats.ae_in_sync += 1;
                return self.ae_finish(now, &exchange, Ok(()));
            }
            (
                Asked::Root,
                AeAnswer::Branches(theirs)
                | AeAnswer::Sized {
                    branches: theirs, ..
                },
            ) => {
                let mine = match self.ae_tree(partition) {
                    Ok(tree) => tree.branches().to_vec(),
                    Err(e) => return self.ae_storage_failed(now, &exchange, e),
                };
                let branches: Vec<u32> = differing(&mine, &theirs)
                    .into_iter()
                    .filter(|&b| b < BRANCHES)
                    .map(|b| b as u32)
                    .collect();
                if branches.is_empty() {
                    self.stats.ae_in_sync += 1;
                    return self.ae_finish(now, &exchange, Ok(()));
                }
                AeStep::Branches(branches)
            }
            (Asked::Branches(asked), AeAnswer::Segments(runs)) => {
                let tree = match self.ae_tree(partition) {
                    Ok(tree) => tree,
                    Err(e) => return self.ae_storage_failed(now, &exchange, e),
                };
                for (branch, theirs) in asked.iter().zip(&runs) {
                    let b = *branch as usize;
                    for i in differing(tree.segments_of(b), theirs) {
                        if i < FANOUT {
                            exchange.segments.push_back((b * FANOUT + i) as u32);
                        }
                    }
                }
                match self.ae_keys_step(&mut exchange) {
                    Ok(Some(step)) => step,
                    Ok(None) => return self.ae_finish(now, &exchange, Ok(())),
                    Err(e) => return self.ae_storage_failed(now, &exchange, e),
                }
            }
            (
                Asked::Keys(asked),
                AeAnswer::Delta {
                    objects,
                    want,
                    more,
                },
            ) => {
                self.ae_apply_delta(now, &exchange, objects, want);
                if more {
                    // The rest of these segments next, before the others.
                    for s in asked.into_iter().rev() {
                        exchange.segments.push_front(s);
                    }
                }
                match self.ae_keys_step(&mut exchange) {
                    Ok(Some(step)) => step,
                    Ok(None) => {
                        self.stats.ae_repaired_exchanges += 1;
                        return self.ae_finish(now, &exchange, Ok(()));
                    }
                    Err(e) => return self.ae_storage_failed(now, &exchange, e),
                }
            }
            (_, _) => {
                debug!(%partition, peer = from.0, "anti-entropy answer does not fit the step");
                return self.ae_finish(now, &exchange, Err("an answer that does not fit the step"));
            }
        };
        self.ae_continue(now, exchange, step);
    }

    fn ae_storage_failed(&mut self, now: Duration, exchange: &Exchange, e: StorageError) {
        self.stats.storage_errors += 1;
        debug!(error = %e, "anti-entropy cannot read its partition");
        self.ae_finish(now, exchange, Err("this node cannot read its partition"));
    }

    /// The next `Keys` step: this node's keys in the next differing
    /// segments, within the message bounds. `None` when none are left.
    fn ae_keys_step(&mut self, exchange: &mut Exchange) -> Result<Option<AeStep>, StorageError> {
        while !exchange.segments.is_empty() {
            let take = exchange.segments.len().min(SEGMENTS_PER_STEP);
            let candidates: Vec<u32> = exchange.segments.drain(..take).collect();
            let wanted: BTreeSet<u32> = candidates.iter().copied().collect();
            let mut per_segment: BTreeMap<u32, Vec<(Bytes, u64)>> = BTreeMap::new();
            scan(&self.store, exchange.partition, Some(&wanted), |s| {
                per_segment
                    .entry(quorra_merkle::segment_of(&s.key))
                    .or_default()
                    .push((s.key, s.hash));
            })?;
            let (mut segments, mut keys, mut bytes) = (Vec::new(), Vec::new(), 0);
            for (n, segment) in candidates.iter().enumerate() {
                let listed = per_segment.remove(segment).unwrap_or_default();
                let size: usize = listed.iter().map(|(k, _)| k.len() + 8).sum();
                if listed.len() > AE_MAX_KEYS || size > AE_MAX_BYTES {
                    // One segment beyond a message: cannot be compared.
                    self.stats.ae_segments_skipped += 1;
                    exchange.skipped = true;
                    continue;
                }
                if keys.len() + listed.len() > AE_MAX_KEYS || bytes + size > AE_MAX_BYTES {
                    // The rest waits for the next step, in order.
                    for s in candidates[n..].iter().rev() {
                        exchange.segments.push_front(*s);
                    }
                    break;
                }
                bytes += size;
                segments.push(*segment);
                keys.extend(listed);
            }
            if !segments.is_empty() {
                return Ok(Some(AeStep::Keys { segments, keys }));
            }
        }
        Ok(None)
    }

    /// Merges what the replica sent and pushes back what it wants or holds
    /// older.
    fn ae_apply_delta(
        &mut self,
        now: Duration,
        exchange: &Exchange,
        objects: Vec<KeyObject>,
        want: Vec<Bytes>,
    ) {
        let partition = exchange.partition;
        let foreign = objects
            .iter()
            .map(|(k, _)| k)
            .chain(&want)
            .any(|k| self.ring().partition_of_key(k) != partition);
        if foreign {
            debug!(%partition, "anti-entropy answer names keys of another partition; dropped");
            self.stats.rejected_messages += 1;
            return;
        }
        if exchange.stream {
            let bytes = objects.iter().map(|(k, o)| object_size(k, o)).sum();
            self.transfer_received(partition, objects.len(), bytes);
        }
        let mut push = Vec::new();
        for (key, theirs) in objects {
            match self.merge_owned_state(now, partition, &key, &theirs) {
                Ok(merged) => {
                    if merged.changed {
                        self.stats.ae_keys_repaired += 1;
                    }
                    if merged.state != theirs {
                        push.push((key, merged.state));
                    }
                }
                Err(e) => {
                    self.stats.storage_errors += 1;
                    debug!(error = %e, "anti-entropy could not merge a state");
                }
            }
        }
        for key in want {
            match self.store.get(partition, &key) {
                Ok(Some(mine)) => push.push((key, mine)),
                Ok(None) => {}
                Err(e) => {
                    self.stats.storage_errors += 1;
                    debug!(error = %e, "anti-entropy could not read a wanted key");
                }
            }
        }
        self.ae_push(now, (exchange.peer, exchange.stream), partition, push);
    }

    /// Sends states to `peer` in messages within the bounds.
    fn ae_push(
        &mut self,
        now: Duration,
        (peer, stream): (NodeId, bool),
        partition: PartitionId,
        push: Vec<KeyObject>,
    ) {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        let flush = |node: &mut Node, chunk: Vec<KeyObject>, bytes: usize| {
            node.stats.ae_keys_sent += chunk.len() as u64;
            node.stats.ae_bytes_sent += bytes as u64;
            node.exchange_budget(stream).charge(now, bytes);
            node.send(
                peer,
                PeerMessage::AntiEntropy {
                    id: 0,
                    partition,
                    step: AeStep::Push(chunk),
                    stream,
                },
            );
        };
        for (key, object) in push {
            let size = object_size(&key, &object);
            if !chunk.is_empty() && (bytes + size > AE_MAX_BYTES || chunk.len() >= AE_MAX_KEYS) {
                flush(self, std::mem::take(&mut chunk), bytes);
                bytes = 0;
            }
            bytes += size;
            chunk.push((key, object));
        }
        if !chunk.is_empty() {
            flush(self, chunk, bytes);
        }
    }

    /// The replica's side of a step.
    pub(crate) fn on_ae_step(
        &mut self,
        now: Duration,
        from: NodeId,
        id: RequestId,
        (partition, stream): (PartitionId, bool),
        step: AeStep,
    ) {
        let refusal = if !stream && !self.options.anti_entropy {
            Some(ReplicaError::AntiEntropyOff)
        } else if !self.is_primary(partition) {
            Some(ReplicaError::NotReplica(partition))
        } else {
            None
        };
        if let AeStep::Push(objects) = step {
            if refusal.is_none() {
                self.ae_merge_pushed(now, partition, objects);
            }
            return;
        }
        let answer = match refusal {
            Some(e) => Err(e),
            None => self.ae_answer(partition, step, stream),
        };
        let (result, size) = match answer {
            Ok((answer, size)) => (Ok(answer), size),
            Err(e) => (Err(e), 1),
        };
        self.exchange_budget(stream).charge(now, size);
        self.stats.ae_bytes_sent += size as u64;
        if let Ok(AeAnswer::Delta { objects, .. }) = &result {
            self.stats.ae_keys_sent += objects.len() as u64;
        }
        // Serving a pull is transfer work, and the puller learns how much
        // of its budget this node, which serves clients too, allows.
        let share = stream.then(|| {
            self.pacing.transfer_work(now);
            pacing::encode_share(self.pacing.share())
        });
        self.send(from, PeerMessage::AntiEntropyReply { id, result, share });
    }

    fn ae_merge_pushed(&mut self, now: Duration, partition: PartitionId, objects: Vec<KeyObject>) {
        for (key, object) in objects {
            match self.merge_owned_state(now, partition, &key, &object) {
                Ok(merged) if merged.changed => self.stats.ae_keys_repaired += 1,
                Ok(_) => {}
                Err(e) => {
                    self.stats.storage_errors += 1;
                    debug!(error = %e, "anti-entropy could not merge a pushed state");
                }
            }
        }
    }

    /// The answer to a step, with its size (a delta's measured while it
    /// is gathered, not by encoding its states again).
    fn ae_answer(
        &mut self,
        partition: PartitionId,
        step: AeStep,
        stream: bool,
    ) -> Result<(AeAnswer, usize), ReplicaError> {
        let failed = |node: &mut Node, e: StorageError| {
            node.stats.storage_errors += 1;
            ReplicaError::Storage(e.to_string())
        };
        if let AeStep::Keys { segments, keys } = step {
            return self
                .ae_delta(partition, segments, keys)
                .map_err(|e| failed(self, e));
        }
        let tree = match self.ae_tree(partition) {
            Ok(t) => t,
            Err(e) => return Err(failed(self, e)),
        };
        let answer = match step {
            AeStep::Root(theirs) if tree.root() == theirs => AeAnswer::InSync,
            AeStep::Root(_) if stream => AeAnswer::Sized {
                branches: tree.branches().to_vec(),
                keys: tree.keys(),
            },
            AeStep::Root(_) => AeAnswer::Branches(tree.branches().to_vec()),
            AeStep::Branches(branches) => AeAnswer::Segments(
                branches
                    .iter()
                    .map(|&b| tree.segments_of(b as usize).to_vec())
                    .collect(),
            ),
            AeStep::Keys { .. } | AeStep::Push(_) => {
                unreachable!("deltas are answered above, pushes merged by the caller")
            }
        };
        let size = answer_size(&answer);
        Ok((answer, size))
    }

    /// What this replica holds that differs from the initiator's keys in
    /// `segments`, and the keys it wants.
    fn ae_delta(
        &mut self,
        partition: PartitionId,
        segments: Vec<u32>,
        keys: Vec<(Bytes, u64)>,
    ) -> Result<(AeAnswer, usize), StorageError> {
        let segments: BTreeSet<u32> = segments.into_iter().collect();
        let theirs: BTreeMap<Bytes, u64> = keys.into_iter().collect();
        let mut mine = BTreeSet::new();
        let (mut objects, mut want, mut bytes) = (Vec::new(), Vec::new(), 0);
        let mut more = false;
        scan(&self.store, partition, Some(&segments), |s| {
            mine.insert(s.key.clone());
            let listed = theirs.get(&s.key);
            if listed == Some(&s.hash) {
                return;
            }
            // A state larger than the whole budget goes alone (values may
            // be larger than AE_MAX_BYTES); asking again would never end.
            let fits = bytes + s.size <= AE_MAX_BYTES || objects.is_empty();
            if fits && objects.len() < AE_MAX_KEYS {
                bytes += s.size;
                objects.push((s.key, s.object));
            } else {
                more = true;
                if listed.is_some() {
                    // No room for ours: take theirs now, send ours next time.
                    want.push(s.key);
                }
            }
        })?;
        want.extend(theirs.into_keys().filter(|k| !mine.contains(k)));
        bytes += want.iter().map(|k| k.len()).sum::<usize>();
        Ok((
            AeAnswer::Delta {
                objects,
                want,
                more,
            },
            bytes,
        ))
    }
}
