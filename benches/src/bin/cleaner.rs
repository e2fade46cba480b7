//! Log cleaner throughput, next to a limit measured in the same run.
//!
//! Each run builds a dirty log (`--mb` MiB of 100-byte values over `--keys` keys, in
//! batches of 100 records, 64 MiB segments) and then measures, in this order (the
//! clean replaces the files the limit reads):
//! - the **limit**: a plain sequential read of the cleanable segment files and a
//!   write of the same bytes to a new file, then one `fdatasync` — the least I/O any
//!   cleaner must do;
//! - the **cleaner**: `PartitionLog::clean` over the same segments (offset-map pass,
//!   rewrite pass, fsyncs and the swap), unthrottled, with a `--dedupe-mb` map.
//!
//! Throughput is dirty MiB per second; the ratio is cleaner / limit. Before each
//! timed part the page cache is dropped when the process may (root), so both read
//! from disk; otherwise both read from the cache. Memory: the process's peak RSS
//! growth during the clean (the largest over the runs: the peak is per process),
//! against the dedupe buffer. Medians over `--runs`.
//!
//! Run: `cargo run --release -p brook-benches --bin cleaner -- --runs 5`.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use brook_broker::log::cleaner::{CleanParams, OffsetMap, Throttler};
use brook_broker::log::{LogConfig, PartitionLog};
use brook_protocol::records::{BatchBuilder, Compression};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Log cleaner throughput against a sequential read+write of the same bytes")]
struct Args {
    /// Size of the dirty log, MiB.
    #[arg(long, default_value_t = 256)]
    mb: u64,
    /// Distinct keys (the rest of the records are superseded).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Offset map memory, MiB (Kafka's default dedupe buffer is 128 MiB).
    #[arg(long, default_value_t = 128)]
    dedupe_mb: usize,
    /// Where the logs are written (default: the system temp dir).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn drop_caches() -> bool {
    // Root only; elsewhere both sides read from the page cache alike.
    let _ = std::process::Command::new("sync").status();
    fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn peak_rss_kb() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn build_log(dir: &Path, mb: u64, keys: u64) -> Result<PartitionLog> {
    let log = PartitionLog::open(
        dir,
        LogConfig {
            segment_bytes: 64 << 20,
            ..LogConfig::default()
        },
    )?;
    let value = [b'v'; 100];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut b = BatchBuilder::new();
    while log.size_in_bytes() < mb << 20 {
        b.clear();
        for _ in 0..100 {
            // xorshift: a fixed, cheap key sequence.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("key-{:010}", x % keys);
            b.append(1_700_000_000_000, Some(key.as_bytes()), Some(&value), &[])?;
        }
        let bytes = b.build(Compression::None)?.to_vec();
        log.append_as_leader(&bytes, 0)?;
    }
    log.flush()?;
    Ok(log)
}

/// Sequentially read `files` and write their bytes to `out`, then fdatasync.
fn read_write(files: &[std::path::PathBuf], out: &Path) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut w = File::create(out)?;
    let mut total = 0;
    for f in files {
        let mut r = File::open(f)?;
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n])?;
            total += n as u64;
        }
    }
    w.sync_data()?;
    Ok(total)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let (mut clean_mbs, mut ref_mbs, mut ratios, mut rss) = (vec![], vec![], vec![], vec![]);
    let mut dropped = false;
    println!("| run | dirty MiB | cleaner s | limit s | cleaner MiB/s | limit MiB/s | ratio | kept MiB | map keys | peak RSS growth MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in 0..args.runs {
        let tmp = tempfile::Builder::new()
            .prefix("brook-cleaner-bench-")
            .tempdir_in(&base)?;
        let logdir = tmp.path().join("t-0");
        let log = build_log(&logdir, args.mb, args.keys)?;
        let hw = log.log_end_offset();
        let params = CleanParams {
            min_cleanable_ratio: 0.0,
            ..CleanParams::default()
        };
        let section = log.dirty_section(hw, 0, &params)?;
        let mut files: Vec<_> = fs::read_dir(&logdir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        files.pop(); // the active segment is not cleanable
        let dirty_mib = section.dirty_bytes as f64 / f64::from(1 << 20);
        let limit = |dropped: &mut bool| -> Result<f64> {
            *dropped |= drop_caches();
            let t = Instant::now();
            read_write(&files, &tmp.path().join("copy"))?;
            let s = t.elapsed().as_secs_f64();
            fs::remove_file(tmp.path().join("copy"))?;
            Ok(s)
        };
        // The clean replaces the files, so the limit is always measured first, on
        // the same bytes, each part starting from a cold cache where possible.
        let limit_s = limit(&mut dropped)?;
        dropped |= drop_caches();
        let mut map = OffsetMap::with_memory(args.dedupe_mb << 20);
        let rss_before = peak_rss_kb();
        let t = Instant::now();
        let out = log
            .clean(hw, &params, &mut map, &Throttler::unlimited(), true)?
            .context("nothing was cleaned")?;
        let clean_s = t.elapsed().as_secs_f64();
        let growth = peak_rss_kb().saturating_sub(rss_before) as f64 / 1024.0;
        let (c, l) = (dirty_mib / clean_s, dirty_mib / limit_s);
        println!(
            "| {run} | {dirty_mib:.0} | {clean_s:.2} | {limit_s:.2} | {c:.0} | {l:.0} | {:.2} | {:.1} | {} | {growth:.0} |",
            c / l,
            log.size_in_bytes() as f64 / f64::from(1 << 20),
            map.len(),
        );
        let _ = out;
        clean_mbs.push(c);
        ref_mbs.push(l);
        ratios.push(c / l);
        rss.push(growth);
    }
    println!();
    println!(
        "median: cleaner {:.0} MiB/s, limit {:.0} MiB/s, ratio {:.2}; largest peak RSS growth {:.0} MiB with a {} MiB dedupe buffer; page cache dropped before each part: {}",
        median(&mut clean_mbs),
        median(&mut ref_mbs),
        median(&mut ratios),
        rss.iter().copied().fold(0.0, f64::max),
        args.dedupe_mb,
        dropped
    );
    Ok(())
}
