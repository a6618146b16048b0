//! What the gateway says about itself: `HELLO`, `INFO`, `CONFIG GET` and
//! `CLIENT INFO`, with Quorra's own facts in Redis's field names where a
//! tool looks for them (and honest values: Quorra keeps no RDB snapshots
//! and no append-only file, so `save` is empty and `appendonly` is `no`;
//! its own durability is the `--fsync` mode, shown as `quorra_fsync`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::codec::{Protocol, Reply};
use super::connection::Session;
use super::gateway::{Gateway, MAX_CONNECTIONS};

/// The Redis version whose protocol and commands the gateway follows.
pub const REDIS_VERSION: &str = "7.0.0";

/// The reply to `HELLO`.
pub(super) fn hello(session: &Session) -> Reply {
    let proto = match session.protocol {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (Reply::bulk("proto"), Reply::Integer(proto)),
        (Reply::bulk("id"), Reply::Integer(session.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(Vec::new())),
        (
            Reply::bulk("quorra_version"),
            Reply::bulk(env!("CARGO_PKG_VERSION")),
        ),
    ])
}

/// One line of `CLIENT INFO` / `CLIENT LIST`.
pub(super) fn client_line(session: &Session) -> String {
    let name = session
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let resp = match session.protocol {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    format!(
        "id={} addr={} laddr={} name={} db=0 user=default resp={} quorra-consistency={}\n",
        session.id, session.peer, session.local, name, resp, session.consistency
    )
}

fn section(out: &mut String, title: &str, fields: &[(&str, String)]) {
    if !out.is_empty() {
        out.push_str("\r\n");
    }
    out.push_str("# ");
    out.push_str(title);
    out.push_str("\r\n");
    for (k, v) in fields {
        out.push_str(k);
        out.push(':');
        out.push_str(v);
        out.push_str("\r\n");
    }
}

/// The reply to `INFO [section...]` (`all`, `everything` and `default`
/// mean every section).
pub(super) async fn info(gateway: &Arc<Gateway>, sections: &[String]) -> Reply {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| matches!(s.as_str(), "all" | "everything" | "default"));
    let wants = |name: &str| all || sections.iter().any(|s| s == name);
    let status = gateway.status().await;
    let mut out = String::new();
    if wants("server") {
        let uptime = gateway.started.elapsed().as_secs();
        section(
            &mut out,
            "Server",
            &[
                ("redis_version", REDIS_VERSION.into()),
                ("redis_mode", "standalone".into()),
                ("quorra_version", env!("CARGO_PKG_VERSION").into()),
                ("os", std::env::consts::OS.into()),
                ("arch_bits", (usize::BITS).to_string()),
                ("process_id", std::process::id().to_string()),
                ("tcp_port", gateway.config.listen.port().to_string()),
                ("uptime_in_seconds", uptime.to_string()),
                ("uptime_in_days", (uptime / 86_400).to_string()),
                ("quorra_node_id", gateway.facts.node.to_string()),
                (
                    "quorra_cluster",
                    status
                        .as_ref()
                        .map(|s| s.cluster.clone())
                        .unwrap_or_default(),
                ),
            ],
        );
    }
    if wants("clients") {
        section(
            &mut out,
            "Clients",
            &[
                (
                    "connected_clients",
                    gateway.connected.load(Ordering::Relaxed).to_string(),
                ),
                ("maxclients", MAX_CONNECTIONS.to_string()),
            ],
        );
    }
    if wants("stats") {
        section(
            &mut out,
            "Stats",
            &[
                (
                    "total_connections_received",
                    gateway
                        .connections_total
                        .load(Ordering::Relaxed)
                        .to_string(),
                ),
                (
                    "total_commands_processed",
                    gateway.commands_total.load(Ordering::Relaxed).to_string(),
                ),
                (
                    "expired_keys",
                    gateway
                        .sweep_stats
                        .expired_keys
                        .load(Ordering::Relaxed)
                        .to_string(),
                ),
                (
                    "quorra_expiry_sweeps",
                    gateway
                        .sweep_stats
                        .sweeps
                        .load(Ordering::Relaxed)
                        .to_string(),
                ),
            ],
        );
    }
    if wants("persistence") {
        section(
            &mut out,
            "Persistence",
            &[
                ("loading", "0".into()),
                ("rdb_bgsave_in_progress", "0".into()),
                ("aof_enabled", "0".into()),
                ("quorra_engine", gateway.facts.engine.clone()),
                ("quorra_fsync", gateway.facts.fsync.clone()),
            ],
        );
    }
    if wants("replication") {
        let mut fields = vec![
            ("role", "master".to_string()),
            ("connected_slaves", "0".into()),
        ];
        if let Some(s) = &status {
            let up = s.members.iter().filter(|m| m.state == "normal").count();
            let down = s.members.iter().filter(|m| m.state == "down").count();
            fields.extend([
                ("quorra_replicas", s.replicas.to_string()),
                ("quorra_partitions", s.partitions.to_string()),
                ("quorra_members", s.members.len().to_string()),
                ("quorra_members_normal", up.to_string()),
                ("quorra_members_down", down.to_string()),
                (
                    "quorra_anti_entropy",
                    if s.anti_entropy.enabled { "on" } else { "off" }.into(),
                ),
                (
                    "quorra_anti_entropy_keys_repaired",
                    s.anti_entropy.keys_repaired.to_string(),
                ),
            ]);
        }
        section(&mut out, "Replication", &fields);
    }
    if wants("keyspace") {
        let e = super::keyspace::estimate(gateway).await;
        let mut fields = Vec::new();
        if e.keys > 0 {
            fields.push((
                "db0",
                format!("keys={},expires={},avg_ttl=0", e.keys, e.expires),
            ));
        }
        fields.push((
            "quorra_keys_estimated_from_partitions",
            e.sampled.to_string(),
        ));
        section(&mut out, "Keyspace", &fields);
    }
    Reply::bulk(out)
}

