//! brook's own Rust clients (brook-producer, brook-consumer) against a real
//! brook process: every codec written by brook-producer and read by librdkafka
//! and the reverse, Java-compatible key partitioning (compared with
//! librdkafka's `murmur2_random`), metadata refresh after partitions are
//! added, consumer seek / pause / out-of-range handling, committed offsets, and
//! the `brook produce | brook consume` round trip.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use brook_config::client::{ConsumerConfig, ProducerConfig};
use brook_consumer::{Consumer, ConsumerRecord, Error as ConsumerError};
use brook_producer::{Producer, ProducerRecord, TopicPartition};
use brook_tests::{brook_binary, Broker, BrokerOptions};
use common::{consume_all, consumer, produce_all, producer, TestRecord};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

const PARTITIONS: i32 = 3;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn pconf(bootstrap: &str, extra: &[(&str, &str)]) -> Result<ProducerConfig> {
    let mut entries = vec![("bootstrap.servers", bootstrap), ("linger.ms", "5")];
    entries.extend_from_slice(extra);
    Ok(ProducerConfig::from_map(entries)?)
}

fn cconf(bootstrap: &str, extra: &[(&str, &str)]) -> Result<ConsumerConfig> {
    let mut entries = vec![
        ("bootstrap.servers", bootstrap),
        ("auto.offset.reset", "earliest"),
        ("fetch.max.wait.ms", "100"),
    ];
    entries.extend_from_slice(extra);
    Ok(ConsumerConfig::from_map(entries)?)
}

fn record(tag: &str, i: usize) -> TestRecord {
    let mut value = format!("{tag}-{i:06}-").into_bytes();
    value.extend((0..(i * 31) % 200).map(|j| b'a' + ((i + j / 4) % 26) as u8));
    TestRecord {
        key: Some(format!("key-{}", i % 97).into_bytes()),
        value: Some(value),
        headers: vec![
            ("i".to_owned(), i.to_string().into_bytes()),
            ("tag".to_owned(), tag.as_bytes().to_vec()),
        ],
    }
}

fn to_producer_record(topic: &str, partition: i32, r: &TestRecord) -> ProducerRecord {
    let mut p = ProducerRecord {
        topic: topic.to_owned(),
        partition: Some(partition),
        ..Default::default()
    };
    p.key = r.key.clone().map(Into::into);
    p.value = r.value.clone().map(Into::into);
    for (k, v) in &r.headers {
        p = p.with_header(k.clone(), v.clone());
    }
    p
}

fn to_test_record(r: &ConsumerRecord) -> TestRecord {
    TestRecord {
        key: r.key.as_ref().map(|b| b.to_vec()),
        value: r.value.as_ref().map(|b| b.to_vec()),
        headers: r
            .headers
            .iter()
            .map(|h| {
                (
                    String::from_utf8_lossy(&h.key).into_owned(),
                    h.value.as_ref().map(|v| v.to_vec()).unwrap_or_default(),
                )
            })
            .collect(),
    }
}

/// Reads `total` records of `topic` from the beginning with brook-consumer.
async fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    total: usize,
) -> Result<Vec<ConsumerRecord>> {
    let mut c = Consumer::new(cconf(bootstrap, &[])?);
    c.assign((0..partitions).map(|p| TopicPartition::new(topic, p)));
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while out.len() < total {
        if tokio::time::Instant::now() > deadline {
            bail!("read {} of {total} records of {topic}", out.len());
        }
        out.extend(c.poll(Duration::from_millis(500)).await?);
    }
    ensure!(
        out.len() == total,
        "read {} records, expected {total}",
        out.len()
    );
    Ok(out)
}

