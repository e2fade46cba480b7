//! The view store, end to end: apply throughput against the produce rate, read
//! latency over HTTP against an in-process [`View`], and the broker's memory.
//!
//! Each run starts a fresh brook process (the release binary beside this one),
//! creates a compacted one-partition topic and produces `--records` records with
//! librdkafka (acks=all, linger 5 ms; keys `key-{i % keys:05}`, 100-byte JSON
//! values `{"amount":i,"pad":"…"}`); the produce rate runs from the first send
//! to the last delivery report. Then a `table` view and a `sum` view (of
//! `amount`) are created one after the other over `PUT /v1/views/NAME`, each
//! timed until `GET /v1/views/NAME` (polled every 20 ms) reports `lag` 0 with
//! its offset at the end of the topic: apply throughput = records / that time.
//!
//! Reads: `--reads` point gets of random existing keys
//! (`GET /v1/views/table/keys/KEY`) and `--scans` prefix scans
//! (`GET /v1/views/table/scan?prefix=key-NNN&limit=100`, 100 rows each: the
//! keys are zero-padded so that a 3-digit prefix holds 100 keys) over one
//! keep-alive HTTP/1.1 connection, against [`View::get`] / [`View::scan`] of a
//! `table` view built in this process from the same records with
//! [`View::apply`] (same keys, same counts, the broker's default view options,
//! a block cache and memtable of the same sizes).
//!
//! Memory: the broker's RSS before the views, after both caught up, and after a
//! restart once both are live again, against `view.block.cache.bytes +
//! view.memtable.max.bytes` (set explicitly to the defaults).
//!
//! Run: `cargo build --release -p brook-broker --bin brook` then
//! `cargo run --release -p brook-benches --bin views -- --runs 3`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use brook_protocol::records::Record;
use brook_tests::{http_request, Broker, BrokerOptions};
use brook_views::{Format, ScanRequest, SharedResources, View, ViewDef, ViewKind, ViewOptions};
use bytes::Bytes;
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

