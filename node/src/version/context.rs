//! Encoding contexts for clients, and validating them when they come back.
//!
//! A context leaves a node as opaque bytes: a format byte, then the version
//! vector's `(node, epoch, counter)` triples in rmp-serde (MessagePack).
//! The format byte lets a later release change the encoding while still
//! reading old contexts. Everything that comes back from a client is
//! untrusted: it must decode, be within [`MAX_CONTEXT_BYTES`] and
//! [`MAX_CONTEXT_ENTRIES`], list actors in strictly increasing order and
//! carry no zero counter. Anything else is a [`ContextError`], never a panic
//! and never a silently empty context (which would turn a replacing write
//! into a sibling).

use quorra_client::Context;
use quorra_ring::NodeId;

use super::actor::Actor;
use super::vector::VersionVector;

/// Format byte of the current encoding.
const FORMAT_V1: u8 = 1;

/// Largest encoded context accepted from a client, in bytes (64 KiB).
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// Most actors a context may name. A real context names each coordinating
/// node once per incarnation in which it wrote the key; 4096 is far beyond
/// that and keeps a forged context from costing much.
pub const MAX_CONTEXT_ENTRIES: usize = 4096;

/// Largest counter a client context may carry (2^48): far beyond any real
/// number of writes, far below [`super::dvvset::MAX_COUNTER`], so a forged
/// context cannot exhaust an actor's counters.
pub const MAX_CONTEXT_COUNTER: u64 = 1 << 48;

/// Why a context from a client was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// Larger than [`MAX_CONTEXT_BYTES`].
    #[error("context is {len} bytes; the limit is {MAX_CONTEXT_BYTES}")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// An encoding this node does not know (from a newer release?).
    #[error("context has unknown format {0}; was it produced by a newer Quorra?")]
    UnknownFormat(u8),
    /// The bytes do not decode.
    #[error("context is malformed: {0}")]
    Malformed(String),
    /// More than [`MAX_CONTEXT_ENTRIES`] actors.
    #[error("context names {count} actors; the limit is {MAX_CONTEXT_ENTRIES}")]
    TooManyEntries {
        /// How many it names.
        count: usize,
    },
    /// Actors repeated or out of order, or a zero counter: not something a
    /// node produced.
    #[error("context is not canonical: {0}")]
    NotCanonical(&'static str),
}

/// Encodes a version vector as an opaque client context.
pub fn encode(vector: &VersionVector) -> Context {
    if vector.is_empty() {
        return Context::empty();
    }
    let triples: Vec<(u64, u64, u64)> =
        vector.iter().map(|(a, c)| (a.node.0, a.epoch, c)).collect();
    let mut out = vec![FORMAT_V1];
    rmp_serde::encode::write(&mut out, &triples).expect("encoding to a Vec cannot fail");
    Context::from_bytes(out)
}

/// Decodes and validates a context from a client.
pub fn decode(context: &Context) -> Result<VersionVector, ContextError> {
    let bytes = context.as_bytes();
    if bytes.is_empty() {
        return Ok(VersionVector::new());
    }
    if bytes.len() > MAX_CONTEXT_BYTES {
        return Err(ContextError::TooLarge { len: bytes.len() });
    }
    if bytes[0] != FORMAT_V1 {
        return Err(ContextError::UnknownFormat(bytes[0]));
    }
    let triples: Vec<(u64, u64, u64)> =
        rmp_serde::from_slice(&bytes[1..]).map_err(|e| ContextError::Malformed(e.to_string()))?;
    if triples.len() > MAX_CONTEXT_ENTRIES {
        return Err(ContextError::TooManyEntries {
            count: triples.len(),
        });
    }
    let pairs: Vec<(Actor, u64)> = triples
        .into_iter()
        .map(|(node, epoch, counter)| (Actor::new(NodeId(node), epoch), counter))
        .collect();
    if pairs.iter().any(|p| p.1 == 0) {
        return Err(ContextError::NotCanonical("zero counter"));
    }
    if pairs.iter().any(|p| p.1 > MAX_CONTEXT_COUNTER) {
        return Err(ContextError::NotCanonical(
            "counter beyond any real history",
        ));
    }
    if pairs.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(ContextError::NotCanonical("actors not strictly increasing"));
    }
    Ok(VersionVector::from_sorted(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(pairs: &[(u64, u64, u64)]) -> VersionVector {
        VersionVector::from_pairs(pairs.iter().map(|&(n, i, c)| (Actor::new(NodeId(n), i), c)))
    }

    #[test]
    fn round_trips() {
        for v in [
            vv(&[]),
            vv(&[(1, 0, 3)]),
            vv(&[(1, 0, 3), (2, 1, 9), (7, 0, 1)]),
        ] {
            assert_eq!(decode(&encode(&v)).unwrap(), v);
        }
        assert!(encode(&vv(&[])).is_empty());
    }

    #[test]
    fn rejects_what_a_node_never_produces() {
        let garbage = Context::from_bytes(vec![FORMAT_V1, 0xc1, 0xff]);
        assert!(matches!(decode(&garbage), Err(ContextError::Malformed(_))));
        let future = Context::from_bytes(vec![9, 1, 2]);
        assert_eq!(decode(&future), Err(ContextError::UnknownFormat(9)));
        let huge = Context::from_bytes(vec![FORMAT_V1; MAX_CONTEXT_BYTES + 1]);
        assert!(matches!(decode(&huge), Err(ContextError::TooLarge { .. })));

        let mut unsorted = vec![FORMAT_V1];
        rmp_serde::encode::write(&mut unsorted, &vec![(2u64, 0u64, 1u64), (1, 0, 1)]).unwrap();
        assert!(matches!(
            decode(&Context::from_bytes(unsorted)),
            Err(ContextError::NotCanonical(_))
        ));
        let mut huge_counter = vec![FORMAT_V1];
        rmp_serde::encode::write(&mut huge_counter, &vec![(1u64, 0u64, u64::MAX)]).unwrap();
        assert!(matches!(
            decode(&Context::from_bytes(huge_counter)),
            Err(ContextError::NotCanonical(_))
        ));
        let mut zero = vec![FORMAT_V1];
        rmp_serde::encode::write(&mut zero, &vec![(1u64, 0u64, 0u64)]).unwrap();
        assert!(matches!(
            decode(&Context::from_bytes(zero)),
            Err(ContextError::NotCanonical(_))
        ));
    }
}
