//! Read-your-writes without faults: with R + W > N and a perfect network, a
//! read that starts after a put was acknowledged returns its value, or a
//! value of a write that (transitively) replaced it.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use quorra_client::Level;

use super::{Check, Violation};
use crate::history::{History, Kind, Outcome, show};

fn resolve(level: Level, n: usize) -> usize {
    level.resolve(n).unwrap_or(n)
}

/// Writes that transitively replaced `value`, as record indices.
fn replaced_by(
    history: &History,
    supers: &BTreeMap<Bytes, Vec<usize>>,
    value: &Bytes,
) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut todo = vec![value.clone()];
    while let Some(v) = todo.pop() {
        for &w in supers.get(&v).into_iter().flatten() {
            if out.insert(w)
                && let Kind::Put { value, .. } = &history.records[w].kind
            {
                todo.push(value.clone());
            }
        }
    }
    out
}

/// Checks read-your-writes for a fault-free run with `n` replicas.
pub fn check(history: &History, n: usize) -> Vec<Violation> {
    let supers = history.superseders();
    let mut out = Vec::new();
    for (i, read) in history
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.kind, Kind::Get))
    {
        let Outcome::Ok { values, .. } = &read.outcome else {
            continue;
        };
        let r = resolve(read.consistency.read, n);
        for put in history.on_key(read.key) {
            let Kind::Put { value, .. } = &put.kind else {
                continue;
            };
            let w = resolve(put.consistency.write, n);
            if !put.ok() || put.completed >= read.invoked || r + w <= n {
                continue;
            }
            if values.contains(value) {
                continue;
            }
            let excused = replaced_by(history, &supers, value)
                .into_iter()
                .any(|i| history.records[i].invoked < read.completed);
            if !excused {
                out.push(Violation {
                    check: Check::ReadYourWrites,
                    key: Some(read.key),
                    record: Some(i),
                    detail: format!(
                        "read at r={r} missed {} acknowledged at w={w} before it started",
                        show(value)
                    ),
                });
            }
        }
    }
    out
}
