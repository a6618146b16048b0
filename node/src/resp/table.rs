//! The command table: what `COMMAND`, `COMMAND COUNT`, `COMMAND INFO` and
//! `COMMAND DOCS` say, in Redis 7's shapes (redis-cli asks for the docs at
//! start to show hints; client libraries read arity and key positions).

use super::codec::Reply;

/// One command the gateway serves.
struct Entry {
    name: &'static str,
    /// Redis arity: positive is exact, negative is "at least".
    arity: i64,
    flags: &'static [&'static str],
    /// First key, last key (-1: the last argument), step between keys.
    keys: (i64, i64, i64),
    group: &'static str,
    since: &'static str,
    summary: &'static str,
}

const fn entry(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    group: &'static str,
    since: &'static str,
    summary: &'static str,
) -> Entry {
    Entry {
        name,
        arity,
        flags,
        keys,
        group,
        since,
        summary,
    }
}

const R: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "fast"];
const C: &[&str] = &["fast", "loading", "stale"];
const N: (i64, i64, i64) = (0, 0, 0);
const K: (i64, i64, i64) = (1, 1, 1);
const ALL: (i64, i64, i64) = (1, -1, 1);

/// Every command, sorted by name.
const TABLE: &[Entry] = &[
    entry(
        "auth",
        -2,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        N,
        "connection",
        "1.0.0",
        "Authenticates the connection.",
    ),
    entry(
        "client",
        -2,
        C,
        N,
        "connection",
        "2.4.0",
        "CLIENT ID, GETNAME, SETNAME and INFO.",
    ),
    entry(
        "command",
        -1,
        C,
        N,
        "server",
        "2.8.13",
        "Returns detailed information about all commands.",
    ),
    entry(
        "config",
        -2,
        &["admin", "noscript", "loading", "stale"],
        N,
        "server",
        "2.0.0",
        "CONFIG GET: reads configuration parameters.",
    ),
    entry(
        "dbsize",
        1,
        R,
        N,
        "server",
        "1.0.0",
        "Returns an estimate of the number of keys in the cluster.",
    ),
    entry(
        "decr",
        2,
        W,
        K,
        "string",
        "1.0.0",
        "Decrements the integer value of a key by one (a conflict-free counter).",
    ),
    entry(
        "decrby",
        3,
        W,
        K,
        "string",
        "1.0.0",
        "Decrements the integer value of a key by a number (a conflict-free counter).",
    ),
    entry(
        "del",
        -2,
        &["write"],
        ALL,
        "generic",
        "1.0.0",
        "Deletes one or more keys (not atomically across keys).",
    ),
    entry(
        "echo",
        2,
        &["fast"],
        N,
        "connection",
        "1.0.0",
        "Returns the given string.",
    ),
    entry(
        "exists",
        -2,
        R,
        ALL,
        "generic",
        "3.0.3",
        "Counts the given keys that exist.",
    ),
    entry(
        "expire",
        3,
        WF,
        K,
        "generic",
        "1.0.0",
        "Sets a key's time to live in seconds.",
    ),
    entry(
        "get",
        2,
        R,
        K,
        "string",
        "1.0.0",
        "Returns the string value of a key (one sibling, chosen the same on every node).",
    ),
    entry(
        "hello",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        N,
        "connection",
        "6.0.0",
        "Handshakes, choosing RESP2 or RESP3.",
    ),
    entry(
        "incr",
        2,
        W,
        K,
        "string",
        "1.0.0",
        "Increments the integer value of a key by one (a conflict-free counter).",
    ),
    entry(
        "incrby",
        3,
        W,
        K,
        "string",
        "1.0.0",
        "Increments the integer value of a key by a number (a conflict-free counter).",
    ),
    entry(
        "info",
        -1,
        &["loading", "stale"],
        N,
        "server",
        "1.0.0",
        "Returns information about the node and the cluster.",
    ),
    entry(
        "mget",
        -2,
        R,
        ALL,
        "string",
        "1.0.0",
        "Returns the values of several keys, read in parallel.",
    ),
    entry(
        "mset",
        -3,
        W,
        (1, -1, 2),
        "string",
        "1.0.1",
        "Sets several keys in parallel (not atomic).",
    ),
    entry(
        "persist",
        2,
        WF,
        K,
        "generic",
        "2.2.0",
        "Removes a key's expiry.",
    ),
    entry(
        "pexpire",
        3,
        WF,
        K,
        "generic",
        "2.6.0",
        "Sets a key's time to live in milliseconds.",
    ),
    entry(
        "ping",
        -1,
        &["fast"],
        N,
        "connection",
        "1.0.0",
        "Returns PONG, or the given string.",
    ),
    entry(
        "pttl",
        2,
        R,
        K,
        "generic",
        "2.6.0",
        "Returns a key's time to live in milliseconds.",
    ),
    entry(
        "quit",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        N,
        "connection",
        "1.0.0",
        "Closes the connection.",
    ),
    entry(
        "quorra.consistency",
        2,
        C,
        N,
        "connection",
        "0.1.0",
        "Sets this connection's consistency: one, two, quorum, all or r=N,w=N.",
    ),
    entry(
        "quorra.put",
        4,
        W,
        K,
        "string",
        "0.1.0",
        "Writes a value with the context from QUORRA.SIBLINGS, replacing the siblings it covers.",
    ),
    entry(
        "quorra.siblings",
        2,
        R,
        K,
        "string",
        "0.1.0",
        "Returns the context, then every sibling of a key, latest first.",
    ),
    entry(
        "select",
        2,
        C,
        N,
        "connection",
        "1.0.0",
        "Selects database 0, the only one.",
    ),
    entry(
        "set",
        -3,
        W,
        K,
        "string",
        "1.0.0",
        "Sets a key's string value, with an optional expiry and condition.",
    ),
    entry(
        "ttl",
        2,
        R,
        K,
        "generic",
        "1.0.0",
        "Returns a key's time to live in seconds.",
    ),
    entry(
        "unlink",
        -2,
        &["write", "fast"],
        ALL,
        "generic",
        "4.0.0",
        "Deletes one or more keys (as DEL).",
    ),
];

