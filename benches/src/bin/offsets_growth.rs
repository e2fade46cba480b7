//! `__consumer_offsets` under a commit-heavy workload, with and without the cleaner.
//!
//! For each mode (cleaner on, `log.cleaner.enable=false`) a fresh brook process (the
//! release binary beside this one) gets `--rounds` synchronous OffsetCommits from a
//! librdkafka consumer, each committing new offsets for all `--partitions`
//! partitions of one topic, i.e. `rounds × partitions` offset records. The size of
//! `__consumer_offsets` (one partition, `offsets.topic.segment.bytes` = 1 MiB) is
//! sampled as the commits go; then the broker is restarted and the time until it is
//! ready again (which includes replaying the topic to load the groups) is measured.
//! Modes alternate order per run; medians over `--runs`.
//!
//! Run: `cargo build --release -p brook-broker --bin brook` then
//! `cargo run --release -p brook-benches --bin offsets_growth -- --runs 3`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use brook_tests::{http_get, Broker, BrokerOptions};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Parser, Debug)]
#[command(about = "__consumer_offsets size and group load time, cleaner on vs off")]
struct Args {
    /// Synchronous commits per mode.
    #[arg(long, default_value_t = 5000)]
    rounds: usize,
    /// Partitions committed by each commit.
    #[arg(long, default_value_t = 100)]
    partitions: i32,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Size samples per run.
    #[arg(long, default_value_t = 5)]
    samples: usize,
}

struct Outcome {
    sizes: Vec<u64>,
    settled: u64,
    restart: Duration,
}

fn offsets_size(broker: &Broker) -> Result<u64> {
    let body = http_get(broker.admin_addr(), "/v1/topics/__consumer_offsets")?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    v["size_bytes"].as_u64().context("size_bytes")
}

fn run_mode(args: &Args, cleaner: bool) -> Result<Outcome> {
    let opts = BrokerOptions::default()
        .config("offsets.topic.num.partitions", "1")
        .config("offsets.topic.segment.bytes", "1048576")
        .config("log.cleaner.backoff.ms", "1000")
        .config("log.cleaner.enable", if cleaner { "true" } else { "false" });
    let mut broker = Broker::start(opts)?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let topic = NewTopic::new("work", args.partitions, TopicReplication::Fixed(1));
    for r in rt.block_on(admin.create_topics([&topic], &AdminOptions::new()))? {
        r.map_err(|(n, e)| anyhow::anyhow!("creating {n}: {e:?}"))?;
    }
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "bench-committer")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut sizes = Vec::new();
    let every = (args.rounds / args.samples.max(1)).max(1);
    for round in 0..args.rounds {
        let mut tpl = TopicPartitionList::new();
        for p in 0..args.partitions {
            tpl.add_partition_offset("work", p, Offset::Offset(round as i64 + 1))?;
        }
        c.commit(&tpl, CommitMode::Sync)?;
        if (round + 1) % every == 0 {
            sizes.push(offsets_size(&broker)?);
        }
    }
    drop(c);
    // Let the cleaner (if on) catch up with the last segments, bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut settled = offsets_size(&broker)?;
    while cleaner && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let now = offsets_size(&broker)?;
        if now >= settled {
            break;
        }
        settled = now;
    }
    let t = Instant::now();
    broker.restart()?;
    let restart = t.elapsed();
    Ok(Outcome {
        sizes,
        settled,
        restart,
    })
}

fn median<T: Copy + PartialOrd>(v: &mut [T]) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    println!("brook binary: {}", brook_tests::brook_binary()?.display());
    let records = args.rounds * args.partitions as usize;
    println!(
        "{} commits × {} partitions = {records} offset records per mode",
        args.rounds, args.partitions
    );
    println!(
        "| run | mode | size after each {} commits (KiB) | settled KiB | restart s |",
        args.rounds / args.samples.max(1)
    );
    println!("|---:|---|---|---:|---:|");
    let (mut on_size, mut off_size, mut on_rs, mut off_rs) = (vec![], vec![], vec![], vec![]);
    for run in 0..args.runs {
        let order = if run % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for cleaner in order {
            let o = run_mode(&args, cleaner)?;
            let kib: Vec<String> = o.sizes.iter().map(|s| (s / 1024).to_string()).collect();
            println!(
                "| {run} | {} | {} | {} | {:.2} |",
                if cleaner { "cleaner on" } else { "cleaner off" },
                kib.join(", "),
                o.settled / 1024,
                o.restart.as_secs_f64()
            );
            if cleaner {
                on_size.push(o.settled);
                on_rs.push(o.restart.as_secs_f64());
            } else {
                off_size.push(o.settled);
                off_rs.push(o.restart.as_secs_f64());
            }
        }
    }
    println!();
    println!(
        "median: cleaner on {} KiB, restart {:.2} s; cleaner off {} KiB, restart {:.2} s",
        median(&mut on_size) / 1024,
        median(&mut on_rs),
        median(&mut off_size) / 1024,
        median(&mut off_rs)
    );
    Ok(())
}
