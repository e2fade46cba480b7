//! Log compaction against real broker processes and real clients: librdkafka and
//! kafka-python read compacted topics while the cleaner rewrites them, a compacted
//! topic refuses keyless records, a `kill -9` in the middle of a clean loses
//! nothing, and `__consumer_offsets` stays bounded under a commit-heavy workload.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use brook_tests::{http_get, wait_until, Broker, BrokerOptions, ClientScripts};
use common::{consume_all, consumer, create_topic, produce_all, producer, Consumed, TestRecord};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// A broker whose cleaner looks for work every 100 ms.
fn start(extra: &[(&str, &str)]) -> Result<Broker> {
    let mut opts = BrokerOptions::default().config("log.cleaner.backoff.ms", "100");
    for (k, v) in extra {
        opts = opts.config(k, v);
    }
    Broker::start(opts)
}

/// The admin API's view of one partition of `topic`.
fn partition_info(broker: &Broker, topic: &str) -> Result<Value> {
    let body = http_get(broker.admin_addr(), &format!("/v1/topics/{topic}"))?;
    let v: Value = serde_json::from_str(&body)?;
    Ok(v["partitions"][0].clone())
}

fn cleaned_offset(broker: &Broker, topic: &str) -> Result<i64> {
    partition_info(broker, topic)?["compaction"]["cleaned_offset"]
        .as_i64()
        .context("no cleaned_offset in the admin API")
}

/// Record `i` of the changelog: 300 keys; the last 600 writes to every tenth key are
/// tombstones; the final record is a value (so reading to the end always finds it).
fn changelog_record(i: usize, n: usize) -> TestRecord {
    let k = i % 300;
    let tombstone = k.is_multiple_of(10) && i + 600 >= n && i + 1 != n;
    TestRecord {
        key: Some(format!("key-{k:03}").into_bytes()),
        value: (!tombstone).then(|| format!("value-{i:06}-{}", "x".repeat(40)).into_bytes()),
        headers: Vec::new(),
    }
}

/// What was written: the record at each acknowledged offset, and each key's latest
/// value (`None`: deleted).
type Model = (HashMap<i64, TestRecord>, BTreeMap<Vec<u8>, Option<Vec<u8>>>);

fn changelog_model(delivered: &[common::Delivered], n: usize) -> Model {
    let mut by_offset = HashMap::new();
    let mut expected = BTreeMap::new();
    let mut order: Vec<_> = delivered.iter().map(|d| (d.offset, d.index)).collect();
    order.sort_unstable();
    for (offset, i) in order {
        let r = changelog_record(i, n);
        expected.insert(r.key.clone().unwrap_or_default(), r.value.clone());
        by_offset.insert(offset, r);
    }
    (by_offset, expected)
}

/// Check one full read: every record is the one written at its offset, offsets
/// increase. Returns the latest value per key in the read.
fn check_read(
    read: &[Consumed],
    by_offset: &HashMap<i64, TestRecord>,
) -> Result<BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
    let mut latest = BTreeMap::new();
    let mut last = -1;
    for c in read {
        ensure!(c.offset > last, "offset {} after {last}", c.offset);
        last = c.offset;
        let want = by_offset
            .get(&c.offset)
            .with_context(|| format!("offset {} was never written", c.offset))?;
        ensure!(
            want.key == c.record.key && want.value == c.record.value,
            "offset {} reads {:?} but held {:?}",
            c.offset,
            c.record,
            want
        );
        latest.insert(
            c.record.key.clone().unwrap_or_default(),
            c.record.value.clone(),
        );
    }
    Ok(latest)
}