fn status_list(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|s| Reply::Simple((*s).into())).collect())
}

fn info(e: &Entry) -> Reply {
    Reply::Array(vec![
        Reply::bulk(e.name),
        Reply::Integer(e.arity),
        status_list(e.flags),
        Reply::Integer(e.keys.0),
        Reply::Integer(e.keys.1),
        Reply::Integer(e.keys.2),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn docs(e: &Entry) -> Reply {
    Reply::Map(vec![
        (Reply::bulk("summary"), Reply::bulk(e.summary)),
        (Reply::bulk("since"), Reply::bulk(e.since)),
        (Reply::bulk("group"), Reply::bulk(e.group)),
    ])
}

fn find(name: &str) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.name == name)
}

/// The reply to `COMMAND [sub [name...]]` (`sub` and names lowercase).
pub(super) fn command(sub: &str, names: &[String]) -> Reply {
    match sub {
        "" => Reply::Array(TABLE.iter().map(info).collect()),
        "count" => Reply::Integer(TABLE.len() as i64),
        "info" if names.is_empty() => Reply::Array(TABLE.iter().map(info).collect()),
        "info" => Reply::Array(
            names
                .iter()
                .map(|n| find(n).map_or(Reply::Null, info))
                .collect(),
        ),
        "docs" if names.is_empty() => Reply::Map(
            TABLE
                .iter()
                .map(|e| (Reply::bulk(e.name), docs(e)))
                .collect(),
        ),
        "docs" => Reply::Map(
            names
                .iter()
                .filter_map(|n| find(n).map(|e| (Reply::bulk(e.name), docs(e))))
                .collect(),
        ),
        "list" => Reply::Array(TABLE.iter().map(|e| Reply::bulk(e.name)).collect()),
        other => Reply::error(format!(
            "ERR unknown subcommand '{other}'. Try COMMAND HELP."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::command::parse;
    use bytes::Bytes;

    #[test]
    fn the_table_is_sorted_and_every_name_parses() {
        assert!(TABLE.windows(2).all(|w| w[0].name < w[1].name));
        for e in TABLE {
            // Enough arguments for any command: parsing must not call it unknown.
            let args: Vec<Bytes> = std::iter::once(Bytes::from(e.name))
                .chain(std::iter::repeat_n(
                    Bytes::from_static(b"1"),
                    e.arity.unsigned_abs() as usize - 1,
                ))
                .collect();
            if let Err(Reply::Error(message)) = parse(&args) {
                assert!(
                    !message.contains("unknown command"),
                    "{}: {message}",
                    e.name
                );
            }
        }
    }

    #[test]
    fn count_info_and_docs_agree() {
        assert_eq!(command("count", &[]), Reply::Integer(TABLE.len() as i64));
        let Reply::Array(one) = command("info", &["get".into(), "nope".into()]) else {
            panic!()
        };
        assert_eq!(one[1], Reply::Null);
        let Reply::Map(docs) = command("docs", &[]) else {
            panic!()
        };
        assert_eq!(docs.len(), TABLE.len());
    }
}
