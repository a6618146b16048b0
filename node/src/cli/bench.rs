//! `quorra bench`: a load generator with latency percentiles.
//!
//! `--concurrency` tasks share one client (one connection per node) and
//! issue `--ops` requests in all over `--keys` keys: a `--read-ratio` share
//! of gets, the rest puts of `--value-size` bytes. A put carries the
//! context of the last answer seen for its key, as a real application
//! would, so siblings stay bounded by concurrency instead of piling up.
//! Latencies go into HDR histograms (1 µs to 60 s, 3 significant digits);
//! a progress line goes to stderr every second; the summary (or one JSON
//! object with `--json`) to stdout. `--preload` first writes every key
//! once (blind puts, the tasks sharing one counter over the key space), so
//! the timed run meets a key space of the size asked for, not the share
//! of it random puts happened to reach; `--ops 0` only preloads.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use dashmap::DashMap;
use hdrhistogram::Histogram;
use quorra_client::{Client, Consistency, Context};
use serde_json::json;

use super::CliError;
use super::client::Connection;

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    connection: Connection,
    /// Requests in all.
    #[arg(long, default_value_t = 100_000)]
    ops: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Share of requests that are reads (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    read_ratio: f64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// one, two, quorum, all, or r=N,w=N.
    #[arg(long, default_value = "quorum")]
    consistency: String,
    /// Write every key once before the timed run (at the same
    /// consistency, value size and concurrency).
    #[arg(long)]
    preload: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

struct Totals {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    errors: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// A small, fast, seeded RNG per task (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// What every worker shares.
struct Shared {
    client: Client,
    args: BenchArgs,
    consistency: Consistency,
    issued: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    contexts: DashMap<u64, Context>,
}

async fn worker(shared: Arc<Shared>, seed: u64) -> Totals {
    let Shared {
        client,
        args,
        consistency,
        issued,
        done,
        errors,
        contexts,
    } = &*shared;
    let consistency = *consistency;
    let mut rng = Rng(seed | 1);
    let value = Bytes::from(vec![b'x'; args.value_size]);
    let mut t = Totals {
        reads: histogram(),
        writes: histogram(),
        errors: 0,
    };
    while issued.fetch_add(1, Ordering::Relaxed) < args.ops {
        let k = rng.next() % args.keys.max(1);
        let key = Bytes::from(format!("bench:{k:016x}"));
        let read = (rng.next() % 1_000_000) as f64 / 1_000_000.0 < args.read_ratio;
        let started = Instant::now();
        let result = if read {
            client.get(key, consistency).await
        } else {
            let ctx = contexts.get(&k).map(|c| c.clone()).unwrap_or_default();
            client.put(key, value.clone(), &ctx, consistency).await
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
/// counter; returns the keys written and the errors.
async fn preload(shared: Arc<Shared>) -> (u64, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let keys = shared.args.keys;
    let mut tasks = Vec::new();
    for _ in 0..shared.args.concurrency {
        let (shared, next) = (shared.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let value = Bytes::from(vec![b'x'; shared.args.value_size]);
            let (mut written, mut errors) = (0u64, 0u64);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= keys {
                    return (written, errors);
                }
                let key = Bytes::from(format!("bench:{k:016x}"));
                match shared
                    .client
                    .put(key, value.clone(), &Context::empty(), shared.consistency)
                    .await
                {
                    Ok(response) => {
                        shared.contexts.insert(k, response.context);
                        written += 1;
                    }
                    Err(_) => errors += 1,
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
    let (mut written, mut errors) = (0, 0);
    for t in tasks {
        if let Ok((w, e)) = t.await {
            written += w;
            errors += e;
        }
    }
    progress.abort();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "\rpreloaded {written} keys of {} B in {secs:.1}s: {:.0} writes/s, {errors} errors",
        shared.args.value_size,
        written as f64 / secs.max(1e-9)
    );
    (written, errors)
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
    let consistency: Consistency = args
        .consistency
        .parse()
        .map_err(|e: quorra_client::ConsistencyError| CliError::Usage(e.to_string()))?;
    let client = Client::connect(args.connection.config()?).await?;
    let shared = Arc::new(Shared {
        client,
        args,
        consistency,
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        contexts: DashMap::new(),
    });
    if shared.args.preload {
        preload(shared.clone()).await;
        if shared.args.ops == 0 {
            return Ok(());
        }
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..shared.args.concurrency {
        let seed = 0x9E37_79B9 ^ (w as u64).wrapping_mul(0x1000_0001);
        tasks.push(tokio::spawn(worker(shared.clone(), seed)));
    }
    let progress = {
        let shared = shared.clone();
        let total = shared.args.ops;
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = shared.done.load(Ordering::Relaxed);
                eprint!(
                    "\r{now}/{total} ops, {} ops/s, {} errors   ",
                    now - last,
                    shared.errors.load(Ordering::Relaxed)
                );
                last = now;
            }
        })
    };
    let mut reads = histogram();
    let mut writes = histogram();
    let mut failed = 0;
    for t in tasks {
        let t = t.await.map_err(|e| CliError::Failed(e.to_string()))?;
        reads.add(&t.reads).expect("same bounds");
        writes.add(&t.writes).expect("same bounds");
        failed += t.errors;
    }
    progress.abort();
    eprintln!();
    let elapsed = started.elapsed().as_secs_f64();
    let ops = shared.done.load(Ordering::Relaxed);
    let args = &shared.args;
    let rate = ops as f64 / elapsed.max(1e-9);
    let q = |h: &Histogram<u64>, p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            json!({
                "ops": ops, "seconds": elapsed, "ops_per_sec": rate, "errors": failed,
                "read_p50_us": q(&reads, 0.5), "read_p99_us": q(&reads, 0.99), "read_p999_us": q(&reads, 0.999),
                "write_p50_us": q(&writes, 0.5), "write_p99_us": q(&writes, 0.99), "write_p999_us": q(&writes, 0.999),
                "concurrency": args.concurrency, "value_size": args.value_size,
                "read_ratio": args.read_ratio, "consistency": consistency.to_string(),
            })
        )?;
    } else {
        writeln!(
            out,
            "{ops} ops in {elapsed:.2}s: {rate:.0} ops/s, {failed} errors (concurrency {}, {} B values, {:.0}% reads, {consistency})",
            args.concurrency,
            args.value_size,
            args.read_ratio * 100.0
        )?;
        for (name, h) in [("reads", &reads), ("writes", &writes)] {
            writeln!(
                out,
                "  {name:<6} {:>8} ops  p50 {:>7} us  p99 {:>7} us  p99.9 {:>7} us  max {:>7} us",
                h.len(),
                q(h, 0.5),
                q(h, 0.99),
                q(h, 0.999),
                if h.is_empty() { 0 } else { h.max() }
            )?;
        }
    }
    Ok(())
}

pub(crate) fn run(args: BenchArgs) -> Result<(), CliError> {
    super::init_logging("warn");
    Connection::runtime()?.block_on(bench(args))
}