const TOPIC: &str = "changes";
/// `view.block.cache.bytes` (the default, set explicitly).
const BLOCK_CACHE_BYTES: u64 = 64 << 20;
/// `view.memtable.max.bytes` (the default, set explicitly).
const MEMTABLE_BYTES: u64 = 16 << 20;
/// Records per in-process [`View::apply`] call (about what the broker's
/// follower gets from one 1 MiB read).
const APPLY_BATCH: usize = 4096;
const SCAN_LIMIT: usize = 100;
const POLL: Duration = Duration::from_millis(20);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Parser, Debug)]
#[command(about = "view store: apply vs produce rate, read latency, broker memory")]
struct Args {
    /// Records produced per run.
    #[arg(long, default_value_t = 500_000)]
    records: u64,
    /// Distinct keys (`key-{i % keys}`).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Point gets per side (HTTP and in-process).
    #[arg(long, default_value_t = 20_000)]
    reads: usize,
    /// Prefix scans per side.
    #[arg(long, default_value_t = 5_000)]
    scans: usize,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// One run's figures.
#[derive(Debug, Default, Clone)]
struct Figures {
    produce_rate: f64,
    table_apply: f64,
    sum_apply: f64,
    local_apply: f64,
    http_get: Percentiles,
    local_get: Percentiles,
    http_scan: Percentiles,
    local_scan: Percentiles,
    rss_before: u64,
    rss_applied: u64,
    rss_restored: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Percentiles {
    p50_us: f64,
    p99_us: f64,
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Percentiles {
        p50_us: at(0.50),
        p99_us: at(0.99),
    }
}

/// splitmix64: reproducible key choice without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Keys that exist after the produce.
fn existing(args: &Args) -> u64 {
    args.keys.min(args.records)
}

fn key(i: u64, keys: u64) -> String {
    format!("key-{:05}", i % keys.max(1))
}

/// A 100-byte JSON value carrying `amount`.
fn value(i: u64) -> String {
    let head = format!(r#"{{"amount":{i},"pad":""#);
    let pad = 100usize.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

// ---------------------------------------------------------------- produce

#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    last: Mutex<Option<Instant>>,
}

struct Counting(Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.0.ok
        } else {
            &self.0.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.0.last.lock() {
            *last = Some(Instant::now());
        }
    }
}

/// Produce the records; returns records/s from the first send to the last
/// delivery report.
fn produce(broker: &Broker, args: &Args) -> Result<f64> {
    let deliveries = Arc::new(Deliveries::default());
    let producer: BaseProducer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .create_with_context(Counting(Arc::clone(&deliveries)))?;
    let started = Instant::now();
    for i in 0..args.records {
        let (k, v) = (key(i, args.keys), value(i));
        let mut record = BaseRecord::to(TOPIC).key(&k).payload(&v);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("producing record {i}: {e}"),
            }
        }
        if i.is_multiple_of(1024) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let failed = deliveries.failed.load(Ordering::Relaxed);
    let ok = deliveries.ok.load(Ordering::Relaxed);
    if failed > 0 || ok != args.records {
        bail!("{ok} records delivered, {failed} failed");
    }
    let last = deliveries
        .last
        .lock()
        .map_err(|_| anyhow!("delivery lock poisoned"))?
        .ok_or_else(|| anyhow!("no delivery report"))?;
    Ok(args.records as f64 / last.duration_since(started).as_secs_f64())
}

fn create_topic(broker: &Broker) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let topic =
        NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    for r in rt.block_on(admin.create_topics([&topic], &AdminOptions::new()))? {
        r.map_err(|(n, e)| anyhow!("creating {n}: {e:?}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- views over HTTP

/// Whether view `name` has applied everything below `end` and reports no lag.
fn caught_up(addr: SocketAddr, name: &str, end: u64) -> Result<bool> {
    let (status, body) = http_request(addr, "GET", &format!("/v1/views/{name}"), None)?;
    if status != 200 {
        return Ok(false);
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    if let Some(e) = v.get("error") {
        bail!("view {name} failing: {e}");
    }
    let next = v["offsets"]["0"].as_u64().unwrap_or(0);
    Ok(v["lag"].as_i64() == Some(0) && next >= end)
}

fn wait_caught_up(addr: SocketAddr, name: &str, end: u64) -> Result<()> {
    let started = Instant::now();
    while !caught_up(addr, name, end)? {
        if started.elapsed() > CATCH_UP_TIMEOUT {
            bail!("view {name} did not catch up in {CATCH_UP_TIMEOUT:?}");
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Create view `name` with `extra` definition fields; returns records/s until
/// it caught up with the topic.
fn timed_view(broker: &Broker, name: &str, extra: &str, records: u64) -> Result<f64> {
    let body = format!(r#"{{"topic":"{TOPIC}","key_format":"utf8","value_format":"json"{extra}}}"#);
    let started = Instant::now();
    let (status, answer) = http_request(
        broker.admin_addr(),
        "PUT",
        &format!("/v1/views/{name}"),
        Some(&body),
    )?;
    if status != 201 && status != 200 {
        bail!("PUT /v1/views/{name} answered {status}: {answer}");
    }
    wait_caught_up(broker.admin_addr(), name, records)?;
    Ok(records as f64 / started.elapsed().as_secs_f64())
}

/// A keep-alive HTTP/1.1 client for GETs with `Content-Length` answers.
struct KeepAlive {
    addr: SocketAddr,
    conn: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(KeepAlive {
            addr,
            conn: BufReader::new(stream),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// GET `path`; returns the status, the body is in `self.body`.
    fn get(&mut self, path: &str) -> Result<u16> {
        write!(
            self.conn.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.addr
        )?;
        self.line.clear();
        self.conn.read_line(&mut self.line)?;
        let status = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {:?}", self.line))?;
        let mut length = None;
        loop {
            self.line.clear();
            if self.conn.read_line(&mut self.line)? == 0 {
                bail!("connection closed in the headers of GET {path}");
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, v)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(v.trim().parse::<usize>()?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    bail!("GET {path}: chunked answers are not supported");
                }
            }
        }
        let length = length.ok_or_else(|| anyhow!("GET {path}: no Content-Length"))?;
        self.body.resize(length, 0);
        self.conn.read_exact(&mut self.body)?;
        Ok(status)
    }
}

fn http_reads(addr: SocketAddr, args: &Args, seed: u64) -> Result<(Percentiles, Percentiles)> {
    let mut client = KeepAlive::connect(addr)?;
    let mut rng = Rng(seed);
    let mut gets = Vec::with_capacity(args.reads);
    for _ in 0..args.reads {
        let path = format!(
            "/v1/views/table/keys/{}",
            key(rng.below(existing(args)), args.keys)
        );
        let t = Instant::now();
        let status = client.get(&path)?;
        gets.push(t.elapsed());
        if status != 200 {
            bail!("GET {path} answered {status}");
        }
    }
    let mut scans = Vec::with_capacity(args.scans);
    for _ in 0..args.scans {
        let path = format!(
            "/v1/views/table/scan?prefix={}&limit={SCAN_LIMIT}",
            scan_prefix(&mut rng, existing(args))
        );
        let t = Instant::now();
        let status = client.get(&path)?;
        scans.push(t.elapsed());
        if status != 200 {
            bail!("GET {path} answered {status}");
        }
    }
    Ok((percentiles(gets), percentiles(scans)))
}

/// `key-NNN`: the 100 keys `key-NNN00..key-NNN99` (fewer past `existing`).
fn scan_prefix(rng: &mut Rng, existing: u64) -> String {
    format!("key-{:03}", rng.below(existing.div_ceil(100)))
}

// ---------------------------------------------------------------- in process

fn table_def() -> ViewDef {
    ViewDef {
        name: "table".into(),
        topic: TOPIC.into(),
        kind: ViewKind::Table,
        field: None,
        key_format: Format::Utf8,
        value_format: Format::Json,
    }
}

/// Build the equivalent table view in this process; returns it and records/s.
fn local_view(dir: &std::path::Path, args: &Args) -> Result<(Arc<View>, f64)> {
    let options = ViewOptions {
        max_memtable_bytes: MEMTABLE_BYTES,
        ..ViewOptions::default()
    };
    let shared = SharedResources::new(BLOCK_CACHE_BYTES, 512);
    let view = Arc::new(View::open(dir, table_def(), options, &shared)?);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(APPLY_BATCH);
    let mut batches = 0u64;
    for i in 0..args.records {
        batch.push(Record {
            offset: i64::try_from(i)?,
            timestamp: 0,
            key: Some(Bytes::from(key(i, args.keys))),
            value: Some(Bytes::from(value(i))),
            headers: Vec::new(),
        });
        if batch.len() == APPLY_BATCH || i + 1 == args.records {
            view.apply(0, &batch, 0)?;
            batch.clear();
            view.maybe_flush()?;
            batches += 1;
            if batches.is_multiple_of(16) {
                view.maybe_compact()?;
            }
        }
    }
    let rate = args.records as f64 / started.elapsed().as_secs_f64();
    Ok((view, rate))
}

fn local_reads(view: &View, args: &Args, seed: u64) -> Result<(Percentiles, Percentiles)> {
    let mut rng = Rng(seed);
    let mut gets = Vec::with_capacity(args.reads);
    for _ in 0..args.reads {
        let k = key(rng.below(existing(args)), args.keys);
        let t = Instant::now();
        let found = view.get(k.as_bytes())?;
        gets.push(t.elapsed());
        if found.value.is_none() {
            bail!("in-process view misses {k}");
        }
    }
    let mut scans = Vec::with_capacity(args.scans);
    for _ in 0..args.scans {
        let req = ScanRequest {
            prefix: Some(Bytes::from(scan_prefix(&mut rng, existing(args)))),
            limit: SCAN_LIMIT,
            ..ScanRequest::default()
        };
        let t = Instant::now();
        let page = view.scan(&req)?;
        scans.push(t.elapsed());
        std::hint::black_box(page);
    }
    Ok((percentiles(gets), percentiles(scans)))
}

// ---------------------------------------------------------------- one run

fn run(args: &Args, seed: u64) -> Result<Figures> {
    let opts = BrokerOptions::default()
        .config("view.block.cache.bytes", &BLOCK_CACHE_BYTES.to_string())
        .config("view.memtable.max.bytes", &MEMTABLE_BYTES.to_string());
    let mut broker = Broker::start(opts)?;
    create_topic(&broker)?;
    let mut f = Figures {
        produce_rate: produce(&broker, args)?,
        ..Figures::default()
    };
    f.rss_before = broker.rss_bytes()?;
    f.table_apply = timed_view(&broker, "table", "", args.records)?;
    f.sum_apply = timed_view(
        &broker,
        "sum",
        r#","kind":"sum","field":"amount""#,
        args.records,
    )?;
    f.rss_applied = broker.rss_bytes()?;
    (f.http_get, f.http_scan) = http_reads(broker.admin_addr(), args, seed)?;

    broker.restart()?;
    for name in ["table", "sum"] {
        wait_caught_up(broker.admin_addr(), name, args.records)?;
    }
    f.rss_restored = broker.rss_bytes()?;
    drop(broker);

    let dir = tempfile::tempdir()?;
    let (view, rate) = local_view(dir.path(), args)?;
    f.local_apply = rate;
    (f.local_get, f.local_scan) = local_reads(&view, args, seed)?;
    Ok(f)
}

// ---------------------------------------------------------------- report

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |kb| format!("{:.1} GiB", kb as f64 / 1048576.0),
        );
    format!("{cores} cores ({cpu}), {mem} RAM")
}

fn main() -> Result<()> {
    println!("brook binary: {}", brook_tests::brook_binary()?.display());
    let args = Args::parse();
    if args.runs == 0 || args.records == 0 {
        bail!("--runs and --records must be positive");
    }
    println!("# brook view store bench");
    println!();
    println!("- machine: {}", machine());
    println!(
        "- workload: {} records into `{TOPIC}` (1 partition, cleanup.policy=compact), \
         {} keys `key-00000..`, 100-byte JSON values; librdkafka acks=all, linger.ms=5",
        args.records, args.keys
    );
    println!(
        "- views: `table` (utf8 keys, json values) and `sum` of `amount`, created after \
         the produce, one at a time; caught up = `lag` 0 and offset {} (polled every {} ms)",
        args.records,
        POLL.as_millis()
    );
    println!(
        "- broker: view.block.cache.bytes = {} ({:.0} MiB), view.memtable.max.bytes = {} \
         ({:.0} MiB), other view.* at defaults",
        BLOCK_CACHE_BYTES,
        mib(BLOCK_CACHE_BYTES),
        MEMTABLE_BYTES,
        mib(MEMTABLE_BYTES)
    );
    println!(
        "- reads: {} point gets of random keys, {} prefix scans (`key-NNN`, limit {SCAN_LIMIT}, \
         100 rows), one keep-alive HTTP/1.1 connection vs in-process `View::get`/`View::scan` \
         (same cache/memtable sizes, applied in batches of {APPLY_BATCH})",
        args.reads, args.scans
    );
    println!("- {} run(s), medians", args.runs);
    println!();

    let mut all = Vec::new();
    for r in 0..args.runs {
        let f = run(&args, 0x5EED + r as u64)?;
        eprintln!("run {r}: {f:?}");
        all.push(f);
    }
    let m = |get: fn(&Figures) -> f64| median(all.iter().map(get).collect());
    let produce = m(|f| f.produce_rate);
    let rows: Vec<(&str, String)> = vec![
        ("produce rate (records/s)", format!("{produce:.0}")),
        (
            "table view apply (records/s)",
            format!("{:.0}", m(|f| f.table_apply)),
        ),
        (
            "table apply / produce",
            format!("{:.2}", m(|f| f.table_apply / f.produce_rate)),
        ),
        (
            "sum view apply (records/s)",
            format!("{:.0}", m(|f| f.sum_apply)),
        ),
        (
            "sum apply / produce",
            format!("{:.2}", m(|f| f.sum_apply / f.produce_rate)),
        ),
        (
            "in-process table apply (records/s)",
            format!("{:.0}", m(|f| f.local_apply)),
        ),
        (
            "point get p50 / p99 µs, HTTP",
            format!(
                "{:.0} / {:.0}",
                m(|f| f.http_get.p50_us),
                m(|f| f.http_get.p99_us)
            ),
        ),
        (
            "point get p50 / p99 µs, in-process",
            format!(
                "{:.1} / {:.1}",
                m(|f| f.local_get.p50_us),
                m(|f| f.local_get.p99_us)
            ),
        ),
        (
            "scan (100 rows) p50 / p99 µs, HTTP",
            format!(
                "{:.0} / {:.0}",
                m(|f| f.http_scan.p50_us),
                m(|f| f.http_scan.p99_us)
            ),
        ),
        (
            "scan (100 rows) p50 / p99 µs, in-process",
            format!(
                "{:.1} / {:.1}",
                m(|f| f.local_scan.p50_us),
                m(|f| f.local_scan.p99_us)
            ),
        ),
        (
            "broker RSS before views (MiB)",
            format!("{:.0}", m(|f| mib(f.rss_before))),
        ),
        (
            "broker RSS, both views caught up (MiB)",
            format!("{:.0}", m(|f| mib(f.rss_applied))),
        ),
        (
            "broker RSS after restart, views restored (MiB)",
            format!("{:.0}", m(|f| mib(f.rss_restored))),
        ),
        (
            "view.block.cache.bytes + view.memtable.max.bytes (MiB)",
            format!("{:.0}", mib(BLOCK_CACHE_BYTES + MEMTABLE_BYTES)),
        ),
    ];
    println!("| metric | median |");
    println!("|---|---:|");
    for (name, value) in rows {
        println!("| {name} | {value} |");
    }
    Ok(())
}
