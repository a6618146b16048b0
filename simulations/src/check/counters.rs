//! Counters, exactly: every acknowledged increment counts once, every
//! other increment counts once or not at all, and nothing else counts.
//!
//! Counter keys are only ever incremented by 1 (the gateway's `INCR`, an
//! update the coordinating primary applies under an actor, the *writer*).
//! A PN-counter holds per writer the total of its increments, and a writer
//! continues only from a copy that holds its last total, so the
//! coordinations under one writer produce the totals 1, 2, 3, ... in turn,
//! and the final counter's total `T` for a writer says that exactly its
//! coordinations up to `T` took effect. The updater's log
//! ([`crate::updater`]) gives each coordination's writer and the total it
//! wrote, so the checker knows which increments took effect, acknowledged
//! or not:
//!
//! - each acknowledged increment that is owed ([`History::owed`]) took
//!   effect;
//! - no increment took effect twice (coordinated by two nodes, or twice by
//!   one);
//! - no writer issued the same total twice (which a reused incarnation
//!   would do: two increments, one count);
//! - the counter's value is the number of increments that took effect.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use quorra_node::core::ClientTag;
use quorra_node::resp::update::visible;
use quorra_node::resp::value::{Data, PnCounter, Stored, Writer};

use super::{Check, FinalState, Violation};
use crate::history::{History, Kind};

/// A coordination of an increment: the writer and the total it wrote.
fn total_written(value: &Bytes, writer: Writer) -> Option<u64> {
    match Stored::decode(value).data {
        Data::Counter(c) => c.incs.get(&writer).copied(),
        Data::Str(_) => None,
    }
}

/// Checks the counter keys.
pub fn check(history: &History, fin: &FinalState, counter_keys: &[usize]) -> Vec<Violation> {
    let log = &history.applications;
    let coordinations: Vec<usize> = log.coordinations();
    let mut out = Vec::new();
    for &key in counter_keys {
        let violation = |record, detail| Violation {
            check: Check::Counters,
            key: Some(key),
            record,
            detail,
        };
        let increments: BTreeMap<ClientTag, usize> = history
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key == key && r.kind == Kind::Incr)
            .map(|(i, r)| (r.tag, i))
            .collect();
        let values: Vec<Bytes> = fin.values(key).into_iter().collect();
        let counter = match visible(&values, 0).map(|s| s.data) {
            None => PnCounter::default(),
            Some(Data::Counter(c)) => c,
            Some(Data::Str(s)) => {
                out.push(violation(
                    None,
                    format!("the counter holds the string {s:?}"),
                ));
                continue;
            }
        };
        // Per operation, the coordinations that took effect; per writer,
        // the totals issued.
        let mut effective: BTreeMap<ClientTag, usize> = BTreeMap::new();
        let mut issued: BTreeMap<(Writer, u64), ClientTag> = BTreeMap::new();
        for &c in &coordinations {
            let a = &log.applications[c];
            let Some(&record) = increments.get(&a.tag) else {
                continue;
            };
            let Some(value) = a.written() else {
                continue;
            };
            let writer = (a.writer.node.0, a.writer.epoch);
            let Some(total) = total_written(value, writer) else {
                out.push(violation(
                    Some(record),
                    format!("an increment wrote no total for its writer {writer:?}"),
                ));
                continue;
            };
            if let Some(other) = issued.insert((writer, total), a.tag) {
                out.push(violation(
                    Some(record),
                    format!(
                        "writer {writer:?} issued total {total} twice (operations {other} and {})",
                        a.tag
                    ),
                ));
            }
            if counter.incs.get(&writer).is_some_and(|&t| total <= t) {
                *effective.entry(a.tag).or_default() += 1;
            }
        }
        for (&tag, &times) in &effective {
            if times > 1 {
                out.push(violation(
                    Some(increments[&tag]),
                    format!("this increment was counted {times} times"),
                ));
            }
        }
        for (&tag, &i) in &increments {
            if history.owed(i) && !effective.contains_key(&tag) {
                out.push(violation(
                    Some(i),
                    "this acknowledged increment is not counted".to_string(),
                ));
            }
        }
        let counted: u64 = effective.values().map(|&t| t as u64).sum();
        let writers: BTreeSet<Writer> = issued.keys().map(|(w, _)| *w).collect();
        let strangers: Vec<&Writer> = counter
            .incs
            .keys()
            .filter(|w| !writers.contains(w))
            .collect();
        let value = counter.value();
        if value != i64::try_from(counted).ok() || !strangers.is_empty() || !counter.decs.is_empty()
        {
            out.push(violation(
                None,
                format!(
                    "the counter reads {value:?}, but {counted} increments took effect \
                     (writers nobody logged: {strangers:?}; decrements: {:?})",
                    counter.decs
                ),
            ));
        }
    }
    out
}

