//! Replication cost: acks=all throughput and end-to-end latency of a
//! 3-node brook cluster (replication factor 3, `min.insync.replicas=2`)
//! against a single node (replication factor 1), in the same run.
//!
//! Each run starts a fresh cluster of each size (real `brook serve`
//! processes through `brook_tests::Cluster`, all on this machine and disk),
//! creates the topic, and then:
//! - throughput: an idempotent acks=all librdkafka producer sends N records
//!   of the given size to one partition as fast as it can; produce time runs
//!   from the first send to the end of `flush`;
//! - latency: the same producer sends at a fixed rate for a fixed time; each
//!   record's latency is from `send` to its delivery report (acknowledged:
//!   committed on every ISR member, fsynced on each under brook's default
//!   durability).
//!
//! Runs alternate which cluster goes first. Medians (and min–max) over the
//! runs are written as markdown to `--output`.
//!
//! Run: `cargo build --release -p brook-broker --bin brook` then
//! `cargo run --release -p brook-benches --bin replication -- --runs 5`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use brook_benches::AckLatencies;
use brook_tests::{Cluster, ClusterOptions};
use clap::Parser;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

#[derive(Parser, Debug)]
#[command(about = "acks=all throughput and latency: 3 replicas vs 1 node")]
struct Args {
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Records per throughput run.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Records per second in the latency phase.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 30000)]
    base_port: u16,
    #[arg(long, default_value = "benches/results/replication.md")]
    output: PathBuf,
}

const TOPIC: &str = "bench";

/// One record of `value`, stamped with its send time.
fn timed(value: &[u8]) -> BaseRecord<'_, (), [u8], Box<Instant>> {
    BaseRecord::with_opaque_to(TOPIC, Box::new(Instant::now())).payload(value)
}

/// Send one record and wait for it: metadata, producer id, a first batch.
fn warm_up(p: &ThreadedProducer<AckLatencies>, value: &[u8]) -> Result<()> {
    p.send(timed(value)).map_err(|(e, _)| anyhow!(e))?;
    p.flush(Duration::from_secs(30))?;
    Ok(())
}

fn producer(bootstrap: &str) -> Result<ThreadedProducer<AckLatencies>> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "500000")
        .create_with_context(AckLatencies::default())
        .context("creating producer")
}

/// One figure of an [`Outcome`].
type Measure = fn(&Outcome) -> f64;

struct Outcome {
    mb_s: f64,
    p50: f64,
    p99: f64,
    p999: f64,
}

fn run_one(nodes: usize, args: &Args, base: u16) -> Result<Outcome> {
    let mut o = ClusterOptions::three(base);
    o.nodes = nodes;
    let cluster = Cluster::start(o)?;
    let r = (|| {
        let bootstrap = brook_benches::prepare_cluster(&cluster, nodes, &[TOPIC])?;
        let value = vec![b'x'; args.size];
        // Throughput.
        let p = producer(&bootstrap)?;
        warm_up(&p, &value)?;
        let start = Instant::now();
        for _ in 0..args.records {
            let mut rec = timed(&value);
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        rec = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        p.flush(Duration::from_secs(300))?;
        let took = start.elapsed();
        let failed = *p.context().failed.lock().map_err(|_| anyhow!("poisoned"))?;
        anyhow::ensure!(failed == 0, "{failed} records failed delivery");
        let mb_s = (args.records * args.size) as f64 / took.as_secs_f64() / 1e6;
        drop(p);
        // Latency at a fixed rate, after the same warm-up.
        let p = producer(&bootstrap)?;
        warm_up(&p, &value)?;
        p.context()
            .ok
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .clear();
        let total = args.rate * args.seconds;
        let start = Instant::now();
        for i in 0..total {
            brook_benches::wait_until_due(start, i, args.rate);
            p.send(timed(&value)).map_err(|(e, _)| anyhow!(e))?;
        }
        p.flush(Duration::from_secs(60))?;
        let mut lat = p
            .context()
            .ok
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .clone();
        lat.sort_unstable();
        let q = |f: f64| {
            let i = ((lat.len() as f64 * f).ceil() as usize).clamp(1, lat.len()) - 1;
            lat[i].as_secs_f64() * 1000.0
        };
        Ok(Outcome {
            mb_s,
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
        })
    })();
    cluster.with_logs(r)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut one: Vec<Outcome> = Vec::new();
    let mut three: Vec<Outcome> = Vec::new();
    for run in 0..args.runs {
        let base = args.base_port;
        let order: [usize; 2] = if run % 2 == 0 { [1, 3] } else { [3, 1] };
        for n in order {
            let o = run_one(n, &args, base)?;
            eprintln!(
                "run {run} nodes {n}: {:.1} MB/s, p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms",
                o.mb_s, o.p50, o.p99, o.p999
            );
            if n == 1 { &mut one } else { &mut three }.push(o);
        }
    }
    let col = |v: &[Outcome], f: Measure| -> (f64, f64, f64) {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        let min = x.iter().copied().fold(f64::INFINITY, f64::min);
        let max = x.iter().copied().fold(0.0, f64::max);
        (median(&mut x), min, max)
    };
    let mut md = String::new();
    writeln!(
        md,
        "# Replication: 3 replicas vs 1 node (acks=all, librdkafka)\n"
    )?;
    writeln!(
        md,
        "- command: `cargo run --release -p brook-benches --bin replication -- --runs {} --records {} --size {} --rate {} --seconds {}` ({} s in all)",
        args.runs,
        args.records,
        args.size,
        args.rate,
        args.seconds,
        started.elapsed().as_secs()
    )?;
    writeln!(
        md,
        "- machine: {} CPUs; every node, the client and all data dirs on this one machine and disk",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )?;
    writeln!(
        md,
        "- brook binary: `{}`",
        brook_tests::brook_binary()?.display()
    )?;
    writeln!(
        md,
        "- producer: acks=all, enable.idempotence=true, linger.ms=5, batch.size=1000000, no compression; one partition; 3 nodes: replication factor 3, min.insync.replicas=2; 1 node: replication factor 1; brook's default durability (fsync before the HW counts a record) on every replica\n"
    )?;
    writeln!(
        md,
        "| measure | 1 node median (min–max) | 3 replicas median (min–max) | 3 / 1 |"
    )?;
    writeln!(md, "|---|---:|---:|---:|")?;
    let rows: [(&str, Measure); 4] = [
        ("produce MB/s", |o| o.mb_s),
        ("latency p50 ms", |o| o.p50),
        ("latency p99 ms", |o| o.p99),
        ("latency p99.9 ms", |o| o.p999),
    ];
    for (name, f) in rows {
        let (a, amin, amax) = col(&one, f);
        let (b, bmin, bmax) = col(&three, f);
        writeln!(
            md,
            "| {name} | {a:.2} ({amin:.2}–{amax:.2}) | {b:.2} ({bmin:.2}–{bmax:.2}) | {:.2} |",
            b / a
        )?;
    }
    writeln!(
        md,
        "\nThroughput: {} records of {} B per run. Latency: {} records/s for {} s per run, from `send` to the delivery report.",
        args.records, args.size, args.rate, args.seconds
    )?;
    std::fs::write(&args.output, &md)?;
    print!("{md}");
    Ok(())
}
