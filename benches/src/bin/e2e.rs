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
//! removed at the end of the run. A target is killed as soon as its run ends or
//! fails (on drop); Ctrl-C in a terminal reaches the children too (same process
//! group), but a harness killed on its own leaves its current target running.
//!
//! Run: `cargo build --release -p brook-broker --bin brook` then
//! `cargo run --release -p brook-benches --bin e2e -- --runs 5`.

// The crate root is `src/bin/e2e.rs`, so its modules live beside it in `e2e/`.
#[path = "e2e/clients.rs"]
mod clients;
#[path = "e2e/report.rs"]
mod report;
#[path = "e2e/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use brook_benches::sink::{self, Sink, SinkConfig};
use clap::{Parser, Subcommand};

use crate::clients::{consume, produce};
use crate::targets::{
    disk_sync_rate, mean_stored_batch, page_cache_rate, start, Target, DISK_PROBE_BYTES,
};

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
        /// Keep every produced record set in a file in this directory (the
        /// storing sink: see `brook_benches::sink::store`).
        #[arg(long)]
        store_dir: Option<PathBuf>,
        /// With `--store-dir`: write with `O_DIRECT`, bypassing the page cache.
        #[arg(long, requires = "store_dir")]
        store_direct: bool,
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
    /// Records per run; by default 1000000 for sizes under 512 B, 500000 otherwise
    /// (a second or more per phase even for the limit on a loaded 2-core machine).
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
    /// Before each target's produce phase, write and delete a file a little
    /// larger than the run's data in the data dirs' filesystem, so the page
    /// cache the target fills next is memory this guest touched a moment ago.
    /// On a VM whose balloon reports free pages to the host (virtio-balloon
    /// `VIRTIO_BALLOON_F_REPORTING`), memory left free for a few seconds goes
    /// back to the host and the first write to each page then costs a host
    /// fault: writing 2 GB into it ran at 0.5 GB/s, against 5 GB/s into
    /// memory freed a moment before. A broker in service recycles page cache
    /// it already holds; the sink keeps nothing, so only brook pays this.
    #[arg(long)]
    warm_memory: bool,
    /// Also produce to the *storing sink* in each run: the sink, but every
    /// produced record set is appended to a file in the data dirs'
    /// filesystem and synced (acks=all answered after its `fdatasync`). What
    /// the client reaches against it is the most any broker that stores its
    /// records could reach on this machine; brook's produce figure is then
    /// stated against it too. Its consume phase is the sink's and is skipped.
    #[arg(long)]
    storing_sink: bool,
    /// With `--storing-sink`: the storing sink writes with `O_DIRECT` (from a
    /// block-aligned copy, bypassing the page cache), as a broker with its
    /// own cache would.
    #[arg(long, requires = "storing_sink")]
    storing_sink_direct: bool,
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
            store_dir,
            store_direct,
        }) => run_sink(
            &ready_file,
            SinkConfig {
                record_size,
                log_records,
                batch_bytes,
            },
            store_dir.as_deref(),
            store_direct,
        ),
        None => bench(&cli.bench),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The sink subcommand: bind, write the ready file, serve until killed.
fn run_sink(
    ready_file: &Path,
    cfg: SinkConfig,
    store_dir: Option<&Path>,
    direct: bool,
) -> Result<()> {
    let sink = Arc::new(match store_dir {
        Some(dir) => Sink::storing(cfg, sink::Store::open(dir, direct)?)?,
        None => Sink::new(cfg)?,
    });
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

/// One case's measurements: per target, per run, (produce, consume) durations.
struct CaseResult {
    size: usize,
    acks: String,
    records: u64,
    brook: Vec<(Duration, Duration)>,
    sink: Vec<(Duration, Duration)>,
    /// `--storing-sink`: the produce duration against the storing sink, per run.
    storing: Vec<Duration>,
    /// Mean size of the batches brook stored, per run (what its consumers fetch).
    brook_batch_bytes: Vec<f64>,
    /// acks=all only: MB/s of fdatasync'd 1 MB writes in brook's data dir parent,
    /// measured once per run (the storage side of the acks=all ceiling).
    disk_sync: Vec<f64>,
    /// MB/s of buffered 1 MB writes of the run's bytes into a new file in
    /// brook's data dir parent (memory warmed first with `--warm-memory`),
    /// once per run: the storage side of the acks=1 ceiling.
    page_cache: Vec<f64>,
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
    let at_start = report::Snapshot::take(&root);
    let mut results = Vec::new();
    for &size in &args.sizes {
        ensure!(size > 0, "record sizes must be positive");
        let records = args
            .records
            .unwrap_or(if size < 512 { 1_000_000 } else { 500_000 });
        for acks in &args.acks {
            let mut case = CaseResult {
                size,
                acks: acks.clone(),
                records,
                brook: Vec::new(),
                sink: Vec::new(),
                storing: Vec::new(),
                brook_batch_bytes: Vec::new(),
                disk_sync: Vec::new(),
                page_cache: Vec::new(),
            };
            let run_bytes = usize::try_from(records)?.saturating_mul(size);
            for run in 0..args.runs {
                let mut order = if run % 2 == 0 {
                    vec![Target::Brook, Target::Sink]
                } else {
                    vec![Target::Sink, Target::Brook]
                };
                if args.storing_sink {
                    // Between the two others, so it neither always follows brook
                    // nor always the sink.
                    order.insert(1, Target::StoringSink);
                }
                for target in order {
                    let topic = format!("e2e-{size}-{acks}-{run}");
                    let running = start(target, args, &brook, size, records)?;
                    if args.warm_memory {
                        warm_memory(args, run_bytes)?;
                    }
                    let p = produce(&running.bootstrap, &topic, acks, size, records).with_context(
                        || format!("{} produce\n{}", target.name(), running.log_tail()),
                    )?;
                    if target == Target::StoringSink {
                        drop(running);
                        println!(
                            "{size:>5} B acks={acks:<3} run {run} {:<5} produce {:>8.1} MB/s",
                            target.name(),
                            mb_per_s(records, size, p),
                        );
                        case.storing.push(p);
                        continue;
                    }
                    let c = consume(
                        &running.bootstrap,
                        &topic,
                        size,
                        records,
                        target == Target::Brook,
                    )
                    .with_context(|| {
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
                        // (the storing sink's runs were recorded above)
                        Target::Sink | Target::StoringSink => case.sink.push((p, c)),
                    }
                }
                if args.warm_memory {
                    warm_memory(args, run_bytes)?;
                }
                case.page_cache
                    .push(page_cache_rate(args.data_parent.as_deref(), run_bytes)?);
                if acks == "all" {
                    case.disk_sync.push(disk_sync_rate(
                        args.data_parent.as_deref(),
                        DISK_PROBE_BYTES,
                    )?);
                }
            }
            results.push(case);
        }
    }
    let md = report::render(args, &brook, &results, &at_start, started.elapsed())?;
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&output, &md).with_context(|| format!("writing {}", output.display()))?;
    println!("\n{md}\nwritten to {}", output.display());
    Ok(())
}

/// Touch (write and delete) a little more memory than a run's data fills.
fn warm_memory(args: &BenchArgs, run_bytes: usize) -> Result<()> {
    page_cache_rate(args.data_parent.as_deref(), run_bytes / 5 * 6)?;
    Ok(())
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