#[test]
fn librdkafka_reads_latest_values_while_the_cleaner_runs() -> Result<()> {
    // The throttle stretches each clean over a few seconds so reads overlap swaps.
    let broker = start(&[("log.cleaner.io.max.bytes.per.second", "4000000")])?;
    let topic = "changelog";
    create_topic(
        &broker.bootstrap(),
        topic,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "65536"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )?;
    let n = 40_000;
    // Batches well below segment.bytes, so most of the log rolls into cleanable
    // segments.
    let prod = producer(
        &broker.bootstrap(),
        &[("enable.idempotence", "true"), ("batch.size", "8192")],
    )?;
    let delivered = produce_all(&prod, topic, n, |i| (Some(0), changelog_record(i, n)))?;
    let (by_offset, expected) = changelog_model(&delivered, n);
    let by_offset = Arc::new(by_offset);

    // Readers loop over the whole topic while the cleaner works.
    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, passes, by_offset) = (stop.clone(), passes.clone(), by_offset.clone());
        let bootstrap = broker.bootstrap();
        std::thread::spawn(move || -> Result<()> {
            let c = consumer(&bootstrap, &[])?;
            while !stop.load(Ordering::SeqCst) {
                let read = consume_all(&c, topic, &[0])?;
                check_read(&read[&0], &by_offset)?;
                passes.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
    };
    wait_until("the cleaner to clean the whole changelog", WAIT, || {
        let info = partition_info(&broker, topic)?;
        Ok(cleaned_offset(&broker, topic)? > 0
            && info["compaction"]["dirty_ratio"].as_f64() == Some(0.0))
    })?;
    wait_until("two reads overlapping the clean", WAIT, || {
        Ok(passes.load(Ordering::SeqCst) >= 2)
    })?;
    stop.store(true, Ordering::SeqCst);
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;

    let c = consumer(&broker.bootstrap(), &[])?;
    let read = consume_all(&c, topic, &[0])?;
    let latest = check_read(&read[&0], &by_offset)?;
    for (k, v) in &expected {
        match (v, latest.get(k)) {
            (Some(v), Some(Some(got))) => ensure!(v == got, "key {k:?}: stale value"),
            (Some(_), other) => bail!("key {k:?}: latest value missing ({other:?})"),
            (None, None | Some(None)) => {}
            (None, Some(Some(_))) => bail!("key {k:?}: deleted key still has a value"),
        }
    }
    ensure!(
        read[&0].len() < n / 4,
        "compaction kept {} of {n} records",
        read[&0].len()
    );
    let size_after = partition_info(&broker, topic)?["size_bytes"]
        .as_u64()
        .context("size")?;
    // Uncompacted, 40,000 records of ~60 bytes take over 2.4 MB.
    ensure!(
        size_after < 600_000,
        "{size_after} bytes left after compaction"
    );
    let ratio = broker.metric("brook_partition_dirty_ratio")?;
    ensure!(ratio.is_some(), "dirty ratio gauge missing");
    Ok(())
}

/// A clean that empties whole segments (every key in them written again later)
/// leaves segments holding only a header-only batch. librdkafka doubles its fetch
/// size after each fetch that brings no record and fails the read with
/// MSG_SIZE_TOO_LARGE after ten, so a consumer fetch skips empty batches to the
/// first batch with records.
#[test]
fn librdkafka_reads_past_segments_the_cleaner_emptied() -> Result<()> {
    let broker = start(&[])?;
    let topic = "rewritten";
    let mut configs = vec![("segment.bytes", "16384")];
    create_topic(&broker.bootstrap(), topic, &configs)?;
    // One key written over and over, compacted only once it is all written: one
    // clean turns every segment but the active one into a header-only batch (a
    // cleaner running during the writes would merge those as it goes).
    let n = 6_000;
    let prod = producer(
        &broker.bootstrap(),
        &[("enable.idempotence", "false"), ("batch.size", "4096")],
    )?;
    let record = |i: usize| TestRecord {
        key: Some(b"the-key".to_vec()),
        value: Some(format!("value-{i:06}-{}", "x".repeat(40)).into_bytes()),
        headers: Vec::new(),
    };
    let delivered = produce_all(&prod, topic, n, |i| (Some(0), record(i)))?;
    configs.extend([
        ("cleanup.policy", "compact"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ]);
    common::alter_topic(&broker.bootstrap(), topic, &configs)?;
    wait_until("the cleaner to clean the topic", WAIT, || {
        let info = partition_info(&broker, topic)?;
        Ok(cleaned_offset(&broker, topic)? > 0
            && info["compaction"]["dirty_ratio"].as_f64() == Some(0.0))
    })?;
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let segments = std::fs::read_dir(&dir)?
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count();
    ensure!(
        segments > 12,
        "{segments} segments after the clean: too few to test the skip"
    );
    let by_offset: HashMap<i64, TestRecord> = delivered
        .iter()
        .map(|d| (d.offset, record(d.index)))
        .collect();
    // One consumer, several reads from the start: librdkafka's doubled fetch size
    // is kept for the life of the partition's state.
    let c = consumer(&broker.bootstrap(), &[])?;
    for pass in 0..3 {
        let read = consume_all(&c, topic, &[0]).with_context(|| format!("pass {pass}"))?;
        let latest = check_read(&read[&0], &by_offset)?;
        let last = record(n - 1);
        ensure!(
            latest.get(b"the-key".as_slice()) == Some(&last.value),
            "pass {pass}: latest value {:?}",
            latest.get(b"the-key".as_slice())
        );
        ensure!(
            read[&0].len() < n / 10,
            "pass {pass}: read {} records of a compacted topic",
            read[&0].len()
        );
    }
    Ok(())
}

#[test]
fn keyless_records_are_refused_on_compacted_topics() -> Result<()> {
    let broker = start(&[])?;
    create_topic(
        &broker.bootstrap(),
        "keyed",
        &[("cleanup.policy", "compact")],
    )?;
    let prod = producer(
        &broker.bootstrap(),
        &[("enable.idempotence", "false"), ("retries", "0")],
    )?;
    // Separate flushes: a batch holding a keyless record is refused whole, as Kafka
    // refuses it.
    prod.send(BaseRecord::<[u8], [u8], usize>::with_opaque_to("keyed", 0).payload(b"no key"))
        .map_err(|(e, _)| e)?;
    prod.flush(Duration::from_secs(30))?;
    prod.send(
        BaseRecord::<[u8], [u8], usize>::with_opaque_to("keyed", 1)
            .key(b"k")
            .payload(b"keyed"),
    )
    .map_err(|(e, _)| e)?;
    prod.flush(Duration::from_secs(30))?;
    let failed = prod
        .context()
        .failed
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let ok = prod
        .context()
        .ok
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    ensure!(
        failed
            .iter()
            .any(|(i, e)| *i == 0 && (e.contains("InvalidRecord") || e.contains("validate record"))),
        "keyless record not refused: {failed:?}"
    );
    ensure!(
        ok.iter().any(|d| d.index == 1),
        "keyed record refused: {failed:?}"
    );
    Ok(())
}

#[test]
fn kill_9_in_the_middle_of_a_clean_loses_nothing() -> Result<()> {
    // A slow cleaner (200 kB/s) leaves time to kill the broker mid-clean.
    let mut broker = start(&[("log.cleaner.io.max.bytes.per.second", "200000")])?;
    let topic = "slowclean";
    create_topic(
        &broker.bootstrap(),
        topic,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "32768"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )?;
    let n = 20_000;
    let prod = producer(&broker.bootstrap(), &[])?;
    let delivered = produce_all(&prod, topic, n, |i| (Some(0), changelog_record(i, n)))?;
    drop(prod);
    let (by_offset, expected) = changelog_model(&delivered, n);
    let dir = broker.data_dir().join(format!("{topic}-0"));
    wait_until("a clean to be writing .cleaned files", WAIT, || {
        Ok(std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".cleaned")))
    })?;
    broker.kill9()?;
    broker.restart()?;
    let c = consumer(&broker.bootstrap(), &[])?;
    let read = consume_all(&c, topic, &[0])?;
    let latest = check_read(&read[&0], &by_offset)?;
    for (k, v) in &expected {
        if let Some(v) = v {
            ensure!(
                latest.get(k) == Some(&Some(v.clone())),
                "key {k:?} lost its value"
            );
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect();
    ensure!(leftovers.is_empty(), "left behind: {leftovers:?}");
    Ok(())
}

/// A commit-heavy workload: `__consumer_offsets` stays small, and the committed
/// offsets survive a restart.
#[test]
fn consumer_offsets_stay_bounded_and_survive_a_restart() -> Result<()> {
    let mut broker = start(&[
        ("offsets.topic.num.partitions", "1"),
        ("offsets.topic.segment.bytes", "16384"),
    ])?;
    let topic = "work";
    let prod = producer(&broker.bootstrap(), &[])?;
    produce_all(&prod, topic, 10, |i| {
        (
            Some(0),
            TestRecord {
                key: Some(vec![i as u8]),
                value: Some(vec![1; 10]),
                headers: vec![],
            },
        )
    })?;
    let commits = 3_000;
    let size_after = |broker: &Broker| -> Result<u64> {
        partition_info(broker, "__consumer_offsets")?["size_bytes"]
            .as_u64()
            .context("size")
    };
    let mut sizes = Vec::new();
    {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("group.id", "committer")
            .set("enable.auto.commit", "false")
            .create()?;
        for i in 0..commits {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, 0, Offset::Offset(i % 10 + 1))?;
            c.commit(&tpl, CommitMode::Sync)?;
            if i % 500 == 499 {
                sizes.push(size_after(&broker)?);
            }
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(7))?;
        c.commit(&tpl, CommitMode::Sync)?;
    }
    // Each commit record is ~100 bytes: 3,000 of them uncompacted would be ~300 kB.
    wait_until("__consumer_offsets to be compacted", WAIT, || {
        Ok(cleaned_offset(&broker, "__consumer_offsets")? > 0 && size_after(&broker)? < 100_000)
    })?;
    let final_size = size_after(&broker)?;
    println!("__consumer_offsets size every 500 commits: {sizes:?}, final {final_size}");
    broker.restart()?;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "committer")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(30))?;
    let off = committed
        .find_partition(topic, 0)
        .context("no committed offset")?
        .offset();
    ensure!(
        off == Offset::Offset(7),
        "committed offset after restart: {off:?}"
    );
    Ok(())
}

