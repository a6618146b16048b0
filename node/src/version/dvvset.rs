//! Dotted version vector sets (DVVSet, Almeida et al. 2014).
//!
//! A key's state is a set of sibling values, each tagged with a *dot* (the
//! actor that coordinated its write and that actor's counter), plus the
//! causal history those dots summarise. The compact form keeps, per actor,
//! one entry `(actor, n, [v_n, v_(n-1), …, v_(n-k+1)])`: dots `1..=n-k` of
//! that actor are known and obsolete, the last `k` dots still carry live
//! values, newest first. Live dots of an actor are always a suffix of its
//! counters, because a context covers a prefix of every actor's dots.
//!
//! - **update** (a write with the context of an earlier read): drop the
//!   values whose dots the context covers, raise every counter to the
//!   context's, then give the new value the next dot of the coordinating
//!   actor. The write replaces exactly the siblings its reader saw; anything
//!   it did not see stays as a sibling.
//! - **merge** (two replicas' states, read repair, anti-entropy, handoff):
//!   per actor, keep the larger counter and the dots that are live on both
//!   sides where both know them. Commutative, associative, idempotent.
//!
//! Unlike per-node vector clocks, a write coordinated by a node that already
//! holds a concurrent sibling does not merge the two histories, so there are
//! no false conflicts and no lost updates, and the number of siblings is
//! bounded by the number of truly concurrent writers (no "sibling explosion"
//! when clients write with stale contexts through different coordinators).
//!
//! Invariant: entries are sorted by actor with no repeats; every entry has
//! `counter >= 1` and `values.len() <= counter`.

use serde::{Deserialize, Serialize};

use super::actor::{Actor, Dot};
use super::vector::VersionVector;

/// The versioned state of one key: siblings with their causal history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DvvSet<V> {
    entries: Vec<Entry<V>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry<V> {
    actor: Actor,
    counter: u64,
    /// Values of dots `counter, counter-1, …`, newest first.
    values: Vec<V>,
}

/// Largest counter a state may hold. Counters grow by one per write of one
/// actor epoch to one key, so this is never reached by real use; bounding it
/// keeps arithmetic on forged or corrupt input from overflowing.
pub const MAX_COUNTER: u64 = 1 << 62;

/// A stored state that breaks the DVVSet invariants (corrupt or forged).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidVersion {
    /// A counter above [`MAX_COUNTER`]: this actor can issue no more dots
    /// for this key (the caller opens a fresh epoch).
    #[error("version counter of actor {0} is exhausted")]
    CounterExhausted(Actor),
    /// Entries are not strictly sorted by actor.
    #[error("version entries out of order at actor {0}")]
    Unsorted(Actor),
    /// An entry has a zero counter or more values than its counter.
    #[error("version entry of actor {actor} has counter {counter} and {values} values")]
    BadEntry {
        /// The actor of the entry.
        actor: Actor,
        /// Its counter.
        counter: u64,
        /// Its number of values.
        values: usize,
    },
}

