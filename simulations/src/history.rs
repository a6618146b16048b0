//! The record of every client operation, for the checker.
//!
//! Every put writes a value no other put writes, so a value names the put
//! that wrote it. A write records the values its context covered (`saw`):
//! those it is meant to replace. Outcomes are `Ok`, `Failed` (the quorum was
//! not reached: the write may still have been applied, Quorra does not roll
//! back) or `Unknown` (no reply before the client gave up).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use quorra_client::Consistency;

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
    },
    /// The coordinator answered with an error.
    Failed(String),
    /// No answer before the client gave up.
    Unknown,
}

/// One client operation.
#[derive(Clone, Debug)]
pub struct Record {
    /// Which client.
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
    /// Whether the operation is a write (put or delete).
    pub fn is_write(&self) -> bool {
        !matches!(self.kind, Kind::Get)
    }

    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    /// The values its context covered (writes only).
    pub fn saw(&self) -> &[Bytes] {
        match &self.kind {
            Kind::Get | Kind::Incr => &[],
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
        };
        let outcome = match &self.outcome {
            Outcome::Ok {
                values,
                fallback,
                answered,
            } => format!(
                "ok {}{} from {:?}",
                show_all(values),
                if *fallback { " (fallback)" } else { "" },
                answered
            ),
            Outcome::Failed(e) => format!("failed: {e}"),
            Outcome::Unknown => "unknown (client timeout)".into(),
        };
        format!(
            "[{:>9.3}ms..{:>9.3}ms] client {} via node {} {} @{} -> {}",
            self.invoked.as_secs_f64() * 1e3,
            self.completed.as_secs_f64() * 1e3,
            self.client,
            self.node,
            what,
            self.consistency,
            outcome
        )
    }
}

/// A value for humans.
pub fn show(value: &Bytes) -> String {
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
