//! What a scrape reads: the node's counters and levels at one instant,
//! taken by the driver (which owns them) and encoded here.
//!
//! The driver answers an admin query with a [`Snapshot`], a plain copy of
//! what the core, the gossiper and the transport already keep; encoding
//! happens in the admin task, after the driver has moved on. The families follow the
//! Prometheus conventions: the `quorra_` prefix, base units (seconds,
//! bytes) in the name, `_total` on counters, and labels whose values are
//! bounded by the cluster (peer and owner ids, member states), never by
//! keys or partitions (1,024 partitions would be 1,024 series each).

use std::path::Path;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use quorra_client::protocol::ClusterStatus;

use crate::core::Stats;
use crate::runtime::transport::PeerPath;

/// The node at one instant, for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// What `quorra status` shows (members with their phi and heartbeat
    /// age, hints, anti-entropy, storage, moves).
    pub status: ClusterStatus,
    /// The core's counters.
    pub stats: Stats,
    /// The QUIC path to every connected peer.
    pub paths: Vec<PeerPath>,
    /// Keys in the partitions whose Merkle trees are built.
    pub tree_keys: u64,
    /// Writes applied to the store but not yet flushed.
    pub unflushed: u64,
    /// Requests coordinated here and not yet finished.
    pub in_flight: u64,
    /// Client requests admitted at once now, at most (see
    /// `runtime::delay_limit`).
    pub admission_limit: u64,
    /// Whether `/ready` would say ready.
    pub ready: bool,
    /// Partitions this node replicates with fewer than a quorum up.
    pub partitions_without_quorum: u32,
    /// Open SDK connections.
    pub sdk_connections: u64,
    /// Open RESP connections (none without a gateway).
    pub resp_connections: u64,
    /// Bytes of gossip sent.
    pub gossip_bytes: u64,
    /// Free and total bytes of the data directory's file system.
    pub disk: Option<(u64, u64)>,
    /// Bytes the files in the data directory take.
    pub data_bytes: Option<u64>,
    /// When the node certificate expires (seconds since the Unix epoch).
    pub certificate_expiry: Option<f64>,
}

/// Member states always reported, so a state that empties shows 0.
const STATES: [&str; 5] = ["joining", "normal", "leaving", "left", "down"];

/// Encodes one family after another into a collector's encoder.
struct Out<'a, 'b> {
    enc: &'a mut DescriptorEncoder<'b>,
}

impl Out<'_, '_> {
    fn counter(&mut self, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
        self.counter_in(name, help, None, value)
    }

    fn counter_unit(
        &mut self,
        name: &str,
        help: &str,
        unit: Unit,
        value: u64,
    ) -> Result<(), std::fmt::Error> {
        self.counter_in(name, help, Some(unit), value)
    }

    fn counter_in(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        value: impl prometheus_client::encoding::EncodeCounterValue,
    ) -> Result<(), std::fmt::Error> {
        let mut m = self
            .enc
            .encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
        m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&value, None)
    }

    fn counters<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        series: &[(L, u64)],
    ) -> Result<(), std::fmt::Error> {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in series {
            m.encode_family(labels)?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(value, None)?;
        }
        Ok(())
    }

    fn gauge(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        value: f64,
    ) -> Result<(), std::fmt::Error> {
        let mut m = self
            .enc
            .encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        m.encode_gauge(&value)
    }

    fn gauges<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        series: &[(L, f64)],
    ) -> Result<(), std::fmt::Error> {
        let mut m = self
            .enc
            .encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        for (labels, value) in series {
            m.encode_family(labels)?.encode_gauge(value)?;
        }
        Ok(())
    }
}