#[test]
fn kafka_python_reads_a_topic_being_compacted() -> Result<()> {
    let Some(python) = ClientScripts::python()? else {
        return Ok(());
    };
    let broker = start(&[("log.cleaner.io.max.bytes.per.second", "4000000")])?;
    python.run(
        "compaction_kafka_python.py",
        &[
            ("BROOK_BOOTSTRAP", &broker.bootstrap()),
            ("BROOK_ADMIN", &broker.admin_url()),
        ],
        || broker.log_tail(),
    )
}

/// `cleanup.policy=compact,delete`: retention removes old segments and the cleaner
/// compacts the rest.
#[test]
fn compact_delete_applies_both_policies() -> Result<()> {
    let broker = start(&[("log.retention.check.interval.ms", "100")])?;
    let topic = "both";
    create_topic(
        &broker.bootstrap(),
        topic,
        &[
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "60000"),
            ("segment.bytes", "4096"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let prod = producer(&broker.bootstrap(), &[("batch.size", "1000")])?;
    // Old records (ten minutes ago, past retention.ms), then recent ones rewriting
    // a few keys many times.
    for (i, ts) in (0..400)
        .map(|i| (i, now - 600_000))
        .chain((400..1200).map(|i| (i, now)))
    {
        let key = format!("k{}", i % 20);
        let value = format!("v{i}");
        prod.send(
            BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, i)
                .partition(0)
                .key(key.as_bytes())
                .payload(value.as_bytes())
                .timestamp(ts),
        )
        .map_err(|(e, _)| e)?;
        prod.poll(Duration::ZERO);
    }
    prod.flush(Duration::from_secs(60))?;
    wait_until("retention and compaction", WAIT, || {
        let p = partition_info(&broker, topic)?;
        Ok(p["log_start_offset"].as_i64() > Some(0)
            && p["compaction"]["cleaned_offset"].as_i64() > Some(400))
    })?;
    let c = consumer(&broker.bootstrap(), &[])?;
    let read = consume_all(&c, topic, &[0])?;
    let mut latest = BTreeMap::new();
    for r in &read[&0] {
        ensure!(
            r.offset >= 400,
            "a record past retention survived: {}",
            r.offset
        );
        latest.insert(r.record.key.clone(), r.record.value.clone());
    }
    for k in 0..20 {
        let want = format!("v{}", 1180 + k);
        ensure!(
            latest.get(&Some(format!("k{k}").into_bytes()))
                == Some(&Some(want.clone().into_bytes())),
            "key k{k} does not read {want}"
        );
    }
    ensure!(
        read[&0].len() < 800,
        "nothing was compacted: {} records",
        read[&0].len()
    );
    Ok(())
}
