//! Fetch responses are sent with `sendfile`: consuming a topic must grow
//! `brook_fetch_sendfile_bytes_total` by at least the bytes of its log segments.
//! Also checks the `brook_connections_active` gauge follows clients.

mod common;

use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use brook_tests::{log_segments, wait_until, Broker, BrokerOptions};
use common::{consume_all, consumer, produce_all, producer, TestRecord};

const SENDFILE: &str = "brook_fetch_sendfile_bytes_total";
const CONNECTIONS: &str = "brook_connections_active";

#[test]
fn fetch_bytes_go_through_sendfile() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(2))?;
    let topic = "zc";
    let n = 8_000;
    let value_len = 1024;
    let producer = producer(&broker.bootstrap(), &[("compression.type", "none")])?;
    produce_all(&producer, topic, n, |i| {
        let mut v = vec![b'x'; value_len];
        v[..8].copy_from_slice(&(i as u64).to_be_bytes());
        (
            Some((i % 2) as i32),
            TestRecord {
                key: None,
                value: Some(v),
                headers: Vec::new(),
            },
        )
    })?;
    drop(producer);

    let on_disk: u64 = log_segments(&broker.data_dir())?
        .iter()
        .filter(|p| p.to_string_lossy().contains("/zc-"))
        .map(|p| batch_bytes(p))
        .sum::<Result<u64>>()?;
    let payload = (n * value_len) as u64;
    ensure!(
        on_disk >= payload,
        "segments of {topic} hold {on_disk} bytes, less than the {payload} payload bytes produced"
    );

    let before = broker
        .metric(SENDFILE)?
        .ok_or_else(|| anyhow!("{SENDFILE} missing from /metrics"))?;
    let c = consumer(&broker.bootstrap(), &[])?;
    let got = consume_all(&c, topic, &[0, 1])?;
    let total: usize = got.values().map(Vec::len).sum();
    ensure!(total == n, "consumed {total} of {n} records");

    let open = broker
        .metric(CONNECTIONS)?
        .ok_or_else(|| anyhow!("{CONNECTIONS} missing from /metrics"))?;
    ensure!(
        open >= 1.0,
        "{CONNECTIONS} = {open} while a consumer is connected"
    );

    let after = broker
        .metric(SENDFILE)?
        .ok_or_else(|| anyhow!("{SENDFILE} vanished"))?;
    let sent = after - before;
    ensure!(
        sent >= on_disk as f64,
        "{SENDFILE} grew by {sent} while consuming {on_disk} bytes of segments \
         (record data must go through sendfile)"
    );

    drop(c);
    wait_until(
        &format!("{CONNECTIONS} to drop to 0 after clients closed"),
        Duration::from_secs(15),
        || Ok(broker.metric(CONNECTIONS)? == Some(0.0)),
    )?;
    Ok(())
}

/// Bytes of whole batches at the start of a `.log` file: the active
/// segment's file runs on past them (the sparse room kept ahead of the data).
fn batch_bytes(path: &std::path::Path) -> Result<u64> {
    let data = std::fs::read(path)?;
    let mut pos = 0usize;
    while let Some(head) = data.get(pos..pos + 12) {
        let len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        let Ok(len) = usize::try_from(len) else { break };
        if len == 0 || pos + 12 + len > data.len() {
            break;
        }
        pos += 12 + len;
    }
    Ok(pos as u64)
}