fn peer_label(id: u64) -> [(&'static str, String); 1] {
    [("peer", id.to_string())]
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut o = Out { enc: &mut encoder };
        let s = &self.stats;
        let st = &self.status;
        o.gauges(
            "build_info",
            "The running build: 1, labelled with its version",
            None,
            &[([("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        )?;
        o.gauge(
            "ready",
            "1 when /ready says ready: normal, storage healthy, every replicated partition with a quorum up",
            None,
            f64::from(u8::from(self.ready)),
        )?;
        o.gauge(
            "partitions_without_quorum",
            "Partitions this node replicates with fewer than a quorum of primaries believed up",
            None,
            f64::from(self.partitions_without_quorum),
        )?;
        o.gauge(
            "requests_in_flight",
            "Requests coordinated here and not yet finished",
            None,
            self.in_flight as f64,
        )?;
        o.gauge(
            "admission_limit",
            "Client requests this node admits at once now: --max-requests-in-flight, less while admitted requests wait long",
            None,
            self.admission_limit as f64,
        )?;

        // Coordination and replicas.
        o.counter("coordinated_reads", "Reads coordinated here", s.reads)?;
        o.counter(
            "coordinated_writes",
            "Writes (puts, deletes, updates) coordinated here",
            s.writes,
        )?;
        o.counter(
            "replica_reads",
            "Reads served as a replica",
            s.replica_reads,
        )?;
        o.counter(
            "replica_writes",
            "Writes stored as a replica or as a hint",
            s.replica_writes,
        )?;
        o.counter(
            "forwarded_writes",
            "Writes forwarded to a primary to coordinate",
            s.forwarded,
        )?;
        o.counter(
            "quorum_failures",
            "Requests that did not reach their quorum",
            s.quorum_failures,
        )?;
        o.counter(
            "read_repairs",
            "Read repairs sent (or applied here)",
            s.read_repairs,
        )?;
        o.counter(
            "reserve_reads",
            "Extra replicas a read asked because one failed or was slow",
            s.reserve_reads,
        )?;
        o.counter(
            "tombstones_purged",
            "Tombstones purged here",
            s.tombstones_purged,
        )?;
        o.counter(
            "storage_errors",
            "Storage errors met while serving peers",
            s.storage_errors,
        )?;
        o.counter(
            "rejected_messages",
            "Peer messages ignored because the sender is not a member",
            s.rejected_messages,
        )?;
        o.counter(
            "peer_messages_sent",
            "Messages sent to peers by the core",
            s.messages_sent,
        )?;
        o.counter(
            "requests_shed",
            "Client requests refused at once (overloaded) because the node had as many in flight as it admits",
            s.shed_requests,
        )?;

        // Hints.
        let (count, bytes) = (st.hints.held, st.hints.bytes);
        o.gauge(
            "hints_held",
            "Hints held here for other nodes",
            None,
            count as f64,
        )?;
        o.gauge(
            "hints_held",
            "Bytes of hints held here for other nodes",
            Some(Unit::Bytes),
            bytes as f64,
        )?;
        let oldest = st.hints.oldest_age_secs;
        o.gauge(
            "hints_oldest_age",
            "How long this node has held hints for an owner without a break (the longest over owners; an upper bound on the oldest hint's age)",
            Some(Unit::Seconds),
            oldest as f64,
        )?;
        o.counter("hints_stored", "Hints stored here", s.hints_stored)?;
        o.counter(
            "hints_delivered",
            "Hints delivered to their owner and deleted here",
            s.hints_delivered,
        )?;
        o.counters(
            "hints_refused",
            "Hints refused for a full hint store: here, or by a fallback this node asked",
            &[
                ([("by", "here")], s.hints_overflowed),
                ([("by", "fallback")], s.hints_refused_by_fallback),
            ],
        )?;
        o.counter(
            "hints_rerouted",
            "Orphan hints handed to a current primary instead of their owner",
            s.hints_rerouted,
        )?;

        // Anti-entropy.
        let repaired = s.ae_repaired_exchanges;
        o.counters(
            "anti_entropy_exchanges",
            "Anti-entropy exchanges started here, by result (running ones have none yet)",
            &[
                ([("result", "in_sync")], s.ae_in_sync),
                ([("result", "repaired")], repaired),
                ([("result", "failed")], s.ae_failed),
            ],
        )?;
        o.counter(
            "anti_entropy_keys_repaired",
            "Keys whose state anti-entropy changed here",
            s.ae_keys_repaired,
        )?;
        o.counter(
            "anti_entropy_keys_sent",
            "States sent to other replicas by anti-entropy",
            s.ae_keys_sent,
        )?;
        o.counter_unit(
            "anti_entropy_sent",
            "Bytes of keys, hashes and states sent by anti-entropy",
            Unit::Bytes,
            s.ae_bytes_sent,
        )?;
        o.counter(
            "anti_entropy_trees_built",
            "Merkle trees built from storage",
            s.ae_trees_built,
        )?;
        o.gauge(
            "anti_entropy_trees",
            "Merkle trees kept up to date here",
            None,
            st.anti_entropy.trees as f64,
        )?;
        o.gauge(
            "anti_entropy_running",
            "Anti-entropy exchanges running now",
            None,
            st.anti_entropy.running as f64,
        )?;
        o.gauge(
            "anti_entropy_oldest_sync_age",
            "The longest any partition this node replicates has gone without an exchange that ended in sync or repaired (since start)",
            Some(Unit::Seconds),
            st.anti_entropy_oldest_sync_secs as f64,
        )?;

        // Membership and gossip.
        let mut states: Vec<(&str, f64)> = STATES.iter().map(|&s| (s, 0.0)).collect();
        for m in &st.members {
            match states.iter_mut().find(|(s, _)| *s == m.state) {
                Some(e) => e.1 += 1.0,
                None => states.push((m.state.as_str(), 1.0)),
            }
        }
        let states: Vec<([(&str, &str); 1], f64)> = states
            .into_iter()
            .map(|(s, n)| ([("state", s)], n))
            .collect();
        o.gauges(
            "members",
            "Members this node knows of, by the state it sees",
            None,
            &states,
        )?;
        // The peers: every member but this node and those gone for good.
        let peers: Vec<_> = st
            .members
            .iter()
            .filter(|m| m.id != st.node && m.state != "left" && m.state != "removed")
            .collect();
        let phi: Vec<_> = peers.iter().map(|m| (peer_label(m.id), m.phi)).collect();
        o.gauges(
            "peer_phi",
            "The failure detector's suspicion of each peer (phi)",
            None,
            &phi,
        )?;
        let ages: Vec<_> = peers
            .iter()
            .filter_map(|m| Some((peer_label(m.id), m.heartbeat_age_secs?)))
            .collect();
        o.gauges(
            "peer_heartbeat_age",
            "Age of each peer's freshest heartbeat seen here",
            Some(Unit::Seconds),
            &ages,
        )?;
        o.counter_unit(
            "gossip_sent",
            "Bytes of gossip sent",
            Unit::Bytes,
            self.gossip_bytes,
        )?;
        o.counters(
            "gossip_messages_sent",
            "Gossip messages sent, as QUIC datagrams or on streams",
            &[
                ([("via", "datagram")], st.gossip_datagrams),
                ([("via", "stream")], st.gossip_streamed),
            ],
        )?;
        o.counter(
            "peers_marked_down",
            "Times this node came to believe a peer down",
            s.peers_marked_down,
        )?;

        // Storage.
        let engine = [("engine", st.storage.engine.as_str())];
        o.gauges(
            "storage_keys",
            "Keys (with tombstones) in the partitions whose Merkle trees are built: every replicated partition once anti-entropy has run",
            None,
            &[(engine, self.tree_keys as f64)],
        )?;
        o.gauge(
            "storage_unflushed_writes",
            "Changes applied to the store and not yet flushed (log positions)",
            None,
            self.unflushed as f64,
        )?;
        o.gauge(
            "storage_failing",
            "1 while the store is failing (full disk, I/O error) and writes are refused",
            None,
            f64::from(u8::from(st.storage.failure.is_some())),
        )?;
        o.counter(
            "storage_flush_failures",
            "Flushes that failed",
            s.flush_failures,
        )?;
        if let Some((free, total)) = self.disk {
            o.gauge(
                "storage_available",
                "Bytes still usable on the data directory's file system",
                Some(Unit::Bytes),
                free as f64,
            )?;
            o.gauge(
                "storage_capacity",
                "Size of the data directory's file system",
                Some(Unit::Bytes),
                total as f64,
            )?;
        }
        if let Some(bytes) = self.data_bytes {
            o.gauges(
                "storage_size",
                "Bytes the node's data directory takes on disk (the engine's files, hints and metadata)",
                Some(Unit::Bytes),
                &[(engine, bytes as f64)],
            )?;
        }
        if let Some(expiry) = self.certificate_expiry {
            o.gauge(
                "tls_certificate_expiry_timestamp",
                "When this node's certificate expires, since the Unix epoch",
                Some(Unit::Seconds),
                expiry,
            )?;
        }
        o.counter(
            "storage_recoveries",
            "Storage failures this process recovered from",
            st.storage.recoveries,
        )?;
        let mem = &st.memory;
        o.gauge(
            "memory_budget",
            "The node's memory budget (--memory), which its caches are sized from",
            Some(Unit::Bytes),
            mem.budget as f64,
        )?;
        o.gauges(
            "cache_capacity",
            "Bound of each cache",
            Some(Unit::Bytes),
            &[
                ([("cache", "object")], mem.object_cache_capacity as f64),
                ([("cache", "block")], mem.block_cache_capacity as f64),
            ],
        )?;
        o.gauge(
            "object_cache_size",
            "Bytes the store's object cache holds (by the estimate its bound uses)",
            Some(Unit::Bytes),
            mem.object_cache_bytes as f64,
        )?;

        // Connections and the network.
        o.gauges(
            "connections",
            "Client connections open, by protocol",
            None,
            &[
                ([("protocol", "sdk")], self.sdk_connections as f64),
                ([("protocol", "resp")], self.resp_connections as f64),
            ],
        )?;
        let rtt: Vec<_> = self
            .paths
            .iter()
            .map(|p| (peer_label(p.peer.0), p.rtt.as_secs_f64()))
            .collect();
        o.gauges(
            "quic_rtt",
            "Smoothed round-trip time of the QUIC link to each peer",
            Some(Unit::Seconds),
            &rtt,
        )?;
        let lost: Vec<_> = self
            .paths
            .iter()
            .map(|p| (peer_label(p.peer.0), p.lost_packets))
            .collect();
        o.counters(
            "quic_lost_packets",
            "Packets lost on the current QUIC link to each peer",
            &lost,
        )?;
        let sent: Vec<_> = self
            .paths
            .iter()
            .map(|p| (peer_label(p.peer.0), p.sent_packets))
            .collect();
        o.counters(
            "quic_sent_packets",
            "Packets sent on the current QUIC link to each peer",
            &sent,
        )?;

        // Moves.
        let mv = &st.moves;
        o.gauge(
            "moves_layouts",
            "Layouts writes go to (1 when nothing moves)",
            None,
            f64::from(mv.layouts),
        )?;
        o.gauge(
            "moves_partitions_moving",
            "Partitions whose owners are changing",
            None,
            f64::from(mv.moving_partitions),
        )?;
        o.gauge(
            "moves_gains_pending",
            "Partitions this node is pulling or still has to pull",
            None,
            mv.gains.len() as f64,
        )?;
        o.gauge(
            "moves_eta",
            "Estimated time until this node holds every partition it gains (0 when none or unknown)",
            Some(Unit::Seconds),
            mv.eta_secs.unwrap_or(0) as f64,
        )?;
        o.gauge(
            "moves_pull_limit_bytes_per_second",
            "Bytes per second this node's pulls may use now: the transfer budget, scaled down \
             while clients see slower answers (0: unlimited)",
            None,
            mv.pull_limit as f64,
        )?;
        o.gauge(
            "moves_allowed_share",
            "Share of their budget this node lets pulls from it use now: below 1 while its \
             clients see slower answers than before during a move",
            None,
            f64::from(mv.allowed_share_permille.unwrap_or(1000)) / 1000.0,
        )?;
        o.counter(
            "moves_pulls_started",
            "Pulls of a gained partition from one source started",
            mv.pulls_started,
        )?;
        o.counter(
            "moves_pulls_failed",
            "Pulls that failed and will be retried",
            mv.pulls_failed,
        )?;
        o.counter(
            "moves_gains_completed",
            "Gained partitions received from every source",
            mv.gains_completed,
        )?;
        o.counter(
            "moves_keys_received",
            "States received by pulls",
            mv.keys_received,
        )?;
        o.counter_unit(
            "moves_received",
            "Bytes of states received by pulls",
            Unit::Bytes,
            mv.bytes_received,
        )?;
        o.counter(
            "moves_keys_cleaned",
            "Keys dropped from partitions this node no longer owns",
            mv.keys_cleaned,
        )?;
        Ok(())
    }
}

/// The process's own figures, from `/proc` (Linux; zeros elsewhere).
#[derive(Clone, Copy, Debug, Default)]
pub struct Process {
    /// User and system CPU time.
    pub cpu_seconds: f64,
    /// Resident set size.
    pub resident_bytes: u64,
    /// Virtual memory size.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The limit on them.
    pub max_fds: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl Process {
    /// Reads the figures of this process.
    pub fn read() -> Self {
        let mut h = Process::default();
        // /proc/self/stat: fields after the command name's closing paren.
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After ')' field 0 is the state (stat field 3): utime is
            // stat field 14, stime 15, starttime 22, vsize 23, rss 24.
            let at = |n: usize| {
                f.get(n - 3)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let ticks = 100.0; // USER_HZ on Linux
            h.cpu_seconds = (at(14) + at(15)) as f64 / ticks;
            h.virtual_bytes = at(23);
            h.resident_bytes = at(24) * rustix::param::page_size() as u64;
            if let Some(boot) = boot_time() {
                h.start_time_seconds = boot + at(22) as f64 / ticks;
            }
        }
        h.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            h.max_fds = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        h
    }
}

/// Bytes an unprivileged writer may still use on the file system holding
/// `dir`, and its size (`None` if it cannot be asked).
pub fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    let v = rustix::fs::statvfs(dir).ok()?;
    Some((
        v.f_bavail.saturating_mul(v.f_frsize),
        v.f_blocks.saturating_mul(v.f_frsize),
    ))
}

/// Bytes the files under `dir` take (their lengths, summed; `None` if
/// `dir` cannot be read). Bounded by [`MAX_WALKED_FILES`]: a directory
/// with more files is reported as unknown rather than walked for long.
pub fn directory_bytes(dir: &Path) -> Option<u64> {
    let mut total = 0u64;
    let mut files = 0usize;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).ok()? {
            let entry = entry.ok()?;
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len();
                files += 1;
                if files > MAX_WALKED_FILES {
                    return None;
                }
            }
        }
    }
    Some(total)
}

/// Most files [`directory_bytes`] looks at.
pub const MAX_WALKED_FILES: usize = 100_000;

/// When the PEM certificate at `path` expires, seconds since the Unix
/// epoch (`None` if it cannot be read or parsed).
pub fn certificate_expiry(path: &Path) -> Option<f64> {
    let pem = std::fs::read(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.validity().not_after.timestamp() as f64)
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line[6..].trim().parse().ok()
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut o = Out { enc: &mut encoder };
        o.counter_in(
            "process_cpu",
            "User and system CPU time spent",
            Some(Unit::Seconds),
            self.cpu_seconds,
        )?;
        o.gauge(
            "process_resident_memory",
            "Resident memory size",
            Some(Unit::Bytes),
            self.resident_bytes as f64,
        )?;
        o.gauge(
            "process_virtual_memory",
            "Virtual memory size",
            Some(Unit::Bytes),
            self.virtual_bytes as f64,
        )?;
        o.gauge(
            "process_open_fds",
            "Open file descriptors",
            None,
            self.open_fds as f64,
        )?;
        o.gauge(
            "process_max_fds",
            "Limit on open file descriptors",
            None,
            self.max_fds as f64,
        )?;
        o.gauge(
            "process_start_time",
            "Start time since the Unix epoch",
            Some(Unit::Seconds),
            self.start_time_seconds,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_and_a_certificate_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = disk_space(dir.path()).expect("statvfs");
        assert!(total > 0 && free <= total, "{free} of {total}");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), [0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("b"), [0u8; 24]).unwrap();
        assert_eq!(directory_bytes(dir.path()), Some(1024));
        assert_eq!(directory_bytes(&dir.path().join("none")), None);
        crate::runtime::certs::init(dir.path()).unwrap();
        crate::runtime::certs::issue(dir.path(), "n", crate::runtime::certs::Role::Node).unwrap();
        let expiry = certificate_expiry(&dir.path().join("n.crt")).expect("parsed");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(expiry > now, "expires {expiry}, now {now}");
        assert!(certificate_expiry(&dir.path().join("missing.crt")).is_none());
    }
}
