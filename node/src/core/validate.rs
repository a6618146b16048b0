//! Checks on every message from a peer, before the core acts on it.
//!
//! Peers are authenticated (mutual TLS), but a bug, a version mismatch or a
//! corrupt frame must not crash a node or poison its storage. So a message
//! is admitted only if every key it names is a valid key of the partition
//! it claims, every state it carries satisfies the version invariants, a
//! hint names another member that really is a primary of the partition,
//! and lists stay within [`MAX_ITEMS`] (anti-entropy key lists within
//! [`AE_MAX_KEYS`], tree positions within the tree's shape). Anything else is dropped and
//! counted (`rejected_messages`); the sender sees a timeout.

use quorra_ring::{NodeId, PartitionId};

use quorra_merkle::{BRANCHES, FANOUT, SEGMENTS};

use super::anti_entropy::AE_MAX_KEYS;
use super::messages::{AeAnswer, AeStep, KeyObject, PeerMessage, PurgeItem, VoteState};
use super::node::Node;
use crate::storage::store::check_key;
use crate::version::Object;

/// Most items (hints, purge candidates, votes) one message may carry.
pub const MAX_ITEMS: usize = 4096;

type Verdict = Result<(), &'static str>;

fn valid(object: &Object) -> Verdict {
    object
        .validate()
        .map_err(|_| "state breaks the version invariants")
}

fn bounded<T>(items: &[T]) -> Verdict {
    if items.len() > MAX_ITEMS {
        Err("too many items")
    } else {
        Ok(())
    }
}

impl Node {
    fn key_of(&self, partition: PartitionId, key: &[u8]) -> Verdict {
        check_key(key).map_err(|_| "empty or oversized key")?;
        if self.ring().partition_of_key(key) != partition {
            return Err("key does not belong to the partition");
        }
        Ok(())
    }

    fn hint_owner(&self, partition: PartitionId, owner: Option<NodeId>) -> Verdict {
        match owner {
            None => Ok(()),
            Some(o) if o != self.id && self.placement.is_owner(partition, o) => Ok(()),
            Some(_) => Err("hint for a node that is not another owner of the partition"),
        }
    }

    fn purge_items(&self, items: &[PurgeItem]) -> Verdict {
        bounded(items)?;
        items
            .iter()
            .try_for_each(|i| self.key_of(i.partition, &i.key))
    }

    fn key_objects(&self, partition: PartitionId, objects: &[KeyObject]) -> Verdict {
        if objects.len() > AE_MAX_KEYS {
            return Err("too many keys");
        }
        objects.iter().try_for_each(|(k, o)| {
            self.key_of(partition, k)?;
            valid(o)
        })
    }

    fn ae_step(&self, partition: PartitionId, step: &AeStep) -> Verdict {
        match step {
            AeStep::Root(_) => Ok(()),
            AeStep::Branches(b)
                if b.len() <= BRANCHES && b.iter().all(|&b| (b as usize) < BRANCHES) =>
            {
                Ok(())
            }
            AeStep::Branches(_) => Err("branch outside the tree"),
            AeStep::Keys { segments, keys } => {
                if segments.len() > SEGMENTS || segments.iter().any(|&s| s as usize >= SEGMENTS) {
                    return Err("segment outside the tree");
                }
                if keys.len() > AE_MAX_KEYS {
                    return Err("too many keys");
                }
                keys.iter().try_for_each(|(k, _)| self.key_of(partition, k))
            }
            AeStep::Push(objects) => self.key_objects(partition, objects),
        }
    }

    fn ae_answer_shape(&self, answer: &AeAnswer) -> Verdict {
        match answer {
            AeAnswer::InSync => Ok(()),
            AeAnswer::Branches(b) | AeAnswer::Sized { branches: b, .. } if b.len() == BRANCHES => {
                Ok(())
            }
            AeAnswer::Branches(_) | AeAnswer::Sized { .. } => Err("wrong number of branches"),
            AeAnswer::Segments(runs)
                if runs.len() <= BRANCHES && runs.iter().all(|r| r.len() == FANOUT) =>
            {
                Ok(())
            }
            AeAnswer::Segments(_) => Err("wrong shape of segments"),
            AeAnswer::Delta { objects, want, .. } => {
                if objects.len() > AE_MAX_KEYS || want.len() > AE_MAX_KEYS {
                    return Err("too many keys");
                }
                // Keys are checked against the exchange's partition when
                // the answer is matched to it; here only their shape.
                objects.iter().try_for_each(|(k, o)| {
                    check_key(k).map_err(|_| "empty or oversized key")?;
                    valid(o)
                })?;
                want.iter()
                    .try_for_each(|k| check_key(k).map_err(|_| "empty or oversized key"))
            }
        }
    }

    /// Whether `message` may be acted on; the reason if not.
    pub(super) fn admit(&self, message: &PeerMessage) -> Verdict {
        match message {
            PeerMessage::Read {
                partition,
                key,
                hint_for,
                ..
            } => {
                self.key_of(*partition, key)?;
                self.hint_owner(*partition, *hint_for)
            }
            PeerMessage::ReadReply {
                result: Ok(Some(state)),
                ..
            } => valid(state),
            PeerMessage::Write {
                partition,
                key,
                object,
                hint_for,
                ..
            } => {
                self.key_of(*partition, key)?;
                self.hint_owner(*partition, *hint_for)?;
                valid(object)
            }
            PeerMessage::Repair {
                partition,
                key,
                object,
            } => {
                self.key_of(*partition, key)?;
                valid(object)
            }
            PeerMessage::Handoff { items, .. } => {
                bounded(items)?;
                items.iter().try_for_each(|i| {
                    self.key_of(i.partition, &i.key)?;
                    valid(&i.object)
                })
            }
            PeerMessage::HandoffReply { stored, .. } => bounded(stored),
            PeerMessage::PurgeCheck { items, .. } | PeerMessage::Purge { items } => {
                self.purge_items(items)
            }
            PeerMessage::PurgeCheckReply { votes, .. } => {
                bounded(votes)?;
                votes.iter().try_for_each(|v| match &v.state {
                    VoteState::Other(o) => valid(o),
                    _ => Ok(()),
                })
            }
            PeerMessage::AntiEntropy {
                partition, step, ..
            } => self.ae_step(*partition, step),
            PeerMessage::AntiEntropyReply {
                result: Ok(answer), ..
            } => self.ae_answer_shape(answer),
            PeerMessage::ReadReply { .. }
            | PeerMessage::AntiEntropyReply { .. }
            | PeerMessage::WriteReply { .. }
            | PeerMessage::Forward { .. }
            | PeerMessage::ForwardReply { .. }
            | PeerMessage::Ping { .. }
            | PeerMessage::Pong { .. } => Ok(()),
        }
    }
}
