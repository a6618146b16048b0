//! The gateway's updates: what `SET`, `INCR`, `EXPIRE`, `DEL` and the
//! expiry sweeper do to a key, applied by the coordinating primary to its
//! own copy (see [`crate::core::update`]).
//!
//! Each command travels as an [`Update`]: the operation and the wall
//! clock of the gateway that received it. Every command but a plain `SET`
//! (with or without an expiry) first reads the key at the request's read
//! quorum and merges the answers into the coordinator's copy
//! ([`Updater::reads_first`]); the sweeper's purge does too, so that its
//! tombstone covers every value a quorum holds (a purge of only the
//! coordinator's copy would leave an older sibling it had missed, and
//! that value would show again). The coordinator resolves its copy's
//! siblings to the value a client sees ([`visible`]: the latest sibling,
//! if it has not expired), checks the command's condition,
//! and writes the new value over everything it holds, stamped with the
//! next hybrid-logical-clock stamp after every stamp in its copy. A
//! counter's entry is the write's actor, so increments are never lost
//! when siblings merge; a counter created from nothing asks for a fresh
//! actor ([`crate::core::update::Applied::fresh_writer`]). The answer ([`Answer`]) tells the gateway what to
//! reply.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::value::{Data, Hlc, PnCounter, Stored, resolve_at};
use crate::core::update::{Applied, Change, Updater};
use crate::version::Actor;

/// How a `SET` treats the key's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetExpiry {
    /// No expiry (a plain `SET` clears one).
    Never,
    /// At this Unix millisecond.
    At(u64),
    /// Whatever the key had (`KEEPTTL`).
    Keep,
}

/// What a command does to one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `SET`: write `value`, if the condition holds (`Some(true)`: only if
    /// present, `Some(false)`: only if absent).
    Set {
        /// The value.
        value: Bytes,
        /// Its expiry.
        expiry: SetExpiry,
        /// `XX` (`Some(true)`) or `NX` (`Some(false)`).
        present: Option<bool>,
        /// `GET`: the old value is wanted.
        want_old: bool,
    },
    /// `INCRBY` and friends.
    Add(i64),
    /// `EXPIRE` (`Some(at)`, Unix ms; at or before now deletes the key)
    /// and `PERSIST` (`None`).
    Expire(Option<u64>),
    /// `DEL`.
    Delete,
    /// The sweeper: delete the key if every value it holds has expired.
    Purge,
}

/// An operation and when the gateway received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// The operation.
    pub op: Op,
    /// The receiving gateway's wall clock, Unix ms.
    pub now_ms: u64,
}

impl Update {
    /// The encoding sent in a [`quorra_client::Request::Update`].
    pub fn encode(&self) -> Bytes {
        Bytes::from(rmp_serde::to_vec(self).expect("encoding into a Vec cannot fail"))
    }
}

/// What the gateway is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// `SET`: whether it wrote, and the value before (for `SET ... GET`).
    Set {
        /// Whether the value was written (false: the condition failed).
        written: bool,
        /// The value the key had, as `GET` would have shown it.
        old: Option<Bytes>,
    },
    /// The counter's new value.
    Counter(i64),
    /// `EXPIRE`, `PERSIST`, `DEL`, purge: whether anything changed.
    Changed(bool),
}

impl Answer {
    /// Reads an answer; `None` if it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Answer> {
        rmp_serde::from_slice(bytes).ok()
    }

    fn encode(&self) -> Bytes {
        Bytes::from(rmp_serde::to_vec(self).expect("encoding into a Vec cannot fail"))
    }
}

/// What a resolved value shows as a Redis string: its bytes, or a
/// counter's decimal value.
pub fn as_string(stored: &Stored) -> Bytes {
    match &stored.data {
        Data::Str(b) => b.clone(),
        Data::Counter(c) => match c.value() {
            Some(v) => Bytes::from(v.to_string()),
            // Unreachable through the gateway, which refuses overflow;
            // shown rather than hidden.
            None => Bytes::from_static(b"overflow"),
        },
    }
}