/// brook-producer with each codec; librdkafka reads everything back identically.
#[test]
fn brook_producer_codecs_read_by_librdkafka() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(PARTITIONS))?;
    let rt = runtime()?;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("brook-out-{codec}");
        let n = 3000;
        let sent: BTreeMap<(i32, i64), TestRecord> = rt.block_on(async {
            let p = Producer::new(pconf(
                &broker.bootstrap(),
                &[("compression.type", codec), ("batch.size", "32768")],
            )?)?;
            let futures: Vec<_> = (0..n)
                .map(|i| {
                    let r = record(codec, i);
                    let pr = to_producer_record(&topic, (i % 3) as i32, &r);
                    (r, p.send(pr))
                })
                .collect();
            let mut sent = BTreeMap::new();
            for (r, f) in futures {
                let m = f.await?;
                ensure!(
                    sent.insert((m.partition, m.offset), r).is_none(),
                    "offset reported twice"
                );
            }
            p.close().await;
            anyhow::Ok(sent)
        })?;
        let c = consumer(&broker.bootstrap(), &[])?;
        let got = consume_all(&c, &topic, &[0, 1, 2])?;
        let got: BTreeMap<(i32, i64), TestRecord> = got
            .into_values()
            .flatten()
            .map(|c| ((c.partition, c.offset), c.record))
            .collect();
        ensure!(
            got == sent,
            "{codec}: librdkafka read {} records, brook acknowledged {}",
            got.len(),
            sent.len()
        );
    }
    Ok(())
}

/// librdkafka with each codec; brook-consumer reads everything back identically.
#[test]
fn librdkafka_codecs_read_by_brook_consumer() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(PARTITIONS))?;
    let rt = runtime()?;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("rdkafka-out-{codec}");
        let n = 3000;
        let p = producer(&broker.bootstrap(), &[("compression.type", codec)])?;
        let delivered = produce_all(&p, &topic, n, |i| (Some((i % 3) as i32), record(codec, i)))?;
        drop(p);
        let sent: BTreeMap<(i32, i64), TestRecord> = delivered
            .iter()
            .map(|d| ((d.partition, d.offset), record(codec, d.index)))
            .collect();
        let got = rt.block_on(read_all(&broker.bootstrap(), &topic, PARTITIONS, n))?;
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for r in &got {
            let prev = last.insert(r.partition, r.offset);
            ensure!(
                prev.is_none_or(|p| p < r.offset),
                "{codec}: offsets not increasing in partition {}",
                r.partition
            );
        }
        let got: BTreeMap<(i32, i64), TestRecord> = got
            .iter()
            .map(|r| ((r.partition, r.offset), to_test_record(r)))
            .collect();
        ensure!(
            got == sent,
            "{codec}: brook-consumer read {} records, librdkafka acknowledged {}",
            got.len(),
            sent.len()
        );
    }
    Ok(())
}

/// Keyed records land where librdkafka's Java-compatible `murmur2_random`
/// partitioner puts them, for several partition counts.
#[test]
fn key_partitioning_matches_librdkafka_murmur2() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(7))?;
    let rt = runtime()?;
    let keys: Vec<String> = (0..300).map(|i| format!("user-{i}-{}", i * 7919)).collect();
    let p = producer(&broker.bootstrap(), &[("partitioner", "murmur2_random")])?;
    let delivered = produce_all(&p, "keys-rdkafka", keys.len(), |i| {
        (
            None,
            TestRecord {
                key: Some(keys[i].clone().into_bytes()),
                value: Some(b"v".to_vec()),
                headers: Vec::new(),
            },
        )
    })?;
    drop(p);
    let theirs: BTreeMap<usize, i32> = delivered.iter().map(|d| (d.index, d.partition)).collect();
    let ours: BTreeMap<usize, i32> = rt.block_on(async {
        let p = Producer::new(pconf(&broker.bootstrap(), &[])?)?;
        let mut out = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            let m = p
                .send(ProducerRecord::new("keys-brook", "v").with_key(k.clone()))
                .await?;
            out.insert(i, m.partition);
        }
        p.close().await;
        anyhow::Ok(out)
    })?;
    ensure!(
        ours == theirs,
        "brook and librdkafka disagree on key partitions"
    );
    let used: std::collections::BTreeSet<i32> = ours.values().copied().collect();
    ensure!(
        used.len() == 7,
        "300 keys should use all 7 partitions, used {used:?}"
    );
    Ok(())
}

