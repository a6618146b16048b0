//! What a Redis key holds inside a Quorra value, and how its siblings
//! resolve to the one value a Redis client sees.
//!
//! Quorra values are opaque bytes, so the gateway stores an envelope: the
//! prefix [`MAGIC`] and an rmp-encoded [`Stored`]: the data (a string, or a
//! counter), the writer's hybrid logical clock stamp and an expiry. TTL and
//! counters therefore travel as ordinary values under the usual version
//! rules: the store never drops a sibling. Bytes without the prefix
//! (written through the SDK or the CLI) read as plain strings, with no
//! expiry, older than anything the gateway wrote.
//!
//! ## Resolution ([`resolve_at`])
//!
//! - Counter siblings that have not expired are **joined**
//!   ([`PnCounter::join`]): a PN-counter keeps one increment and one
//!   decrement total per node, so concurrent `INCR`s through different
//!   nodes, or on both sides of a partition, are all counted. An expired
//!   counter never joins: its counts do not come back.
//! - String siblings: the one with the latest stamp (the stamp orders by
//!   wall time, then a logical counter, then node id: the same choice on
//!   every node), but all stay stored until a write replaces them.
//! - The **latest** of the latest string, the joined counter and the latest
//!   expired counter decides, and **expiry applies to it**: if it has
//!   expired, the key is absent, whatever older siblings still hold. A
//!   `SET k v EX n` that became a sibling of an older value (it skipped
//!   the read, and its coordinator had missed that value) therefore hides
//!   the older value for good: once `v` has shown, the older value never
//!   shows again, not even after `v` expires. A sibling with an earlier
//!   stamp never outlives a later one.
//!
//! The choice depends only on the set of siblings, never on their order.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The prefix of every value the gateway writes.
pub const MAGIC: &[u8] = b"\xffQR1";

/// A hybrid logical clock stamp: wall milliseconds, then a logical counter
/// for stamps within one millisecond, then the node id, so that no two
/// writes of different nodes share a stamp.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch, as the writer's clock read them
    /// (or later, if it had seen a later stamp).
    pub wall_ms: u64,
    /// Orders stamps of the same millisecond.
    pub logical: u32,
    /// The writing node.
    pub node: u64,
}

impl Hlc {
    /// The next stamp of `node` after `last` (the latest stamp it has
    /// issued or seen), with its clock reading `wall_ms`: never below
    /// `last`, so stamps stay ordered across clock steps backwards.
    pub fn next(last: Hlc, wall_ms: u64, node: u64) -> Hlc {
        if wall_ms > last.wall_ms {
            Hlc {
                wall_ms,
                logical: 0,
                node,
            }
        } else {
            Hlc {
                wall_ms: last.wall_ms,
                logical: last.logical.saturating_add(1),
                node,
            }
        }
    }
}

/// Who changed a counter: the node and the epoch of the actor the write
/// was issued under (see [`crate::core::update`]: an actor's entry always
/// grows from its own last value).
pub type Writer = (u64, u64);

/// A PN-counter: per writer, the total it added and the total it removed,
/// on top of a base (the integer of the string it started from).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    /// The value it started from.
    pub base: i64,
    /// When the base was set (a later base replaces the counts on an older one).
    pub base_stamp: Hlc,
    /// Per writer: the sum of its increments.
    pub incs: BTreeMap<Writer, u64>,
    /// Per writer: the sum of its decrements.
    pub decs: BTreeMap<Writer, u64>,
}

impl PnCounter {
    /// A counter starting at `base`, set at `stamp`.
    pub fn starting_at(base: i64, stamp: Hlc) -> Self {
        Self {
            base,
            base_stamp: stamp,
            ..Self::default()
        }
    }

    /// The counter's value, if it fits an `i64`.
    pub fn value(&self) -> Option<i64> {
        let up: i128 = self.incs.values().map(|&v| i128::from(v)).sum();
        let down: i128 = self.decs.values().map(|&v| i128::from(v)).sum();
        i64::try_from(i128::from(self.base) + up - down).ok()
    }

    /// Adds `by` (negative: subtracts) as `writer`. Fails, changing nothing,
    /// if the result would not fit an `i64` (Redis's "increment or
    /// decrement would overflow").
    pub fn add(&mut self, writer: Writer, by: i64) -> Result<i64, CounterOverflow> {
        let now = self.value().ok_or(CounterOverflow)?;
        let next = now.checked_add(by).ok_or(CounterOverflow)?;
        let totals = if by >= 0 {
            &mut self.incs
        } else {
            &mut self.decs
        };
        let entry = totals.entry(writer).or_default();
        *entry = entry
            .checked_add(by.unsigned_abs())
            .ok_or(CounterOverflow)?;
        Ok(next)
    }