/// Whether `name` matches the glob `pattern` (`*`, `?`), as CONFIG GET's.
/// Iterative, backtracking only to the last `*`: linear in practice and
/// never deep, whatever a client sends.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The reply to `CONFIG GET pattern...`.
pub(super) fn config_get(gateway: &Gateway, patterns: &[String]) -> Reply {
    let config = &gateway.config;
    let parameters: Vec<(&str, String)> = vec![
        (
            "appendfsync",
            match gateway.facts.fsync.as_str() {
                "always" => "always".into(),
                _ => "everysec".into(),
            },
        ),
        ("appendonly", "no".into()),
        ("bind", config.listen.ip().to_string()),
        ("cluster-enabled", "no".into()),
        ("databases", "1".into()),
        ("dir", gateway.facts.data_dir.display().to_string()),
        ("maxclients", MAX_CONNECTIONS.to_string()),
        ("maxmemory", "0".into()),
        ("maxmemory-policy", "noeviction".into()),
        ("port", config.listen.port().to_string()),
        (
            "protected-mode",
            if config.password.is_some() {
                "no"
            } else {
                "yes"
            }
            .into(),
        ),
        ("proto-max-bulk-len", super::codec::MAX_BULK_LEN.to_string()),
        ("save", String::new()),
        ("timeout", "0".into()),
        (
            "tls-port",
            if config.tls.is_some() {
                config.listen.port().to_string()
            } else {
                "0".into()
            },
        ),
    ];
    let mut out = Vec::new();
    // A pattern with more than 64 characters besides `*` matches no
    // parameter name: dropped before any matching.
    let patterns: Vec<String> = patterns
        .iter()
        .filter(|p| p.bytes().filter(|&c| c != b'*').count() <= 64)
        .map(|p| p.to_lowercase())
        .collect();
    for (name, value) in &parameters {
        if patterns.iter().any(|p| glob(p.as_bytes(), name.as_bytes())) {
            out.push((Reply::bulk(*name), Reply::bulk(value.clone())));
        }
    }
    Reply::Map(out)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn config_patterns_are_globs() {
        assert!(glob(b"*", b"save"));
        assert!(glob(b"append*", b"appendonly"));
        assert!(glob(b"s?ve", b"save"));
        assert!(!glob(b"save", b"saved"));
        assert!(glob(b"*max*", b"proto-max-bulk-len"));
        assert!(!glob(b"", b"x"));
        assert!(glob(b"", b""));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"a*b*c", b"axxbyy"));
        // A hostile pattern costs little.
        let hostile = [b"*".repeat(100_000), b"x".to_vec()].concat();
        assert!(!glob(&hostile, b"proto-max-bulk-len"));
    }
}
