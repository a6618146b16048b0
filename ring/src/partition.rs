//! Fixed, equal partitions of the 64-bit hash space.
//!
//! The space is cut into Q = 2^b equal partitions when a cluster is created,
//! and Q never changes afterwards (Riak's ring size works the same way). The
//! partition of a key is the top `b` bits of its position, so partition `p`
//! holds positions `[p·2^(64-b), (p+1)·2^(64-b))` and the keys of one partition
//! are contiguous on the ring. Everything that moves or compares data
//! (handoff, anti-entropy, the storage layout) works a partition at a time.

use serde::{Deserialize, Serialize};

use crate::RingError;
use crate::hash::key_position;

/// Default number of partitions, Q.
pub const DEFAULT_PARTITIONS: u32 = 1024;
/// Largest Q accepted: the ring keeps a Q×N table of owners.
pub const MAX_PARTITIONS: u32 = 1 << 20;

/// The index of one partition, in `0..Q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u32);

impl std::fmt::Display for PartitionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// Maps positions and keys to partitions for one value of Q.
///
/// Invariant: `count` is a power of two in `1..=MAX_PARTITIONS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partitioner {
    count: u32,
    bits: u32,
}

impl Partitioner {
    /// A partitioner for `count` partitions; `count` must be a power of two
    /// no larger than [`MAX_PARTITIONS`].
    pub fn new(count: u32) -> Result<Self, RingError> {
        if count == 0 || !count.is_power_of_two() || count > MAX_PARTITIONS {
            return Err(RingError::BadPartitionCount { count });
        }
        Ok(Self {
            count,
            bits: count.trailing_zeros(),
        })
    }

    /// Q, the number of partitions.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The partition holding ring position `position`.
    pub fn of_position(&self, position: u64) -> PartitionId {
        if self.bits == 0 {
            PartitionId(0)
        } else {
            PartitionId((position >> (64 - self.bits)) as u32)
        }
    }

    /// The partition of `key` (hashtag rule applied).
    pub fn of_key(&self, key: &[u8]) -> PartitionId {
        self.of_position(key_position(key))
    }

    /// The first ring position of partition `p`.
    pub fn start(&self, p: PartitionId) -> u64 {
        debug_assert!(p.0 < self.count);
        if self.bits == 0 {
            0
        } else {
            u64::from(p.0) << (64 - self.bits)
        }
    }

    /// The first position after partition `p`, as a `u128` so that the last
    /// partition's end (2^64) is representable.
    pub fn end(&self, p: PartitionId) -> u128 {
        u128::from(self.start(p)) + self.width()
    }

    /// How many positions one partition spans.
    pub fn width(&self) -> u128 {
        (1u128 << 64) >> self.bits
    }

    /// All partitions in order.
    pub fn iter(&self) -> impl Iterator<Item = PartitionId> + use<> {
        (0..self.count).map(PartitionId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_powers_of_two() {
        for bad in [0, 3, 1000, MAX_PARTITIONS * 2] {
            assert!(Partitioner::new(bad).is_err(), "{bad}");
        }
        for good in [1, 2, 1024, MAX_PARTITIONS] {
            assert_eq!(Partitioner::new(good).unwrap().count(), good);
        }
    }

    #[test]
    fn partitions_tile_the_space() {
        let p = Partitioner::new(1024).unwrap();
        assert_eq!(p.of_position(0), PartitionId(0));
        assert_eq!(p.of_position(u64::MAX), PartitionId(1023));
        for id in [0u32, 1, 511, 1023] {
            let id = PartitionId(id);
            assert_eq!(p.of_position(p.start(id)), id);
            assert_eq!(p.of_position((p.end(id) - 1) as u64), id);
        }
        assert_eq!(p.end(PartitionId(1023)), 1u128 << 64);
    }

    #[test]
    fn single_partition_holds_everything() {
        let p = Partitioner::new(1).unwrap();
        assert_eq!(p.of_position(u64::MAX), PartitionId(0));
        assert_eq!(p.start(PartitionId(0)), 0);
        assert_eq!(p.end(PartitionId(0)), 1u128 << 64);
    }
}
