//! Executing commands: each Redis command as the node's requests.
//!
//! Reads (`GET`, `MGET`, `EXISTS`, `TTL`, `QUORRA.SIBLINGS`) are gets at the
//! connection's consistency, resolved to the value a client sees
//! ([`super::update::visible`]: the latest string or the joined counter,
//! absent once expired by this node's clock). Everything that changes a key
//! from what it holds (`SET`, `INCR` and friends, `EXPIRE`, `PERSIST`,
//! `DEL`) is an update the coordinating primary applies to its own copy,
//! after reading the key at the connection's read quorum unless the
//! command replaces whatever is there ([`super::update`]). `QUORRA.PUT` is a plain put with the client's
//! context. Multi-key commands fan out in parallel, one request per key;
//! `MSET` is therefore not atomic: a failure leaves the keys that were
//! written written, and the error says how many failed.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use quorra_client::{Consistency, Context, Outcome, Request, RequestError, Response};

use super::codec::{Protocol, Reply};
use super::command::{Command, Condition, Expiry};
use super::connection::Session;
use super::gateway::{Gateway, wall_ms};
use super::update::{Answer, Op, SetExpiry, Update, as_string, visible};
use super::value::{Data, Stored};
use super::{info, table};

/// Whether a connection may run `command` before `AUTH`.
pub(super) fn allowed_before_auth(command: &Command) -> bool {
    matches!(
        command,
        Command::Auth { .. } | Command::Hello { .. } | Command::Quit
    )
}

/// The keys a data command touches; `None` for a command about the
/// connection itself, which runs between batches ([`session`]).
pub(super) fn keys(command: &Command) -> Option<Vec<&Bytes>> {
    Some(match command {
        Command::Quit
        | Command::Hello { .. }
        | Command::Auth { .. }
        | Command::Select(_)
        | Command::ClientSetName(_)
        | Command::ClientGetName
        | Command::ClientId
        | Command::ClientInfo
        | Command::ClientSetInfo
        | Command::Consistency(_) => return None,
        Command::Get(k)
        | Command::Set { key: k, .. }
        | Command::IncrBy { key: k, .. }
        | Command::Expire { key: k, .. }
        | Command::Ttl { key: k, .. }
        | Command::Persist(k)
        | Command::Siblings(k)
        | Command::PutWithContext { key: k, .. } => vec![k],
        Command::Del(ks) | Command::Exists(ks) | Command::MGet(ks) => ks.iter().collect(),
        Command::MSet(pairs) => pairs.iter().map(|(k, _)| k).collect(),
        Command::Ping(_)
        | Command::Echo(_)
        | Command::DbSize
        | Command::Info(_)
        | Command::CommandInfo { .. }
        | Command::ConfigGet(_) => Vec::new(),
    })
}

/// Counts a command and its latency, if the node records metrics.
fn record(gateway: &Gateway, command: &'static str, started: Instant, reply: &Reply) {
    if let Some(m) = &gateway.metrics {
        m.record_command(
            command,
            !matches!(reply, Reply::Error(_)),
            started.elapsed(),
        );
    }
}

/// Runs a command about the connection.
pub(super) async fn session(gateway: &Gateway, session: &mut Session, command: Command) -> Reply {
    let (name, started) = (command.metric_name(), Instant::now());
    let reply = run_session(gateway, session, command).await;
    record(gateway, name, started, &reply);
    reply
}