/// The value a client sees among `values` at `now_ms`: the latest sibling,
/// if it has not expired ([`resolve_at`]: expiry applies to the winner, so
/// a value replaced by a later one never comes back when that one
/// expires; an expired counter never joins a live one).
pub fn visible<'a>(values: impl IntoIterator<Item = &'a Bytes>, now_ms: u64) -> Option<Stored> {
    resolve_at(values.into_iter().map(Stored::decode), now_ms)
}

/// Redis's error for a value that is not an integer.
pub const NOT_AN_INTEGER: &str = "value is not an integer or out of range";

/// The RESP gateway's [`Updater`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RespUpdater;

impl Updater for RespUpdater {
    fn apply(&self, update: &[u8], values: &[Bytes], writer: Actor) -> Result<Applied, String> {
        let update: Update =
            rmp_serde::from_slice(update).map_err(|e| format!("malformed update: {e}"))?;
        apply(&update, values, writer)
    }

    /// Only a plain `SET` (no condition, no `GET`, no `KEEPTTL`; an
    /// expiry is allowed) goes without a read: it replaces whatever is
    /// there, and a value it missed stays a sibling that its later stamp
    /// hides for good ([`visible`]).
    fn reads_first(&self, update: &[u8]) -> bool {
        match rmp_serde::from_slice::<Update>(update).map(|u| u.op) {
            Ok(Op::Set {
                present: None,
                want_old: false,
                expiry,
                ..
            }) => expiry == SetExpiry::Keep,
            _ => true,
        }
    }
}

fn applied(change: Change, answer: Answer) -> Applied {
    Applied {
        change,
        answer: answer.encode(),
        fresh_writer: false,
    }
}

fn keep(answer: Answer) -> Applied {
    applied(Change::Keep, answer)
}

fn put(stored: Stored, answer: Answer) -> Applied {
    applied(Change::Put(stored.encode()), answer)
}

fn delete(answer: Answer) -> Applied {
    applied(Change::Delete, answer)
}

/// Applies `update` to the live `values` of the coordinator's copy as
/// `writer` (see the module documentation).
pub fn apply(update: &Update, values: &[Bytes], writer: Actor) -> Result<Applied, String> {
    let now = update.now_ms;
    let held: Vec<Stored> = values.iter().map(Stored::decode).collect();
    // After every stamp held, expired values included, so the write wins
    // over all of them on every node.
    let last = held.iter().map(|s| s.stamp).max().unwrap_or_default();
    let current = resolve_at(held, now);
    let stamp = Hlc::next(last, now, writer.node.0);
    Ok(match &update.op {
        Op::Set {
            value,
            expiry,
            present,
            ..
        } => {
            let old = current.as_ref().map(as_string);
            if present.is_some_and(|want| want != current.is_some()) {
                return Ok(keep(Answer::Set {
                    written: false,
                    old,
                }));
            }
            let expires_at_ms = match expiry {
                SetExpiry::Never => None,
                SetExpiry::At(at) => Some(*at),
                SetExpiry::Keep => current.as_ref().and_then(|c| c.expires_at_ms),
            };
            let stored = Stored {
                data: Data::Str(value.clone()),
                stamp,
                expires_at_ms,
            };
            put(stored, Answer::Set { written: true, old })
        }
        Op::Add(by) => {
            let created = current.is_none();
            let (mut counter, expires_at_ms) = match current {
                // From nothing, on the oldest base: counters that several
                // nodes create at once (none seeing the others) join. Under
                // a fresh writer: an older counter kept alive by a
                // concurrent writer may hold an entry of this node's
                // current one, at a higher total.
                None => (PnCounter::default(), None),
                Some(Stored {
                    data: Data::Counter(c),
                    expires_at_ms,
                    ..
                }) => (c, expires_at_ms),
                Some(Stored {
                    data: Data::Str(s),
                    stamp: set_at,
                    expires_at_ms,
                }) => {
                    let base = redis_integer(&s).ok_or(NOT_AN_INTEGER)?;
                    // Based on the string's stamp, so that concurrent
                    // increments of the same string join.
                    (PnCounter::starting_at(base, set_at), expires_at_ms)
                }
            };
            let value = counter
                .add((writer.node.0, writer.epoch), *by)
                .map_err(|e| e.to_string())?;
            let stored = Stored {
                data: Data::Counter(counter),
                stamp,
                expires_at_ms,
            };
            Applied {
                fresh_writer: created,
                ..put(stored, Answer::Counter(value))
            }
        }
        Op::Expire(at) => match (current, at) {
            (None, _) => keep(Answer::Changed(false)),
            (Some(_), Some(at)) if *at <= now => delete(Answer::Changed(true)),
            (Some(c), None) if c.expires_at_ms.is_none() => keep(Answer::Changed(false)),
            (Some(c), at) => put(
                Stored {
                    stamp,
                    expires_at_ms: *at,
                    ..c
                },
                Answer::Changed(true),
            ),
        },
        Op::Delete => match current {
            Some(_) => delete(Answer::Changed(true)),
            // Only expired values: removed, but nothing a client could see.
            None if !values.is_empty() => delete(Answer::Changed(false)),
            None => keep(Answer::Changed(false)),
        },
        Op::Purge => match current {
            None if !values.is_empty() => delete(Answer::Changed(true)),
            _ => keep(Answer::Changed(false)),
        },
    })
}

