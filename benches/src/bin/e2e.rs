//! End-to-end throughput of brook against librdkafka, next to a limit measured in
//! the same run.
//!
//! For each case (record size × acks) and each run, the harness produces N records
//! with librdkafka (the `rdkafka` crate) and then consumes them back, once against a
//! fresh `brook serve` and once against the loopback sink broker of
//! `brook_benches::sink` (a child process running this binary's `sink`
//! subcommand), which only acknowledges and serves one pre-built batch repeatedly.
//! The sink figure is the client's own ceiling on this machine at this moment;
//! brook's figure is reported as a ratio of it. Runs alternate which target goes
//! first so that machine drift hits both. The medians, spreads and the exact
//! setup are written as markdown to `--output` (default `benches/results/e2e.md`).
//!
//! Each target runs in its own temp dir (brook's data dir and log, the sink's log),
//! removed at the end of the run; children are killed on drop, so an interrupted
//! harness leaves nothing running.
//!
//! Run: `cargo build --release -p brook-broker --bin brook` then
//! `cargo run --release -p brook-benches --bin e2e -- --runs 5`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use brook_benches::sink::{self, Sink, SinkConfig};
use brook_protocol::records::header::BatchIter;
use clap::{Parser, Subcommand};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// How long a target may take to write its ready file.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound on one produce or consume phase.
const PHASE_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(10);

#[derive(Parser, Debug)]
#[command(about = "End-to-end produce/consume throughput: brook vs a loopback sink")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the sink broker until killed (used by the harness itself).
    Sink {
        #[arg(long)]
        ready_file: PathBuf,
        #[arg(long)]
        record_size: usize,
        #[arg(long)]
        log_records: i64,
        #[arg(long)]
        batch_bytes: usize,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct BenchArgs {
    /// Runs per case and target (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Record value sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    sizes: Vec<usize>,
    /// acks settings: 1 and/or all.
    #[arg(long, value_delimiter = ',', default_value = "1,all")]
    acks: Vec<String>,
    /// Records per run; by default 500000 for sizes under 512 B, 200000 otherwise
    /// (about a second per phase for the limit on a loaded 2-core machine).
    #[arg(long)]
    records: Option<u64>,
    /// Size of the batches the sink serves to consumers (default: the producer's
    /// `batch.size`, about what brook stores when the producer is not throttled).
    #[arg(long, default_value_t = 1_000_000)]
    sink_batch_bytes: usize,
    /// The brook binary (default: <workspace>/target/release/brook).
    #[arg(long)]
    brook: Option<PathBuf>,
    /// Parent directory of brook's temporary data dirs (default: the system temp dir).
    #[arg(long)]
    data_parent: Option<PathBuf>,
    /// Where the markdown results go (default: <workspace>/benches/results/e2e.md).
    #[arg(long)]
    output: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Sink {
            ready_file,
            record_size,
            log_records,
            batch_bytes,
        }) => run_sink(
            &ready_file,
            SinkConfig {
                record_size,
                log_records,
                batch_bytes,
            },
        ),
        None => bench(&cli.bench),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

// ---------------------------------------------------------------- targets

/// The sink subcommand: bind, write the ready file, serve until killed.
fn run_sink(ready_file: &Path, cfg: SinkConfig) -> Result<()> {
    let sink = Arc::new(Sink::new(cfg)?);
    // One thread, like the client side's critical path: the sink must not need more.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let ready = serde_json::json!({"kafka": addr.to_string(), "pid": std::process::id()});
        let tmp = ready_file.with_extension("tmp");
        std::fs::write(&tmp, ready.to_string())?;
        std::fs::rename(&tmp, ready_file)?;
        sink::serve(listener, sink, |e| eprintln!("sink connection failed: {e}")).await?;
        Ok(())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Brook,
    Sink,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Brook => "brook",
            Target::Sink => "sink",
        }
    }
}

