//! A full disk (ENOSPC) with two log directories, on a real `brook` process:
//! the second log directory is a 6 MiB tmpfs. Producing acks=all to a
//! partition there until the file system is full takes that directory
//! offline (health not ready, `brook_log_dir_offline` 1, a log line naming
//! it) and acknowledges nothing it could not store; the partition in the
//! other directory keeps serving. After a restart with room on the file
//! system, every acknowledged record is there at its offset.
//!
//! Needs root (to mount the tmpfs); elsewhere it says SKIPPED.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use brook_tests::{http_get, is_root, metric_value, Broker, BrokerOptions, Tmpfs};
use common::producer;
use rdkafka::producer::{BaseRecord, Producer};

const TOPIC: &str = "disk-full";

/// Partition index → its log directory, from the admin API.
fn log_dirs(broker: &Broker) -> Result<HashMap<i32, PathBuf>> {
    let body = http_get(broker.admin_addr(), &format!("/v1/topics/{TOPIC}"))?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    v["partitions"]
        .as_array()
        .ok_or_else(|| anyhow!("no partitions in {body}"))?
        .iter()
        .map(|p| {
            Ok((
                i32::try_from(p["partition"].as_i64().ok_or_else(|| anyhow!("index"))?)?,
                PathBuf::from(
                    p["log_dir"]
                        .as_str()
                        .ok_or_else(|| anyhow!("log_dir in {p}"))?,
                ),
            ))
        })
        .collect()
}

/// Acknowledged (offset, value) pairs of one partition.
type Acked = Vec<(i64, Vec<u8>)>;

/// Send `n` records of `size` bytes to `partition` with acks=all; the
/// acknowledged (offset, value) pairs and how many failed.
fn send(broker: &Broker, partition: i32, n: usize, size: usize) -> Result<(Acked, usize)> {
    let p = producer(
        &broker.bootstrap(),
        &[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "4000"),
            ("linger.ms", "0"),
        ],
    )?;
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut v = format!("record-{partition}-{i:06}-").into_bytes();
            v.resize(size, b'x');
            v
        })
        .collect();
    for (i, v) in values.iter().enumerate() {
        let r: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(TOPIC, i)
            .partition(partition)
            .payload(v.as_slice());
        p.send(r).map_err(|(e, _)| anyhow!("enqueue: {e}"))?;
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30))?;
    let ok = p
        .context()
        .ok
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .clone();
    let failed = p
        .context()
        .failed
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .len();
    Ok((
        ok.into_iter()
            .map(|d| (d.offset, values[d.index].clone()))
            .collect(),
        failed,
    ))
}

fn check_present(broker: &Broker, partition: i32, acked: &[(i64, Vec<u8>)]) -> Result<()> {
    common::check_values_at(&broker.bootstrap(), TOPIC, partition, acked)
}

#[test]
fn a_full_log_directory_goes_offline_alone_and_loses_nothing_acknowledged() -> Result<()> {
    if !is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return Ok(());
    }
    let small = Tmpfs::mount("6m")?;
    let mut opts = BrokerOptions::default().partitions(2);
    opts.extra_log_dirs = vec![small.0.clone()];
    let mut broker = Broker::start(opts)?;
    let r = (|| -> Result<()> {
        // Auto-created with two partitions: one per directory.
        let (acked, failed) = send(&broker, 0, 1, 100)?;
        ensure!(
            acked.len() == 1 && failed == 0,
            "first record: {failed} failed"
        );
        let dirs = log_dirs(&broker)?;
        let full = *dirs
            .iter()
            .find(|(_, d)| d.as_path() == small.0)
            .ok_or_else(|| anyhow!("no partition on the tmpfs: {dirs:?}"))?
            .0;
        let healthy = 1 - full;
        ensure!(
            dirs.get(&healthy).map(PathBuf::as_path) == Some(broker.data_dir().as_path()),
            "partition {healthy} is not in the data dir: {dirs:?}"
        );

        // 12 MiB into a 6 MiB file system.
        let (acked_full, failed) = send(&broker, full, 200, 64 * 1024)?;
        ensure!(
            failed > 0,
            "the file system never filled ({} acknowledged)",
            acked_full.len()
        );
        ensure!(
            !acked_full.is_empty(),
            "nothing was acknowledged before the disk filled"
        );
        let metrics = http_get(broker.admin_addr(), "/metrics")?;
        ensure!(
            metric_value(&metrics, "brook_log_dir_offline") == Some(1.0),
            "brook_log_dir_offline is not 1"
        );
        let (status, health) =
            brook_tests::http_request(broker.admin_addr(), "GET", "/v1/health", None)?;
        ensure!(status == 503, "health answered {status}: {health}");
        ensure!(
            health.contains(&small.0.display().to_string()),
            "health does not name the offline directory: {health}"
        );
        let log = std::fs::read_to_string(broker.log_path())?;
        ensure!(
            log.contains("log directory offline"),
            "no log line names the offline directory"
        );

        // The other directory keeps serving.
        let (acked_ok, failed) = send(&broker, healthy, 100, 1024)?;
        ensure!(
            failed == 0 && acked_ok.len() == 100,
            "{failed} failed in the healthy directory"
        );
        check_present(&broker, healthy, &acked_ok)?;

        // Room again, and a restart: everything acknowledged is there.
        broker.stop()?;
        small.resize("64m")?;
        broker.restart()?;
        check_present(&broker, full, &acked_full)?;
        check_present(&broker, healthy, &acked_ok)
    })();
    r.with_context(|| broker.log_tail())
}
