//! The metrics recorded as things happen: client requests, RESP commands
//! and store flushes, with their latencies.
//!
//! Everything else `/metrics` shows is a count or a level the node keeps
//! anyway ([`crate::core::Stats`], the hint book, the failure detector,
//! the transport): those are read when Prometheus scrapes
//! ([`super::snapshot`]) and cost nothing between scrapes. Only what no
//! one counts otherwise is recorded here, on the hot path, in the official
//! Prometheus client's types (atomics and one uncontended lock per
//! histogram observation). A node without an admin port
//! (`--admin-listen off`, or its default port taken) has no [`Metrics`]
//! and records nothing: that is the "metrics off" the cost figures compare
//! against.
//!
//! Labels take values from fixed sets only (operation, consistency level,
//! outcome, source, RESP command kind), so the number of series is
//! bounded whatever clients send.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use quorra_client::consistency::Level;
use quorra_client::{Outcome, Request, RequestError};

use super::snapshot::{Process, Snapshot};

/// Upper bounds of the latency histograms, in seconds: 100 µs to 10 s,
/// about three buckets per decade.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Where a client request came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The client SDK (and the CLI), over QUIC.
    Sdk,
    /// The RESP gateway (one RESP command may make several requests).
    Resp,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Sdk => "sdk",
            Source::Resp => "resp",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    op: &'static str,
    consistency: &'static str,
    source: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandOnly {
    command: &'static str,
}

/// What a request was, for its labels; taken when it arrives (the
/// request itself moves into the core).
#[derive(Clone, Copy, Debug)]
pub struct RequestKind {
    op: &'static str,
    consistency: &'static str,
}

impl RequestKind {
    /// The labels of `request`.
    pub fn of(request: &Request) -> Self {
        let (op, level) = match request {
            Request::Get { consistency, .. } => ("get", consistency.read),
            Request::Put { consistency, .. } => ("put", consistency.write),
            Request::Delete { consistency, .. } => ("delete", consistency.write),
            Request::Update { consistency, .. } => ("update", consistency.write),
        };
        Self {
            op,
            consistency: level_name(level),
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::One => "one",
        Level::Two => "two",
        Level::Quorum => "quorum",
        Level::All => "all",
        Level::Exactly(_) => "exactly",
    }
}

/// The outcome label of a request: `ok`, `not_found` (a read of an absent
/// key), `timeout` (too few replicas answered in time), `unavailable` (no
/// node could coordinate it, or the level cannot be met with its
/// replicas), `overloaded` (shed: the coordinator held as many requests as
/// it may) or `error` (invalid, or the coordinator's storage failed).
pub fn outcome_name(op: &str, outcome: &Outcome) -> &'static str {
    match outcome {
        Ok(r) if op == "get" && r.values.is_empty() => "not_found",
        Ok(_) => "ok",
        Err(RequestError::QuorumNotReached { .. }) => "timeout",
        Err(RequestError::Unavailable(_) | RequestError::Consistency(_)) => "unavailable",
        Err(RequestError::Overloaded(_)) => "overloaded",
        Err(RequestError::Invalid(_) | RequestError::Storage(_)) => "error",
    }
}

/// The metrics recorded on the hot path, and the registry `/metrics`
/// encodes them from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<OpLabels, Histogram>,
    commands: Family<CommandLabels, Counter>,
    command_seconds: Family<CommandOnly, Histogram>,
    flush_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, registered under the `quorra_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("quorra");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds =
            Family::<OpLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let commands = Family::<CommandLabels, Counter>::default();
        let command_seconds =
            Family::<CommandOnly, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let flush_seconds = latency_histogram();
        registry.register(
            "requests",
            "Client requests coordinated here, by operation, consistency level, source and outcome",
            requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time from the node's driver taking a client request to its answer (waiting in the node's inbox not included)",
            Unit::Seconds,
            request_seconds.clone(),
        );
        registry.register(
            "resp_commands",
            "RESP commands run, by command kind and outcome (ok or error)",
            commands.clone(),
        );
        registry.register_with_unit(
            "resp_command_duration",
            "Time to run a RESP command, from parsed to answered",
            Unit::Seconds,
            command_seconds.clone(),
        );
        registry.register_with_unit(
            "storage_flush_duration",
            "Time a group-commit flush (fdatasync) of the store took",
            Unit::Seconds,
            flush_seconds.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            commands,
            command_seconds,
            flush_seconds,
        }
    }

    /// A client request answered after `elapsed`.
    pub fn record_request(
        &self,
        kind: RequestKind,
        source: Source,
        outcome: &Outcome,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            op: kind.op,
            consistency: kind.consistency,
            source: source.name(),
            outcome: outcome_name(kind.op, outcome),
        };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&OpLabels {
                op: kind.op,
                source: source.name(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A RESP command answered after `elapsed`.
    pub fn record_command(&self, command: &'static str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.commands
            .get_or_create(&CommandLabels { command, outcome })
            .inc();
        self.command_seconds
            .get_or_create(&CommandOnly { command })
            .observe(elapsed.as_secs_f64());
    }

    /// A flush of the store that took `elapsed`.
    pub fn record_flush(&self, elapsed: Duration) {
        self.flush_seconds.observe(elapsed.as_secs_f64());
    }

    /// The registry of what is recorded here.
    #[cfg(test)]
    pub(super) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The whole `/metrics` page: what is recorded here, the node's
    /// `snapshot` and the process's figures, in the Prometheus text
    /// format (version 0.0.4).
    pub fn render(&self, snapshot: Snapshot, process: Process) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(64 * 1024);
        encode(&mut out, &self.registry)?;
        let mut node = Registry::with_prefix("quorra");
        node.register_collector(Box::new(snapshot));
        encode(&mut out, &node)?;
        let mut own = Registry::default();
        own.register_collector(Box::new(process));
        encode(&mut out, &own)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use quorra_client::{Consistency, Response};

    use super::*;

    #[test]
    fn a_request_counts_once_by_its_labels_and_lands_in_a_latency_bucket() {
        let m = Metrics::new();
        let get = Request::Get {
            key: "k".into(),
            consistency: Consistency::ONE,
        };
        let empty = Ok(Response {
            values: Vec::new(),
            context: Default::default(),
            receipt: Default::default(),
            answer: None,
        });
        let kind = RequestKind::of(&get);
        m.record_request(kind, Source::Sdk, &empty, Duration::from_micros(300));
        m.record_request(kind, Source::Sdk, &empty, Duration::from_millis(30));
        let failed = Err(RequestError::QuorumNotReached {
            required: 2,
            succeeded: 1,
            primaries_required: 0,
            primaries_succeeded: 0,
        });
        m.record_request(kind, Source::Resp, &failed, Duration::from_secs(1));
        let mut text = String::new();
        encode(&mut text, m.registry()).unwrap();
        assert!(
            text.contains(
                "quorra_requests_total{op=\"get\",consistency=\"one\",source=\"sdk\",outcome=\"not_found\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("outcome=\"timeout\"} 1"), "{text}");
        assert!(
            text.contains(
                "quorra_request_duration_seconds_bucket{le=\"0.0005\",op=\"get\",source=\"sdk\"} 1"
            ) || text.contains(
                "quorra_request_duration_seconds_bucket{op=\"get\",source=\"sdk\",le=\"0.0005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("quorra_request_duration_seconds_count{op=\"get\",source=\"sdk\"} 2"),
            "{text}"
        );
    }
}
