//! `quorra bench`: a load generator with latency percentiles.
//!
//! `--concurrency` tasks share one client (one connection per node) and
//! issue `--ops` requests in all (or run for `--duration` seconds) over
//! `--keys` keys: a `--read-ratio` share of gets, the rest puts of
//! `--value-size` bytes. A put carries the context of the last answer seen
//! for its key, as a real application would, so siblings stay bounded by
//! concurrency instead of piling up. Values are random bytes, fresh for
//! every write, so the store cannot compress them away (a benchmark of
//! repeated bytes measures less disk and less compaction than real data
//! costs). Latencies go into HDR histograms (1 µs to 60 s, 3 significant
//! digits); a progress line goes to stderr every second; the summary (or
//! one JSON object with `--json`, with the throughput of every second) to
//! stdout. `--preload` first writes every key once (blind puts, the tasks
//! sharing one counter over the key space), so the timed run meets a key
//! space of the size asked for, not the share of it random puts happened
//! to reach; `--ops 0` only preloads.
//!
//! Before it starts, the bench says how much data its key space is per
//! replica, and warns when that fits the caches of the node it asked
//! (`quorra status`): such a run measures the caches, not the store.
//!
//! `--resp` loads the RESP gateway instead, over many pipelining
//! connections ([`super::bench_resp`]).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use dashmap::DashMap;
use hdrhistogram::Histogram;
use quorra_client::protocol::ClusterStatus;
use quorra_client::{Client, Consistency, Context};
use quorra_node::storage::budget::Bytes as Size;
use serde_json::json;

use super::CliError;
use super::bench_resp;
use super::client::Connection;

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    connection: Connection,
    /// Requests in all.
    #[arg(long, default_value_t = 100_000)]
    pub(super) ops: u64,
    /// Run for this many seconds instead of a number of requests.
    #[arg(long)]
    pub(super) duration: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    pub(super) value_size: usize,
    /// Share of requests that are reads (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    pub(super) read_ratio: f64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub(super) keys: u64,
    /// one, two, quorum, all, or r=N,w=N.
    #[arg(long, default_value = "quorum")]
    consistency: String,
    /// Write every key once before the timed run (at the same
    /// consistency, value size and concurrency).
    #[arg(long)]
    preload: bool,
    /// Seed of the keys and values drawn [default: a fresh one, printed].
    /// Two runs with one seed ask for the same keys in the same order, so a
    /// run right after another would find its keys in the caches.
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object.
    #[arg(long)]
    pub(super) json: bool,
    /// Load the RESP gateway at these addresses (comma-separated, plain
    /// TCP) instead of using the SDK: SET and GET over --connections
    /// connections, --pipeline commands at a time on each.
    #[arg(long, value_delimiter = ',')]
    pub(super) resp: Vec<SocketAddr>,
    /// With --resp: connections, spread over the addresses in turn.
    #[arg(long, default_value_t = 50, requires = "resp")]
    pub(super) connections: usize,
    /// With --resp: commands each connection sends before reading their
    /// replies.
    #[arg(long, default_value_t = 1, requires = "resp")]
    pub(super) pipeline: usize,
    /// With --resp: milliseconds a connection waits after a batch that
    /// was refused (-BUSY) in part (0: it sends again at once).
    #[arg(long, default_value_t = 0, requires = "resp")]
    pub(super) busy_backoff_ms: u64,
    /// With --resp: the gateway's password (AUTH), if it has one.
    #[arg(long, env = "QUORRA_RESP_PASSWORD", hide_env_values = true)]
    pub(super) password: Option<String>,
}

/// Bytes of a bench key (`bench:` and 16 hex digits).
const KEY_LEN: u64 = 22;

struct Totals {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    errors: u64,
}

impl Totals {
    fn new() -> Self {
        Self {
            reads: histogram(),
            writes: histogram(),
            errors: 0,
        }
    }

    fn add(&mut self, other: &Totals) {
        self.reads.add(&other.reads).expect("same bounds");
        self.writes.add(&other.writes).expect("same bounds");
        self.errors += other.errors;
    }
}

pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// A small, fast, seeded RNG per task (xorshift64*).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `len` random bytes.
    pub(super) fn value(&mut self, len: usize) -> Bytes {
        let mut v = vec![0u8; len];
        for chunk in v.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes()[..chunk.len()]);
        }
        Bytes::from(v)
    }
}

pub(super) fn key(k: u64) -> Bytes {
    Bytes::from(format!("bench:{k:016x}"))
}

/// What every worker shares.
struct Shared {
    client: Client,
    args: BenchArgs,
    consistency: Consistency,
    /// When the timed run stops taking new requests (`--duration`).
    deadline: Option<Instant>,
    /// The seed every worker's draws derive from.
    seed: u64,
    issued: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    contexts: DashMap<u64, Context>,
}

impl Shared {
    /// Whether a worker may issue one more request.
    fn another(&self) -> bool {
        match self.deadline {
            Some(deadline) => Instant::now() < deadline,
            None => self.issued.fetch_add(1, Ordering::Relaxed) < self.args.ops,
        }
    }
}

async fn worker(shared: Arc<Shared>, seed: u64) -> Totals {
    let Shared {
        client,
        args,
        consistency,
        done,
        errors,
        contexts,
        ..
    } = &*shared;
    let consistency = *consistency;
    let mut rng = Rng(seed | 1);
    let mut t = Totals::new();
    while shared.another() {
        let k = rng.next() % args.keys.max(1);
        let read = (rng.next() % 1_000_000) as f64 / 1_000_000.0 < args.read_ratio;
        let started = Instant::now();
        let result = if read {
            client.get(key(k), consistency).await
        } else {
            let ctx = contexts.get(&k).map(|c| c.clone()).unwrap_or_default();
            let value = rng.value(args.value_size);
            client.put(key(k), value, &ctx, consistency).await
        };
        let micros = started.elapsed().as_micros().max(1) as u64;
        match result {
            Ok(response) => {
                contexts.insert(k, response.context);
                let h = if read { &mut t.reads } else { &mut t.writes };
                let _ = h.record(micros.min(60_000_000));
            }
            Err(_) => {
                t.errors += 1;
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    t
}

/// Writes every key once, `concurrency` tasks taking the next key from one
/// counter; returns the latencies of the writes and the seconds it took.
async fn preload(shared: Arc<Shared>) -> (Totals, f64) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let keys = shared.args.keys;
    let mut tasks = Vec::new();
    for _ in 0..shared.args.concurrency {
        let (shared, next) = (shared.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Totals::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= keys {
                    return t;
                }
                let value = Rng((shared.seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
                    .value(shared.args.value_size);
                let at = Instant::now();
                match shared
                    .client
                    .put(key(k), value, &Context::empty(), shared.consistency)
                    .await
                {
                    Ok(response) => {
                        shared.contexts.insert(k, response.context);
                        let micros = at.elapsed().as_micros().max(1) as u64;
                        let _ = t.writes.record(micros.min(60_000_000));
                    }
                    Err(_) => t.errors += 1,
                }
            }
        }));
    }
    let progress = {
        let next = next.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let at = next.load(Ordering::Relaxed).min(keys);
                let rate = at as f64 / started.elapsed().as_secs_f64();
                eprint!("\rpreloading: {at}/{keys} keys, {rate:.0} writes/s   ");
            }
        })
    };
    let mut totals = Totals::new();
    for t in tasks {
        if let Ok(t) = t.await {
            totals.add(&t);
        }
    }
    progress.abort();
    let secs = started.elapsed().as_secs_f64();
    let w = &totals.writes;
    eprintln!(
        "\rpreloaded {} keys of {} B in {secs:.1}s: {:.0} writes/s, p50 {} us, p99 {} us, p99.9 {} us, {} errors",
        w.len(),
        shared.args.value_size,
        w.len() as f64 / secs.max(1e-9),
        quantile(w, 0.5),
        quantile(w, 0.99),
        quantile(w, 0.999),
        totals.errors
    );
    (totals, secs)
}

