//! RESP string keys: what `SET`, `EXPIRE`, `PERSIST`, `DEL` and the
//! sweeper's purge promise, under every fault.
//!
//! These commands are updates: the coordinator writes over what its copy
//! holds, so what a command replaced is what its coordination saw, read
//! off the updater's log ([`crate::updater`]); a coordination that wrote
//! replaced its `saw` (nothing is rolled back, so one whose client heard a
//! failure may have too). Values are the stored envelopes, unique per
//! write (a string is written by one `SET`; `EXPIRE` writes it again with a
//! new stamp).
//!
//! - **Durability**: what an acknowledged command wrote is present at the
//!   end unless a later coordination replaced it (or every node that
//!   acknowledged it lost its disk: [`History::owed`]).
//! - **No resurrection**: nothing an acknowledged command replaced is
//!   present at the end.
//! - **The latest decides**: the value shown at the end (by every node's
//!   clock) is never one that an acknowledged write outranks (a later
//!   stamp) while that write is still held: a value hidden by a later
//!   `SET ... EX` stays hidden when that one expires.
//! - **Expiry**: no `GET` returns a value whose expiry every node's clock
//!   had passed when the `GET` was sent (the clock-skew bound is the skew
//!   of the run's own clocks).
//! - **Read your writes** (runs without faults): a `GET` at R sent after a
//!   command acknowledged at W, R + W > N, shows what it wrote or a value
//!   with a later stamp, or nothing if a value that expired or a delete
//!   explains it; never a value that command replaced.
//!
//! That expired keys are purged is a liveness matter: the cluster is not
//! quiet while a primary holds a key whose latest value has expired by the
//! clock of the key's sweeper ([`crate::runner`]).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use quorra_client::Level;
use quorra_node::core::{Change, ClientTag};
use quorra_node::resp::update::visible;
use quorra_node::resp::value::Stored;

use super::{Check, FinalState, Violation};
use crate::history::{History, Kind, Outcome, Record, RespOp, show, show_stored};
use crate::sim::Sim;
use crate::updater::Application;

/// What the updater's log says of the RESP writes of a run.
struct Writes<'a> {
    /// Coordinations that wrote, by operation tag, in log order.
    by_tag: BTreeMap<ClientTag, Vec<&'a Application>>,
    /// Every value some coordination replaced.
    replaced: BTreeSet<&'a Bytes>,
    /// Every coordination that wrote, in log order.
    all: Vec<&'a Application>,
}

impl<'a> Writes<'a> {
    fn new(history: &'a History) -> Self {
        let log = &history.applications;
        let all: Vec<&Application> = log
            .coordinations()
            .into_iter()
            .map(|i| &log.applications[i])
            .filter(|a| a.writes())
            .collect();
        let mut by_tag: BTreeMap<ClientTag, Vec<&Application>> = BTreeMap::new();
        let mut replaced = BTreeSet::new();
        for a in &all {
            by_tag.entry(a.tag).or_default().push(a);
            replaced.extend(a.saw.iter());
        }
        Self {
            by_tag,
            replaced,
            all,
        }
    }

    /// The coordinations of `record` that wrote.
    fn of(&self, record: &Record) -> &[&'a Application] {
        self.by_tag.get(&record.tag).map_or(&[], Vec::as_slice)
    }
}

fn is_resp_write(r: &Record) -> bool {
    matches!(&r.kind, Kind::Resp { op, .. } if !matches!(op, RespOp::Get { .. }))
}

fn stamp_of(value: &Bytes) -> quorra_node::resp::value::Hlc {
    Stored::decode(value).stamp
}

/// The latest clock reading of any node at the end of the run, Unix ms.
fn latest_clock(sim: &Sim) -> u64 {
    sim.nodes
        .iter()
        .map(|n| n.local(sim.now).as_millis() as u64)
        .max()
        .unwrap_or_default()
}

/// The checks of the final state of `keys` (see the module documentation).
pub fn check_state(
    sim: &Sim,
    history: &History,
    fin: &FinalState,
    keys: &[usize],
) -> Vec<Violation> {
    let writes = Writes::new(history);
    let mut out = Vec::new();
    let now_ms = latest_clock(sim);
    let acknowledged: Vec<(usize, &Record)> = history
        .records
        .iter()
        .enumerate()
        .filter(|(i, r)| keys.contains(&r.key) && is_resp_write(r) && history.owed(*i))
        .collect();
    for &(i, r) in &acknowledged {
        let present = fin.values(r.key);
        let coordinations = writes.of(r);
        let wrote: Vec<&Bytes> = coordinations.iter().filter_map(|a| a.written()).collect();
        if !wrote.is_empty()
            && !wrote
                .iter()
                .any(|v| present.contains(*v) || writes.replaced.contains(v))
        {
            out.push(Violation {
                check: Check::Durability,
                key: Some(r.key),
                record: Some(i),
                detail: format!(
                    "acknowledged {} is missing; nothing replaced it",
                    show(wrote[0])
                ),
            });
        }
        // The coordination whose outcome the client heard: the last.
        for seen in coordinations.last().map_or(&[][..], |a| a.saw.as_slice()) {
            if present.contains(seen) {
                out.push(Violation {
                    check: Check::NoResurrection,
                    key: Some(r.key),
                    record: Some(i),
                    detail: format!(
                        "{} is present at the end although this acknowledged command replaced it",
                        show(seen)
                    ),
                });
            }
        }
    }
    for &key in keys {
        let present = fin.values(key);
        let Some(shown) = visible(&present, now_ms) else {
            continue;
        };
        let outranking = acknowledged
            .iter()
            .filter(|(_, r)| r.key == key)
            .flat_map(|&(i, r)| writes.of(r).iter().map(move |a| (i, a)))
            .filter_map(|(i, a)| a.written().map(|v| (i, v)))
            .find(|(_, v)| {
                present.contains(*v) && !writes.replaced.contains(v) && stamp_of(v) > shown.stamp
            });
        if let Some((i, v)) = outranking {
            out.push(Violation {
                check: Check::NoResurrection,
                key: Some(key),
                record: Some(i),
                detail: format!(
                    "the key shows {} at the end although this acknowledged command wrote {}, \
                     later and never replaced",
                    show_stored(&shown),
                    show(v)
                ),
            });
        }
    }
    out
}

