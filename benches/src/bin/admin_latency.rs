//! The cost of routing admin requests through the controller quorum.
//!
//! Starts a single-node broker from each of two `brook` binaries (`--old`, e.g.
//! a build of the release before the metadata log, and `--new`), and times
//! `--topics` sequential CreateTopics (one topic, one partition each) and then
//! as many DeleteTopics, each through a librdkafka AdminClient and awaited
//! one at a time. Binaries alternate order per run; the report gives the
//! median over `--runs` of each binary's p50 and p99, and new/old ratios
//! measured in the same run.
//!
//! Run: build both binaries in release mode, then
//! `cargo run --release -p brook-benches --bin admin_latency -- --old /path/old/brook --new target/release/brook`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use brook_tests::{Broker, BrokerOptions};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

#[derive(Parser, Debug)]
#[command(about = "CreateTopics/DeleteTopics latency of two brook binaries")]
struct Args {
    /// The baseline binary.
    #[arg(long)]
    old: PathBuf,
    /// The binary under test.
    #[arg(long)]
    new: PathBuf,
    /// Topics created (and deleted) per run and binary.
    #[arg(long, default_value_t = 200)]
    topics: usize,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (create p50, create p99, delete p50, delete p99) in microseconds.
fn measure(bin: &PathBuf, topics: usize, rt: &tokio::runtime::Runtime) -> Result<[f64; 4]> {
    std::env::set_var("BROOK_BIN", bin);
    let broker = Broker::start(BrokerOptions::default())?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .context("admin client")?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut create = Vec::with_capacity(topics);
    let mut delete = Vec::with_capacity(topics);
    rt.block_on(async {
        for i in 0..topics {
            let name = format!("bench-{i}");
            let t = NewTopic::new(&name, 1, TopicReplication::Fixed(1));
            let start = Instant::now();
            let r = admin.create_topics([&t], &opts).await?;
            create.push(start.elapsed());
            anyhow::ensure!(r.iter().all(Result::is_ok), "create {name}: {r:?}");
        }
        for i in 0..topics {
            let name = format!("bench-{i}");
            let start = Instant::now();
            let r = admin.delete_topics(&[&name], &opts).await?;
            delete.push(start.elapsed());
            anyhow::ensure!(r.iter().all(Result::is_ok), "delete {name}: {r:?}");
        }
        anyhow::Ok(())
    })?;
    create.sort();
    delete.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Ok([
        us(percentile(&create, 0.5)),
        us(percentile(&create, 0.99)),
        us(percentile(&delete, 0.5)),
        us(percentile(&delete, 0.99)),
    ])
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let mut old: Vec<[f64; 4]> = Vec::new();
    let mut new: Vec<[f64; 4]> = Vec::new();
    for run in 0..args.runs {
        let order = if run % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for is_new in order {
            let bin = if is_new { &args.new } else { &args.old };
            let m = measure(bin, args.topics, &rt)?;
            eprintln!("run {run} {}: {m:?}", if is_new { "new" } else { "old" });
            if is_new {
                new.push(m)
            } else {
                old.push(m)
            }
        }
    }
    let col = |v: &[[f64; 4]], i: usize| median(v.iter().map(|m| m[i]).collect());
    println!("| operation | old p50 µs | new p50 µs | ratio | old p99 µs | new p99 µs | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for (name, i) in [("CreateTopics", 0), ("DeleteTopics", 2)] {
        let (o50, n50, o99, n99) = (
            col(&old, i),
            col(&new, i),
            col(&old, i + 1),
            col(&new, i + 1),
        );
        println!(
            "| {name} | {o50:.0} | {n50:.0} | {:.2} | {o99:.0} | {n99:.0} | {:.2} |",
            n50 / o50,
            n99 / o99
        );
    }
    println!(
        "({} topics per run, {} runs, medians; single node, release builds)",
        args.topics, args.runs
    );
    Ok(())
}
