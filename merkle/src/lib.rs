//! # Anti-entropy trees: what two replicas of a partition disagree on
//!
//! One [`Tree`] summarises the keys one replica holds of one partition, so
//! two replicas can find the keys they disagree on by exchanging a few
//! hashes instead of their keys.
//!
//! ## Shape and hashes (TicTac trees, as Riak's TicTac AAE)
//!
//! A tree has a fixed shape: [`SEGMENTS`] leaves (segments) under
//! [`BRANCHES`] interior nodes under one root. A key belongs to the segment
//! [`segment_of`] its blake3 hash; its *leaf hash* ([`leaf_hash`]) is a
//! 64-bit blake3 of the key and its encoded version. A segment's hash is
//! the **XOR** of the leaf hashes of its keys, so it does not depend on the
//! order keys arrived in, and a change costs O(1) at the leaf: XOR the old
//! leaf hash out and the new one in ([`Tree::update`]). Nothing is ever
//! rebuilt to take a write.
//!
//! Interior nodes are blake3 over their children's hashes. They are
//! recomputed lazily: an update marks its branch dirty (O(depth)), and
//! reading a branch or the root recomputes only dirty branches. Writes
//! between two exchanges therefore cost one XOR each, however many.
//!
//! ## Diff
//!
//! Two replicas compare roots, then the branches of differing roots, then
//! the segments of differing branches ([`differing`] at each level, or
//! [`diff`] for two local trees). Only segments whose hashes differ are
//! returned; the keys in them are what the replicas then compare one by
//! one. A 64-bit XOR of hashes misses a difference with probability 2⁻⁶⁴
//! per segment; the next change of that segment shows it again.
//!
//! ## Why this size
//!
//! 1,024 segments per partition (32 × 32) keep a tree at 8.4 KiB of memory
//! and bound what an exchange ships for the tree itself: at most the root,
//! 32 branch hashes and 32 × 32 segment hashes, 8.7 KiB, however many keys
//! differ. With Quorra's default 1,024 partitions, a node of 1,000,000 keys
//! has about one key per segment, so a differing segment costs the key
//! list of about one key.
//!
//! The crate is pure: no I/O, no clock, no randomness.

mod tree;

pub use tree::{BRANCHES, FANOUT, SEGMENTS, Tree, diff, differing, leaf_hash, segment_of};
