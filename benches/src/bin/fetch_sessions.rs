//! A consumer of many mostly idle partitions, with and without incremental
//! fetch sessions (KIP-227).
//!
//! Starts one broker with a `--partitions`-partition topic, writes one record
//! to every partition, then runs two consumers over the same broker, one after
//! the other (order alternates per run): *full* sends every partition in every
//! Fetch (session id 0, epoch -1: what librdkafka does); *sessions* opens a
//! session with one full fetch and then sends incremental fetches naming only
//! partitions whose offset moved. Between fetches, every `--hot-every`-th
//! fetch is preceded by one produced record to a random partition, so most
//! fetches find nothing new and a few find one record. Fetches use
//! `max_wait_ms` 0 so their latency is the broker's work, not a long-poll.
//!
//! Reported per mode: request and response bytes per fetch (frame bodies as
//! encoded), fetch latency p50/p99 (client side, loopback), and broker CPU
//! per fetch (utime+stime of the broker process over the loop, from
//! /proc/<pid>/stat). Medians over `--runs`; ratios from the same run.
//!
//! Run: `cargo build --release -p brook-broker --bin brook` then
//! `cargo run --release -p brook-benches --bin fetch_sessions`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use brook_broker::kafka_client::Client;
use brook_protocol::codec::{Message, Records};
use brook_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::messages::FetchRequest;
use brook_tests::{Broker, BrokerOptions};
use clap::Parser;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const VERSION: i16 = 12;
const TOPIC: &str = "idle";

#[derive(Parser, Debug)]
#[command(about = "Fetch cost of a many-partition consumer with and without fetch sessions")]
struct Args {
    #[arg(long, default_value_t = 1000)]
    partitions: i32,
    /// Fetches per mode and run.
    #[arg(long, default_value_t = 2000)]
    fetches: usize,
    /// One record is produced before every this-many fetches.
    #[arg(long, default_value_t = 10)]
    hot_every: usize,
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    req_bytes: f64,
    resp_bytes: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_fetch: f64,
    records: u64,
}

fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("stat format")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// Linux's USER_HZ (the unit of utime/stime), 100 on every architecture brook runs on.
const TICKS_PER_SEC: f64 = 100.0;

/// Reads one figure of a run.
type Getter = fn(&Figures) -> f64;

fn producer(bootstrap: &str) -> Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()?)
}

fn produce_one(p: &BaseProducer, partition: i32) -> Result<()> {
    p.send(
        BaseRecord::<(), [u8]>::to(TOPIC)
            .partition(partition)
            .payload(b"x".as_slice()),
    )
    .map_err(|(e, _)| e)?;
    p.flush(Duration::from_secs(30))?;
    Ok(())
}