/// A running target process in its own temp dir; killed on drop.
struct Running {
    child: Child,
    bootstrap: String,
    dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        // The data is thrown away, so there is nothing to shut down gracefully.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("target.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn start(
    target: Target,
    args: &BenchArgs,
    brook: &Path,
    size: usize,
    records: u64,
) -> Result<Running> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("brook-e2e-");
    let dir = match &args.data_parent {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .context("creating temp dir")?;
    let ready = dir.path().join("ready.json");
    let log = std::fs::File::create(dir.path().join("target.log"))?;
    let mut cmd = match target {
        Target::Brook => {
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data)?;
            let config = dir.path().join("brook.toml");
            let text = format!(
                "node.id = 1\nlog.dirs = [{}]\nlisteners = \"127.0.0.1:0\"\n\
                 admin.listener = \"127.0.0.1:0\"\nnum.partitions = 1\n",
                serde_json::to_string(&data.to_string_lossy())?
            );
            std::fs::write(&config, text)?;
            let mut c = Command::new(brook);
            c.arg("serve")
                .arg("--config")
                .arg(&config)
                .arg("--ready-file")
                .arg(&ready);
            c.env("BROOK_LOG", "warn");
            c
        }
        Target::Sink => {
            let mut c = Command::new(std::env::current_exe()?);
            c.arg("sink")
                .arg("--ready-file")
                .arg(&ready)
                .arg("--record-size")
                .arg(size.to_string())
                .arg("--log-records")
                .arg(records.to_string())
                .arg("--batch-bytes")
                .arg(args.sink_batch_bytes.to_string());
            c
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", target.name()))?;
    let mut running = Running {
        child,
        bootstrap: String::new(),
        dir,
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    while !ready.exists() {
        if let Some(status) = running.child.try_wait()? {
            bail!(
                "{} exited with {status} before it was ready\n{}",
                target.name(),
                running.log_tail()
            );
        }
        ensure!(
            Instant::now() < deadline,
            "{} not ready in {READY_TIMEOUT:?}\n{}",
            target.name(),
            running.log_tail()
        );
        std::thread::sleep(POLL);
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ready)?)?;
    running.bootstrap = v
        .get("kafka")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| anyhow!("ready file of {} has no \"kafka\" address", target.name()))?
        .to_owned();
    Ok(running)
}

// ---------------------------------------------------------------- clients

/// Counts delivery reports; remembers the first failure.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// The producer settings, also printed into the results file.
fn producer_config(bootstrap: &str, acks: &str) -> Vec<(&'static str, String)> {
    let idempotent = acks == "all";
    vec![
        ("bootstrap.servers", bootstrap.to_owned()),
        ("acks", acks.to_owned()),
        ("enable.idempotence", idempotent.to_string()),
        ("linger.ms", "5".into()),
        ("batch.size", "1000000".into()),
        ("compression.type", "none".into()),
    ]
}

fn consumer_config(bootstrap: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", bootstrap.to_owned()),
        // librdkafka's `assign` needs a group handle; the group is never joined
        // (no subscribe) and never committed to.
        ("group.id", "brook-e2e".into()),
        ("enable.auto.commit", "false".into()),
        ("enable.auto.offset.store", "false".into()),
    ]
}

fn client_config(pairs: &[(&'static str, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in pairs {
        c.set(*k, v);
    }
    c
}

/// Produce `n` records of `size` bytes to partition 0 of `topic`; returns the time
/// from the first send to the last delivery report (after a metadata warm-up that
/// also creates the topic, which is not measured).
fn produce(bootstrap: &str, topic: &str, acks: &str, size: usize, n: u64) -> Result<Duration> {
    let producer: BaseProducer<Deliveries> = client_config(&producer_config(bootstrap, acks))
        .create_with_context(Deliveries::default())?;
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .context("producer metadata warm-up")?;
    let payload = sink::payload(size);
    let start = Instant::now();
    for i in 0..n {
        let mut record = BaseRecord::to(topic).partition(0).payload(&payload[..]);
        loop {
            match producer.send::<[u8], [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The local queue is full: serve delivery reports, then retry.
                    producer.poll(Duration::from_millis(1));
                    record = r;
                }
                Err((e, _)) => return Err(e).context("producing"),
            }
        }
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
        ensure!(
            start.elapsed() < PHASE_TIMEOUT,
            "produce phase exceeded {PHASE_TIMEOUT:?}"
        );
    }
    producer
        .flush(PHASE_TIMEOUT)
        .context("flushing the producer")?;
    let elapsed = start.elapsed();
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = ctx.first_error.lock().ok().and_then(|f| f.clone());
        bail!(
            "{failed} deliveries failed; first: {}",
            first.unwrap_or_default()
        );
    }
    let ok = ctx.ok.load(Ordering::Relaxed);
    ensure!(ok == n, "{ok} of {n} records acknowledged");
    Ok(elapsed)
}

/// Consume `n` records from offset 0 of partition 0 of `topic` with an explicit
/// assignment; checks offsets are contiguous and every value has `size` bytes.
/// Returns the time from `assign` to the n-th record.
fn consume(bootstrap: &str, topic: &str, size: usize, n: u64) -> Result<Duration> {
    let consumer: BaseConsumer = client_config(&consumer_config(bootstrap)).create()?;
    consumer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .context("consumer metadata warm-up")?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(0))?;
    let start = Instant::now();
    consumer.assign(&tpl)?;
    let mut next: i64 = 0;
    let end = i64::try_from(n)?;
    while next < end {
        ensure!(
            start.elapsed() < PHASE_TIMEOUT,
            "consume phase exceeded {PHASE_TIMEOUT:?} at offset {next}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => return Err(e).context("consuming"),
            Some(Ok(m)) => {
                ensure!(
                    m.offset() == next,
                    "expected offset {next}, got {}",
                    m.offset()
                );
                let len = m.payload().map_or(0, <[u8]>::len);
                ensure!(
                    len == size,
                    "record {next} has {len} bytes, expected {size}"
                );
                next += 1;
            }
        }
    }
    Ok(start.elapsed())
}

