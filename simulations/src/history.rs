//! The record of every client operation, for the checker.
//!
//! Every put writes a value no other put writes, so a value names the put
//! that wrote it. A write records the values its context covered (`saw`):
//! those it is meant to replace. Outcomes are `Ok`, `Failed` (the quorum was
//! not reached: the write may still have been applied, Quorra does not roll
//! back) or `Unknown` (no reply before the client gave up).
//!
//! RESP commands on string keys ([`RespOp`]) are updates the coordinator
//! applies to its own copy, so what they replaced is not known to the
//! client: the checks read it from the updater's log
//! ([`crate::updater`]), which the history carries. A `GET` records what
//! the gateway showed and by which clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use quorra_client::Consistency;
use quorra_node::resp::update::SetExpiry;
use quorra_node::resp::value::Stored;

use crate::updater::Log;

/// A RESP command on a string key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespOp {
    /// `GET`: what the gateway showed (`None`: nil), resolved at its clock
    /// `at_ms` when the reply came (both filled in on the reply).
    Get {
        /// The value shown.
        shown: Option<Stored>,
        /// The gateway's clock, Unix ms.
        at_ms: u64,
    },
    /// `SET` of a string no other command writes.
    Set {
        /// The string.
        data: Bytes,
        /// `EX`/`PX` (an absolute time by the gateway's clock), `KEEPTTL`, or none.
        expiry: SetExpiry,
        /// `XX` (`Some(true)`), `NX` (`Some(false)`).
        present: Option<bool>,
        /// `GET`.
        want_old: bool,
    },
    /// `EXPIRE`/`PEXPIRE` at a time (`Some`), or `PERSIST` (`None`).
    Expire(Option<u64>),
    /// `DEL`.
    Delete,
    /// The expiry sweeper's purge.
    Purge,
}

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A read.
    Get,
    /// A put of `value`, with a context covering `saw`.
    Put {
        /// The unique value written.
        value: Bytes,
        /// Values the context covered.
        saw: Vec<Bytes>,
    },
    /// A delete with a context covering `saw`.
    Delete {
        /// Values the context covered.
        saw: Vec<Bytes>,
    },
    /// `INCR` of a counter key: an update adding 1.
    Incr,
    /// A RESP command on a string key, sent when the gateway's clock read
    /// `sent_ms`.
    Resp {
        /// The command.
        op: RespOp,
        /// The gateway's clock when it received the command, Unix ms.
        sent_ms: u64,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded; for reads and writes, the values returned.
    Ok {
        /// Live values in the reply.
        values: Vec<Bytes>,
        /// Whether a fallback answered.
        fallback: bool,
        /// The nodes that answered (a write: acknowledged it durably), each
        /// with the owner it stood in for if it was a fallback.
        answered: Vec<(u64, Option<u64>)>,
        /// An update's answer.
        answer: Option<Bytes>,
    },
    /// The coordinator answered with an error.
    Failed(String),
    /// No answer before the client gave up.
    Unknown,
}

impl Outcome {
    /// The outcome of a successful reply; `values` are kept only if
    /// `keep_values` (the values of counters and RESP keys are envelopes
    /// no put wrote: their checks read the final state instead).
    pub fn from_response(response: quorra_client::Response, keep_values: bool) -> Self {
        Outcome::Ok {
            values: if keep_values {
                response.values
            } else {
                Vec::new()
            },
            fallback: response.receipt.used_fallback(),
            answered: response
                .receipt
                .answered
                .iter()
                .map(|a| (a.node, a.fallback_for))
                .collect(),
            answer: response.answer,
        }
    }
}

/// One client operation.
#[derive(Clone, Debug)]
pub struct Record {
    /// Its tag, unique in the run (the updater's log names operations by it).
    pub tag: quorra_node::core::ClientTag,
    /// Which client ([`crate::workload::SWEEPER`] for a sweeper's purge).
    pub client: usize,
    /// Index of the key.
    pub key: usize,
    /// What it did.
    pub kind: Kind,
    /// Requested consistency.
    pub consistency: Consistency,
    /// The node it was sent to.
    pub node: u64,
    /// When it was sent (global simulated time).
    pub invoked: Duration,
    /// When it ended.
    pub completed: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

impl Record {
    /// Whether the operation is a write (anything but a read).
    pub fn is_write(&self) -> bool {
        !matches!(
            self.kind,
            Kind::Get
                | Kind::Resp {
                    op: RespOp::Get { .. },
                    ..
                }
        )
    }

    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    /// The values its context covered (writes only).
    pub fn saw(&self) -> &[Bytes] {
        match &self.kind {
            Kind::Get | Kind::Incr | Kind::Resp { .. } => &[],
            Kind::Put { saw, .. } | Kind::Delete { saw } => saw,
        }
    }