/// After CreatePartitions, the producer refreshes metadata and can write to the
/// new partitions.
#[test]
fn producer_sees_added_partitions() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(1))?;
    let rt = runtime()?;
    rt.block_on(async {
        let p = Producer::new(pconf(&broker.bootstrap(), &[("max.block.ms", "20000")])?)?;
        let m = p.send(ProducerRecord::new("grows", "before")).await?;
        ensure!(m.partition == 0);
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .create()?;
        let r = admin
            .create_partitions(&[NewPartitions::new("grows", 3)], &AdminOptions::new())
            .await?;
        for x in r {
            x.map_err(|(t, e)| anyhow::anyhow!("CreatePartitions {t}: {e}"))?;
        }
        let m = p
            .send(ProducerRecord::new("grows", "after").with_partition(2))
            .await?;
        ensure!(m.partition == 2 && m.offset == 0, "{m:?}");
        ensure!(p.client().cluster().partition_count("grows") == Some(3));
        p.close().await;
        let got = read_all(&broker.bootstrap(), "grows", 3, 2).await?;
        ensure!(got
            .iter()
            .any(|r| r.partition == 2 && r.value.as_deref() == Some(&b"after"[..])));
        anyhow::Ok(())
    })
}

/// seek, seek_to_beginning/end, position, pause/resume, and OFFSET_OUT_OF_RANGE
/// under each `auto.offset.reset`.
#[test]
fn consumer_seek_pause_and_out_of_range() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(1))?;
    let rt = runtime()?;
    rt.block_on(async {
        let bootstrap = broker.bootstrap();
        let p = Producer::new(pconf(&bootstrap, &[])?)?;
        let futures: Vec<_> = (0..100)
            .map(|i| p.send(ProducerRecord::new("seek", format!("v{i}"))))
            .collect();
        for f in futures {
            f.await?;
        }
        p.close().await;
        let tp = TopicPartition::new("seek", 0);

        let mut c = Consumer::new(cconf(&bootstrap, &[("max.poll.records", "10")])?);
        c.assign([tp.clone()]);
        ensure!(c.position(&tp).await? == 0, "earliest reset starts at 0");
        c.seek(&tp, 50)?;
        let recs = c.poll(Duration::from_secs(10)).await?;
        ensure!(
            recs.first().map(|r| r.offset) == Some(50),
            "after seek(50): {:?}",
            recs.first().map(|r| r.offset)
        );
        ensure!(
            recs.len() == 10,
            "max.poll.records caps a poll: {}",
            recs.len()
        );
        ensure!(recs.first().and_then(|r| r.value.clone()).as_deref() == Some(&b"v50"[..]));
        ensure!(c.position(&tp).await? == 60);
        c.seek_to_end(std::slice::from_ref(&tp))?;
        ensure!(c.position(&tp).await? == 100);
        c.seek_to_beginning(std::slice::from_ref(&tp))?;
        ensure!(c.position(&tp).await? == 0);

        c.pause(std::slice::from_ref(&tp))?;
        ensure!(
            c.poll(Duration::from_millis(300)).await?.is_empty(),
            "paused partitions return nothing"
        );
        c.resume(std::slice::from_ref(&tp))?;
        ensure!(
            c.poll(Duration::from_secs(10))
                .await?
                .first()
                .map(|r| r.offset)
                == Some(0)
        );

        // Out of range with earliest: back to the log start.
        c.seek(&tp, 1000)?;
        let recs = c.poll(Duration::from_secs(10)).await?;
        ensure!(
            recs.first().map(|r| r.offset) == Some(0),
            "earliest after out-of-range: {:?}",
            recs.first().map(|r| r.offset)
        );

        // Out of range with latest: to the log end, nothing returned.
        let mut c = Consumer::new(cconf(&bootstrap, &[("auto.offset.reset", "latest")])?);
        c.assign([tp.clone()]);
        c.seek(&tp, 1000)?;
        ensure!(c.poll(Duration::from_millis(500)).await?.is_empty());
        ensure!(c.position(&tp).await? == 100);

        // Out of range with none: an error naming the partition and offset.
        let mut c = Consumer::new(cconf(&bootstrap, &[("auto.offset.reset", "none")])?);
        c.assign([tp.clone()]);
        match c.position(&tp).await {
            Err(ConsumerError::NoOffset(_)) => {}
            other => bail!("expected NoOffset without committed offset, got {other:?}"),
        }
        c.seek(&tp, 1000)?;
        match c.poll(Duration::from_secs(10)).await {
            Err(ConsumerError::OffsetOutOfRange { offset: 1000, .. }) => {}
            other => bail!("expected OffsetOutOfRange, got {other:?}"),
        }
        ensure!(matches!(
            c.subscribe(&["seek"]),
            Err(ConsumerError::NoGroupId)
        ));
        anyhow::Ok(())
    })
}

