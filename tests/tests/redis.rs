//! The RESP gateway through a real Redis client (the `redis` crate) and,
//! when installed, redis-cli: every node of a 3-node cluster behaves as one
//! Redis backed by the replicated cluster.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quorra_e2e::TestCluster;
use redis::{Connection, RedisResult, Value};

fn connect(addr: SocketAddr) -> Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    let con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connects");
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    con
}

fn cmd<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> RedisResult<T> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

fn ok<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    cmd(con, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn err(con: &mut Connection, args: &[&str]) -> String {
    match cmd::<Value>(con, args) {
        Ok(v) => panic!("{args:?} succeeded with {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn info_field(con: &mut Connection, section: &str, field: &str) -> Option<String> {
    let text: String = ok(con, &["INFO", section]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
}

/// Waits until `check` holds, or fails with `what`.
fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_redis_client_sees_one_redis_backed_by_the_cluster() {
    let cluster = TestCluster::start(3, &["--resp-sweep-interval-secs", "1"]).await;
    let resp: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.resp).collect();
    let mut a = connect(resp[0]);
    let mut b = connect(resp[1]);
    let mut c = connect(resp[2]);

    // Connection commands.
    assert_eq!(ok::<String>(&mut a, &["PING"]), "PONG");
    assert_eq!(ok::<String>(&mut a, &["PING", "hi"]), "hi");
    assert_eq!(ok::<String>(&mut a, &["ECHO", "x y"]), "x y");
    assert_eq!(ok::<String>(&mut a, &["SELECT", "0"]), "OK");
    assert!(err(&mut a, &["SELECT", "1"]).contains("DB index is out of range"));
    assert_eq!(ok::<String>(&mut a, &["CLIENT", "SETNAME", "tester"]), "OK");
    assert_eq!(ok::<String>(&mut a, &["CLIENT", "GETNAME"]), "tester");
    let id: i64 = ok(&mut a, &["CLIENT", "ID"]);
    let line: String = ok(&mut a, &["CLIENT", "INFO"]);
    assert!(
        line.contains(&format!("id={id} ")) && line.contains("name=tester"),
        "{line}"
    );
    assert!(err(&mut a, &["AUTH", "x"]).contains("without any password configured"));

    // Strings, on one node and read through the others.
    assert_eq!(ok::<String>(&mut a, &["SET", "greeting", "hello"]), "OK");
    assert_eq!(ok::<String>(&mut b, &["GET", "greeting"]), "hello");
    assert_eq!(ok::<Option<String>>(&mut c, &["GET", "nothing"]), None);
    assert_eq!(
        ok::<Option<String>>(&mut a, &["SET", "greeting", "x", "NX"]),
        None
    );
    assert_eq!(ok::<String>(&mut a, &["SET", "fresh", "1", "NX"]), "OK");
    assert_eq!(
        ok::<Option<String>>(&mut a, &["SET", "absent", "1", "XX"]),
        None
    );
    assert_eq!(
        ok::<String>(&mut b, &["SET", "greeting", "bye", "XX", "GET"]),
        "hello"
    );
    assert_eq!(ok::<String>(&mut c, &["GET", "greeting"]), "bye");
    assert!(err(&mut a, &["SET", "k", "v", "NX", "XX"]).contains("syntax error"));
    assert!(err(&mut a, &["SET", "k", "v", "EX", "0"]).contains("invalid expire time"));

    // Several keys: in parallel, one reply.
    assert_eq!(
        ok::<String>(&mut a, &["MSET", "m1", "1", "m2", "2", "m3", "3"]),
        "OK"
    );
    assert_eq!(
        ok::<Vec<Option<String>>>(&mut b, &["MGET", "m1", "m2", "nope", "m3"]),
        [Some("1".into()), Some("2".into()), None, Some("3".into())]
    );
    assert_eq!(ok::<i64>(&mut c, &["EXISTS", "m1", "m2", "nope", "m1"]), 3);
    assert_eq!(ok::<i64>(&mut a, &["DEL", "m1", "m2", "nope"]), 2);
    assert_eq!(ok::<i64>(&mut b, &["EXISTS", "m1", "m2", "m3"]), 1);
    assert_eq!(ok::<i64>(&mut b, &["UNLINK", "m3"]), 1);

    // Counters.
    assert_eq!(ok::<i64>(&mut a, &["INCR", "n"]), 1);
    assert_eq!(ok::<i64>(&mut b, &["INCRBY", "n", "10"]), 11);
    assert_eq!(ok::<i64>(&mut c, &["DECR", "n"]), 10);
    assert_eq!(ok::<i64>(&mut a, &["DECRBY", "n", "4"]), 6);
    assert_eq!(ok::<String>(&mut b, &["GET", "n"]), "6");
    assert_eq!(ok::<String>(&mut a, &["SET", "n", "41"]), "OK");
    assert_eq!(ok::<i64>(&mut c, &["INCR", "n"]), 42);
    let not_int = err(&mut a, &["INCR", "greeting"]);
    assert!(
        not_int.contains("value is not an integer or out of range"),
        "{not_int}"
    );
    assert!(err(&mut a, &["INCRBY", "n", "x"]).contains("not an integer"));
    assert_eq!(
        ok::<String>(&mut a, &["SET", "big", &i64::MAX.to_string()]),
        "OK"
    );
    assert!(err(&mut a, &["INCR", "big"]).contains("increment or decrement would overflow"));

    // Expiry.
    assert_eq!(ok::<i64>(&mut a, &["TTL", "greeting"]), -1);
    assert_eq!(ok::<i64>(&mut a, &["TTL", "nothing"]), -2);
    assert_eq!(ok::<i64>(&mut a, &["EXPIRE", "greeting", "100"]), 1);
    let ttl: i64 = ok(&mut b, &["TTL", "greeting"]);
    assert!((99..=100).contains(&ttl), "{ttl}");
    assert_eq!(ok::<i64>(&mut c, &["PERSIST", "greeting"]), 1);
    assert_eq!(ok::<i64>(&mut c, &["PERSIST", "greeting"]), 0);
    assert_eq!(ok::<i64>(&mut a, &["EXPIRE", "nothing", "100"]), 0);
    assert_eq!(
        ok::<String>(&mut a, &["SET", "short", "v", "PX", "400"]),
        "OK"
    );
    let pttl: i64 = ok(&mut b, &["PTTL", "short"]);
    assert!((1..=400).contains(&pttl), "{pttl}");
    assert_eq!(ok::<i64>(&mut a, &["PEXPIRE", "n", "400"]), 1);
    for i in 0..20 {
        ok::<String>(&mut a, &["SET", &format!("brief{i}"), "v", "PX", "300"]);
    }
    std::thread::sleep(Duration::from_millis(500));
    for con in [&mut a, &mut b, &mut c] {
        assert_eq!(ok::<Option<String>>(con, &["GET", "short"]), None);
        assert_eq!(ok::<Option<String>>(con, &["GET", "n"]), None);
        assert_eq!(ok::<i64>(con, &["EXISTS", "short", "brief3"]), 0);
    }
    // INCR of an expired counter starts again from nothing.
    assert_eq!(ok::<i64>(&mut a, &["INCR", "n"]), 1);
    assert_eq!(ok::<i64>(&mut a, &["EXPIRE", "greeting", "0"]), 1);
    assert_eq!(ok::<Option<String>>(&mut b, &["GET", "greeting"]), None);

    // The sweepers purge the 21 expired keys (each by its first primary),
    // and nothing comes back.
    let mut cons = [a, b, c];
    eventually("21 expired keys purged", Duration::from_secs(20), || {
        let purged: u64 = cons
            .iter_mut()
            .map(|con| {
                info_field(con, "stats", "expired_keys")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum();
        purged >= 21
    });
    let [mut a, mut b, mut c] = cons;
    assert_eq!(
        ok::<i64>(&mut c, &["EXISTS", "short", "brief0", "brief19"]),
        0
    );

    // Server commands tools ask for.
    let dbsize: i64 = ok(&mut a, &["DBSIZE"]);
    // fresh, n (counted again after expiring), big: exact here, since
    // every node replicates every partition.
    assert_eq!(dbsize, 3);
    let count: i64 = ok(&mut a, &["COMMAND", "COUNT"]);
    assert!(count >= 25, "{count}");
    let _: Value = ok(&mut a, &["COMMAND", "DOCS"]);
    let _: Value = ok(&mut a, &["COMMAND"]);
    let save: Vec<String> = ok(&mut a, &["CONFIG", "GET", "save"]);
    assert_eq!(save, ["save", ""]);
    let aof: Vec<String> = ok(&mut a, &["CONFIG", "GET", "append*"]);
    assert!(aof.contains(&"appendonly".to_string()), "{aof:?}");
    assert_eq!(
        info_field(&mut a, "replication", "role").as_deref(),
        Some("master")
    );
    assert_eq!(
        info_field(&mut a, "replication", "quorra_replicas").as_deref(),
        Some("3")
    );
    assert!(info_field(&mut a, "server", "redis_version").is_some());
    assert!(info_field(&mut a, "clients", "connected_clients").is_some());
    assert!(info_field(&mut a, "keyspace", "db0").is_some_and(|v| v.starts_with("keys=3,")));

    // Unknown commands and wrong arity: Redis's replies; the connection goes on.
    let unknown = err(&mut a, &["FLUSHALL", "ASYNC"]);
    assert!(
        unknown.contains("unknown command 'FLUSHALL', with args beginning with: 'ASYNC'"),
        "{unknown}"
    );
    assert!(err(&mut a, &["GET"]).contains("wrong number of arguments for 'get' command"));
    assert_eq!(ok::<String>(&mut a, &["PING"]), "PONG");

    // Pipelining: answers in order; commands on one key run in order.
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i);
    }
    pipe.cmd("SET").arg("pk").arg(1);
    pipe.cmd("INCR").arg("pk");
    pipe.cmd("INCRBY").arg("pk").arg(5);
    pipe.cmd("GET").arg("pk");
    for i in (0..500).step_by(50) {
        pipe.cmd("GET").arg(format!("p{i}"));
    }
    let answers: Vec<Value> = pipe.query(&mut b).expect("pipeline");
    assert_eq!(answers.len(), 514);
    assert!(
        answers[..501].iter().all(|v| *v == Value::Okay),
        "{:?}",
        &answers[..3]
    );
    assert_eq!(answers[501], Value::Int(2));
    assert_eq!(answers[502], Value::Int(7));
    let got: Vec<String> = answers[503..]
        .iter()
        .map(|v| redis::from_redis_value(v.clone()).unwrap())
        .collect();
    let want: Vec<String> = std::iter::once("7".to_string())
        .chain((0..500).step_by(50).map(|i: i32| i.to_string()))
        .collect();
    assert_eq!(got, want);

    // Hashtags: keys sharing {tag} share a partition (placed by the tag).
    let table = cluster.client().await.routing().expect("routing");
    let p = |k: &str| quorra_client::routing::partition_of(k.as_bytes(), table.partitions);
    assert_eq!(p("{user:7}.name"), p("{user:7}.visits"));
    assert_eq!(p("{user:7}.name"), p("user:7"));

    // Concurrent INCR through three connections on three nodes: every
    // increment counted.
    let threads: Vec<_> = resp
        .iter()
        .map(|&addr| {
            std::thread::spawn(move || {
                let mut con = connect(addr);
                for _ in 0..200 {
                    ok::<i64>(&mut con, &["INCR", "shared"]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("incrementing thread");
    }
    for con in [&mut a, &mut b, &mut c] {
        assert_eq!(ok::<String>(con, &["GET", "shared"]), "600");
    }

    // Siblings: two writes with the same context through two nodes both
    // stay; GET picks the same one everywhere; a write with the context
    // of both replaces them.
    ok::<String>(&mut a, &["SET", "doc", "v0"]);
    let first: Vec<String> = ok(&mut a, &["QUORRA.SIBLINGS", "doc"]);
    assert_eq!(first[1..], ["v0"]);
    ok::<String>(&mut a, &["QUORRA.PUT", "doc", "left", &first[0]]);
    ok::<String>(&mut b, &["QUORRA.PUT", "doc", "right", &first[0]]);
    let both: Vec<String> = ok(&mut c, &["QUORRA.SIBLINGS", "doc"]);
    let mut values = both[1..].to_vec();
    values.sort();
    assert_eq!(values, ["left", "right"]);
    let shown: String = ok(&mut a, &["GET", "doc"]);
    assert_eq!(shown, both[1], "GET shows the latest sibling");
    for con in [&mut b, &mut c] {
        assert_eq!(ok::<String>(con, &["GET", "doc"]), shown);
    }
    ok::<String>(&mut c, &["QUORRA.PUT", "doc", "merged", &both[0]]);
    let merged: Vec<String> = ok(&mut a, &["QUORRA.SIBLINGS", "doc"]);
    assert_eq!(merged[1..], ["merged"]);
    assert!(err(&mut a, &["QUORRA.PUT", "doc", "x", "not base64!"]).contains("base64"));

    // Consistency per connection.
    assert_eq!(ok::<String>(&mut a, &["QUORRA.CONSISTENCY", "all"]), "OK");
    assert_eq!(ok::<String>(&mut a, &["SET", "everywhere", "1"]), "OK");
    assert_eq!(
        ok::<String>(&mut a, &["QUORRA.CONSISTENCY", "r=1,w=2"]),
        "OK"
    );
    assert!(err(&mut a, &["QUORRA.CONSISTENCY", "most"]).contains("consistency"));
    assert!(ok::<String>(&mut a, &["CLIENT", "INFO"]).contains("quorra-consistency=r=one,w=two"));

    // RESP3 after HELLO 3.
    let client = redis::Client::open(format!("redis://{}/?protocol=resp3", resp[1])).unwrap();
    let mut three = client.get_connection().expect("RESP3 connection");
    let hello: Value = ok(&mut three, &["HELLO", "3"]);
    assert!(matches!(hello, Value::Map(_)), "{hello:?}");
    assert_eq!(ok::<Value>(&mut three, &["GET", "nothing"]), Value::Nil);
    assert_eq!(ok::<String>(&mut three, &["GET", "everywhere"]), "1");

    redis_cli_session(resp[2]);
}

fn have_redis_cli() -> bool {
    let present = Command::new("redis-cli").arg("--version").output().is_ok();
    if !present {
        eprintln!("redis-cli is not installed: its session is skipped");
    }
    present
}

/// Runs redis-cli against `addr` with `extra` flags and `script` on its
/// standard input; returns what it printed (standard output, then error).
fn redis_cli(addr: SocketAddr, extra: &[&str], script: &str) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("redis-cli ends");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A short redis-cli session, when redis-cli is installed.
fn redis_cli_session(addr: SocketAddr) {
    if !have_redis_cli() {
        return;
    }
    let text = redis_cli(
        addr,
        &[],
        "SET cli hello\nGET cli\nINCR cli-n\nINCR cli-n\nDEL cli\nGET cli\nNOSUCH x\nDBSIZE\n",
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..6], ["OK", "hello", "1", "2", "1", ""], "{text}");
    assert!(lines[6].contains("unknown command 'NOSUCH'"), "{text}");
    // (redis-cli follows an error with a blank line when not on a terminal)
    let last = lines.iter().rev().find(|l| !l.is_empty()).unwrap();
    assert!(last.parse::<u64>().is_ok(), "{text}");
}

/// Sends raw bytes and reads what comes back until the server closes or
/// goes quiet.
fn raw(addr: SocketAddr, bytes: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[tokio::test(flavor = "current_thread")]
async fn passwords_bad_input_and_refused_setups() {
    let cluster = TestCluster::start(1, &["--resp-password", "s3cret"]).await;
    let addr = cluster.nodes[0].resp;

    let mut con = connect(addr);
    let noauth = err(&mut con, &["GET", "k"]);
    assert!(noauth.contains("Authentication required"), "{noauth}");
    assert!(err(&mut con, &["AUTH", "wrong"]).contains("WRONGPASS"));
    assert!(err(&mut con, &["AUTH", "someone", "s3cret"]).contains("WRONGPASS"));
    assert_eq!(ok::<String>(&mut con, &["AUTH", "s3cret"]), "OK");
    assert_eq!(ok::<String>(&mut con, &["SET", "k", "v"]), "OK");
    let with_password = redis::Client::open(format!("redis://:s3cret@{addr}/")).unwrap();
    let mut other = with_password.get_connection().expect("AUTH on connect");
    assert_eq!(ok::<String>(&mut other, &["GET", "k"]), "v");

    // Malformed RESP: an error and a closed connection; others go on.
    let (reply, closed) = raw(addr, b"*1\r\n$abc\r\n");
    assert!(reply.starts_with("-ERR Protocol error"), "{reply}");
    assert!(closed);
    let (reply, closed) = raw(addr, b"*1\r\n$999999999999\r\n");
    assert!(reply.starts_with("-ERR Protocol error"), "{reply}");
    assert!(closed);
    let (reply, closed) = raw(addr, b"*9999999\r\n");
    assert!(reply.starts_with("-ERR Protocol error"), "{reply}");
    assert!(closed);
    // Keys and values beyond the limits: an error, and the connection goes on.
    let huge_key = "k".repeat(quorra_client::MAX_KEY_LEN + 1);
    assert!(err(&mut con, &["SET", &huge_key, "v"]).contains("key"));
    let huge_value = "v".repeat(quorra_client::MAX_VALUE_LEN);
    assert!(err(&mut con, &["SET", "k", &huge_value]).contains("limit"));
    assert!(err(&mut con, &["GET", ""]).contains("key"));
    assert_eq!(ok::<String>(&mut other, &["GET", "k"]), "v");

    // A RESP port off loopback without a password is refused at start-up.
    let out = Command::new(quorra_e2e::quorra_bin())
        .args(["node", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(cluster.dir.path().join("refused"))
        .args(["--tls-dir"])
        .arg(&cluster.tls)
        .args(["--resp-listen", "0.0.0.0:0"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without a password"), "{stderr}");
}

#[tokio::test(flavor = "current_thread")]
async fn tls_on_the_resp_port_works_with_redis_cli() {
    if !have_redis_cli() {
        return;
    }
    let cluster = TestCluster::start(1, &["--resp-tls"]).await;
    let addr = cluster.nodes[0].resp;
    let cli = |extra: &[&str], script: &str| redis_cli(addr, extra, script);
    let ca = cluster.tls.join("ca.crt");
    let out = cli(
        &["--tls", "--cacert", ca.to_str().unwrap()],
        "SET secure yes\nGET secure\n",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["OK", "yes"], "{out}");
    // Plain text on the TLS port gets nothing useful.
    let out = cli(&[], "PING\n");
    assert!(!out.contains("PONG"), "{out}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_node_killed_midway_loses_nothing_acknowledged() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let resp: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.resp).collect();
    let mut a = connect(resp[0]);
    let mut b = connect(resp[1]);
    for i in 0..50 {
        ok::<String>(&mut a, &["SET", &format!("before{i}"), &i.to_string()]);
        ok::<i64>(&mut b, &["INCR", "count"]);
    }
    cluster.kill9(2);
    // Quorum (2 of 3) goes on without node 3: no error, nothing lost.
    for i in 0..50 {
        ok::<String>(&mut a, &["SET", &format!("after{i}"), &i.to_string()]);
        ok::<i64>(&mut b, &["INCR", "count"]);
        ok::<i64>(&mut a, &["INCR", "count"]);
    }
    for i in (0..50).step_by(7) {
        assert_eq!(
            ok::<String>(&mut b, &["GET", &format!("before{i}")]),
            i.to_string()
        );
        assert_eq!(
            ok::<String>(&mut a, &["GET", &format!("after{i}")]),
            i.to_string()
        );
    }
    assert_eq!(ok::<String>(&mut a, &["GET", "count"]), "150");
    // At `all`, a write needs the dead node: a clear error, not a hang.
    ok::<String>(&mut a, &["QUORRA.CONSISTENCY", "all"]);
    let e = err(&mut a, &["SET", "x", "y"]);
    assert!(e.contains("UNAVAILABLE") || e.contains("quorum"), "{e}");
    // Back: it serves the counter with every increment.
    cluster.restart(2).await;
    let mut c = connect(resp[2]);
    ok::<String>(&mut c, &["QUORRA.CONSISTENCY", "all"]);
    eventually(
        "node 3 back with every increment",
        Duration::from_secs(20),
        || cmd::<String>(&mut c, &["GET", "count"]).is_ok_and(|v| v == "150"),
    );
}

/// Reads `count` one-line replies (`+...`, `-...`, `:...`) from `stream`.
fn read_lines(stream: &mut TcpStream, count: usize) -> Vec<String> {
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    while text.matches("\r\n").count() < count {
        let n = stream.read(&mut buf).expect("replies before the timeout");
        assert!(n > 0, "the connection closed after {text:?}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text.split_terminator("\r\n").map(str::to_string).collect()
}

/// `GET key`, again while the node answers `-BUSY`.
fn get_when_admitted(con: &mut Connection, key: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cmd(con, &["GET", key]) {
            Err(e) if e.code() == Some("BUSY") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            got => return got.unwrap_or_else(|e| panic!("GET {key}: {e}")),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_beyond_the_limit_gets_busy_for_what_was_not_applied_and_ping_answers() {
    let cluster = TestCluster::start(1, &["--max-requests-in-flight", "4"]).await;
    let addr = cluster.nodes[0].resp;
    // Connections at once, each writing 300 SETs on keys of its own and a
    // PING in one go: far beyond the 4 requests the node admits, so some
    // commands are refused as they are read (the node is full), others
    // when they start.
    const CONNECTIONS: usize = 8;
    const SETS: usize = 300;
    let floods: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut flood = TcpStream::connect(addr).unwrap();
                flood
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let mut wire = Vec::new();
                for i in 0..SETS {
                    let (key, value) = (format!("flood{c}-{i}"), i.to_string());
                    wire.extend_from_slice(
                        format!(
                            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                            key.len(),
                            value.len()
                        )
                        .as_bytes(),
                    );
                }
                wire.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
                flood.write_all(&wire).unwrap();
                read_lines(&mut flood, SETS + 1)
            })
        })
        .collect();
    let mut con = connect(addr);
    let mut refused = 0;
    for (c, flood) in floods.into_iter().enumerate() {
        let replies = flood.join().expect("a flood connection");
        assert_eq!(replies.len(), SETS + 1, "{replies:?}");
        assert_eq!(replies[SETS], "+PONG", "PING is never refused");
        // What was refused was not applied; what was acknowledged was.
        for (i, reply) in replies[..SETS].iter().enumerate() {
            let got = get_when_admitted(&mut con, &format!("flood{c}-{i}"));
            if reply == "+OK" {
                assert_eq!(got, Some(i.to_string()), "SET {c}-{i} acknowledged");
            } else {
                assert!(
                    reply.starts_with("-BUSY") && reply.contains("nothing of this request"),
                    "SET {c}-{i}: {reply}"
                );
                assert_eq!(got, None, "SET {c}-{i} refused ({reply}) but applied");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "a flood against a limit of 4 shed nothing");
    assert!(refused < CONNECTIONS * SETS, "nothing was admitted");
    // `quorra status` counts them.
    let client = cluster.client().await;
    let status = client
        .status_of(cluster.nodes[0].addr)
        .await
        .expect("status");
    assert_eq!(status.requests.ceiling, 4, "{:?}", status.requests);
    assert!(
        status.requests.shed >= refused as u64,
        "{} refused, status says {:?}",
        refused,
        status.requests
    );
}