// ---------------------------------------------------------------- bench

/// One case's measurements: per target, per run, (produce, consume) durations.
struct CaseResult {
    size: usize,
    acks: String,
    records: u64,
    brook: Vec<(Duration, Duration)>,
    sink: Vec<(Duration, Duration)>,
    /// Mean size of the batches brook stored, per run (what its consumers fetch).
    brook_batch_bytes: Vec<f64>,
}

fn bench(args: &BenchArgs) -> Result<()> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    for a in &args.acks {
        ensure!(
            a == "1" || a == "all",
            "--acks takes 1 and/or all, not {a:?}"
        );
    }
    let root = workspace_root();
    let brook = args
        .brook
        .clone()
        .unwrap_or_else(|| root.join("target/release/brook"));
    ensure!(
        brook.exists(),
        "{} not found; run `cargo build --release -p brook-broker --bin brook` first",
        brook.display()
    );
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| root.join("benches/results/e2e.md"));
    let started = Instant::now();
    let mut results = Vec::new();
    for &size in &args.sizes {
        ensure!(size > 0, "record sizes must be positive");
        let records = args
            .records
            .unwrap_or(if size < 512 { 500_000 } else { 200_000 });
        for acks in &args.acks {
            let mut case = CaseResult {
                size,
                acks: acks.clone(),
                records,
                brook: Vec::new(),
                sink: Vec::new(),
                brook_batch_bytes: Vec::new(),
            };
            for run in 0..args.runs {
                let order = if run % 2 == 0 {
                    [Target::Brook, Target::Sink]
                } else {
                    [Target::Sink, Target::Brook]
                };
                for target in order {
                    let topic = format!("e2e-{size}-{acks}-{run}");
                    let running = start(target, args, &brook, size, records)?;
                    let p = produce(&running.bootstrap, &topic, acks, size, records).with_context(
                        || format!("{} produce\n{}", target.name(), running.log_tail()),
                    )?;
                    let c =
                        consume(&running.bootstrap, &topic, size, records).with_context(|| {
                            format!("{} consume\n{}", target.name(), running.log_tail())
                        })?;
                    if target == Target::Brook {
                        case.brook_batch_bytes
                            .push(mean_stored_batch(&running.dir.path().join("data"), &topic)?);
                    }
                    drop(running);
                    println!(
                        "{size:>5} B acks={acks:<3} run {run} {:<5} produce {:>8.1} MB/s  consume {:>8.1} MB/s",
                        target.name(),
                        mb_per_s(records, size, p),
                        mb_per_s(records, size, c),
                    );
                    match target {
                        Target::Brook => case.brook.push((p, c)),
                        Target::Sink => case.sink.push((p, c)),
                    }
                }
            }
            results.push(case);
        }
    }
    let md = render(args, &brook, &results, started.elapsed())?;
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&output, &md).with_context(|| format!("writing {}", output.display()))?;
    println!("\n{md}\nwritten to {}", output.display());
    Ok(())
}

/// Mean size of the record batches in the log segments of partition 0 of `topic`
/// (Kafka layout: `<data>/<topic>-0/*.log`).
fn mean_stored_batch(data: &Path, topic: &str) -> Result<f64> {
    let (mut batches, mut bytes) = (0u64, 0u64);
    for entry in std::fs::read_dir(data.join(format!("{topic}-0")))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let content = std::fs::read(&path)?;
            for (_, header) in BatchIter::new(&content) {
                batches += 1;
                bytes += header.total_size().map_or(0, |s| s as u64);
            }
        }
    }
    ensure!(
        batches > 0,
        "no batches found for {topic} under {}",
        data.display()
    );
    Ok(bytes as f64 / batches as f64)
}

fn mb_per_s(records: u64, size: usize, d: Duration) -> f64 {
    records as f64 * size as f64 / d.as_secs_f64() / 1e6
}

/// Median, min and max of `xs` (not empty).
fn stats(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let median = if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    };
    (median, xs[0], xs[n - 1])
}