    /// The join of two counters: the later base wins; on the same base,
    /// each node's totals are the larger of the two. Commutative,
    /// associative and idempotent, so replicas converge whatever order
    /// they merge in.
    pub fn join(&self, other: &PnCounter) -> PnCounter {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self.base_stamp.cmp(&other.base_stamp) {
            Greater => self.clone(),
            Less => other.clone(),
            Equal => {
                let max = |a: &BTreeMap<Writer, u64>, b: &BTreeMap<Writer, u64>| {
                    let mut out = a.clone();
                    for (&n, &v) in b {
                        let e = out.entry(n).or_default();
                        *e = (*e).max(v);
                    }
                    out
                };
                PnCounter {
                    base: self.base.max(other.base),
                    base_stamp: self.base_stamp,
                    incs: max(&self.incs, &other.incs),
                    decs: max(&self.decs, &other.decs),
                }
            }
        }
    }
}

/// A counter change would overflow an `i64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("increment or decrement would overflow")]
pub struct CounterOverflow;

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Data {
    /// A string (`SET`).
    Str(Bytes),
    /// A counter (`INCR` and friends).
    Counter(PnCounter),
}

/// One stored value of a key (one sibling).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The data.
    pub data: Data,
    /// When it was written (for a counter: its latest change).
    pub stamp: Hlc,
    /// When it expires, in Unix milliseconds by the writer's clock.
    pub expires_at_ms: Option<u64>,
}

impl Stored {
    /// Whether it has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }

    /// The envelope, as stored in Quorra.
    pub fn encode(&self) -> Bytes {
        let mut out = MAGIC.to_vec();
        rmp_serde::encode::write(&mut out, self).expect("encoding into a Vec cannot fail");
        Bytes::from(out)
    }

    /// Reads a stored value: an envelope, or plain bytes (a string with no
    /// stamp or expiry). A corrupt envelope reads as the plain bytes too,
    /// so nothing stored is ever unreadable.
    pub fn decode(bytes: &Bytes) -> Stored {
        bytes
            .strip_prefix(MAGIC)
            .and_then(|body| rmp_serde::from_slice(body).ok())
            .unwrap_or_else(|| Stored {
                data: Data::Str(bytes.clone()),
                stamp: Hlc::default(),
                expires_at_ms: None,
            })
    }
}

/// The value a Redis client sees at `now_ms` among a key's decoded
/// siblings (see the module documentation): the latest sibling decides,
/// and expiry applies to it. `None`: absent (no siblings, or the latest has
/// expired).
pub fn resolve_at(siblings: impl IntoIterator<Item = Stored>, now_ms: u64) -> Option<Stored> {
    let mut live_counters = Vec::new();
    let mut expired_counter: Option<Stored> = None;
    let mut string: Option<Stored> = None;
    for s in siblings {
        let slot = match s.data {
            Data::Counter(_) if !s.expired(now_ms) => {
                live_counters.push(s);
                continue;
            }
            Data::Counter(_) => &mut expired_counter,
            Data::Str(_) => &mut string,
        };
        if slot.as_ref().is_none_or(|held| later(&s, held)) {
            *slot = Some(s);
        }
    }
    let winner = [join_counters(live_counters), string, expired_counter]
        .into_iter()
        .flatten()
        .reduce(|a, b| if later(&b, &a) { b } else { a })?;
    (!winner.expired(now_ms)).then_some(winner)
}

/// The join of counter siblings, with the stamp and expiry of the latest
/// of them (chosen among the siblings as they are, not among partial
/// joins, so the result does not depend on their order). `None` for none.
fn join_counters(counters: Vec<Stored>) -> Option<Stored> {
    let latest = counters
        .iter()
        .reduce(|a, b| if later(b, a) { b } else { a })?;
    let (stamp, expires_at_ms) = (latest.stamp, latest.expires_at_ms);
    let mut counts = counters.iter().map(|s| match &s.data {
        Data::Counter(c) => c,
        Data::Str(_) => unreachable!("only counters are joined"),
    });
    let first = counts.next()?.clone();
    let joined = counts.fold(first, |a, c| a.join(c));
    Some(Stored {
        data: Data::Counter(joined),
        stamp,
        expires_at_ms,
    })
}

/// Whether `a` is later than `b`: by stamp, then (equal stamps only come
/// from plain values, or from copies of one write) by bytes and expiry, so
/// the choice is the same on every node whatever the siblings' order.
fn later(a: &Stored, b: &Stored) -> bool {
    (a.stamp, encoded_data(a), a.expires_at_ms) > (b.stamp, encoded_data(b), b.expires_at_ms)
}

fn encoded_data(s: &Stored) -> Vec<u8> {
    rmp_serde::to_vec(&s.data).unwrap_or_default()
}