/// commit_offsets / committed through the group coordinator, and a consumer
/// with the same group starting from the committed offset.
#[test]
fn consumer_commits_and_resumes_from_committed_offsets() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(1))?;
    let rt = runtime()?;
    rt.block_on(async {
        let bootstrap = broker.bootstrap();
        let p = Producer::new(pconf(&bootstrap, &[])?)?;
        let futures: Vec<_> = (0..20)
            .map(|i| p.send(ProducerRecord::new("commits", format!("v{i}"))))
            .collect();
        for f in futures {
            f.await?;
        }
        p.close().await;
        let tp = TopicPartition::new("commits", 0);
        let group = [("group.id", "g-commits"), ("enable.auto.commit", "false")];
        let c = Consumer::new(cconf(&bootstrap, &group)?);
        ensure!(
            c.committed(std::slice::from_ref(&tp)).await?.get(&tp) == Some(&None),
            "nothing committed yet"
        );
        c.commit_offsets(&[(tp.clone(), 7)]).await?;
        ensure!(c.committed(std::slice::from_ref(&tp)).await?.get(&tp) == Some(&Some(7)));
        let mut c2 = Consumer::new(cconf(&bootstrap, &group)?);
        c2.assign([tp.clone()]);
        let recs = c2.poll(Duration::from_secs(10)).await?;
        ensure!(
            recs.first().map(|r| r.offset) == Some(7),
            "resumes at the committed offset"
        );
        let last = recs.last().map_or(0, |r| r.offset);
        c2.commit_sync().await?;
        ensure!(c.committed(std::slice::from_ref(&tp)).await?.get(&tp) == Some(&Some(last + 1)));
        let plain = Consumer::new(cconf(&bootstrap, &[])?);
        ensure!(matches!(
            plain.committed(&[tp]).await,
            Err(ConsumerError::NoGroupId)
        ));
        anyhow::Ok(())
    })
}

/// `brook produce` reads lines (key separator, headers, compression) and
/// `brook consume --format json` prints them back; errors are one line and a
/// non-zero exit.
#[test]
fn cli_produce_consume_round_trip() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(PARTITIONS))?;
    let bin = brook_binary()?;
    let lines: Vec<String> = (0..500).map(|i| format!("k{}|value {i}", i % 10)).collect();
    let mut child = Command::new(&bin)
        .args([
            "produce",
            "--topic",
            "cli",
            "--bootstrap",
            &broker.bootstrap(),
            "--key-separator",
            "|",
            "--headers",
            "src=cli",
            "--compression",
            "zstd",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .context("spawning brook produce")?;
    {
        let mut stdin = child.stdin.take().context("stdin")?;
        for l in &lines {
            writeln!(stdin, "{l}")?;
        }
    }
    ensure!(child.wait()?.success(), "brook produce failed");
    let out = Command::new(&bin)
        .args([
            "consume",
            "--topic",
            "cli",
            "--bootstrap",
            &broker.bootstrap(),
            "--from-beginning",
            "--count",
            "500",
            "--format",
            "json",
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "brook consume failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<(String, String)> = Vec::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        ensure!(
            v["headers"] == serde_json::json!([["src", "cli"]]),
            "headers: {line}"
        );
        got.push((
            v["key"].as_str().unwrap_or_default().to_owned(),
            v["value"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let mut want: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| l.split_once('|'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    got.sort();
    want.sort();
    ensure!(got == want, "round trip differs: got {} records", got.len());

    let bad = Command::new(&bin)
        .args([
            "consume",
            "--topic",
            "no-such-topic",
            "--bootstrap",
            &broker.bootstrap(),
        ])
        .output()?;
    let err = String::from_utf8_lossy(&bad.stderr);
    ensure!(
        !bad.status.success()
            && err.contains("unknown topic no-such-topic")
            && err.lines().count() == 1,
        "{err}"
    );
    let down = Command::new(&bin)
        .args(["produce", "--topic", "t", "--bootstrap", "127.0.0.1:1"])
        .stdin(Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&down.stderr);
    ensure!(
        !down.status.success() && err.contains("cannot reach a broker") && err.lines().count() == 1,
        "{err}"
    );
    Ok(())
}