// ---------------------------------------------------------------- report

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn render(
    args: &BenchArgs,
    brook: &Path,
    results: &[CaseResult],
    took: Duration,
) -> Result<String> {
    let mut md = String::new();
    let root = workspace_root();
    let root_s = root.to_string_lossy();
    let cmdline: Vec<String> = std::env::args().skip(1).collect();
    let data_parent = args.data_parent.clone().unwrap_or_else(std::env::temp_dir);
    writeln!(
        md,
        "# End-to-end throughput: brook vs loopback limit (librdkafka)\n"
    )?;
    writeln!(
        md,
        "- date (UTC): {}",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M:%S"])
    )?;
    writeln!(
        md,
        "- commit: {}",
        command_output("git", &["-C", &root_s, "rev-parse", "--short", "HEAD"])
    )?;
    writeln!(
        md,
        "- machine: {} CPUs (nproc), {}",
        command_output("nproc", &[]),
        cpu_model()
    )?;
    writeln!(
        md,
        "- load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    )?;
    writeln!(
        md,
        "- librdkafka: {}",
        rdkafka::util::get_rdkafka_version().1
    )?;
    writeln!(
        md,
        "- brook binary: `{}`; data dirs under `{}` (`stat -f`: {})",
        brook.display(),
        data_parent.display(),
        command_output("stat", &["-f", "-c", "%T", &data_parent.to_string_lossy()])
    )?;
    writeln!(
        md,
        "- run: `cargo run --release -p brook-benches --bin e2e --{}{}` ({:.0} s in all)",
        if cmdline.is_empty() { "" } else { " " },
        cmdline.join(" "),
        took.as_secs_f64()
    )?;
    writeln!(md)?;
    writeln!(md, "## Method\n")?;
    writeln!(md, "Each run starts a fresh target (a `brook serve` with an empty data dir and default config, or the sink), produces N records of the given value size (no key) to partition 0 of a new topic, then consumes them back from offset 0 with `assign` (a `group.id` is set because librdkafka's `assign` needs one, but the group is never joined or committed to). Produce time runs from the first `send` to the end of `flush` (all delivery reports in); consume time from `assign` to the N-th record, whose offsets and sizes are checked. A metadata request before each phase (which also auto-creates the topic) is not timed. MB/s counts value bytes only (10^6 bytes/s). Runs alternate which target goes first. The *limit* is the same client against `brook_benches::sink`, a loopback broker that acknowledges Produce with fake offsets and answers Fetch with one pre-built {} KiB batch repeated (patched base offsets), so it costs almost nothing: the limit is the client's own ceiling on this machine in this run. Ratio = brook median / limit median.\n", args.sink_batch_bytes / 1024)?;
    writeln!(
        md,
        "- producer: {}",
        producer_config("…", "<acks>")
            .iter()
            .skip(1)
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(md, "  (`enable.idempotence=true` for acks=all, as Kafka users run it; false for acks=1); everything else librdkafka's defaults.")?;
    writeln!(md, "- consumer: {}; everything else (`fetch.max.bytes`, `max.partition.fetch.bytes`, …) librdkafka's defaults.", consumer_config("…").iter().skip(1).map(|(k, v)| format!("`{k}={v}`")).collect::<Vec<_>>().join(", "))?;
    writeln!(
        md,
        "- brook: default config (acks=all is acknowledged after fsync, group-committed).\n"
    )?;
    writeln!(
        md,
        "## Results (median of {} runs; spread = min–max)\n",
        args.runs
    )?;
    for case in results {
        writeln!(
            md,
            "### {} B records, acks={}, {} records per run\n",
            case.size, case.acks, case.records
        )?;
        writeln!(md, "| phase | brook MB/s | brook spread | brook records/s | limit MB/s | limit spread | limit records/s | ratio |")?;
        writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
        for (phase, pick) in [("produce", 0usize), ("consume", 1)] {
            let rate = |runs: &[(Duration, Duration)]| {
                stats(
                    runs.iter()
                        .map(|r| {
                            mb_per_s(case.records, case.size, if pick == 0 { r.0 } else { r.1 })
                        })
                        .collect(),
                )
            };
            let (bm, bmin, bmax) = rate(&case.brook);
            let (sm, smin, smax) = rate(&case.sink);
            let to_rps = |mb: f64| mb * 1e6 / case.size as f64;
            writeln!(md, "| {phase} | {bm:.1} | {bmin:.1}–{bmax:.1} | {:.0} | {sm:.1} | {smin:.1}–{smax:.1} | {:.0} | {:.2} |",
                to_rps(bm), to_rps(sm), bm / sm)?;
        }
        let (bm, bmin, bmax) = stats(case.brook_batch_bytes.clone());
        writeln!(
            md,
            "\nBatches brook stored (and served to the consumer): mean {:.0} KiB per batch (runs {:.0}–{:.0} KiB); the limit serves {} KiB batches.\n",
            bm / 1024.0,
            bmin / 1024.0,
            bmax / 1024.0,
            args.sink_batch_bytes / 1024
        )?;
    }
    Ok(md)
}