/// The checks of the reads (see the module documentation).
pub fn check_reads(sim: &Sim, history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let earliest_clock = |at: std::time::Duration| {
        sim.nodes
            .iter()
            .map(|n| n.local(at).as_millis() as u64)
            .min()
            .unwrap_or_default()
    };
    for (i, r) in history.records.iter().enumerate() {
        let Kind::Resp {
            op: RespOp::Get {
                shown: Some(shown), ..
            },
            ..
        } = &r.kind
        else {
            continue;
        };
        if let Some(expiry) = shown.expires_at_ms
            && earliest_clock(r.invoked) >= expiry
        {
            out.push(Violation {
                check: Check::Expiry,
                key: Some(r.key),
                record: Some(i),
                detail: format!(
                    "GET returned {} although every node's clock had passed its expiry when \
                     the GET was sent",
                    show_stored(shown)
                ),
            });
        }
    }
    if sim.params.faults == crate::params::FaultLevel::None {
        out.extend(read_your_writes(history, sim.params.replicas));
    }
    out
}

/// The coordinations of writes on `key` sent before `read` ended, with
/// what they wrote or deleted.
fn before_read<'a>(
    history: &'a History,
    writes: &'a Writes<'_>,
    tags: &'a BTreeMap<ClientTag, usize>,
    read: &'a Record,
) -> impl Iterator<Item = &'a Application> + 'a {
    writes.all.iter().copied().filter(move |a| {
        tags.get(&a.tag).is_some_and(|&w| {
            let op = &history.records[w];
            op.key == read.key && op.invoked <= read.completed
        })
    })
}

fn read_your_writes(history: &History, n: usize) -> Vec<Violation> {
    let writes = Writes::new(history);
    let tags: BTreeMap<ClientTag, usize> = history
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.tag, i))
        .collect();
    let resolve = |level: Level| level.resolve(n).unwrap_or(n);
    let mut out = Vec::new();
    for (i, read) in history.records.iter().enumerate() {
        let (
            Kind::Resp {
                op: RespOp::Get { shown, at_ms },
                ..
            },
            Outcome::Ok { .. },
        ) = (&read.kind, &read.outcome)
        else {
            continue;
        };
        let r = resolve(read.consistency.read);
        for (j, write) in history.records.iter().enumerate() {
            if write.key != read.key
                || !is_resp_write(write)
                || !write.ok()
                || write.completed >= read.invoked
                || r + resolve(write.consistency.write) <= n
            {
                continue;
            }
            let Some(last) = writes.of(write).last() else {
                continue; // it wrote nothing (a condition failed)
            };
            let replaced = shown
                .as_ref()
                .is_some_and(|s| last.saw.iter().any(|v| Stored::decode(v) == *s));
            let mut earlier = before_read(history, &writes, &tags, read);
            let older = match (&last.change, shown) {
                // Older than what it wrote: only a delete that had not seen
                // the value shown (it was concurrent) leaves such a value.
                (Some(Change::Put(v)), Some(s)) => {
                    s.stamp < stamp_of(v)
                        && !earlier.any(|a| {
                            a.change == Some(Change::Delete)
                                && !a.saw.iter().any(|x| Stored::decode(x) == *s)
                        })
                }
                // Nothing: a delete, or an expiry of what it wrote or of a
                // later value, explains it.
                (Some(Change::Put(v)), None) => !earlier.any(|a| match &a.change {
                    Some(Change::Delete) => true,
                    Some(Change::Put(x)) => {
                        stamp_of(x) >= stamp_of(v) && Stored::decode(x).expired(*at_ms)
                    }
                    _ => false,
                }),
                _ => false,
            };
            if replaced || older {
                let shown = shown.as_ref().map_or("nil".to_string(), show_stored);
                out.push(Violation {
                    check: Check::ReadYourWrites,
                    key: Some(read.key),
                    record: Some(i),
                    detail: format!(
                        "GET at r={r} showed {shown}, older than what operation {} (ended \
                         before the GET began, w + r > n) wrote: {}",
                        history.records[j].describe(),
                        match &last.change {
                            Some(Change::Put(v)) => show(v),
                            _ => "a delete".to_string(),
                        }
                    ),
                });
            }
        }
    }
    out
}
