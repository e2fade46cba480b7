//! Regression tests for bugs found in review of the broker core. Each drives a
//! real `Broker` on a temporary data directory (no sockets).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use brook_broker::broker::Broker;
use brook_broker::error::BrokerError;
use brook_config::BrokerConfig;
use brook_protocol::records::{BatchBuilder, Compression};

fn config(dir: &std::path::Path) -> Result<BrokerConfig> {
    let mut c = BrokerConfig::default();
    c.set("log.dirs", &dir.display().to_string())?;
    Ok(c)
}

fn batch(records: usize, timestamp: i64) -> Result<Vec<u8>> {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        b.append(
            timestamp,
            Some(format!("k{i}").as_bytes()),
            Some(&[7u8; 100]),
            &[],
        )?;
    }
    Ok(b.build(Compression::None)?.to_vec())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn append(broker: &Broker, topic: &str, records: usize, ts: i64) -> Result<()> {
    let p = broker.partition(topic, 0).context("partition 0")?;
    let bytes = batch(records, ts)?;
    let appended = p.append(&bytes, now_ms()).await?;
    p.wait_durable(appended.last_offset).await?;
    Ok(())
}

/// DeleteRecords moved the log start offset, but the checkpoint was never read
/// at open, so a restart made deleted records readable again.
#[tokio::test(flavor = "multi_thread")]
async fn delete_records_survives_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let broker = Arc::new(Broker::open(config(dir.path())?).await?);
        broker
            .create_topic("t", 1, 1, BTreeMap::new(), false)
            .await?;
        for _ in 0..5 {
            append(&broker, "t", 10, now_ms()).await?;
        }
        let p = broker.partition("t", 0).context("partition")?;
        ensure!(
            p.log().delete_records_before(25)? == 25,
            "log start moved to 25"
        );
        brook_broker::maintenance::write_checkpoints(&broker);
        broker.shutdown().await;
    }
    let broker = Broker::open(config(dir.path())?).await?;
    let p = broker
        .partition("t", 0)
        .context("partition after restart")?;
    ensure!(
        p.log_start_offset() == 25,
        "log start offset after restart is {}",
        p.log_start_offset()
    );
    ensure!(
        p.log_end_offset() == 50,
        "log end offset after restart is {}",
        p.log_end_offset()
    );
    Ok(())
}

/// Time retention deleted segments of `cleanup.policy=compact` topics.
#[tokio::test(flavor = "multi_thread")]
async fn retention_leaves_compacted_topics_alone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Arc::new(Broker::open(config(dir.path())?).await?);
    let small = |policy: &str| {
        BTreeMap::from([
            ("cleanup.policy".to_owned(), policy.to_owned()),
            ("retention.ms".to_owned(), "1000".to_owned()),
            ("segment.bytes".to_owned(), "2000".to_owned()),
            (
                "message.timestamp.before.max.ms".to_owned(),
                "9223372036854775807".to_owned(),
            ),
        ])
    };
    broker
        .create_topic("compacted", 1, 1, small("compact"), false)
        .await?;
    broker
        .create_topic("deleted", 1, 1, small("delete"), false)
        .await?;
    let old = now_ms() - 3_600_000;
    for _ in 0..6 {
        append(&broker, "compacted", 10, old).await?;
        append(&broker, "deleted", 10, old).await?;
    }
    brook_broker::maintenance::retention_pass(&broker);
    let c = broker.partition("compacted", 0).context("compacted")?;
    let d = broker.partition("deleted", 0).context("deleted")?;
    ensure!(
        c.log_start_offset() == 0,
        "compacted topic lost segments: start {}",
        c.log_start_offset()
    );
    ensure!(
        d.log_start_offset() > 0,
        "delete topic kept its expired segments"
    );
    Ok(())
}

/// Clients could delete, grow, auto-create and produce to `__consumer_offsets`.
#[tokio::test(flavor = "multi_thread")]
async fn internal_topics_are_protected() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Arc::new(Broker::open(config(dir.path())?).await?);
    ensure!(
        broker
            .topic_or_create("__consumer_offsets", true)
            .await?
            .is_none(),
        "auto-creation must not create an internal topic"
    );
    broker
        .create_topic("__consumer_offsets", 3, 1, BTreeMap::new(), false)
        .await?;
    ensure!(matches!(
        broker.delete_topic("__consumer_offsets").await,
        Err(BrokerError::InvalidTopic(_))
    ));
    ensure!(matches!(
        broker
            .create_partitions("__consumer_offsets", 5, None, false)
            .await,
        Err(BrokerError::InvalidTopic(_))
    ));
    ensure!(broker
        .topic("__consumer_offsets")
        .context("still there")?
        .is_internal());
    broker
        .create_topic("__not_internal", 1, 1, BTreeMap::new(), false)
        .await?;
    ensure!(!broker
        .topic("__not_internal")
        .context("created")?
        .is_internal());
    Ok(())
}

/// A timestamp far in the future would keep its segment from ever expiring.
#[tokio::test(flavor = "multi_thread")]
async fn future_timestamps_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Arc::new(Broker::open(config(dir.path())?).await?);
    broker
        .create_topic("t", 1, 1, BTreeMap::new(), false)
        .await?;
    let p = broker.partition("t", 0).context("partition")?;
    // Microseconds where milliseconds belong: decades in the future.
    let bytes = batch(1, now_ms() * 1000)?;
    let err = p
        .append(&bytes, now_ms())
        .await
        .err()
        .context("append must fail")?;
    ensure!(matches!(err, BrokerError::InvalidTimestamp(_)), "got {err}");
    ensure!(p.log_end_offset() == 0, "nothing may be written");
    append(&broker, "t", 1, now_ms()).await?;
    Ok(())
}

/// With the CRC checked once (by the log's append), a retry answered from the
/// idempotence cache must still be checked: a corrupt copy of an acknowledged
/// batch may not be acknowledged as the original.
#[tokio::test(flavor = "multi_thread")]
async fn corrupt_duplicate_is_not_acknowledged() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Arc::new(Broker::open(config(dir.path())?).await?);
    broker
        .create_topic("t", 1, 1, BTreeMap::new(), false)
        .await?;
    let p = broker.partition("t", 0).context("partition")?;
    let mut b = BatchBuilder::new();
    b.set_producer(42, 0, 0);
    b.append(now_ms(), Some(b"k"), Some(b"v"), &[])?;
    let original = b.build(Compression::None)?.to_vec();
    let first = p.append(&original.clone(), now_ms()).await?;
    let retry = p.append(&original.clone(), now_ms()).await?;
    ensure!(
        retry.duplicate && retry.base_offset == first.base_offset,
        "an intact retry is a duplicate"
    );
    let mut corrupt = original.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let err = p
        .append(&corrupt, now_ms())
        .await
        .err()
        .context("corrupt retry must fail")?;
    ensure!(matches!(err, BrokerError::CorruptBatch(_)), "got {err}");
    // And a corrupt new batch is refused by the log, nothing written.
    let mut b = BatchBuilder::new();
    b.append(now_ms(), Some(b"k"), Some(b"v"), &[])?;
    let mut fresh = b.build(Compression::None)?.to_vec();
    let last = fresh.len() - 1;
    fresh[last] ^= 0xff;
    ensure!(
        p.append(&fresh, now_ms()).await.is_err(),
        "corrupt batch appended"
    );
    ensure!(p.log_end_offset() == 1, "log end {}", p.log_end_offset());
    Ok(())
}
