//! Keys this incarnation purged, so that their epochs are not continued.
//!
//! A primary continues an epoch it finds in its copy of a key (see
//! [`crate::version::actor`]), which keeps the actors per key few. That is
//! safe only while the copy remembers the highest dot the node issued in
//! that epoch. A purge deletes the copy; a later write can bring an entry of
//! the same epoch back from an old client context, with a lower counter
//! than the node had reached, and continuing from there would issue a dot a
//! second time: a newer write with an old context then discards the new
//! value (the simulator found this, seed 13366).
//!
//! So each purge records the key (a 64-bit hash of partition and key) with
//! the first epoch the node had not opened yet: for that key only epochs
//! from there on are continued. Memory is bounded: past [`LIMIT`] keys the
//! table is cleared and the same rule applies to every key at once (a
//! floor), which costs one extra actor per key written afterwards, once per
//! [`LIMIT`] purges. A crash forgets all this safely: a new incarnation
//! never continues an older one's epochs.

use std::collections::BTreeMap;

use quorra_ring::PartitionId;

/// Keys remembered before the floor is raised instead.
pub const LIMIT: usize = 65_536;

/// The purged keys of this incarnation and the epochs they may continue.
#[derive(Debug, Default)]
pub(crate) struct Purged {
    /// No epoch below this one is continued, for any key.
    floor: u64,
    /// Per purged key (hashed), the first epoch it may continue.
    keys: BTreeMap<u64, u64>,
    /// Per dropped partition (see [`super::cleanup`]), the first epoch its
    /// keys may continue. At most one entry per partition.
    partitions: BTreeMap<PartitionId, u64>,
}

fn key_hash(partition: PartitionId, key: &[u8]) -> u64 {
    // A collision only makes a key open a fresh epoch, which is safe.
    let mut h = blake3::Hasher::new();
    h.update(&partition.0.to_be_bytes());
    h.update(key);
    let bytes: [u8; 8] = h.finalize().as_bytes()[..8].try_into().expect("8 bytes");
    u64::from_be_bytes(bytes)
}

impl Purged {
    /// Records that `key` was purged when `next_epoch` was the first epoch
    /// not opened yet.
    pub(crate) fn note(&mut self, partition: PartitionId, key: &[u8], next_epoch: u64) {
        if self.keys.len() >= LIMIT {
            self.floor = next_epoch;
            self.keys.clear();
            return;
        }
        self.keys.insert(key_hash(partition, key), next_epoch);
    }

    /// Records that every key of `partition` was dropped when `next_epoch`
    /// was the first epoch not opened yet.
    pub(crate) fn note_partition(&mut self, partition: PartitionId, next_epoch: u64) {
        self.partitions.insert(partition, next_epoch);
    }

    /// The first epoch a write of `key` may continue.
    pub(crate) fn continuable_from(&self, partition: PartitionId, key: &[u8]) -> u64 {
        let own = self
            .keys
            .get(&key_hash(partition, key))
            .copied()
            .unwrap_or(0);
        let dropped = self.partitions.get(&partition).copied().unwrap_or(0);
        own.max(self.floor).max(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purged_key_continues_only_later_epochs_and_the_table_stays_bounded() {
        let mut p = Purged::default();
        let (part, other) = (PartitionId(3), PartitionId(4));
        assert_eq!(p.continuable_from(part, b"k"), 0);
        p.note(part, b"k", 10);
        assert_eq!(p.continuable_from(part, b"k"), 10);
        assert_eq!(p.continuable_from(other, b"k"), 0);
        for i in 1..LIMIT {
            p.note(other, format!("x{i}").as_bytes(), 20);
        }
        assert_eq!(p.keys.len(), LIMIT);
        // Full: the floor rises for every key and the table empties.
        p.note(other, b"one more", 30);
        assert!(p.keys.is_empty());
        assert_eq!(p.continuable_from(part, b"k"), 30);
        assert_eq!(p.continuable_from(other, b"never purged"), 30);
    }
}
