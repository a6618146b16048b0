//! Counters: every acknowledged increment counts, none counts twice.
//!
//! Counter keys are only ever incremented by 1 (the gateway's `INCR`, an
//! update applied by the coordinating primary). At the end, the counter a
//! client sees (the PN-counter joined over the key's siblings, merged over
//! its primaries) must lie between the increments that are owed (those
//! acknowledged, unless every node that acknowledged one lost its disk
//! since: [`History::owed`]) and every increment attempted (one that failed
//! or timed out may still have been applied: nothing is rolled back).

use bytes::Bytes;
use quorra_node::resp::update::{as_string, visible};

use super::{Check, FinalState, Violation};
use crate::history::{History, Kind};

/// Checks the counter keys.
pub fn check(history: &History, fin: &FinalState, counter_keys: &[usize]) -> Vec<Violation> {
    let mut out = Vec::new();
    for &key in counter_keys {
        let increments: Vec<usize> = history
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key == key && r.kind == Kind::Incr)
            .map(|(i, _)| i)
            .collect();
        let owed = increments.iter().filter(|&&i| history.owed(i)).count() as i64;
        let attempted = increments.len() as i64;
        let values: Vec<Bytes> = fin.values(key).into_iter().collect();
        let shown = visible(&values, 0).map(|s| as_string(&s));
        let value = match &shown {
            None => 0,
            Some(b) => match std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(v) => v,
                None => {
                    out.push(Violation {
                        check: Check::Counters,
                        key: Some(key),
                        record: None,
                        detail: format!("the counter reads {b:?}, not an integer"),
                    });
                    continue;
                }
            },
        };
        if value < owed || value > attempted {
            out.push(Violation {
                check: Check::Counters,
                key: Some(key),
                record: None,
                detail: format!(
                    "the counter reads {value}; {owed} acknowledged increments are owed and \
                     {attempted} were attempted"
                ),
            });
        }
    }
    out
}