/// An integer as Redis reads one from a string: optional minus, decimal
/// digits, no spaces or plus sign, no leading zeros, fits an `i64`.
pub fn redis_integer(b: &[u8]) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && b != b"-0";
    if !canonical {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorra_ring::NodeId;

    fn writer(node: u64) -> Actor {
        Actor::new(NodeId(node), 1 << 32)
    }

    fn run(op: Op, now_ms: u64, values: &[Bytes], node: u64) -> (Change, Answer) {
        let applied = apply(&Update { op, now_ms }, values, writer(node)).unwrap();
        (applied.change, Answer::decode(&applied.answer).unwrap())
    }

    fn written(change: Change) -> Stored {
        match change {
            Change::Put(b) => Stored::decode(&b),
            other => panic!("expected a put, got {other:?}"),
        }
    }

    fn set(value: &str, expiry: SetExpiry, present: Option<bool>) -> Op {
        Op::Set {
            value: Bytes::from(value.to_string()),
            expiry,
            present,
            want_old: false,
        }
    }

    #[test]
    fn set_conditions_see_expired_values_as_absent() {
        let (c, _) = run(set("a", SetExpiry::At(100), None), 10, &[], 1);
        let held = written(c).encode();
        let (c, a) = run(
            set("b", SetExpiry::Never, Some(false)),
            50,
            std::slice::from_ref(&held),
            1,
        );
        assert_eq!(c, Change::Keep);
        assert_eq!(
            a,
            Answer::Set {
                written: false,
                old: Some(Bytes::from("a"))
            }
        );
        // At 100 it has expired: NX succeeds, XX does not.
        let (c, _) = run(
            set("b", SetExpiry::Never, Some(false)),
            100,
            std::slice::from_ref(&held),
            1,
        );
        assert_eq!(written(c).data, Data::Str(Bytes::from("b")));
        let (c, _) = run(set("b", SetExpiry::Never, Some(true)), 100, &[held], 1);
        assert_eq!(c, Change::Keep);
    }

    #[test]
    fn keepttl_keeps_and_a_plain_set_clears_the_expiry() {
        let (c, _) = run(set("a", SetExpiry::At(500), None), 10, &[], 1);
        let held = written(c).encode();
        let (c, _) = run(
            set("b", SetExpiry::Keep, None),
            20,
            std::slice::from_ref(&held),
            1,
        );
        assert_eq!(written(c).expires_at_ms, Some(500));
        let (c, _) = run(set("b", SetExpiry::Never, None), 20, &[held], 1);
        assert_eq!(written(c).expires_at_ms, None);
    }

    #[test]
    fn a_write_is_stamped_after_everything_held_even_if_the_clock_is_behind() {
        let (c, _) = run(set("a", SetExpiry::Never, None), 1_000, &[], 1);
        let held = written(c);
        let (c, _) = run(set("b", SetExpiry::Never, None), 10, &[held.encode()], 2);
        assert!(written(c).stamp > held.stamp);
    }

    #[test]
    fn counters_start_from_integers_and_refuse_other_strings() {
        let (c, a) = run(Op::Add(5), 1, &[], 1);
        assert_eq!(a, Answer::Counter(5));
        let held = written(c).encode();
        let (_, a) = run(Op::Add(-7), 2, &[held], 1);
        assert_eq!(a, Answer::Counter(-2));
        let (c, _) = run(set("41", SetExpiry::At(99), None), 1, &[], 1);
        let (c, a) = run(Op::Add(1), 2, &[written(c).encode()], 1);
        assert_eq!(a, Answer::Counter(42));
        assert_eq!(written(c).expires_at_ms, Some(99), "INCR keeps the TTL");
        for bad in ["x", " 1", "+1", "01", "-0", "", "99999999999999999999"] {
            let (c, _) = run(set(bad, SetExpiry::Never, None), 1, &[], 1);
            let e = apply(
                &Update {
                    op: Op::Add(1),
                    now_ms: 2,
                },
                &[written(c).encode()],
                writer(1),
            )
            .unwrap_err();
            assert_eq!(e, NOT_AN_INTEGER, "{bad:?}");
        }
    }

    #[test]
    fn increments_through_two_coordinators_from_one_state_both_count() {
        let (c, _) = run(Op::Add(10), 1, &[], 1);
        let base = written(c).encode();
        let (a, _) = run(Op::Add(1), 2, std::slice::from_ref(&base), 1);
        let (b, _) = run(Op::Add(2), 2, &[base], 2);
        let siblings = [written(a).encode(), written(b).encode()];
        let joined = visible(&siblings, 3).unwrap();
        assert_eq!(as_string(&joined), Bytes::from("13"));
    }

    #[test]
    fn counters_created_at_once_through_three_coordinators_join() {
        let siblings: Vec<Bytes> = (1..=3)
            .map(|node| written(run(Op::Add(1), 10 + node, &[], node).0).encode())
            .collect();
        let joined = visible(&siblings, 20).unwrap();
        assert_eq!(as_string(&joined), Bytes::from("3"));
        // And the next increment, from all three, counts all four.
        let (_, a) = run(Op::Add(1), 30, &siblings, 2);
        assert_eq!(a, Answer::Counter(4));
    }

    #[test]
    fn an_expired_counter_never_joins_a_live_one() {
        // A counter that expired on one side of a partition, and one made
        // afresh on the other: the old counts do not come back.
        let (old, _) = run(Op::Add(40), 1, &[], 1);
        let (old, _) = run(Op::Expire(Some(50)), 2, &[written(old).encode()], 1);
        let (new, _) = run(Op::Add(2), 60, &[], 2);
        let siblings = [written(old).encode(), written(new).encode()];
        assert_eq!(
            as_string(&visible(&siblings, 40).unwrap()),
            Bytes::from("42")
        );
        assert_eq!(
            as_string(&visible(&siblings, 70).unwrap()),
            Bytes::from("2")
        );
    }

    #[test]
    fn a_set_with_an_expiry_that_missed_an_older_value_hides_it_for_good() {
        // The issue-15 story: `SET k v3` acknowledged through node 2 at
        // t=100; node 1, which missed it, coordinates `SET k v2 EX` at
        // t=200 without reading, so v2 becomes a sibling of v3.
        let (v3, _) = run(set("v3", SetExpiry::Never, None), 100, &[], 2);
        let (v2, _) = run(set("v2", SetExpiry::At(300), None), 200, &[], 1);
        let siblings = [written(v3).encode(), written(v2).encode()];
        assert_eq!(as_string(&visible(&siblings, 250).unwrap()), "v2");
        // v2 expires: the key is gone, v3 does not come back...
        assert_eq!(visible(&siblings, 300), None);
        assert_eq!(visible(&siblings, 10_000), None);
        // ...and the sweeper's purge removes both.
        assert_eq!(
            run(Op::Purge, 300, &siblings, 1),
            (Change::Delete, Answer::Changed(true))
        );
        // Commands that read see the key as absent, as GET does.
        let (c, a) = run(set("x", SetExpiry::Never, Some(true)), 300, &siblings, 1);
        assert_eq!(c, Change::Keep, "XX of an expired key writes nothing");
        assert_eq!(
            a,
            Answer::Set {
                written: false,
                old: None
            }
        );
    }

    #[test]
    fn the_latest_sibling_decides_even_against_a_live_older_one() {
        // Two concurrent SETs: the later stamp shows; once it expires, the
        // key is absent rather than showing the value it had beaten.
        let (keep, _) = run(set("stays", SetExpiry::Never, None), 1, &[], 1);
        let (gone, _) = run(set("goes", SetExpiry::At(50), None), 2, &[], 2);
        let siblings = [written(keep).encode(), written(gone).encode()];
        assert_eq!(as_string(&visible(&siblings, 10).unwrap()), "goes");
        assert_eq!(visible(&siblings, 50), None);
        // An earlier stamp with an expiry never hides a later live value.
        let (early, _) = run(set("early", SetExpiry::At(50), None), 1, &[], 1);
        let (late, _) = run(set("late", SetExpiry::Never, None), 2, &[], 2);
        let siblings = [written(early).encode(), written(late).encode()];
        assert_eq!(as_string(&visible(&siblings, 10).unwrap()), "late");
        assert_eq!(as_string(&visible(&siblings, 60).unwrap()), "late");
        // A later string beats a live counter, and its expiry hides it too.
        let (counter, _) = run(Op::Add(5), 1, &[], 1);
        let (string, _) = run(set("s", SetExpiry::At(50), None), 2, &[], 2);
        let siblings = [written(counter).encode(), written(string).encode()];
        assert_eq!(as_string(&visible(&siblings, 10).unwrap()), "s");
        assert_eq!(visible(&siblings, 50), None);
    }

    #[test]
    fn only_a_plain_set_skips_the_read() {
        let reads = |op: Op| RespUpdater.reads_first(&Update { op, now_ms: 1 }.encode());
        assert!(!reads(set("v", SetExpiry::Never, None)));
        assert!(!reads(set("v", SetExpiry::At(9), None)));
        assert!(reads(set("v", SetExpiry::Keep, None)));
        assert!(reads(set("v", SetExpiry::Never, Some(false))));
        for op in [Op::Add(1), Op::Expire(None), Op::Delete, Op::Purge] {
            assert!(reads(op.clone()), "{op:?}");
        }
    }

    #[test]
    fn expire_persist_delete_and_purge() {
        let (c, _) = run(set("v", SetExpiry::Never, None), 1, &[], 1);
        let held = written(c).encode();
        assert_eq!(
            run(Op::Expire(None), 2, std::slice::from_ref(&held), 1),
            (Change::Keep, Answer::Changed(false)),
            "PERSIST without a TTL"
        );
        let (c, a) = run(Op::Expire(Some(50)), 2, std::slice::from_ref(&held), 1);
        assert_eq!(a, Answer::Changed(true));
        let expiring = written(c);
        assert_eq!(expiring.expires_at_ms, Some(50));
        assert_eq!(
            run(Op::Expire(Some(2)), 2, std::slice::from_ref(&held), 1),
            (Change::Delete, Answer::Changed(true)),
            "an expiry in the past deletes"
        );
        assert_eq!(
            run(Op::Expire(Some(9)), 2, &[], 1),
            (Change::Keep, Answer::Changed(false))
        );
        let e = expiring.encode();
        assert_eq!(
            run(Op::Purge, 49, std::slice::from_ref(&e), 1),
            (Change::Keep, Answer::Changed(false))
        );
        assert_eq!(
            run(Op::Purge, 50, std::slice::from_ref(&e), 1),
            (Change::Delete, Answer::Changed(true))
        );
        assert_eq!(
            run(Op::Delete, 50, &[e], 1),
            (Change::Delete, Answer::Changed(false)),
            "DEL of an expired key removes it but counts nothing"
        );
        assert_eq!(
            run(Op::Delete, 2, &[held], 1),
            (Change::Delete, Answer::Changed(true))
        );
    }
}
