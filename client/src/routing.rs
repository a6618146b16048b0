//! Which partition a key belongs to, computed in the client.
//!
//! This is the same rule as the ring's (`quorra_ring::hash`): blake3 of the
//! key, or of its `{hashtag}` if it has one, first 8 bytes big-endian, top
//! log2(Q) bits. It is repeated here so the client crate depends on no
//! other Quorra crate; a test in the node crate checks the two agree.

/// The bytes of `key` that decide its placement.
fn hash_slice(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

/// The partition of `key` among `partitions` (a power of two).
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    let digest = blake3::hash(hash_slice(key));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    let position = u64::from_be_bytes(first);
    let bits = partitions.max(1).trailing_zeros();
    if bits == 0 {
        0
    } else {
        (position >> (64 - bits)) as u32
    }
}
