//! The two targets the harness measures: a fresh `brook serve` (empty data dir,
//! default config) or the sink broker (this binary's `sink` subcommand). Each runs
//! in its own temp dir with its output in `target.log`; [`Running`] kills the child
//! on drop, so an interrupted harness leaves no process behind, and the temp dir
//! (brook's data included) goes with it.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use brook_protocol::records::header::BatchIter;

use crate::BenchArgs;

/// How long a target may take to write its ready file.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(10);
/// Bytes the storage probe writes per run.
pub const DISK_PROBE_BYTES: usize = 128 * 1024 * 1024;
/// The probe's write size: about one produce request (`batch.size`).
const DISK_PROBE_CHUNK: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Brook,
    Sink,
    /// The sink with `--store-dir`: keeps and syncs what is produced.
    StoringSink,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Brook => "brook",
            Target::Sink => "sink",
            Target::StoringSink => "storing sink",
        }
    }
}

/// A running target process in its own temp dir; killed on drop.
pub struct Running {
    child: Child,
    pub bootstrap: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        // The data is thrown away, so there is nothing to shut down gracefully.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("target.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

pub fn start(
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
        Target::Sink | Target::StoringSink => {
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
            if target == Target::StoringSink {
                c.arg("--store-dir").arg(dir.path().join("store"));
                if args.storing_sink_direct {
                    c.arg("--store-direct");
                }
            }
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

/// Mean size of the record batches in the log segments of partition 0 of `topic`
/// (Kafka layout: `<data>/<topic>-0/*.log`).
pub fn mean_stored_batch(data: &Path, topic: &str) -> Result<f64> {
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

/// Throughput (MB/s) of sequential `DISK_PROBE_CHUNK`-byte buffered writes of
/// `total` bytes (no fsync) into a new temp file under `parent`, deleted
/// after: the rate at which this machine takes new data into the page cache,
/// the storage side of what acks=1 costs a broker (the sink keeps nothing).
/// On a VM whose balloon reports free pages to the host, it depends on how
/// long the memory it lands in has been free (see `--warm-memory`).
pub fn page_cache_rate(parent: Option<&Path>, total: usize) -> Result<f64> {
    write_rate(parent, total, false)
}

/// Throughput (MB/s) of sequential `DISK_PROBE_CHUNK`-byte writes, each followed by
/// `fdatasync`, into a temp file under `parent` (default: the system temp dir):
/// roughly what acks=all costs a broker that syncs every produce request, without
/// the group commit that lets brook share one sync between concurrent requests.
pub fn disk_sync_rate(parent: Option<&Path>, total: usize) -> Result<f64> {
    write_rate(parent, total, true)
}

fn write_rate(parent: Option<&Path>, total: usize, sync_each: bool) -> Result<f64> {
    let file = match parent {
        Some(p) => tempfile::NamedTempFile::new_in(p),
        None => tempfile::NamedTempFile::new(),
    }
    .context("creating the storage probe file")?;
    let mut f = file.as_file();
    let chunk = vec![0x5a_u8; DISK_PROBE_CHUNK];
    let start = Instant::now();
    let mut written = 0;
    while written < total {
        f.write_all(&chunk)?;
        if sync_each {
            f.sync_data()?;
        }
        written += chunk.len();
    }
    Ok(written as f64 / start.elapsed().as_secs_f64() / 1e6)
}