    /// One line for failure reports.
    pub fn describe(&self) -> String {
        let what = match &self.kind {
            Kind::Get => "get".to_string(),
            Kind::Put { value, saw } => format!("put {} saw {}", show(value), show_all(saw)),
            Kind::Delete { saw } => format!("del saw {}", show_all(saw)),
            Kind::Incr => "incr".to_string(),
            Kind::Resp { op, sent_ms } => {
                format!("{} (gateway clock {sent_ms})", describe_resp(op))
            }
        };
        let outcome = match &self.outcome {
            Outcome::Ok {
                values,
                fallback,
                answered,
                answer,
            } => format!(
                "ok {}{}{} from {:?}",
                show_all(values),
                answer
                    .as_deref()
                    .and_then(quorra_node::resp::update::Answer::decode)
                    .map(|a| format!(" {a:?}"))
                    .unwrap_or_default(),
                if *fallback { " (fallback)" } else { "" },
                answered
            ),
            Outcome::Failed(e) => format!("failed: {e}"),
            Outcome::Unknown => "unknown (client timeout)".into(),
        };
        let who = if self.client == crate::workload::SWEEPER {
            "sweeper".to_string()
        } else {
            format!("client {}", self.client)
        };
        format!(
            "[{:>9.3}ms..{:>9.3}ms] {who} via node {} {} @{} -> {}",
            self.invoked.as_secs_f64() * 1e3,
            self.completed.as_secs_f64() * 1e3,
            self.node,
            what,
            self.consistency,
            outcome
        )
    }
}

fn describe_resp(op: &RespOp) -> String {
    match op {
        RespOp::Get { shown, at_ms } => format!(
            "GET shown {} at {at_ms}",
            shown.as_ref().map_or("nil".to_string(), show_stored)
        ),
        RespOp::Set {
            data,
            expiry,
            present,
            want_old,
        } => format!(
            "SET {} {expiry:?}{}{}",
            show(data),
            match present {
                Some(true) => " XX",
                Some(false) => " NX",
                None => "",
            },
            if *want_old { " GET" } else { "" }
        ),
        RespOp::Expire(Some(at)) => format!("EXPIRE at {at}"),
        RespOp::Expire(None) => "PERSIST".into(),
        RespOp::Delete => "DEL".into(),
        RespOp::Purge => "purge (sweeper)".into(),
    }
}

/// A RESP value for humans: data, stamp and expiry.
pub fn show_stored(s: &Stored) -> String {
    let data = match &s.data {
        quorra_node::resp::value::Data::Str(b) => show(b),
        quorra_node::resp::value::Data::Counter(c) => format!("counter {:?}", c.value()),
    };
    format!(
        "{data}@{}.{}.n{}{}",
        s.stamp.wall_ms,
        s.stamp.logical,
        s.stamp.node,
        s.expires_at_ms
            .map(|e| format!(" expires {e}"))
            .unwrap_or_default()
    )
}

/// A value for humans: a RESP envelope decoded, anything else as text.
pub fn show(value: &Bytes) -> String {
    if value.starts_with(quorra_node::resp::value::MAGIC) {
        return show_stored(&Stored::decode(value));
    }
    String::from_utf8_lossy(value).into_owned()
}

/// Values for humans.
pub fn show_all(values: &[Bytes]) -> String {
    let v: Vec<String> = values.iter().map(show).collect();
    format!("[{}]", v.join(", "))
}

/// Every operation of a run.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// In completion order.
    pub records: Vec<Record>,
    /// Disks lost: (node id, when).
    pub disk_losses: Vec<(u64, Duration)>,
    /// Every application of a RESP update by a coordinator.
    pub applications: Log,
}

impl History {
    /// Whether record `i` is an acknowledged write that is still owed: at
    /// least one node that acknowledged it has kept its disk since (for a
    /// fallback, which hands its copy to the owner and then deletes it: it
    /// and that owner). A write whose every copy may have been on disks that
    /// were lost may be gone (or may have reached other replicas): nothing
    /// is promised about it.
    pub fn owed(&self, i: usize) -> bool {
        let r = &self.records[i];
        let Outcome::Ok { answered, .. } = &r.outcome else {
            return false;
        };
        let lost = |node: u64| {
            self.disk_losses
                .iter()
                .any(|&(n, at)| n == node && at >= r.invoked)
        };
        r.is_write()
            && answered
                .iter()
                .any(|&(node, owner)| !lost(node) && owner.is_none_or(|o| !lost(o)))
    }

    /// The operations on `key`, in completion order.
    pub fn on_key(&self, key: usize) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(move |r| r.key == key)
    }

    /// For each value, the writes (indices) whose context covered it.
    pub fn superseders(&self) -> BTreeMap<Bytes, Vec<usize>> {
        let mut map: BTreeMap<Bytes, Vec<usize>> = BTreeMap::new();
        for (i, r) in self.records.iter().enumerate() {
            for v in r.saw() {
                map.entry(v.clone()).or_default().push(i);
            }
        }
        map
    }

    /// The put that wrote each value.
    pub fn writers(&self) -> BTreeMap<Bytes, usize> {
        self.records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match &r.kind {
                Kind::Put { value, .. } => Some((value.clone(), i)),
                _ => None,
            })
            .collect()
    }

    /// The keys touched.
    pub fn keys(&self) -> BTreeSet<usize> {
        self.records.iter().map(|r| r.key).collect()
    }

    /// A short history of `key` for a failure report: the last `limit`
    /// operations on it that began before operation `upto` ended (all of
    /// them without `upto`), so the report shows what led to the violation.
    pub fn excerpt(&self, key: usize, limit: usize, upto: Option<usize>) -> String {
        let end = upto.map_or(Duration::MAX, |i| self.records[i].completed);
        let ops: Vec<&Record> = self.on_key(key).filter(|r| r.invoked <= end).collect();
        let skip = ops.len().saturating_sub(limit);
        let mut out = String::new();
        if skip > 0 {
            out.push_str(&format!("    ... {skip} earlier operations\n"));
        }
        for r in &ops[skip..] {
            out.push_str("    ");
            out.push_str(&r.describe());
            out.push('\n');
        }
        out
    }
}
