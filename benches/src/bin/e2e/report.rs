//! The markdown results file.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::clients::{consumer_config, producer_config};
use crate::{mb_per_s, stats, BenchArgs, CaseResult};

pub fn command_output(cmd: &str, args: &[&str]) -> String {
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

/// What is recorded when the run starts (HEAD may move while it runs: other
/// engineers commit to the same checkout).
pub struct Snapshot {
    date: String,
    commit: String,
    loadavg: String,
}

impl Snapshot {
    pub fn take(root: &Path) -> Self {
        Self {
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M:%S"]),
            commit: command_output(
                "git",
                &[
                    "-C",
                    &root.to_string_lossy(),
                    "rev-parse",
                    "--short",
                    "HEAD",
                ],
            ),
            loadavg: loadavg(),
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn render(
    args: &BenchArgs,
    brook: &Path,
    results: &[CaseResult],
    at_start: &Snapshot,
    took: Duration,
) -> Result<String> {
    let mut md = String::new();
    let cmdline: Vec<String> = std::env::args().skip(1).collect();
    let data_parent = args.data_parent.clone().unwrap_or_else(std::env::temp_dir);
    writeln!(
        md,
        "# End-to-end throughput: brook vs loopback limit (librdkafka)\n"
    )?;
    writeln!(md, "- date (UTC, start): {}", at_start.date)?;
    writeln!(md, "- commit (HEAD at start): {}", at_start.commit)?;
    writeln!(
        md,
        "- machine: {} CPUs (nproc), {}",
        command_output("nproc", &[]),
        cpu_model()
    )?;
    writeln!(
        md,
        "- load average (1/5/15 min) at start: {}, at end: {}",
        at_start.loadavg,
        loadavg()
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
    writeln!(md, "- consumer: {}; everything else (`fetch.max.bytes`, `max.partition.fetch.bytes`, …) librdkafka's defaults. `fetch.queue.backoff.ms` is lowered from its 1 s default because librdkafka then stops fetching for a whole second each time its local queue passes `queued.min.messages`, at random points of a run, which made consume figures bimodal (about 30 vs 150 MB/s at 100 B, for brook and the limit alike).", consumer_config("…").iter().skip(1).map(|(k, v)| format!("`{k}={v}`")).collect::<Vec<_>>().join(", "))?;
    writeln!(
        md,
        "- brook: default config (acks=all is acknowledged after fsync, group-committed)."
    )?;
    writeln!(
        md,
        "- memory: {}\n",
        if args.warm_memory {
            "`--warm-memory`: before each target's produce phase the harness wrote and deleted a file 1.2 times the run's data, so the page cache brook fills is memory this guest touched a moment before (as a broker in service recycles its page cache), not memory the balloon handed back to the host"
        } else {
            "as the kernel hands it out (on a VM whose balloon reports free pages to the host, memory free for a few seconds costs a host fault per page on its first write; `--warm-memory` avoids that)"
        }
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
        // Median, min and max MB/s of one phase (0: produce, 1: consume).
        let rate = |runs: &[(Duration, Duration)], pick: usize| {
            stats(
                runs.iter()
                    .map(|r| mb_per_s(case.records, case.size, if pick == 0 { r.0 } else { r.1 }))
                    .collect(),
            )
        };
        for (phase, pick) in [("produce", 0usize), ("consume", 1)] {
            let (bm, bmin, bmax) = rate(&case.brook, pick);
            let (sm, smin, smax) = rate(&case.sink, pick);
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
        let (pm, pmin, pmax) = stats(case.page_cache.clone());
        writeln!(
            md,
            "Page-cache reference (the sink keeps nothing): the run's bytes as 1 MB buffered writes into a new file in the data dirs' filesystem, {}, once per run: median {pm:.1} MB/s ({pmin:.1}–{pmax:.1}).\n",
            if args.warm_memory { "into memory warmed just before" } else { "into whatever memory the kernel hands out" }
        )?;
        let mut storage = pm;
        if !case.disk_sync.is_empty() {
            let (dm, dmin, dmax) = stats(case.disk_sync.clone());
            storage = dm;
            writeln!(
                md,
                "Storage reference (the sink does not write to disk): 1 MB sequential writes each followed by fdatasync, in the data dirs' filesystem, once per run: median {dm:.1} MB/s ({dmin:.1}–{dmax:.1}).\n"
            )?;
        }
        let limit = rate(&case.sink, 0).0.min(storage);
        writeln!(
            md,
            "brook produce against the smaller of the limit and the {} reference: {:.2}.\n",
            if case.disk_sync.is_empty() {
                "page-cache"
            } else {
                "fdatasync"
            },
            rate(&case.brook, 0).0 / limit
        )?;
        if !case.storing.is_empty() {
            let (tm, tmin, tmax) = stats(
                case.storing
                    .iter()
                    .map(|d| mb_per_s(case.records, case.size, *d))
                    .collect(),
            );
            writeln!(
                md,
                "Storing sink (`--storing-sink`: the sink, but every produced record set appended to a file with one write{} and synced, {}; no other broker work): median {tm:.1} MB/s ({tmin:.1}–{tmax:.1}), {:.2} of the limit; brook produce against it: {:.2}.\n",
                if args.storing_sink_direct {
                    " (`O_DIRECT`, from a block-aligned copy padded to 4 KiB: `--storing-sink-direct`)"
                } else {
                    ""
                },
                if case.acks == "all" {
                    "acks=all answered after the fdatasync covering it"
                } else {
                    "fdatasync in the background"
                },
                tm / rate(&case.sink, 0).0,
                rate(&case.brook, 0).0 / tm
            )?;
        }
    }
    Ok(md)
}