pub(super) fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

/// Says how much data the key space is per replica and whether it fits
/// the caches of the node that answered `status` (a run that measures the
/// caches rather than the store).
fn describe_key_space(args: &BenchArgs, status: Option<&ClusterStatus>) {
    let per_replica = args.keys * (KEY_LEN + args.value_size as u64);
    eprintln!(
        "key space: {} keys x {} B values = {} per replica (random, incompressible values)",
        args.keys,
        args.value_size,
        Size(per_replica)
    );
    let Some(memory) = status.map(|s| &s.memory).filter(|m| m.budget > 0) else {
        return;
    };
    let caches = memory.object_cache_capacity + memory.block_cache_capacity;
    if per_replica <= caches {
        eprintln!(
            "warning: that fits the caches of the node asked ({} of objects and {} of blocks): \
             this run measures the caches, not the store; use --keys {} or more for a key space \
             that does not fit",
            Size(memory.object_cache_capacity),
            Size(memory.block_cache_capacity),
            (caches * 4).div_ceil(KEY_LEN + args.value_size as u64)
        );
    }
}

async fn bench(args: BenchArgs) -> Result<(), CliError> {
    if !(0.0..=1.0).contains(&args.read_ratio) {
        return Err(CliError::Usage(
            "--read-ratio must be between 0 and 1".into(),
        ));
    }
    if args.concurrency == 0 {
        return Err(CliError::Usage("--concurrency must be at least 1".into()));
    }
    if args.duration == Some(0) {
        return Err(CliError::Usage("--duration must be at least 1".into()));
    }
    let seed = args.seed.unwrap_or_else(|| {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(Instant::now())
    });
    if !args.resp.is_empty() {
        return bench_resp::bench(args, seed).await;
    }
    let consistency: Consistency = args
        .consistency
        .parse()
        .map_err(|e: quorra_client::ConsistencyError| CliError::Usage(e.to_string()))?;
    let client = Client::connect(args.connection.config()?).await?;
    describe_key_space(&args, client.status().await.ok().as_ref());
    eprintln!("seed: {seed} (--seed {seed} draws the same keys again)");
    let mut shared = Arc::new(Shared {
        client,
        args,
        consistency,
        deadline: None,
        seed,
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        contexts: DashMap::new(),
    });
    let loaded = if shared.args.preload {
        let loaded = preload(shared.clone()).await;
        if shared.args.ops == 0 && shared.args.duration.is_none() {
            return report(&shared, Some(&loaded), None);
        }
        Some(loaded)
    } else {
        None
    };
    if let Some(secs) = shared.args.duration {
        Arc::get_mut(&mut shared)
            .expect("no task holds the shared state between runs")
            .deadline = Some(Instant::now() + Duration::from_secs(secs));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..shared.args.concurrency {
        let seed = shared.seed ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tasks.push(tokio::spawn(worker(shared.clone(), seed)));
    }
    let timeline = Arc::new(Mutex::new(Vec::new()));
    let progress = {
        let (shared, timeline) = (shared.clone(), timeline.clone());
        let total = match shared.args.duration {
            Some(secs) => format!("{secs} s"),
            None => shared.args.ops.to_string(),
        };
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = shared.done.load(Ordering::Relaxed);
                timeline
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(now - last);
                eprint!(
                    "\r{now} ops of {total}, {} ops/s, {} errors   ",
                    now - last,
                    shared.errors.load(Ordering::Relaxed)
                );
                last = now;
            }
        })
    };
    let mut totals = Totals::new();
    for t in tasks {
        let t = t.await.map_err(|e| CliError::Failed(e.to_string()))?;
        totals.add(&t);
    }
    progress.abort();
    eprintln!();
    let elapsed = started.elapsed().as_secs_f64();
    let timeline = std::mem::take(&mut *timeline.lock().unwrap_or_else(|p| p.into_inner()));
    report(
        &shared,
        loaded.as_ref(),
        Some((&totals, elapsed, &timeline)),
    )
}