async fn run_session(gateway: &Gateway, session: &mut Session, command: Command) -> Reply {
    match command {
        Command::Quit => Reply::ok(),
        Command::Auth { user, password } => auth(gateway, session, user.as_ref(), &password),
        Command::Hello {
            protocol,
            auth: credentials,
            name,
        } => {
            let protocol = match protocol {
                None => session.protocol,
                Some(2) => Protocol::Resp2,
                Some(3) => Protocol::Resp3,
                Some(_) => {
                    return Reply::error("NOPROTO unsupported protocol version");
                }
            };
            // Without a password the default user takes any (Redis's
            // `nopass`): clients that always send credentials connect.
            if let Some((user, password)) = credentials
                && gateway.needs_auth()
            {
                let reply = auth(gateway, session, Some(&user), &password);
                if matches!(reply, Reply::Error(_)) {
                    return reply;
                }
            }
            if !session.authenticated {
                return Reply::error(
                    "NOAUTH HELLO must be called with the client already authenticated, \
                     otherwise the HELLO <proto> AUTH <user> <pass> option can be used",
                );
            }
            if let Some(name) = name {
                if let Err(e) = check_name(&name) {
                    return e;
                }
                session.name = (!name.is_empty()).then_some(name);
            }
            session.protocol = protocol;
            info::hello(session)
        }
        Command::Select(0) => Reply::ok(),
        Command::Select(_) => {
            Reply::error("ERR DB index is out of range (Quorra has one keyspace: database 0)")
        }
        Command::ClientSetName(name) => {
            if let Err(e) = check_name(&name) {
                return e;
            }
            session.name = (!name.is_empty()).then_some(name);
            Reply::ok()
        }
        Command::ClientGetName => session.name.clone().map_or(Reply::Null, Reply::Bulk),
        Command::ClientId => Reply::Integer(session.id as i64),
        Command::ClientInfo => Reply::Bulk(Bytes::from(info::client_line(session))),
        Command::ClientSetInfo => Reply::ok(),
        Command::Consistency(level) => match level.to_lowercase().parse::<Consistency>() {
            Ok(c) => {
                session.consistency = c;
                Reply::ok()
            }
            Err(e) => Reply::error(format!("ERR {e}")),
        },
        other => Reply::error(format!("ERR not a connection command: {other:?}")),
    }
}