impl<V> Default for DvvSet<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<V> DvvSet<V> {
    /// The state of a key never written.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no write is known at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every sibling value, in actor order, newest first within an actor.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().flat_map(|e| e.values.iter())
    }

    /// Every sibling with its dot.
    pub fn dotted_values(&self) -> impl Iterator<Item = (Dot, &V)> {
        self.entries.iter().flat_map(|e| {
            e.values.iter().enumerate().map(move |(i, v)| {
                (
                    Dot {
                        actor: e.actor,
                        counter: e.counter - i as u64,
                    },
                    v,
                )
            })
        })
    }

    /// Number of siblings.
    pub fn sibling_count(&self) -> usize {
        self.entries.iter().map(|e| e.values.len()).sum()
    }

    /// The causal context of this state: what a read hands the client.
    pub fn context(&self) -> VersionVector {
        VersionVector::from_sorted(self.entries.iter().map(|e| (e.actor, e.counter)).collect())
    }

    /// Records a write of `value`, coordinated by `actor`, by a client that
    /// had read `context`. Values the context covers are replaced; the
    /// others remain as siblings. Returns the new value's dot, or
    /// [`InvalidVersion::CounterExhausted`] (leaving the state as it was) if
    /// `actor` cannot issue another dot for this key.
    pub fn update(
        &mut self,
        context: &VersionVector,
        actor: Actor,
        value: V,
    ) -> Result<Dot, InvalidVersion> {
        let next = self.context().get(actor).max(context.get(actor)) + 1;
        if next > MAX_COUNTER {
            return Err(InvalidVersion::CounterExhausted(actor));
        }
        self.discard(context);
        let at = match self.entries.binary_search_by_key(&actor, |e| e.actor) {
            Ok(at) => at,
            Err(at) => {
                self.entries.insert(
                    at,
                    Entry {
                        actor,
                        counter: 0,
                        values: Vec::new(),
                    },
                );
                at
            }
        };
        let entry = &mut self.entries[at];
        entry.counter += 1;
        debug_assert_eq!(entry.counter, next);
        entry.values.insert(0, value);
        Ok(Dot {
            actor,
            counter: entry.counter,
        })
    }

    /// Drops every value whose dot `context` covers, and raises the counters
    /// to the context's so that merges elsewhere drop them too.
    pub fn discard(&mut self, context: &VersionVector) {
        let mut merged = Vec::with_capacity(self.entries.len().max(context.len()));
        let mut ours = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut theirs = context.iter().peekable();
        loop {
            let next_ours = ours.peek().map(|e| e.actor);
            let next_theirs = theirs.peek().map(|t| t.0);
            match (next_ours, next_theirs) {
                (None, None) => break,
                (Some(a), Some(b)) if a == b => {
                    let mut entry = ours.next().expect("peeked");
                    let (_, seen) = theirs.next().expect("peeked");
                    if seen >= entry.counter {
                        entry.counter = seen;
                        entry.values.clear();
                    } else {
                        let live = (entry.counter - seen) as usize;
                        entry.values.truncate(live);
                    }
                    merged.push(entry);
                }
                (Some(a), Some(b)) if a > b => {
                    let (actor, counter) = theirs.next().expect("peeked");
                    merged.push(Entry {
                        actor,
                        counter,
                        values: Vec::new(),
                    });
                }
                (Some(_), _) => merged.push(ours.next().expect("peeked")),
                (None, Some(_)) => {
                    let (actor, counter) = theirs.next().expect("peeked");
                    merged.push(Entry {
                        actor,
                        counter,
                        values: Vec::new(),
                    });
                }
            }
        }
        self.entries = merged;
    }

    /// Checks the invariants (for states read from disk or the network).
    pub fn validate(&self) -> Result<(), InvalidVersion> {
        for pair in self.entries.windows(2) {
            if pair[0].actor >= pair[1].actor {
                return Err(InvalidVersion::Unsorted(pair[1].actor));
            }
        }
        for e in &self.entries {
            if e.counter > MAX_COUNTER {
                return Err(InvalidVersion::CounterExhausted(e.actor));
            }
            if e.counter == 0 || e.values.len() as u64 > e.counter {
                return Err(InvalidVersion::BadEntry {
                    actor: e.actor,
                    counter: e.counter,
                    values: e.values.len(),
                });
            }
        }
        Ok(())
    }

    /// Applies `f` to every sibling, keeping the causal history.
    pub fn map_values<W>(self, mut f: impl FnMut(V) -> W) -> DvvSet<W> {
        DvvSet {
            entries: self
                .entries
                .into_iter()
                .map(|e| Entry {
                    actor: e.actor,
                    counter: e.counter,
                    values: e.values.into_iter().map(&mut f).collect(),
                })
                .collect(),
        }
    }
}

impl<V: Clone> DvvSet<V> {
    /// Merges another replica's state of the same key into this one.
    /// Returns whether this state changed (a replica then has something to
    /// store; the merge itself says so more cheaply than comparing).
    pub fn merge(&mut self, other: &DvvSet<V>) -> bool {
        if other.entries.is_empty() {
            return false;
        }
        let mut changed = false;
        let mut merged = Vec::with_capacity(self.entries.len().max(other.entries.len()));
        let mut ours = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut theirs = other.entries.iter().peekable();
        loop {
            match (ours.peek(), theirs.peek()) {
                (None, None) => break,
                (Some(a), Some(b)) if a.actor == b.actor => {
                    let a = ours.next().expect("peeked");
                    let b = theirs.next().expect("peeked");
                    changed |= a.counter < b.counter || merge_truncates(&a, b);
                    merged.push(merge_entry(a, b));
                }
                (Some(a), Some(b)) if a.actor > b.actor => {
                    merged.push(theirs.next().expect("peeked").clone());
                    changed = true;
                }
                (Some(_), _) => merged.push(ours.next().expect("peeked")),
                (None, Some(_)) => {
                    merged.push(theirs.next().expect("peeked").clone());
                    changed = true;
                }
            }
        }
        self.entries = merged;
        changed
    }

    /// `a` merged with `b`, leaving both untouched.
    pub fn merged(a: &Self, b: &Self) -> Self {
        let mut out = a.clone();
        out.merge(b);
        out
    }
}