/// Prints the preload's figures and the timed run's.
fn report(
    shared: &Shared,
    loaded: Option<&(Totals, f64)>,
    run: Option<(&Totals, f64, &[u64])>,
) -> Result<(), CliError> {
    let args = &shared.args;
    let consistency = shared.consistency;
    let mut out = std::io::stdout().lock();
    if args.json {
        let latencies = |h: &Histogram<u64>, prefix: &str| {
            json!({
                format!("{prefix}_p50_us"): quantile(h, 0.5),
                format!("{prefix}_p99_us"): quantile(h, 0.99),
                format!("{prefix}_p999_us"): quantile(h, 0.999),
            })
        };
        let mut o = json!({
            "keys": args.keys, "value_size": args.value_size,
            "key_space_bytes": args.keys * (KEY_LEN + args.value_size as u64),
            "concurrency": args.concurrency, "read_ratio": args.read_ratio, "seed": shared.seed,
            "consistency": consistency.to_string(),
        });
        let map = o.as_object_mut().expect("an object");
        if let Some((t, secs)) = loaded {
            let mut p = json!({
                "writes": t.writes.len(), "seconds": secs, "errors": t.errors,
                "writes_per_sec": t.writes.len() as f64 / secs.max(1e-9),
            });
            merge(&mut p, latencies(&t.writes, "write"));
            map.insert("preload".into(), p);
        }
        if let Some((t, secs, timeline)) = run {
            let ops = t.reads.len() + t.writes.len() + t.errors;
            map.insert("ops".into(), json!(ops));
            map.insert("seconds".into(), json!(secs));
            map.insert("ops_per_sec".into(), json!(ops as f64 / secs.max(1e-9)));
            map.insert("errors".into(), json!(t.errors));
            map.insert("ops_per_second_timeline".into(), json!(timeline));
            merge(&mut o, latencies(&t.reads, "read"));
            merge(&mut o, latencies(&t.writes, "write"));
        }
        writeln!(out, "{o}")?;
        return Ok(());
    }
    if let Some((t, secs)) = loaded {
        writeln!(
            out,
            "preload: {} writes in {secs:.2}s: {:.0} writes/s, {} errors",
            t.writes.len(),
            t.writes.len() as f64 / secs.max(1e-9),
            t.errors
        )?;
        write_latencies(&mut out, "writes", &t.writes)?;
    }
    if let Some((t, secs, _)) = run {
        let ops = t.reads.len() + t.writes.len() + t.errors;
        writeln!(
            out,
            "{ops} ops in {secs:.2}s: {:.0} ops/s, {} errors (concurrency {}, {} keys, {} B values, {:.0}% reads, {consistency})",
            ops as f64 / secs.max(1e-9),
            t.errors,
            args.concurrency,
            args.keys,
            args.value_size,
            args.read_ratio * 100.0
        )?;
        write_latencies(&mut out, "reads", &t.reads)?;
        write_latencies(&mut out, "writes", &t.writes)?;
    }
    Ok(())
}

pub(super) fn write_latencies(
    out: &mut impl Write,
    name: &str,
    h: &Histogram<u64>,
) -> Result<(), CliError> {
    writeln!(
        out,
        "  {name:<6} {:>8} ops  p50 {:>7} us  p99 {:>7} us  p99.9 {:>7} us  max {:>7} us",
        h.len(),
        quantile(h, 0.5),
        quantile(h, 0.99),
        quantile(h, 0.999),
        if h.is_empty() { 0 } else { h.max() }
    )?;
    Ok(())
}

/// Adds `extra`'s fields to the object `o`.
fn merge(o: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(o), serde_json::Value::Object(extra)) = (o.as_object_mut(), extra) {
        o.extend(extra);
    }
}

pub(crate) fn run(args: BenchArgs) -> Result<(), CliError> {
    super::init_logging("warn");
    Connection::runtime()?.block_on(bench(args))
}
