//! Key hashing: where on the 64-bit ring a key falls.
//!
//! A key's position is the first 8 bytes of its blake3 digest read as a
//! big-endian `u64`, so numeric order of positions is byte order of digests.
//! blake3 is fast on short inputs, has no seed to distribute, and is the same
//! on every platform, so every node and every client computes the same
//! position for the same key with no coordination.
//!
//! **Hashtags** follow Redis Cluster's rule, so Redis users get what they
//! expect: if the key contains `{`, and a `}` follows it with at least one
//! byte in between, only the bytes between the first `{` and the first `}`
//! after it are hashed. `{user42}:cart` and `{user42}:profile` therefore land
//! on the same partition (and so on the same replicas), while `{}` or a lone
//! `{` leaves the whole key hashed.

/// The bytes of `key` that decide its placement: the hashtag if the key has
/// one, the whole key otherwise.
pub fn hash_slice(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

/// The 64-bit ring position of a key (hashtag rule applied).
pub fn key_position(key: &[u8]) -> u64 {
    position_of_bytes(hash_slice(key))
}

/// The 64-bit position of raw bytes: the first 8 bytes of their blake3
/// digest, big-endian. No hashtag rule.
pub fn position_of_bytes(bytes: &[u8]) -> u64 {
    let digest = blake3::hash(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// A cheap, well-mixed 64-bit permutation (splitmix64's finaliser), for
/// deterministic tie-breaking where blake3 would be needlessly slow.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashtag_selects_the_braced_part() {
        assert_eq!(hash_slice(b"{user42}:cart"), b"user42");
        assert_eq!(hash_slice(b"x{user42}y{z}"), b"user42");
        assert_eq!(
            key_position(b"{user42}:cart"),
            key_position(b"{user42}:profile")
        );
        assert_eq!(key_position(b"{user42}:cart"), key_position(b"user42"));
    }

    #[test]
    fn empty_or_unclosed_hashtag_hashes_the_whole_key() {
        assert_eq!(hash_slice(b"{}:cart"), b"{}:cart");
        assert_eq!(hash_slice(b"{user42:cart"), b"{user42:cart");
        assert_eq!(hash_slice(b"plain"), b"plain");
        assert_eq!(hash_slice(b""), b"");
        // Redis: the first '}' after the first '{' closes the tag, even if empty.
        assert_eq!(hash_slice(b"{}{user}"), b"{}{user}");
    }

    #[test]
    fn position_is_blake3_prefix_big_endian() {
        let digest = blake3::hash(b"hello");
        let expected = u64::from_be_bytes(digest.as_bytes()[..8].try_into().unwrap());
        assert_eq!(key_position(b"hello"), expected);
    }

    #[test]
    fn mix64_is_a_permutation_on_samples() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..10_000u64 {
            assert!(seen.insert(mix64(i)));
        }
    }
}
