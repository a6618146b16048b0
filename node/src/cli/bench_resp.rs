//! `quorra bench --resp`: load through the RESP gateway, many connections
//! pipelining.
//!
//! `redis-benchmark` cannot overload a node: it stops at the first error
//! reply, and a request the node sheds (`-BUSY`) is one. This opens
//! `--connections` plain TCP connections, spread in turn over the `--resp`
//! addresses, each sending `--pipeline` commands (`SET key value` or `GET
//! key`, `--read-ratio` of them reads) before reading their replies, and
//! counts every reply by kind: values, `-BUSY` refusals, other errors, and
//! connections lost or refused (the connection is opened again after
//! [`RECONNECT_AFTER`]). By default a connection sends its next batch as
//! soon as the last is answered, refusals included: a retry storm, the
//! worst client. `--busy-backoff-ms` makes it wait after a batch with a
//! refusal, as a client that honours `-BUSY` would. A command's latency runs from the write of its
//! batch to its own reply, so commands queued behind others in a pipeline
//! count their wait, as a client sees it.
//!
//! Only what these commands answer is parsed (simple strings, errors,
//! integers, bulk strings and nil), so an unexpected reply ends the
//! connection with an error rather than guessing. TLS is not spoken:
//! point it at a plain RESP port.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use super::CliError;
use super::bench::{BenchArgs, Rng, histogram, key, quantile, write_latencies};
use quorra_node::resp::codec::encode_request;

/// How long a connection waits before opening again after it was lost or
/// refused.
pub(crate) const RECONNECT_AFTER: Duration = Duration::from_millis(100);

/// How long a connection waits for one reply before giving up on it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest reply line or bulk string this accepts (a value is at
/// most `quorra_client::MAX_VALUE_LEN`).
const MAX_REPLY: usize = quorra_client::MAX_VALUE_LEN + 1024;

/// One reply, as far as this bench cares.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// A value, `OK`, an integer or nil.
    Value,
    /// `-BUSY ...`: shed by the node.
    Busy,
    /// Any other error: its code (`ERR`, `NOAUTH`, ...) and its text.
    Error(String, String),
}

/// Counts shared by every connection, for the progress line.
#[derive(Default)]
struct Live {
    done: AtomicU64,
    busy: AtomicU64,
    errors: AtomicU64,
    open: AtomicU64,
    lost: AtomicU64,
}

/// What one connection measured.
struct Tally {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    busy: Histogram<u64>,
    /// Other error replies, by code: how many, and the first one's text.
    errors: std::collections::BTreeMap<String, (u64, String)>,
    /// Connections lost or refused.
    lost: u64,
    /// The last reason a connection was lost or refused.
    last_loss: Option<String>,
}

impl Tally {
    fn new() -> Self {
        Self {
            reads: histogram(),
            writes: histogram(),
            busy: histogram(),
            errors: Default::default(),
            lost: 0,
            last_loss: None,
        }
    }

    fn other_errors(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }
}

/// The run's limits and its one tally, shared. (A tally per connection
/// would cost three histograms of ~260 KiB each: 3.9 GiB for 5,000
/// connections.)
struct Plan {
    args: BenchArgs,
    password: Option<String>,
    deadline: Option<Instant>,
    issued: AtomicU64,
    live: Live,
    tally: Mutex<Tally>,
}

impl Plan {
    /// Whether the time or the commands are all used up.
    fn spent(&self) -> bool {
        match self.deadline {
            Some(deadline) => Instant::now() >= deadline,
            None => self.issued.load(Ordering::Relaxed) >= self.args.ops,
        }
    }

    /// Takes up to `n` commands from the budget: how many may be sent.
    fn take(&self, n: u64) -> u64 {
        match self.deadline {
            Some(deadline) => {
                if Instant::now() < deadline {
                    n
                } else {
                    0
                }
            }
            None => {
                let before = self.issued.fetch_add(n, Ordering::Relaxed);
                n.min(self.args.ops.saturating_sub(before))
            }
        }
    }
}