/// Redis's rule for connection names.
fn check_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|b| *b <= b' ' || *b > b'~') {
        return Err(Reply::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn auth(gateway: &Gateway, session: &mut Session, user: Option<&Bytes>, password: &[u8]) -> Reply {
    if !gateway.needs_auth() {
        return Reply::error(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        );
    }
    let default_user = user.is_none_or(|u| u.as_ref() == b"default");
    if default_user && gateway.password_matches(password) {
        session.authenticated = true;
        Reply::ok()
    } else {
        Reply::error("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

/// The Redis error for a failed request.
fn failed(e: RequestError) -> Reply {
    match e {
        RequestError::Invalid(message) => Reply::error(format!("ERR {message}")),
        RequestError::Consistency(e) => Reply::error(format!("ERR {e}")),
        e @ (RequestError::QuorumNotReached { .. } | RequestError::Unavailable(_)) => {
            Reply::error(format!("UNAVAILABLE {e}"))
        }
        e @ RequestError::Storage(_) => Reply::error(format!("IOERR {e}")),
        // Redis's word for "not now, retry later".
        e @ RequestError::Overloaded(_) => Reply::error(format!("BUSY {e}")),
    }
}

async fn get(gateway: &Gateway, key: &Bytes, consistency: Consistency) -> Outcome {
    gateway
        .call(Request::Get {
            key: key.clone(),
            consistency,
        })
        .await
}

/// Reads `key` as a client sees it.
async fn read(
    gateway: &Gateway,
    key: &Bytes,
    consistency: Consistency,
) -> Result<Option<Stored>, Reply> {
    let response = get(gateway, key, consistency).await.map_err(failed)?;
    Ok(visible(&response.values, wall_ms()))
}

/// Sends an update of `key` and reads its answer.
async fn update(
    gateway: &Gateway,
    key: &Bytes,
    op: Op,
    consistency: Consistency,
) -> Result<Answer, Reply> {
    let update = Update {
        op,
        now_ms: wall_ms(),
    }
    .encode();
    let response: Response = gateway
        .call(Request::Update {
            key: key.clone(),
            update,
            consistency,
        })
        .await
        .map_err(failed)?;
    response
        .answer
        .as_deref()
        .and_then(Answer::decode)
        .ok_or_else(|| Reply::error("ERR the coordinator sent no answer to the update"))
}

/// Runs `each` for every key at once and gathers the results in order.
async fn fan_out<T, F, Fut>(
    gateway: &Arc<Gateway>,
    keys: Vec<Bytes>,
    each: F,
) -> Vec<Result<T, Reply>>
where
    T: Send + 'static,
    F: Fn(Arc<Gateway>, Bytes) -> Fut,
    Fut: std::future::Future<Output = Result<T, Reply>> + Send + 'static,
{
    if keys.len() == 1 {
        let key = keys.into_iter().next().expect("one key");
        return vec![each(gateway.clone(), key).await];
    }
    let tasks: Vec<_> = keys
        .into_iter()
        .map(|k| tokio::spawn(each(gateway.clone(), k)))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(
            task.await.unwrap_or_else(|e| {
                Err(Reply::error(format!("ERR internal error on one key: {e}")))
            }),
        );
    }
    out
}

/// The `-BUSY` a data command gets without being started, when the node
/// admits no more requests now (see `runtime::admission`): under a flood
/// of pipelined commands, starting a task for each only to have it
/// refused costs the CPU the admitted ones need. Commands that ask the
/// core nothing (`PING`, `INFO`) are always run.
pub(super) fn refused_early(gateway: &Gateway, command: &Command) -> Option<Reply> {
    let asks_the_core = keys(command).is_some_and(|k| !k.is_empty());
    if !asks_the_core || !gateway.admission.full() {
        return None;
    }
    let reply = failed(gateway.admission.refuse());
    record(gateway, command.metric_name(), Instant::now(), &reply);
    Some(reply)
}

/// Runs a data command.
pub(super) async fn data(
    gateway: Arc<Gateway>,
    consistency: Consistency,
    command: Command,
) -> Reply {
    let (name, started) = (command.metric_name(), Instant::now());
    let reply = match run(&gateway, consistency, command).await {
        Ok(reply) | Err(reply) => reply,
    };
    record(&gateway, name, started, &reply);
    reply
}

async fn run(gateway: &Arc<Gateway>, c: Consistency, command: Command) -> Result<Reply, Reply> {
    Ok(match command {
        Command::Ping(None) => Reply::Simple("PONG".into()),
        Command::Ping(Some(message)) | Command::Echo(message) => Reply::Bulk(message),
        Command::Get(key) => read(gateway, &key, c)
            .await?
            .map_or(Reply::Null, |s| Reply::Bulk(as_string(&s))),
        Command::Set {
            key,
            value,
            expiry,
            condition,
            get,
        } => {
            let expiry = match expiry {
                None => SetExpiry::Never,
                Some(Expiry::Keep) => SetExpiry::Keep,
                Some(Expiry::In(ms)) => SetExpiry::At(expiry_at(ms, "set")?),
            };
            let op = Op::Set {
                value,
                expiry,
                present: condition.map(|c| c == Condition::Present),
                want_old: get,
            };
            match update(gateway, &key, op, c).await? {
                Answer::Set { old, .. } if get => old.map_or(Reply::Null, Reply::Bulk),
                Answer::Set { written: true, .. } => Reply::ok(),
                Answer::Set { written: false, .. } => Reply::Null,
                other => unexpected(other),
            }
        }
        Command::Del(keys) => {
            let results = fan_out(gateway, keys, move |g, k| async move {
                update(&g, &k, Op::Delete, c).await
            })
            .await;
            let mut deleted = 0;
            for r in results {
                if r? == Answer::Changed(true) {
                    deleted += 1;
                }
            }
            Reply::Integer(deleted)
        }
        Command::Exists(keys) => {
            let results = fan_out(gateway, keys, move |g, k| async move {
                read(&g, &k, c).await.map(|v| v.is_some())
            })
            .await;
            let mut present = 0;
            for r in results {
                present += i64::from(r?);
            }
            Reply::Integer(present)
        }
        Command::MGet(keys) => {
            let results = fan_out(
                gateway,
                keys,
                move |g, k| async move { read(&g, &k, c).await },
            )
            .await;
            let mut values = Vec::with_capacity(results.len());
            for r in results {
                values.push(r?.map_or(Reply::Null, |s| Reply::Bulk(as_string(&s))));
            }
            Reply::Array(values)
        }
        Command::MSet(pairs) => {
            let total = pairs.len();
            let values: std::collections::HashMap<Bytes, Bytes> = pairs.into_iter().collect();
            // A key given twice: its last value, as Redis does.
            let keys: Vec<Bytes> = values.keys().cloned().collect();
            let values = Arc::new(values);
            let results = fan_out(gateway, keys, move |g, k| {
                let value = values[&k].clone();
                async move {
                    let op = Op::Set {
                        value,
                        expiry: SetExpiry::Never,
                        present: None,
                        want_old: false,
                    };
                    update(&g, &k, op, c).await
                }
            })
            .await;
            let failures: Vec<Reply> = results.into_iter().filter_map(Result::err).collect();
            match failures.first() {
                None => Reply::ok(),
                Some(Reply::Error(first)) => Reply::error(format!(
                    "{first} (MSET is not atomic: {} of {total} keys failed, the others were written)",
                    failures.len()
                )),
                Some(other) => other.clone(),
            }
        }
        Command::IncrBy { key, by } => match update(gateway, &key, Op::Add(by), c).await? {
            Answer::Counter(v) => Reply::Integer(v),
            other => unexpected(other),
        },
        Command::Expire { key, ms } => {
            let at = if ms <= 0 {
                0
            } else {
                expiry_at(ms as u64, "expire")?
            };
            changed(update(gateway, &key, Op::Expire(Some(at)), c).await?)
        }
        Command::Persist(key) => changed(update(gateway, &key, Op::Expire(None), c).await?),
        Command::Ttl { key, millis } => {
            let now = wall_ms();
            match read(gateway, &key, c).await? {
                None => Reply::Integer(-2),
                Some(Stored {
                    expires_at_ms: None,
                    ..
                }) => Reply::Integer(-1),
                Some(Stored {
                    expires_at_ms: Some(at),
                    ..
                }) => {
                    let left = i64::try_from(at.saturating_sub(now)).unwrap_or(i64::MAX);
                    Reply::Integer(if millis {
                        left
                    } else {
                        left.saturating_add(500) / 1000
                    })
                }
            }
        }
        Command::Siblings(key) => {
            let response = get(gateway, &key, c).await.map_err(failed)?;
            let now = wall_ms();
            let mut items = vec![Reply::Bulk(Bytes::from(
                BASE64.encode(response.context.as_bytes()),
            ))];
            let mut siblings: Vec<Stored> = response
                .values
                .iter()
                .map(Stored::decode)
                .filter(|s| !s.expired(now))
                .collect();
            // Latest first: the one GET shows (for strings) leads.
            siblings.sort_by_key(|s| std::cmp::Reverse(s.stamp));
            items.extend(siblings.iter().map(|s| Reply::Bulk(as_string(s))));
            Reply::Array(items)
        }
        Command::PutWithContext {
            key,
            value,
            context,
        } => {
            let context = BASE64
                .decode(&context)
                .map_err(|e| Reply::error(format!("ERR the context is not base64: {e}")))?;
            let stored = Stored {
                data: Data::Str(value),
                stamp: gateway.stamp(),
                expires_at_ms: None,
            };
            gateway
                .call(Request::Put {
                    key,
                    value: stored.encode(),
                    context: Context::from_bytes(context),
                    consistency: c,
                })
                .await
                .map_err(failed)?;
            Reply::ok()
        }
        Command::DbSize => Reply::Integer(super::keyspace::estimate(gateway).await.keys as i64),
        Command::Info(sections) => info::info(gateway, &sections).await,
        Command::CommandInfo { sub, names } => table::command(&sub, &names),
        Command::ConfigGet(patterns) => info::config_get(gateway, &patterns),
        // keys() sends connection commands to session(), never here.
        connection => Reply::error(format!("ERR not a data command: {connection:?}")),
    })
}

/// The Unix millisecond `ms` from now, if it fits Redis's range (an
/// `i64`), as Redis checks `SET ... PX` and `PEXPIRE`.
fn expiry_at(ms: u64, command: &str) -> Result<u64, Reply> {
    wall_ms()
        .checked_add(ms)
        .filter(|&at| i64::try_from(at).is_ok())
        .ok_or_else(|| Reply::error(format!("ERR invalid expire time in '{command}' command")))
}

fn changed(answer: Answer) -> Reply {
    match answer {
        Answer::Changed(yes) => Reply::Integer(i64::from(yes)),
        other => unexpected(other),
    }
}

fn unexpected(answer: Answer) -> Reply {
    Reply::error(format!(
        "ERR unexpected answer from the coordinator: {answer:?}"
    ))
}