fn request(session_id: i32, epoch: i32, parts: &[(i32, i64)]) -> FetchRequest {
    FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 50 << 20,
        session_id,
        session_epoch: epoch,
        topics: if parts.is_empty() {
            Vec::new()
        } else {
            vec![FetchTopic {
                topic: TOPIC.to_owned(),
                partitions: parts
                    .iter()
                    .map(|&(partition, fetch_offset)| FetchPartition {
                        partition,
                        fetch_offset,
                        partition_max_bytes: 1 << 20,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

/// A tiny xorshift, so runs are reproducible without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn run_mode(
    broker: &Broker,
    p: &BaseProducer,
    args: &Args,
    sessions: bool,
    seed: u64,
) -> Result<Figures> {
    let mut c = Client::connect(&broker.bootstrap()).await?;
    // Start at each partition's end, as a caught-up consumer would.
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let all: Vec<(i32, i64)> = (0..args.partitions).map(|p| (p, 0)).collect();
    let resp = c.send(&request(0, -1, &all), VERSION).await?;
    for t in &resp.responses {
        for pd in &t.partitions {
            offsets.insert(pd.partition_index, pd.high_watermark);
        }
    }
    ensure!(offsets.len() == args.partitions as usize);
    let mut session = (0, -1);
    let mut changed: Vec<(i32, i64)> = Vec::new();
    if sessions {
        let parts: Vec<_> = offsets.iter().map(|(&p, &o)| (p, o)).collect();
        let resp = c.send(&request(0, 0, &parts), VERSION).await?;
        ensure!(resp.session_id > 0, "the broker granted no session");
        session = (resp.session_id, 1);
    }
    let mut rng = Rng(seed | 1);
    let (mut req_bytes, mut resp_bytes, mut records) = (0usize, 0usize, 0u64);
    let mut lat = Vec::with_capacity(args.fetches);
    let cpu0 = cpu_ticks(broker.pid())?;
    for i in 0..args.fetches {
        if i % args.hot_every == 0 {
            let part = (rng.next() % args.partitions as u64) as i32;
            produce_one(p, part)?;
        }
        let req = if sessions {
            let r = request(session.0, session.1, &changed);
            session.1 += 1;
            r
        } else {
            let parts: Vec<_> = offsets.iter().map(|(&p, &o)| (p, o)).collect();
            request(0, -1, &parts)
        };
        req_bytes += req.encoded_size(VERSION)?;
        let t = Instant::now();
        let resp = c.send(&req, VERSION).await?;
        lat.push(t.elapsed());
        ensure!(resp.error_code == 0, "fetch failed: {}", resp.error_code);
        resp_bytes += resp.encoded_size(VERSION)?;
        changed.clear();
        for t in &resp.responses {
            for pd in &t.partitions {
                if let Some(Records::Bytes(b)) = &pd.records {
                    if !b.is_empty() {
                        let at = offsets.entry(pd.partition_index).or_default();
                        records += u64::try_from(pd.high_watermark - *at).unwrap_or(0);
                        *at = pd.high_watermark;
                        changed.push((pd.partition_index, pd.high_watermark));
                    }
                }
            }
        }
    }
    let cpu1 = cpu_ticks(broker.pid())?;
    lat.sort();
    let n = args.fetches as f64;
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    // Broker CPU includes the produce requests; both modes produce the same.
    Ok(Figures {
        req_bytes: req_bytes as f64 / n,
        resp_bytes: resp_bytes as f64 / n,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        cpu_us_per_fetch: (cpu1 - cpu0) as f64 / TICKS_PER_SEC * 1e6 / n,
        records,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let broker = Broker::start(BrokerOptions::default().partitions(args.partitions))?;
    let p = producer(&broker.bootstrap())?;
    for part in 0..args.partitions {
        p.send(
            BaseRecord::<(), [u8]>::to(TOPIC)
                .partition(part)
                .payload(b"seed".as_slice()),
        )
        .map_err(|(e, _)| e)?;
    }
    p.flush(Duration::from_secs(60))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut full = Vec::new();
    let mut sess = Vec::new();
    for run in 0..args.runs {
        let seed = 0x9e37_79b9_7f4a_7c15 ^ run as u64;
        let order = if run % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut got = [None, None];
        for s in order {
            let f = rt.block_on(run_mode(&broker, &p, &args, s, seed))?;
            got[usize::from(s)] = Some(f);
        }
        let (Some(f), Some(s)) = (got[0], got[1]) else {
            unreachable!("both modes ran")
        };
        println!(
            "run {run}: full req {:.0} B resp {:.0} B p50 {:.0} us p99 {:.0} us cpu {:.1} us/fetch ({} records) | sessions req {:.0} B resp {:.0} B p50 {:.0} us p99 {:.0} us cpu {:.1} us/fetch ({} records) | ratios sessions/full: req {:.4} resp {:.4} p50 {:.3} cpu {:.3}",
            f.req_bytes, f.resp_bytes, f.p50_us, f.p99_us, f.cpu_us_per_fetch, f.records,
            s.req_bytes, s.resp_bytes, s.p50_us, s.p99_us, s.cpu_us_per_fetch, s.records,
            s.req_bytes / f.req_bytes, s.resp_bytes / f.resp_bytes, s.p50_us / f.p50_us,
            s.cpu_us_per_fetch / f.cpu_us_per_fetch,
        );
        full.push(f);
        sess.push(s);
    }
    let med = |v: &[Figures], g: Getter| median(v.iter().map(g).collect());
    let ratio = |g: Getter| median(full.iter().zip(&sess).map(|(f, s)| g(s) / g(f)).collect());
    println!(
        "\nmedian over {} runs ({} partitions, {} fetches per mode, one record per {} fetches):",
        args.runs, args.partitions, args.fetches, args.hot_every
    );
    println!("| | full (sessionless) | incremental sessions | sessions/full (median of per-run ratios) |");
    println!("|---|---|---|---|");
    let rows: [(&str, Getter); 5] = [
        ("request bytes per fetch", |f| f.req_bytes),
        ("response bytes per fetch", |f| f.resp_bytes),
        ("fetch latency p50 (us)", |f| f.p50_us),
        ("fetch latency p99 (us)", |f| f.p99_us),
        ("broker CPU per fetch (us)", |f| f.cpu_us_per_fetch),
    ];
    for (name, g) in rows {
        println!(
            "| {name} | {:.1} | {:.1} | {:.4} |",
            med(&full, g),
            med(&sess, g),
            ratio(g)
        );
    }
    Ok(())
}
