//! How the node's data maps onto one ordered keyspace.
//!
//! | prefix | then | holds |
//! | --- | --- | --- |
//! | `D` | partition (u24 BE), user key | owned objects |
//! | `h` | target node (u64 BE), partition (u32 BE), user key | hints held for another node |
//! | `m` | name (UTF-8) | node metadata (id, tokens, incarnation) |
//! | `T` | partition (u24 BE), user key | marks of owned keys that are tombstones (purge candidates) |
//!
//! Big-endian numbers make key order follow partition order, so one range
//! scan lists a partition's keys in order (what handoff and anti-entropy
//! walk), and all hints for one node are one range. Keeping everything in one
//! keyspace lets a single atomic batch touch data, hints and metadata.
//!
//! **Why three bytes of partition.** Partitions number at most
//! [`MAX_PARTITIONS`] (2^20), so three bytes hold any of them. The storage
//! engine's memtable compares keys by a 4-byte inline prefix before it
//! follows a pointer to the rest; with a 4-byte partition that prefix was
//! `d 0 0 0` for every key of a 1,024-partition ring, so every comparison
//! of every insert went to the heap. Measured with redis-benchmark SET on 3
//! local nodes (issue 7), memcmp fell from 11% to 1.4% of the machine's
//! time when the partition's low bytes moved into the prefix. Keys of up to
//! 16 bytes now also fit the engine's 20 inline bytes whole.
//!
//! **Layout versions.** Layout 1 stored objects under `d` and tombstone
//! marks under `t`, each with a 4-byte partition. The tags changed with the
//! width, so the two layouts never share a key, and
//! [`super::upgrade`] moves layout-1 records whenever an engine is opened.

use quorra_ring::{MAX_PARTITIONS, NodeId, PartitionId};

const DATA: u8 = b'D';
const HINT: u8 = b'h';
const META: u8 = b'm';
const TOMB: u8 = b'T';

// Every partition of every ring fits three bytes.
const _: () = assert!(MAX_PARTITIONS <= 1 << 24);

/// The partition as the three bytes of the layout. Every partition the
/// store is given is one of the ring's (requests and peer messages naming
/// another are refused before they reach it), so none is 2^24 or more.
fn partition_bytes(partition: PartitionId) -> [u8; 3] {
    debug_assert!(partition.0 < MAX_PARTITIONS);
    let p = partition.0.to_be_bytes();
    [p[1], p[2], p[3]]
}

/// Storage key of an owned object.
pub fn data_key(partition: PartitionId, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len());
    out.extend_from_slice(&data_prefix(partition));
    out.extend_from_slice(key);
    out
}

/// Prefix of every owned object of `partition`.
pub fn data_prefix(partition: PartitionId) -> [u8; 4] {
    let [a, b, c] = partition_bytes(partition);
    [DATA, a, b, c]
}

/// The partition and user key of an owned-object storage key.
pub fn parse_data_key(raw: &[u8]) -> Option<(PartitionId, &[u8])> {
    match raw {
        [DATA, a, b, c, key @ ..] => Some((PartitionId(u32::from_be_bytes([0, *a, *b, *c])), key)),
        _ => None,
    }
}

/// Storage key of a hint held for `target`.
pub fn hint_key(target: NodeId, partition: PartitionId, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + key.len());
    out.extend_from_slice(&hint_prefix(target));
    out.extend_from_slice(&partition.0.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Prefix of every hint held for `target`.
pub fn hint_prefix(target: NodeId) -> [u8; 9] {
    let mut out = [HINT; 9];
    out[1..].copy_from_slice(&target.0.to_be_bytes());
    out
}

/// The prefix of all hints.
pub fn all_hints_prefix() -> [u8; 1] {
    [HINT]
}

/// Target, partition and user key of a hint storage key.
pub fn parse_hint_key(raw: &[u8]) -> Option<(NodeId, PartitionId, &[u8])> {
    if raw.len() < 13 || raw[0] != HINT {
        return None;
    }
    let node = u64::from_be_bytes(raw[1..9].try_into().ok()?);
    let partition = u32::from_be_bytes(raw[9..13].try_into().ok()?);
    Some((NodeId(node), PartitionId(partition), &raw[13..]))
}

/// Storage key of the tombstone mark of an owned key.
pub fn tomb_key(partition: PartitionId, key: &[u8]) -> Vec<u8> {
    let mut out = data_key(partition, key);
    out[0] = TOMB;
    out
}

/// The prefix of all tombstone marks.
pub fn all_tombs_prefix() -> [u8; 1] {
    [TOMB]
}

/// The partition and user key of a tombstone mark.
pub fn parse_tomb_key(raw: &[u8]) -> Option<(PartitionId, &[u8])> {
    match raw {
        [TOMB, a, b, c, key @ ..] => Some((PartitionId(u32::from_be_bytes([0, *a, *b, *c])), key)),
        _ => None,
    }
}

/// Storage key of a metadata entry.
pub fn meta_key(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + name.len());
    out.push(META);
    out.extend_from_slice(name.as_bytes());
    out
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// if there is none (the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_partition() {
        let a = data_key(PartitionId(1), b"zzz");
        let b = data_key(PartitionId(2), b"aaa");
        assert!(a < b);
        assert_eq!(parse_data_key(&a), Some((PartitionId(1), &b"zzz"[..])));
        let h = hint_key(NodeId(7), PartitionId(3), b"k");
        assert_eq!(
            parse_hint_key(&h),
            Some((NodeId(7), PartitionId(3), &b"k"[..]))
        );
        assert!(h.starts_with(&hint_prefix(NodeId(7))));
        assert_eq!(parse_data_key(&h), None);
        assert_eq!(parse_hint_key(&a), None);
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(
            prefix_end(b"D\x00\x00\x01"),
            Some(b"D\x00\x00\x02".to_vec())
        );
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
