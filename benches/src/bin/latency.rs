//! End-to-end latency at a fixed rate against the disk's own fdatasync
//! latency, measured in the same run (issue 14's yardstick).
//!
//! Each run starts a fresh brook cluster (real `brook serve` processes through
//! `brook_tests::Cluster`; 1 node, and 3 nodes with replication factor 3 and
//! `min.insync.replicas=2`, alternating which goes first), creates a
//! one-partition topic, and then, per acks setting:
//! - a consumer (librdkafka, `fetch.wait.max.ms` 500, `fetch.min.bytes` 1)
//!   reads partition 0 from the end;
//! - a producer (librdkafka, `linger.ms` 0, idempotent for acks=all) sends
//!   `--rate` records/s for `--seconds`; each record carries its send instant;
//! - **e2e** latency of a record: from `send` to the consumer's `poll`
//!   returning it; **ack** latency: from `send` to its delivery report.
//!
//! Before each run it measures the disk: `--sync-probes` writes of 4 KiB each
//! followed by `fdatasync`, in a file in the cluster's data parent directory.
//! While each acks setting's records are sent, the same probe runs once every
//! 5 ms beside them (*fdatasync meanwhile*): the disk's latency under that
//! load, which sets how far the broker's own fsyncs can be from the idle
//! figure.
//!
//! Medians over the runs are written as markdown to `--output`.
//!
//! With `--trace FILE` the nodes also log the `brook::path` trace events,
//! and FILE gets the breakdown of every record's time by stage
//! (`brook_benches::path`), pooled over the runs. Tracing writes a few log
//! lines per record, so its e2e figures are a little above an untraced run's.
//!
//! Run: `cargo build --release -p brook-broker --bin brook` then
//! `cargo run --release -p brook-benches --bin latency -- --runs 5`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use brook_benches::{path, AckLatencies};
use brook_broker::path_trace;
use brook_tests::{Cluster, ClusterOptions};
use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Parser, Debug)]
#[command(about = "end-to-end latency at a fixed rate vs the disk's fdatasync latency")]
struct Args {
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Value size in bytes (at least 8: the send instant).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Records per second.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// acks settings, each measured in every run.
    #[arg(long, value_delimiter = ',', default_value = "all,1")]
    acks: Vec<String>,
    /// Cluster sizes, each measured in every run.
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    nodes: Vec<usize>,
    /// 4 KiB write + fdatasync probes of the disk per run.
    #[arg(long, default_value_t = 2000)]
    sync_probes: usize,
    #[arg(long, default_value_t = 30400)]
    base_port: u16,
    /// Extra broker settings for every node, `key=value` (repeatable), e.g.
    /// `--broker-config replica.fetch.wait.max.ms=100`.
    #[arg(long = "broker-config", value_parser = parse_setting)]
    broker_config: Vec<(String, String)>,
    #[arg(long, default_value = "benches/results/latency.md")]
    output: PathBuf,
    /// Trace every record's path through the leader and write the
    /// breakdown by stage here (markdown).
    #[arg(long)]
    trace: Option<PathBuf>,
}

const WARM_UP: usize = 100;

/// The topic of one acks setting (each measurement reads a fresh topic).
fn topic_for(acks: &str) -> String {
    format!("latency-acks-{acks}")
}

/// The instant carried in record values: `CLOCK_MONOTONIC`, the clock of
/// the broker's path trace.
fn now_ns() -> u64 {
    brook_broker::path_trace::now_ns()
}

/// Percentiles of one sample, in ms.
#[derive(Debug, Clone, Copy)]
struct Quantiles {
    p50: f64,
    p99: f64,
    p999: f64,
}

impl Quantiles {
    fn of(mut v: Vec<Duration>) -> Result<Self> {
        ensure!(!v.is_empty(), "no samples");
        v.sort_unstable();
        let q = |f: f64| {
            let i = ((v.len() as f64 * f).ceil() as usize).clamp(1, v.len()) - 1;
            v[i].as_secs_f64() * 1000.0
        };
        Ok(Self {
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
        })
    }
}

/// `probes` writes of 4 KiB, each followed by `fdatasync`, appending to a
/// file in `dir`, back to back.
fn fdatasync_latency(dir: &Path, probes: usize) -> Result<Quantiles> {
    Quantiles::of(fdatasync_probes(
        dir,
        "fdatasync-probe",
        Duration::ZERO,
        |n| n >= probes,
    )?)
}