/// Runs the RESP bench for `args` (whose `resp` addresses are set).
pub(crate) async fn bench(args: BenchArgs, seed: u64) -> Result<(), CliError> {
    let targets = args.resp.clone();
    if args.connections == 0 || args.pipeline == 0 {
        return Err(CliError::Usage(
            "--connections and --pipeline must be at least 1".into(),
        ));
    }
    let password = args.password.clone();
    let deadline = args
        .duration
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    let plan = Arc::new(Plan {
        args,
        password,
        deadline,
        issued: AtomicU64::new(0),
        live: Live::default(),
        tally: Mutex::new(Tally::new()),
    });
    eprintln!(
        "RESP: {} connections over {} address(es), {} commands pipelined each, seed {seed}",
        plan.args.connections,
        targets.len(),
        plan.args.pipeline
    );
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(plan.args.connections);
    for c in 0..plan.args.connections {
        let target = targets[c % targets.len()];
        let seed = seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tasks.push(tokio::spawn(connection(plan.clone(), target, seed)));
    }
    let progress = {
        let plan = plan.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let l = &plan.live;
                let now = l.done.load(Ordering::Relaxed);
                eprint!(
                    "\r{now} replies, {}/s, {} -BUSY, {} other errors, {} connections open, {} lost   ",
                    now - last,
                    l.busy.load(Ordering::Relaxed),
                    l.errors.load(Ordering::Relaxed),
                    l.open.load(Ordering::Relaxed),
                    l.lost.load(Ordering::Relaxed),
                );
                last = now;
            }
        })
    };
    for t in tasks {
        t.await.map_err(|e| CliError::Failed(e.to_string()))?;
    }
    progress.abort();
    eprintln!();
    let total = plan.tally.lock().unwrap_or_else(|p| p.into_inner());
    report(&plan.args, seed, &total, started.elapsed().as_secs_f64())
}