impl<V: Clone + PartialEq> DvvSet<V> {
    /// Whether `self` already knows everything `other` knows, so sending
    /// `other` to a replica holding `self` would change nothing.
    pub fn includes(&self, other: &Self) -> bool {
        // What `merge` would do, without building the result: per actor of
        // `other`, ours must be known, at least as far, and keep no value
        // `other` knows obsolete.
        let mut ours = self.entries.iter().peekable();
        for theirs in &other.entries {
            while ours.next_if(|a| a.actor < theirs.actor).is_some() {}
            let Some(a) = ours.next_if(|a| a.actor == theirs.actor) else {
                return false;
            };
            if a.counter < theirs.counter || merge_truncates(a, theirs) {
                return false;
            }
        }
        true
    }
}

/// The highest dot of an entry's actor that `e` knows obsolete.
fn floor<V>(e: &Entry<V>) -> u64 {
    e.counter - e.values.len() as u64
}

/// Whether merging `theirs` into `ours` (same actor, ours at least as far)
/// drops values of ours that theirs knows obsolete.
fn merge_truncates<V>(ours: &Entry<V>, theirs: &Entry<V>) -> bool {
    ours.counter >= theirs.counter && floor(theirs) > floor(ours)
}

/// Merges two entries of the same actor: the larger counter, and the dots
/// live on both sides (a dot is obsolete if either side knows it obsolete).
fn merge_entry<V: Clone>(ours: Entry<V>, theirs: &Entry<V>) -> Entry<V> {
    let floor = floor(&ours).max(floor(theirs));
    if ours.counter >= theirs.counter {
        let live = (ours.counter - floor) as usize;
        let mut ours = ours;
        ours.values.truncate(live);
        ours
    } else {
        let live = (theirs.counter - floor) as usize;
        Entry {
            actor: theirs.actor,
            counter: theirs.counter,
            values: theirs.values[..live].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorra_ring::NodeId;

    fn actor(n: u64) -> Actor {
        Actor::new(NodeId(n), 0)
    }

    fn values(s: &DvvSet<&'static str>) -> Vec<&'static str> {
        let mut v: Vec<_> = s.values().copied().collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn write_with_context_replaces_what_was_read() {
        let mut s = DvvSet::new();
        s.update(&VersionVector::new(), actor(1), "a").unwrap();
        let ctx = s.context();
        s.update(&ctx, actor(1), "b").unwrap();
        assert_eq!(values(&s), vec!["b"]);
    }

    #[test]
    fn blind_writes_become_siblings() {
        let mut s = DvvSet::new();
        s.update(&VersionVector::new(), actor(1), "a").unwrap();
        s.update(&VersionVector::new(), actor(1), "b").unwrap();
        assert_eq!(values(&s), vec!["a", "b"]);
        let ctx = s.context();
        s.update(&ctx, actor(2), "c").unwrap();
        assert_eq!(values(&s), vec!["c"]);
    }

    #[test]
    fn concurrent_writes_on_two_replicas_merge_to_siblings() {
        let mut x = DvvSet::new();
        let mut y = DvvSet::new();
        x.update(&VersionVector::new(), actor(1), "x").unwrap();
        y.update(&VersionVector::new(), actor(2), "y").unwrap();
        let mut m = x.clone();
        m.merge(&y);
        assert_eq!(values(&m), vec!["x", "y"]);
        // A write that saw only x, coordinated on y's replica, keeps y.
        y.update(&x.context(), actor(2), "x2").unwrap();
        m.merge(&y);
        assert_eq!(values(&m), vec!["x2", "y"]);
    }

    #[test]
    fn an_exhausted_counter_is_an_error_not_an_overflow() {
        let mut s: DvvSet<&str> = DvvSet::new();
        let ctx = VersionVector::from_pairs([(actor(1), MAX_COUNTER)]);
        assert_eq!(
            s.update(&ctx, actor(1), "x"),
            Err(InvalidVersion::CounterExhausted(actor(1)))
        );
        assert!(s.is_empty(), "state unchanged");
        assert!(
            s.update(&ctx, actor(2), "x").is_ok(),
            "another actor can write"
        );
    }

    #[test]
    fn validate_rejects_broken_states() {
        let mut s = DvvSet::new();
        s.update(&VersionVector::new(), actor(1), "a").unwrap();
        assert!(s.validate().is_ok());
        s.entries[0].counter = 0;
        assert!(s.validate().is_err());
        let mut t = DvvSet::new();
        t.update(&VersionVector::new(), actor(2), "a").unwrap();
        t.update(&VersionVector::new(), actor(1), "b").unwrap();
        t.entries.swap(0, 1);
        assert!(matches!(t.validate(), Err(InvalidVersion::Unsorted(_))));
    }
}