/// Probes of the disk while a measurement runs: a 4 KiB write + `fdatasync`
/// every [`PROBE_EVERY`] into a file of its own, until `stop` is set.
fn fdatasync_during(
    dir: PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<Vec<Duration>>> {
    std::thread::spawn(move || {
        fdatasync_probes(&dir, "fdatasync-probe-during", PROBE_EVERY, |_| {
            stop.load(Ordering::Acquire)
        })
    })
}

/// How often [`fdatasync_during`] probes: a tenth of the records' fsync
/// rate at the default 2,000 records/s, so it adds little to what it measures.
const PROBE_EVERY: Duration = Duration::from_millis(5);

fn fdatasync_probes(
    dir: &Path,
    name: &str,
    every: Duration,
    done: impl Fn(usize) -> bool,
) -> Result<Vec<Duration>> {
    let path = dir.join(format!("{name}-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let block = vec![7u8; 4096];
    let mut took = Vec::new();
    let began = Instant::now();
    while !done(took.len()) {
        let due = began + every * u32::try_from(took.len()).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let start = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        took.push(start.elapsed());
    }
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(took)
}

fn producer(bootstrap: &str, acks: &str) -> Result<ThreadedProducer<AckLatencies>> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("enable.idempotence", (acks == "all").to_string())
        .set("linger.ms", "0")
        .set("compression.type", "none")
        .create_with_context(AckLatencies::default())
        .context("creating producer")
}

/// What one measurement gives: e2e and ack quantiles, and every record the
/// consumer saw.
struct Measured {
    e2e: Quantiles,
    ack: Quantiles,
    /// The disk's fdatasync latency while the records were sent.
    disk: Quantiles,
    seen: Vec<path::Seen>,
}

/// One acks setting on one cluster.
fn measure(bootstrap: &str, acks: &str, args: &Args) -> Result<Measured> {
    let topic = topic_for(acks);
    let topic = topic.as_str();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "brook-latency")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "500")
        .set("fetch.min.bytes", "1")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let total = usize::try_from(args.rate * args.seconds)?;
    let p = producer(bootstrap, acks)?;
    // Warm-up: connections, the producer id, the consumer's position.
    let warm = vec![0u8; args.size];
    for _ in 0..WARM_UP {
        p.send(
            BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(topic, Box::new(Instant::now()))
                .partition(0)
                .payload(&warm[..]),
        )
        .map_err(|(e, _)| anyhow!(e))?;
    }
    p.flush(Duration::from_secs(30))?;
    // Set once the consumer has read the warm-up records: it is at the end.
    let ready = Arc::new(AtomicBool::new(false));
    let reader = {
        let ready = ready.clone();
        std::thread::spawn(move || -> Result<Vec<path::Seen>> {
            let mut seen = Vec::with_capacity(total);
            let mut warmed = 0;
            let deadline = Instant::now() + Duration::from_secs(300);
            while seen.len() < total && Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Err(e)) => return Err(anyhow!("consuming: {e}")),
                    Some(Ok(m)) => {
                        let now = now_ns();
                        let v = m.payload().unwrap_or_default();
                        let sent = v
                            .get(..8)
                            .and_then(|b| b.try_into().ok())
                            .map_or(0, u64::from_be_bytes);
                        if sent == 0 {
                            warmed += 1;
                            if warmed == WARM_UP {
                                ready.store(true, Ordering::Release);
                            }
                            continue;
                        }
                        seen.push(path::Seen {
                            offset: m.offset(),
                            sent_us: sent / 1_000,
                            polled_us: now / 1_000,
                        });
                    }
                }
            }
            ensure!(
                seen.len() == total,
                "consumer saw {} of {total} records",
                seen.len()
            );
            Ok(seen)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.load(Ordering::Acquire) {
        ensure!(
            Instant::now() < deadline && !reader.is_finished(),
            "the consumer did not read the warm-up records"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    p.context()
        .ok
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .clear();
    let mut value = vec![b'x'; args.size.max(8)];
    let stop = Arc::new(AtomicBool::new(false));
    let probe = fdatasync_during(std::env::temp_dir(), stop.clone());
    let sent = (|| -> Result<()> {
        let start = Instant::now();
        for i in 0..total {
            brook_benches::wait_until_due(start, i as u64, args.rate);
            value[..8].copy_from_slice(&now_ns().max(1).to_be_bytes());
            p.send(
                BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(
                    topic,
                    Box::new(Instant::now()),
                )
                .partition(0)
                .payload(&value[..]),
            )
            .map_err(|(e, _)| anyhow!(e))?;
        }
        p.flush(Duration::from_secs(60))?;
        Ok(())
    })();
    stop.store(true, Ordering::Release);
    let disk = probe
        .join()
        .map_err(|_| anyhow!("disk probe thread panicked"))??;
    sent?;
    let seen = reader
        .join()
        .map_err(|_| anyhow!("consumer thread panicked"))??;
    let e2e: Vec<Duration> = seen
        .iter()
        .map(|s| Duration::from_micros(s.polled_us.saturating_sub(s.sent_us)))
        .collect();
    let failed = *p.context().failed.lock().map_err(|_| anyhow!("poisoned"))?;
    ensure!(failed == 0, "{failed} records failed delivery");
    let ack = p
        .context()
        .ok
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .clone();
    Ok(Measured {
        e2e: Quantiles::of(e2e)?,
        ack: Quantiles::of(ack)?,
        disk: Quantiles::of(disk)?,
        seen,
    })
}

/// The path of every record `m` saw through the node leading its topic
/// (the one whose trace has its appends); and how many had no whole path.
fn traced(cluster: &Cluster, acks: &str, m: &Measured) -> Result<(Vec<path::Path>, usize)> {
    let part = format!("{}-0", topic_for(acks));
    for n in cluster.node_ids() {
        let events: Vec<path::Event> = cluster
            .log_lines(n, "brook::path:")?
            .iter()
            .filter_map(|l| path::Event::parse(l))
            .collect();
        let leads = events
            .iter()
            .any(|e| e.stage == "appended" && e.part() == Some(part.as_str()));
        if leads {
            return Ok(path::paths(&events, &part, &m.seen));
        }
    }
    Err(anyhow!("no node traced an append to {part}"))
}

/// One cluster of `nodes`: per acks setting, (e2e, ack).
/// One measurement's figures and, when traced, its records' paths (and how
/// many had none).
type Outcome = (Figures, Option<(Vec<path::Path>, usize)>);

/// One measurement's e2e, ack and during-the-run fdatasync quantiles.
type Figures = (Quantiles, Quantiles, Quantiles);

/// One cluster of `nodes`: per acks setting, its [`Outcome`].
fn run_one(nodes: usize, args: &Args) -> Result<Vec<Outcome>> {
    let mut o = ClusterOptions::three(args.base_port);
    o.nodes = nodes;
    o.extra.extend(args.broker_config.iter().cloned());
    if args.trace.is_some() {
        o.log_filter = Some(format!("info,openraft=warn,{}=trace", path_trace::TARGET));
    }
    let cluster = Cluster::start(o)?;
    let r = (|| {
        let names: Vec<String> = args.acks.iter().map(|a| topic_for(a)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let bootstrap = brook_benches::prepare_cluster(&cluster, nodes, &names)?;
        let mut out = Vec::new();
        for acks in &args.acks {
            let m = measure(&bootstrap, acks, args)?;
            let paths = match args.trace {
                Some(_) => Some(traced(&cluster, acks, &m)?),
                None => None,
            };
            out.push(((m.e2e, m.ack, m.disk), paths));
        }
        Ok(out)
    })();
    cluster.with_logs(r)
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.size >= 8,
        "--size must be at least 8 (the send instant)"
    );
    ensure!(args.runs > 0 && !args.acks.is_empty() && !args.nodes.is_empty());
    let started = Instant::now();
    let probe_dir = std::env::temp_dir();
    let mut disk = Vec::new();
    // results[node index][acks index] = [(e2e, ack)] over the runs.
    let mut results: Vec<Vec<Vec<Figures>>> =
        vec![vec![Vec::new(); args.acks.len()]; args.nodes.len()];
    // paths[node index][acks index]: every traced record's path, and how
    // many records had none.
    let mut paths: Vec<Vec<(Vec<path::Path>, usize)>> =
        vec![vec![(Vec::new(), 0); args.acks.len()]; args.nodes.len()];
    for run in 0..args.runs {
        disk.push(fdatasync_latency(&probe_dir, args.sync_probes)?);
        let mut order: Vec<usize> = (0..args.nodes.len()).collect();
        if run % 2 == 1 {
            order.reverse();
        }
        for ni in order {
            let got = run_one(args.nodes[ni], &args)?;
            for (ai, (q, traced)) in got.into_iter().enumerate() {
                if let Some((p, missing)) = traced {
                    paths[ni][ai].0.extend(p);
                    paths[ni][ai].1 += missing;
                }
                eprintln!(
                    "run {run} nodes {} acks={}: e2e p50 {:.3} p99 {:.3} p99.9 {:.3} ms; ack p50 {:.3} p99 {:.3} ms; fdatasync meanwhile p50 {:.3} p99 {:.3} p99.9 {:.3} ms",
                    args.nodes[ni], args.acks[ai], q.0.p50, q.0.p99, q.0.p999, q.1.p50, q.1.p99, q.2.p50, q.2.p99, q.2.p999
                );
                results[ni][ai].push(q);
            }
        }
    }
    let d = |f: fn(&Quantiles) -> f64| median(disk.iter().map(f).collect());
    let (d50, d99, d999) = (d(|q| q.p50), d(|q| q.p99), d(|q| q.p999));
    let mut md = String::new();
    writeln!(
        md,
        "# End-to-end latency at a fixed rate vs the disk's fdatasync\n"
    )?;
    writeln!(
        md,
        "- command: `cargo run --release -p brook-benches --bin latency -- --runs {} --size {} --rate {} --seconds {}` ({} s in all)",
        args.runs, args.size, args.rate, args.seconds, started.elapsed().as_secs()
    )?;
    writeln!(
        md,
        "- machine: {} CPUs; every node, the clients and all data dirs on this one machine and disk; brook binary `{}`",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        brook_tests::brook_binary()?.display()
    )?;
    writeln!(
        md,
        "- producer: librdkafka, linger.ms=0, no compression, idempotent for acks=all; consumer: librdkafka, fetch.wait.max.ms=500, fetch.min.bytes=1; one partition; 3 nodes: replication factor 3, min.insync.replicas=2; brook's default durability (fsync before the HW counts a record)"
    )?;
    writeln!(
        md,
        "- e2e: `send` to the consumer's `poll` returning the record; ack: `send` to the delivery report. Medians over {} runs of {} records/s for {} s.\n",
        args.runs, args.rate, args.seconds
    )?;
    writeln!(
        md,
        "Disk, 4 KiB write + fdatasync ({} probes per run, median of runs): p50 {d50:.3} ms, p99 {d99:.3} ms, p99.9 {d999:.3} ms\n",
        args.sync_probes
    )?;
    writeln!(
        md,
        "*fdatasync meanwhile*: the same probe, one every {} ms into a file of its own, while the records of that row were sent (medians of runs): what the disk gave any fsync under that load.\n",
        PROBE_EVERY.as_millis()
    )?;
    writeln!(
        md,
        "| nodes | acks | e2e p50 ms | e2e p99 ms | e2e p99.9 ms | ack p50 ms | ack p99 ms | e2e p50 / fdatasync p50 | fdatasync meanwhile p50 / p99 / p99.9 ms |"
    )?;
    writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---|")?;
    for (ni, nodes) in args.nodes.iter().enumerate() {
        for (ai, acks) in args.acks.iter().enumerate() {
            let v = &results[ni][ai];
            let m = |f: fn(&Figures) -> f64| median(v.iter().map(f).collect());
            let e50 = m(|q| q.0.p50);
            writeln!(
                md,
                "| {nodes} | {acks} | {e50:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.3} / {:.3} / {:.3} |",
                m(|q| q.0.p99),
                m(|q| q.0.p999),
                m(|q| q.1.p50),
                m(|q| q.1.p99),
                e50 / d50,
                m(|q| q.2.p50),
                m(|q| q.2.p99),
                m(|q| q.2.p999)
            )?;
        }
    }
    std::fs::write(&args.output, &md)?;
    print!("{md}");
    if let Some(file) = &args.trace {
        let mut t = String::new();
        writeln!(
            t,
            "# Where a record's time goes: the path through the leader, by stage\n"
        )?;
        writeln!(
            t,
            "Traced with `--trace` over the runs of `{}` (same machine, settings and clients; the stages are described in `benches/src/path.rs`). Every record of every run is pooled.\n",
            args.output.display()
        )?;
        for (ni, nodes) in args.nodes.iter().enumerate() {
            for (ai, acks) in args.acks.iter().enumerate() {
                let (p, missing) = &paths[ni][ai];
                writeln!(
                    t,
                    "## {nodes} node{}, acks={acks}: {} records traced, {missing} without a whole path\n",
                    if *nodes == 1 { "" } else { "s" },
                    p.len()
                )?;
                writeln!(t, "{}", path::table(p))?;
            }
        }
        std::fs::write(file, &t)?;
        print!("{t}");
    }
    Ok(())
}