/// One connection: opens, authenticates, and sends batches until the
/// budget or the time is spent, opening again when it is lost.
async fn connection(plan: Arc<Plan>, target: SocketAddr, seed: u64) {
    let mut rng = Rng(seed | 1);
    let args = &plan.args;
    let backoff = Duration::from_millis(args.busy_backoff_ms);
    'open: loop {
        let stream = match open(target, plan.password.as_deref()).await {
            Ok(stream) => stream,
            Err(e) => {
                lose(&plan, e);
                if plan.spent() {
                    return;
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
                continue 'open;
            }
        };
        plan.live.open.fetch_add(1, Ordering::Relaxed);
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut batch = Vec::new();
        let mut kinds = Vec::with_capacity(args.pipeline);
        let mut replies = Vec::with_capacity(args.pipeline);
        loop {
            let n = plan.take(args.pipeline as u64);
            if n == 0 {
                plan.live.open.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            batch.clear();
            kinds.clear();
            for _ in 0..n {
                let k = key(rng.next() % args.keys.max(1));
                let is_read = (rng.next() % 1_000_000) as f64 / 1_000_000.0 < args.read_ratio;
                if is_read {
                    encode_request(&[b"GET", &k], &mut batch);
                } else {
                    let value = rng.value(args.value_size);
                    encode_request(&[b"SET", &k, &value], &mut batch);
                }
                kinds.push(is_read);
            }
            let sent = Instant::now();
            if let Err(e) = write.write_all(&batch).await {
                plan.live.open.fetch_sub(1, Ordering::Relaxed);
                lose(&plan, format!("writing: {e}"));
                continue 'open;
            }
            replies.clear();
            let mut lost = None;
            for _ in 0..kinds.len() {
                match tokio::time::timeout(REPLY_TIMEOUT, reply(&mut read)).await {
                    Ok(Ok(reply)) => {
                        let micros = (sent.elapsed().as_micros() as u64).clamp(1, 60_000_000);
                        replies.push((reply, micros));
                    }
                    Ok(Err(e)) => {
                        lost = Some(e);
                        break;
                    }
                    Err(_) => {
                        lost = Some("no reply within 30 s".into());
                        break;
                    }
                }
            }
            let busy = record(&plan, &kinds, &mut replies);
            if let Some(why) = lost {
                plan.live.open.fetch_sub(1, Ordering::Relaxed);
                lose(&plan, why);
                continue 'open;
            }
            if busy && !backoff.is_zero() {
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// Records a batch's replies (`kinds[i]`: whether command `i` was a
/// read); returns whether any was `-BUSY`.
fn record(plan: &Plan, kinds: &[bool], replies: &mut Vec<(Reply, u64)>) -> bool {
    let mut tally = plan.tally.lock().unwrap_or_else(|p| p.into_inner());
    let mut busy = false;
    for ((reply, micros), &is_read) in replies.drain(..).zip(kinds) {
        plan.live.done.fetch_add(1, Ordering::Relaxed);
        // A value out of the histogram's range is clamped above.
        let _ = match reply {
            Reply::Value if is_read => tally.reads.record(micros),
            Reply::Value => tally.writes.record(micros),
            Reply::Busy => {
                busy = true;
                plan.live.busy.fetch_add(1, Ordering::Relaxed);
                tally.busy.record(micros)
            }
            Reply::Error(code, text) => {
                plan.live.errors.fetch_add(1, Ordering::Relaxed);
                tally.errors.entry(code).or_insert((0, text)).0 += 1;
                Ok(())
            }
        };
    }
    busy
}

fn lose(plan: &Plan, why: String) {
    plan.live.lost.fetch_add(1, Ordering::Relaxed);
    let mut tally = plan.tally.lock().unwrap_or_else(|p| p.into_inner());
    tally.lost += 1;
    tally.last_loss = Some(why);
}

/// Connects and, with a password, authenticates.
async fn open(target: SocketAddr, password: Option<&str>) -> Result<TcpStream, String> {
    let mut stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| format!("connecting to {target}: timed out"))?
        .map_err(|e| match e.raw_os_error() {
            Some(24) => {
                format!("connecting to {target}: {e} (raise this shell's limit: ulimit -n)")
            }
            _ => format!("connecting to {target}: {e}"),
        })?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    if let Some(password) = password {
        let mut auth = Vec::new();
        encode_request(&[b"AUTH", password.as_bytes()], &mut auth);
        stream
            .write_all(&auth)
            .await
            .map_err(|e| format!("AUTH: {e}"))?;
        let (read, write) = stream.into_split();
        let mut read = BufReader::new(read);
        match tokio::time::timeout(REPLY_TIMEOUT, reply(&mut read)).await {
            Ok(Ok(Reply::Value)) => {}
            Ok(Ok(other)) => return Err(format!("AUTH refused: {other:?}")),
            Ok(Err(e)) => return Err(format!("AUTH: {e}")),
            Err(_) => return Err("AUTH: no reply within 30 s".into()),
        }
        stream = read
            .into_inner()
            .reunite(write)
            .map_err(|e| format!("AUTH: {e}"))?;
    }
    Ok(stream)
}

/// Reads one reply.
async fn reply(read: &mut BufReader<OwnedReadHalf>) -> Result<Reply, String> {
    let mut line = Vec::new();
    let n = (&mut *read)
        .take(MAX_REPLY as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("closed by the node".into());
    }
    if !line.ends_with(b"\r\n") {
        return Err("a reply line without its end".into());
    }
    let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    match line[0] {
        b'+' | b':' | b'_' => Ok(Reply::Value),
        b'-' if text.starts_with("BUSY") => Ok(Reply::Busy),
        b'-' => Ok(Reply::Error(
            text.split_whitespace().next().unwrap_or("ERR").to_string(),
            text,
        )),
        b'$' => {
            let len: i64 = text
                .parse()
                .map_err(|_| format!("a bulk length that is not a number: {text:?}"))?;
            if len >= 0 {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > MAX_REPLY {
                    return Err(format!("a bulk string of {len} bytes"));
                }
                let mut body = vec![0; len + 2];
                read.read_exact(&mut body)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(Reply::Value)
        }
        other => Err(format!("an unexpected reply type {:?}", char::from(other))),
    }
}

fn report(args: &BenchArgs, seed: u64, t: &Tally, secs: f64) -> Result<(), CliError> {
    let ok = t.reads.len() + t.writes.len();
    let busy = t.busy.len();
    let errors = t.other_errors();
    let mut out = std::io::stdout().lock();
    if args.json {
        let lat = |h: &Histogram<u64>| {
            json!({
                "count": h.len(), "p50_us": quantile(h, 0.5), "p99_us": quantile(h, 0.99),
                "p999_us": quantile(h, 0.999), "max_us": if h.is_empty() { 0 } else { h.max() },
            })
        };
        let o = json!({
            "connections": args.connections, "pipeline": args.pipeline, "keys": args.keys,
            "busy_backoff_ms": args.busy_backoff_ms,
            "value_size": args.value_size, "read_ratio": args.read_ratio, "seed": seed,
            "seconds": secs, "ok": ok, "ok_per_sec": ok as f64 / secs.max(1e-9),
            "busy": busy, "errors": t.errors.iter().map(|(code, (n, first))| (code.clone(), json!({"count": n, "first": first}))).collect::<serde_json::Map<_, _>>(),
            "connections_lost": t.lost,
            "last_loss": t.last_loss,
            "reads": lat(&t.reads), "writes": lat(&t.writes), "busy_replies": lat(&t.busy),
        });
        writeln!(out, "{o}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{} replies in {secs:.2}s: {ok} ok ({:.0}/s), {busy} -BUSY, {errors} other errors, \
         {} connections lost or refused ({} connections x {} pipelined, backoff after -BUSY \
         {} ms, {} keys, {} B values, {:.0}% reads)",
        ok + busy + errors,
        ok as f64 / secs.max(1e-9),
        t.lost,
        args.connections,
        args.pipeline,
        args.busy_backoff_ms,
        args.keys,
        args.value_size,
        args.read_ratio * 100.0
    )?;
    write_latencies(&mut out, "reads", &t.reads)?;
    write_latencies(&mut out, "writes", &t.writes)?;
    write_latencies(&mut out, "-BUSY", &t.busy)?;
    for (code, (n, first)) in &t.errors {
        writeln!(out, "  error  {code}: {n}, the first: {first}")?;
    }
    if let Some(why) = &t.last_loss {
        writeln!(out, "  last connection lost or refused: {why}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn replies_of(bytes: &'static [u8]) -> Vec<Result<Reply, String>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(bytes).await.unwrap();
        });
        let (read, _write) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut read = BufReader::new(read);
        let mut out = Vec::new();
        loop {
            let r = reply(&mut read).await;
            let end = r.is_err();
            out.push(r);
            if end {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn replies_are_told_apart_and_a_bad_one_ends_the_connection() {
        let got = replies_of(
            b"+OK\r\n$5\r\nhello\r\n$-1\r\n:3\r\n-BUSY too many requests\r\n-NOAUTH auth\r\n*1\r\n",
        )
        .await;
        assert_eq!(
            got,
            vec![
                Ok(Reply::Value),
                Ok(Reply::Value),
                Ok(Reply::Value),
                Ok(Reply::Value),
                Ok(Reply::Busy),
                Ok(Reply::Error("NOAUTH".into(), "NOAUTH auth".into())),
                Err("an unexpected reply type '*'".into()),
            ]
        );
        let closed = replies_of(b"+OK\r\n").await;
        assert_eq!(closed[1], Err("closed by the node".into()));
    }
}