/// The counter check where no updater log exists (real processes, see
/// [`crate::chaos`]): which coordination wrote which total is not known
/// there, so only the bounds can be checked: the final count is at least
/// the acknowledged increments that are owed ([`History::owed`]) and at
/// most every increment sent (acknowledged, failed or unanswered, since
/// any of those may have taken effect), and nothing decremented it. A lost
/// acknowledged increment hides behind an unacknowledged one that took
/// effect; a double count behind one that did not. The exact check above
/// finds both.
pub fn check_bounds(history: &History, fin: &FinalState, counter_keys: &[usize]) -> Vec<Violation> {
    let mut out = Vec::new();
    for &key in counter_keys {
        let sent = history.on_key(key).filter(|r| r.kind == Kind::Incr).count() as i64;
        let owed = history
            .records
            .iter()
            .enumerate()
            .filter(|(i, r)| r.key == key && r.kind == Kind::Incr && history.owed(*i))
            .count() as i64;
        let values: Vec<Bytes> = fin.values(key).into_iter().collect();
        let counter = match visible(&values, 0).map(|s| s.data) {
            None => PnCounter::default(),
            Some(Data::Counter(c)) => c,
            Some(Data::Str(s)) => {
                out.push(Violation {
                    check: Check::Counters,
                    key: Some(key),
                    record: None,
                    detail: format!("the counter holds the string {s:?}"),
                });
                continue;
            }
        };
        let value = counter.value().unwrap_or(i64::MAX);
        if value < owed || value > sent || !counter.decs.is_empty() {
            out.push(Violation {
                check: Check::Counters,
                key: Some(key),
                record: None,
                detail: format!(
                    "the counter reads {value}, but {owed} acknowledged increments are owed \
                     and {sent} were sent (decrements: {:?})",
                    counter.decs
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quorra_client::Consistency;
    use quorra_node::resp::value::Hlc;
    use quorra_node::version::{Actor, Object, Sibling, VersionVector};
    use quorra_ring::NodeId;

    use super::*;
    use crate::history::{Outcome, Record};

    /// A history of `acked` acknowledged and `lost` unanswered increments
    /// of key 0, and a final state where the counter reads `reads`.
    fn case(acked: usize, lost: usize, reads: u64) -> Vec<Violation> {
        let record = |tag, outcome| Record {
            tag,
            client: 0,
            key: 0,
            kind: Kind::Incr,
            consistency: Consistency::QUORUM,
            node: 1,
            invoked: Duration::ZERO,
            completed: Duration::ZERO,
            outcome,
        };
        let ok = || Outcome::Ok {
            values: Vec::new(),
            fallback: false,
            answered: vec![(1, None)],
            answer: None,
        };
        let mut history = History::default();
        for t in 0..acked {
            history.records.push(record(t as u64, ok()));
        }
        for t in 0..lost {
            history
                .records
                .push(record((acked + t) as u64, Outcome::Unknown));
        }
        let mut counter = PnCounter::default();
        counter.incs.insert((1, 1), reads);
        let stored = Stored {
            data: Data::Counter(counter),
            stamp: Hlc {
                wall_ms: 1,
                logical: 0,
                node: 1,
            },
            expires_at_ms: None,
        };
        let mut object = Object::new();
        object
            .update(
                &VersionVector::default(),
                Actor::new(NodeId(1), 1),
                Sibling::Value(stored.encode()),
            )
            .expect("a dot");
        let fin = FinalState {
            replicas: [(0, vec![(NodeId(1), Some(object))])].into(),
            hints_left: Vec::new(),
        };
        check_bounds(&history, &fin, &[0])
    }

    #[test]
    fn the_bounds_hold_between_the_acknowledged_and_the_sent() {
        assert!(case(3, 2, 3).is_empty());
        assert!(case(3, 2, 5).is_empty());
        let lost = case(3, 2, 2);
        assert_eq!(lost.len(), 1, "a lost acknowledged increment: {lost:?}");
        let twice = case(3, 2, 6);
        assert_eq!(twice.len(), 1, "more than were sent: {twice:?}");
    }
}
