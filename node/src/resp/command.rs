//! Redis commands: a request's arguments parsed into a [`Command`], with
//! Redis's own error strings for unknown commands, wrong arity, syntax
//! errors and bad numbers, so clients and their tests see what they expect.
//!
//! Parsing is pure; executing a command against the cluster is the
//! server's job.

use bytes::Bytes;

use super::codec::Reply;

/// How a `SET` expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// In this many milliseconds from now (`EX s`, `PX ms`).
    In(u64),
    /// Keep the key's current expiry (`KEEPTTL`).
    Keep,
}

/// A `SET` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Only if the key is absent (`NX`).
    Absent,
    /// Only if the key is present (`XX`).
    Present,
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `PING [message]`.
    Ping(Option<Bytes>),
    /// `ECHO message`.
    Echo(Bytes),
    /// `QUIT`.
    Quit,
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello {
        /// Requested protocol version.
        protocol: Option<i64>,
        /// Credentials.
        auth: Option<(Bytes, Bytes)>,
        /// Connection name.
        name: Option<Bytes>,
    },
    /// `AUTH [user] password`.
    Auth {
        /// User (only `default` exists).
        user: Option<Bytes>,
        /// Password.
        password: Bytes,
    },
    /// `SELECT index` (only 0 exists).
    Select(i64),
    /// `GET key`.
    Get(Bytes),
    /// `SET key value [EX s | PX ms | KEEPTTL] [NX | XX] [GET]`.
    Set {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
        /// Expiry.
        expiry: Option<Expiry>,
        /// Condition.
        condition: Option<Condition>,
        /// Return the old value.
        get: bool,
    },
    /// `DEL key...`.
    Del(Vec<Bytes>),
    /// `EXISTS key...`.
    Exists(Vec<Bytes>),
    /// `MGET key...`.
    MGet(Vec<Bytes>),
    /// `MSET key value...`.
    MSet(Vec<(Bytes, Bytes)>),
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`: add `by`.
    IncrBy {
        /// Key.
        key: Bytes,
        /// Amount (negative for the DECR family).
        by: i64,
    },
    /// `EXPIRE key s`, `PEXPIRE key ms`: expire in `ms` (≤ 0: delete now).
    Expire {
        /// Key.
        key: Bytes,
        /// Milliseconds from now.
        ms: i64,
    },
    /// `TTL key` (`millis: false`), `PTTL key` (`millis: true`).
    Ttl {
        /// Key.
        key: Bytes,
        /// Answer in milliseconds.
        millis: bool,
    },
    /// `PERSIST key`.
    Persist(Bytes),
    /// `DBSIZE`.
    DbSize,
    /// `INFO [section...]`.
    Info(Vec<String>),
    /// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS [name...]`, `COMMAND INFO [name...]`.
    CommandInfo {
        /// Subcommand, lowercase (empty: the whole table).
        sub: String,
        /// Names asked about.
        names: Vec<String>,
    },
    /// `CONFIG GET pattern...`.
    ConfigGet(Vec<String>),
    /// `CLIENT SETNAME name`.
    ClientSetName(Bytes),
    /// `CLIENT GETNAME`.
    ClientGetName,
    /// `CLIENT ID`.
    ClientId,
    /// `CLIENT INFO`.
    ClientInfo,
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value` (client libraries send it on connect).
    ClientSetInfo,
    /// `QUORRA.CONSISTENCY level`.
    Consistency(String),
    /// `QUORRA.SIBLINGS key`.
    Siblings(Bytes),
    /// `QUORRA.PUT key value context`.
    PutWithContext {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
        /// The context from `QUORRA.SIBLINGS`, base64.
        context: Bytes,
    },
}

impl Command {
    /// The command's name for metrics: one per kind of command (aliases
    /// such as `INCR`, `DECR` and `INCRBY` share one), so a label made of
    /// it has a bounded number of values.
    pub fn metric_name(&self) -> &'static str {
        match self {
            Command::Ping(_) => "ping",
            Command::Echo(_) => "echo",
            Command::Quit => "quit",
            Command::Hello { .. } => "hello",
            Command::Auth { .. } => "auth",
            Command::Select(_) => "select",
            Command::Get(_) => "get",
            Command::Set { .. } => "set",
            Command::Del(_) => "del",
            Command::Exists(_) => "exists",
            Command::MGet(_) => "mget",
            Command::MSet(_) => "mset",
            Command::IncrBy { .. } => "incrby",
            Command::Expire { .. } => "expire",
            Command::Ttl { .. } => "ttl",
            Command::Persist(_) => "persist",
            Command::DbSize => "dbsize",
            Command::Info(_) => "info",
            Command::CommandInfo { .. } => "command",
            Command::ConfigGet(_) => "config",
            Command::ClientSetName(_)
            | Command::ClientGetName
            | Command::ClientId
            | Command::ClientInfo
            | Command::ClientSetInfo => "client",
            Command::Consistency(_) => "quorra.consistency",
            Command::Siblings(_) => "quorra.siblings",
            Command::PutWithContext { .. } => "quorra.put",
        }
    }
}

/// Redis's reply for a command with the wrong number of arguments.
pub fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_lowercase()
    ))
}

/// Redis's reply for an argument that should be an integer.
pub fn not_an_integer() -> Reply {
    Reply::error("ERR value is not an integer or out of range")
}

fn syntax_error() -> Reply {
    Reply::error("ERR syntax error")
}

fn unknown(args: &[Bytes]) -> Reply {
    let name = String::from_utf8_lossy(&args[0]);
    let rest: String = args[1..]
        .iter()
        .take(8)
        .map(|a| format!("'{}' ", String::from_utf8_lossy(a)))
        .collect();
    Reply::error(format!(
        "ERR unknown command '{name}', with args beginning with: {rest}"
    ))
}

fn integer(b: &Bytes) -> Result<i64, Reply> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(not_an_integer)
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses a request (at least one argument). `Err` is the reply to send.
pub fn parse(args: &[Bytes]) -> Result<Command, Reply> {
    let Some(first) = args.first() else {
        return Err(Reply::error("ERR empty command"));
    };
    let name = text(first).to_lowercase();
    let n = args.len();
    let arity = |ok: bool| if ok { Ok(()) } else { Err(wrong_arity(&name)) };
    let keys = || args[1..].to_vec();
    Ok(match name.as_str() {
        "ping" => {
            arity(n <= 2)?;
            Command::Ping(args.get(1).cloned())
        }
        "echo" => {
            arity(n == 2)?;
            Command::Echo(args[1].clone())
        }
        "quit" => Command::Quit,
        "hello" => parse_hello(args)?,
        "auth" => {
            arity(n == 2 || n == 3)?;
            Command::Auth {
                user: (n == 3).then(|| args[1].clone()),
                password: args[n - 1].clone(),
            }
        }
        "select" => {
            arity(n == 2)?;
            Command::Select(integer(&args[1])?)
        }
        "get" => {
            arity(n == 2)?;
            Command::Get(args[1].clone())
        }
        "set" => parse_set(args)?,
        "del" | "unlink" => {
            arity(n >= 2)?;
            Command::Del(keys())
        }
        "exists" => {
            arity(n >= 2)?;
            Command::Exists(keys())
        }
        "mget" => {
            arity(n >= 2)?;
            Command::MGet(keys())
        }
        "mset" => {
            arity(n >= 3 && n % 2 == 1)?;
            Command::MSet(
                args[1..]
                    .chunks(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect(),
            )
        }
        "incr" | "decr" => {
            arity(n == 2)?;
            let by = if name == "incr" { 1 } else { -1 };
            Command::IncrBy {
                key: args[1].clone(),
                by,
            }
        }
        "incrby" | "decrby" => {
            arity(n == 3)?;
            let by = integer(&args[2])?;
            let by = if name == "incrby" {
                by
            } else {
                by.checked_neg()
                    .ok_or_else(|| Reply::error("ERR decrement would overflow"))?
            };
            Command::IncrBy {
                key: args[1].clone(),
                by,
            }
        }
        "expire" | "pexpire" => {
            arity(n == 3)?;
            let amount = integer(&args[2])?;
            let ms = if name == "expire" {
                amount.checked_mul(1000).ok_or_else(|| {
                    Reply::error(format!("ERR invalid expire time in '{name}' command"))
                })?
            } else {
                amount
            };
            Command::Expire {
                key: args[1].clone(),
                ms,
            }
        }
        "ttl" | "pttl" => {
            arity(n == 2)?;
            Command::Ttl {
                key: args[1].clone(),
                millis: name == "pttl",
            }
        }
        "persist" => {
            arity(n == 2)?;
            Command::Persist(args[1].clone())
        }
        "dbsize" => {
            arity(n == 1)?;
            Command::DbSize
        }
        "info" => Command::Info(args[1..].iter().map(|a| text(a).to_lowercase()).collect()),
        "command" => Command::CommandInfo {
            sub: args
                .get(1)
                .map(|a| text(a).to_lowercase())
                .unwrap_or_default(),
            names: args
                .iter()
                .skip(2)
                .map(|a| text(a).to_lowercase())
                .collect(),
        },
        "config" => {
            arity(n >= 2)?;
            match text(&args[1]).to_lowercase().as_str() {
                "get" if n >= 3 => Command::ConfigGet(args[2..].iter().map(text).collect()),
                "get" => return Err(wrong_arity("config|get")),
                other => {
                    return Err(Reply::error(format!(
                        "ERR unknown subcommand '{other}'. Try CONFIG HELP."
                    )));
                }
            }
        }
        "client" => {
            arity(n >= 2)?;
            match (text(&args[1]).to_lowercase().as_str(), n) {
                ("setname", 3) => Command::ClientSetName(args[2].clone()),
                ("getname", 2) => Command::ClientGetName,
                ("id", 2) => Command::ClientId,
                ("info", 2) => Command::ClientInfo,
                ("setinfo", 4) => Command::ClientSetInfo,
                ("setname" | "getname" | "id" | "info" | "setinfo", _) => {
                    return Err(wrong_arity(&format!("client|{}", text(&args[1]))));
                }
                (other, _) => {
                    return Err(Reply::error(format!(
                        "ERR unknown subcommand '{other}'. Try CLIENT HELP."
                    )));
                }
            }
        }
        "quorra.consistency" => {
            arity(n == 2)?;
            Command::Consistency(text(&args[1]))
        }
        "quorra.siblings" => {
            arity(n == 2)?;
            Command::Siblings(args[1].clone())
        }
        "quorra.put" => {
            arity(n == 4)?;
            Command::PutWithContext {
                key: args[1].clone(),
                value: args[2].clone(),
                context: args[3].clone(),
            }
        }
        _ => return Err(unknown(args)),
    })
}

fn parse_hello(args: &[Bytes]) -> Result<Command, Reply> {
    let mut protocol = None;
    let mut auth = None;
    let mut name = None;
    if let Some(v) = args.get(1) {
        protocol =
            Some(integer(v).map_err(|_| {
                Reply::error("ERR Protocol version is not an integer or out of range")
            })?);
    }
    let mut i = 2;
    while i < args.len() {
        match text(&args[i]).to_lowercase().as_str() {
            "auth" if i + 2 < args.len() => {
                auth = Some((args[i + 1].clone(), args[i + 2].clone()));
                i += 3;
            }
            "setname" if i + 1 < args.len() => {
                name = Some(args[i + 1].clone());
                i += 2;
            }
            _ => return Err(syntax_error()),
        }
    }
    Ok(Command::Hello {
        protocol,
        auth,
        name,
    })
}

fn parse_set(args: &[Bytes]) -> Result<Command, Reply> {
    if args.len() < 3 {
        return Err(wrong_arity("set"));
    }
    let (mut expiry, mut condition, mut get) = (None, None, false);
    let mut i = 3;
    while i < args.len() {
        let option = text(&args[i]).to_uppercase();
        match option.as_str() {
            "EX" | "PX" if expiry.is_none() && i + 1 < args.len() => {
                let amount = integer(&args[i + 1])?;
                let ms = if option == "EX" {
                    amount.checked_mul(1000)
                } else {
                    Some(amount)
                };
                match ms {
                    Some(ms) if ms > 0 => expiry = Some(Expiry::In(ms as u64)),
                    _ => return Err(Reply::error("ERR invalid expire time in 'set' command")),
                }
                i += 2;
            }
            "KEEPTTL" if expiry.is_none() => {
                expiry = Some(Expiry::Keep);
                i += 1;
            }
            "NX" if condition.is_none() => {
                condition = Some(Condition::Absent);
                i += 1;
            }
            "XX" if condition.is_none() => {
                condition = Some(Condition::Present);
                i += 1;
            }
            "GET" if !get => {
                get = true;
                i += 1;
            }
            _ => return Err(syntax_error()),
        }
    }
    Ok(Command::Set {
        key: args[1].clone(),
        value: args[2].clone(),
        expiry,
        condition,
        get,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, Reply> {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        parse(&args)
    }

    fn err(line: &str) -> String {
        match p(line) {
            Err(Reply::Error(e)) => e,
            other => panic!("{line}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn set_takes_its_options_in_any_order_once_each() {
        assert_eq!(
            p("set k v px 1500 nx get").unwrap(),
            Command::Set {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                expiry: Some(Expiry::In(1500)),
                condition: Some(Condition::Absent),
                get: true,
            }
        );
        assert_eq!(err("set k v nx xx"), "ERR syntax error");
        assert_eq!(err("set k v ex 1 px 2"), "ERR syntax error");
        assert_eq!(
            err("set k v ex 0"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            err("set k v ex x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err("set k"),
            "ERR wrong number of arguments for 'set' command"
        );
    }

    #[test]
    fn redis_error_strings_for_arity_numbers_and_unknown_commands() {
        assert_eq!(
            err("GET"),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            err("mset a 1 b"),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            err("incrby k 1.5"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err("flushall async now"),
            "ERR unknown command 'flushall', with args beginning with: 'async' 'now' "
        );
        assert_eq!(
            err("client kill x"),
            "ERR unknown subcommand 'kill'. Try CLIENT HELP."
        );
    }

    #[test]
    fn counters_and_expiry_commands_carry_signed_amounts() {
        assert_eq!(
            p("DECRBY k 5").unwrap(),
            Command::IncrBy {
                key: Bytes::from_static(b"k"),
                by: -5
            }
        );
        assert!(p("decrby k -9223372036854775808").is_err());
        assert_eq!(
            p("expire k 2").unwrap(),
            Command::Expire {
                key: Bytes::from_static(b"k"),
                ms: 2000
            }
        );
        assert!(p("expire k 9223372036854775807").is_err());
    }

    #[test]
    fn hello_reads_protocol_auth_and_name() {
        assert_eq!(
            p("HELLO 3 AUTH default pw SETNAME app").unwrap(),
            Command::Hello {
                protocol: Some(3),
                auth: Some((Bytes::from_static(b"default"), Bytes::from_static(b"pw"))),
                name: Some(Bytes::from_static(b"app")),
            }
        );
        assert_eq!(err("HELLO 3 AUTH default"), "ERR syntax error");
    }
}
