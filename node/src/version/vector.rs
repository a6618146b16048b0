//! Version vectors: the causal context of a read.
//!
//! A version vector maps each actor to the highest counter seen from it,
//! and so stands for every dot `(actor, 1..=counter)`. It is what a read
//! hands the client (encoded, see [`crate::version::context`]) and what a
//! write brings back to say which values it replaces.
//!
//! Invariant: entries are sorted by actor, each actor appears once, and no
//! counter is zero (a zero entry says nothing and is never stored).

use serde::{Deserialize, Serialize};

use super::actor::{Actor, Dot};

/// A version vector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector {
    entries: Vec<(Actor, u64)>,
}

impl VersionVector {
    /// The empty vector: has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A vector from `(actor, counter)` pairs in any order; repeated actors
    /// keep their highest counter and zero counters are dropped.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Actor, u64)>) -> Self {
        let mut entries: Vec<(Actor, u64)> = pairs.into_iter().filter(|p| p.1 > 0).collect();
        entries.sort_unstable();
        entries.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 = earlier.1.max(later.1);
                true
            } else {
                false
            }
        });
        Self { entries }
    }

    /// Builds a vector from entries that must already satisfy the invariant.
    pub(crate) fn from_sorted(entries: Vec<(Actor, u64)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        debug_assert!(entries.iter().all(|e| e.1 > 0));
        Self { entries }
    }

    /// The counter seen from `actor` (0 if none).
    pub fn get(&self, actor: Actor) -> u64 {
        self.entries
            .binary_search_by_key(&actor, |e| e.0)
            .map_or(0, |i| self.entries[i].1)
    }

    /// Whether the vector has seen `dot`.
    pub fn covers(&self, dot: Dot) -> bool {
        dot.counter <= self.get(dot.actor)
    }

    /// Whether every dot seen by `other` is seen by `self`.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.entries.iter().all(|&(a, c)| self.get(a) >= c)
    }

    /// Adds everything `other` has seen.
    pub fn merge(&mut self, other: &VersionVector) {
        *self = Self::from_pairs(self.entries.iter().chain(&other.entries).copied());
    }

    /// The `(actor, counter)` pairs in actor order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (Actor, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// Number of actors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
