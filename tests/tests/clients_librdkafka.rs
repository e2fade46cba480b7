//! librdkafka (through the `rdkafka` crate) against a real brook process: bulk
//! produce/consume per compression codec with keys and headers, the idempotent
//! producer, Metadata, and the admin API (CreateTopics, DescribeConfigs, DeleteTopics).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use brook_tests::{wait_until, Broker, BrokerOptions};
use common::{checksum, consume_all, consumer, produce_all, producer, TestRecord};
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

const PARTITIONS: i32 = 4;
const RECORDS_PER_CODEC: usize = 100_000;

/// Deterministic record `i`: a key, a partly compressible value whose length varies,
/// and two headers, so codecs, varints and header parsing are all exercised.
fn record(codec: &str, i: usize) -> TestRecord {
    let mut value = format!("{codec}-value-{i:08}-").into_bytes();
    let fill = 20 + (i * 7919) % 180;
    value.extend((0..fill).map(|j| b'a' + ((i + j / 8) % 26) as u8));
    TestRecord {
        key: Some(format!("key-{}", i % 5000).into_bytes()),
        value: Some(value),
        headers: vec![
            ("idx".to_owned(), i.to_le_bytes().to_vec()),
            ("codec".to_owned(), codec.as_bytes().to_vec()),
        ],
    }
}

/// Produce 100k records over 4 partitions with `codec`, read them back with an
/// assign-based consumer, and compare per-partition checksums of
/// (partition, offset, key, value, headers) with what the delivery reports promised.
fn roundtrip_codec(codec: &str) -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(PARTITIONS))?;
    let topic = format!("codec-{codec}");
    let producer = producer(
        &broker.bootstrap(),
        &[
            ("compression.type", codec),
            ("batch.num.messages", "5000"),
            ("linger.ms", "20"),
        ],
    )?;
    let delivered = produce_all(&producer, &topic, RECORDS_PER_CODEC, |i| {
        (Some((i % PARTITIONS as usize) as i32), record(codec, i))
    })?;
    drop(producer);

    // Expected: per partition, records ordered by the offsets the broker acknowledged.
    let mut expected: BTreeMap<i32, Vec<(i64, TestRecord)>> = BTreeMap::new();
    for d in &delivered {
        ensure!(
            d.partition == (d.index % PARTITIONS as usize) as i32,
            "record {} was delivered to partition {} instead of {}",
            d.index,
            d.partition,
            d.index % PARTITIONS as usize
        );
        expected
            .entry(d.partition)
            .or_default()
            .push((d.offset, record(codec, d.index)));
    }
    for (p, recs) in &mut expected {
        recs.sort_by_key(|(o, _)| *o);
        let offsets: Vec<i64> = recs.iter().map(|(o, _)| *o).collect();
        let want: Vec<i64> = (0..recs.len() as i64).collect();
        ensure!(
            offsets == want,
            "partition {p}: acknowledged offsets are not 0..{} without gaps/duplicates",
            recs.len()
        );
    }

    let consumer = consumer(&broker.bootstrap(), &[])?;
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let got = consume_all(&consumer, &topic, &partitions)?;
    for p in &partitions {
        let want = expected.get(p).map(Vec::as_slice).unwrap_or_default();
        let have = got.get(p).map(Vec::as_slice).unwrap_or_default();
        ensure!(
            have.len() == want.len(),
            "{codec} partition {p}: consumed {} records, produced {}",
            have.len(),
            want.len()
        );
        let want_sum = checksum(want.iter().map(|(o, r)| (*p, *o, r)));
        let have_sum = checksum(have.iter().map(|c| (c.partition, c.offset, &c.record)));
        if want_sum != have_sum {
            // Name the first differing record, not just the checksum.
            for ((wo, wr), c) in want.iter().zip(have) {
                ensure!(
                    *wo == c.offset && *wr == c.record,
                    "{codec} partition {p}: first mismatch at offset {wo}: produced {wr:?}, \
                     consumed {c:?}"
                );
            }
            bail!("{codec} partition {p}: checksum mismatch");
        }
    }
    Ok(())
}

#[test]
fn roundtrip_100k_uncompressed() -> Result<()> {
    roundtrip_codec("none")
}

#[test]
fn roundtrip_100k_gzip() -> Result<()> {
    roundtrip_codec("gzip")
}

#[test]
fn roundtrip_100k_snappy() -> Result<()> {
    roundtrip_codec("snappy")
}

#[test]
fn roundtrip_100k_lz4() -> Result<()> {
    roundtrip_codec("lz4")
}

#[test]
fn roundtrip_100k_zstd() -> Result<()> {
    roundtrip_codec("zstd")
}

/// `enable.idempotence=true` with acks=all: InitProducerId, sequence numbers, and
/// exactly-once, in-order delivery per partition.
#[test]
fn idempotent_producer_acks_all() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(3))?;
    let topic = "idempotent";
    let producer = producer(
        &broker.bootstrap(),
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            ("batch.num.messages", "500"),
        ],
    )?;
    let n = 20_000;
    let delivered = produce_all(&producer, topic, n, |i| {
        (
            Some((i % 3) as i32),
            TestRecord {
                key: Some(format!("k{i}").into_bytes()),
                value: Some(format!("{i:010}").into_bytes()),
                headers: Vec::new(),
            },
        )
    })?;
    drop(producer);
    ensure!(
        delivered.len() == n,
        "{} of {n} acknowledged",
        delivered.len()
    );

    let consumer = consumer(&broker.bootstrap(), &[])?;
    let got = consume_all(&consumer, topic, &[0, 1, 2])?;
    let mut seen = HashSet::new();
    for (p, recs) in &got {
        let mut last = None;
        for c in recs {
            let v = c.record.value.as_deref().unwrap_or_default();
            let i: usize = std::str::from_utf8(v)?.parse()?;
            ensure!(seen.insert(i), "record {i} appears twice (partition {p})");
            ensure!(i % 3 == *p as usize, "record {i} found in partition {p}");
            ensure!(
                last.is_none_or(|l| l < i),
                "partition {p}: record {i} after {last:?} (reordered)"
            );
            last = Some(i);
        }
    }
    ensure!(
        seen.len() == n,
        "consumed {} distinct records of {n}",
        seen.len()
    );
    Ok(())
}

/// A full Metadata request lists every topic with its partition count, one broker
/// (this one, at the address clients bootstrapped from) and a leader per partition.
#[test]
fn metadata_lists_topics_and_broker() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(2))?;
    let producer = producer(&broker.bootstrap(), &[])?;
    for t in ["meta-a", "meta-b"] {
        produce_all(&producer, t, 10, |i| {
            (
                None,
                TestRecord {
                    key: None,
                    value: Some(format!("{i}").into_bytes()),
                    headers: Vec::new(),
                },
            )
        })?;
    }
    drop(producer);
    let consumer: BaseConsumer = consumer(&broker.bootstrap(), &[])?;
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(30))
        .context("Metadata for all topics")?;
    ensure!(md.brokers().len() == 1, "brokers: {:?}", md.brokers().len());
    let b = &md.brokers()[0];
    ensure!(
        b.port() == i32::from(broker.kafka_addr().port()) && b.id() == 1,
        "broker advertised as id {} at {}:{}, expected id 1 at {}",
        b.id(),
        b.host(),
        b.port(),
        broker.bootstrap()
    );
    for t in ["meta-a", "meta-b"] {
        let topic = md
            .topics()
            .iter()
            .find(|x| x.name() == t)
            .ok_or_else(|| anyhow!("topic {t} missing from Metadata"))?;
        ensure!(topic.error().is_none(), "{t}: error {:?}", topic.error());
        ensure!(
            topic.partitions().len() == 2,
            "{t}: {} partitions",
            topic.partitions().len()
        );
        for p in topic.partitions() {
            ensure!(p.leader() == 1, "{t}/{}: leader {}", p.id(), p.leader());
            ensure!(
                p.replicas() == [1] && p.isr() == [1],
                "{t}/{}: replicas/isr",
                p.id()
            );
        }
    }
    Ok(())
}

fn admin(bootstrap: &str) -> Result<AdminClient<DefaultClientContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating admin client")
}

fn topic_names(broker: &Broker) -> Result<Vec<String>> {
    let c: BaseConsumer = consumer(&broker.bootstrap(), &[])?;
    let md = c.fetch_metadata(None, Duration::from_secs(10))?;
    Ok(md.topics().iter().map(|t| t.name().to_owned()).collect())
}

/// CreateTopics (with a topic config, duplicate, invalid config), DescribeConfigs
/// (explicit value with its dynamic source plus defaults), DeleteTopics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_describe_delete_topics() -> Result<()> {
    let broker = Broker::start_default()?;
    let admin = admin(&broker.bootstrap())?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));

    let new = NewTopic::new("admin-t", 3, TopicReplication::Fixed(1)).set("retention.ms", "123456");
    let res = admin.create_topics([&new], &opts).await?;
    ensure!(
        matches!(res.as_slice(), [Ok(n)] if n == "admin-t"),
        "create admin-t: {res:?}"
    );

    let again = admin.create_topics([&new], &opts).await?;
    ensure!(
        matches!(
            again.as_slice(),
            [Err((_, RDKafkaErrorCode::TopicAlreadyExists))]
        ),
        "creating admin-t twice: {again:?}"
    );

    let bad = NewTopic::new("admin-bad", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "not-a-policy");
    let res = admin.create_topics([&bad], &opts).await?;
    ensure!(
        matches!(res.as_slice(), [Err((_, RDKafkaErrorCode::InvalidConfig))]),
        "invalid topic config must be INVALID_CONFIG: {res:?}"
    );

    let c: BaseConsumer = consumer(&broker.bootstrap(), &[])?;
    let md = c.fetch_metadata(Some("admin-t"), Duration::from_secs(10))?;
    let parts = md.topics().first().map(|t| t.partitions().len());
    ensure!(
        parts == Some(3),
        "admin-t has {parts:?} partitions, created with 3"
    );

    let configs = admin
        .describe_configs([&ResourceSpecifier::Topic("admin-t")], &opts)
        .await?;
    let [Ok(resource)] = configs.as_slice() else {
        bail!("describe_configs: {configs:?}");
    };
    let retention = resource
        .get("retention.ms")
        .ok_or_else(|| anyhow!("retention.ms missing from DescribeConfigs"))?;
    ensure!(
        retention.value.as_deref() == Some("123456")
            && retention.source == ConfigSource::DynamicTopic
            && !retention.is_default,
        "retention.ms: {retention:?}"
    );
    // Defaults are part of the answer too (DESIGN.md §3).
    let cleanup = resource
        .get("cleanup.policy")
        .ok_or_else(|| anyhow!("cleanup.policy (a default) missing from DescribeConfigs"))?;
    ensure!(
        cleanup.value.as_deref() == Some("delete") && cleanup.source != ConfigSource::DynamicTopic,
        "cleanup.policy: {cleanup:?}"
    );

    let res = admin.delete_topics(&["admin-t"], &opts).await?;
    ensure!(
        matches!(res.as_slice(), [Ok(n)] if n == "admin-t"),
        "delete admin-t: {res:?}"
    );
    wait_until("admin-t to leave Metadata", Duration::from_secs(10), || {
        Ok(!topic_names(&broker)?.iter().any(|t| t == "admin-t"))
    })?;
    let res = admin.delete_topics(&["admin-t"], &opts).await?;
    ensure!(
        matches!(
            res.as_slice(),
            [Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))]
        ),
        "deleting a deleted topic: {res:?}"
    );
    Ok(())
}

/// Fetch from an offset inside a compressed batch: the broker returns the whole
/// batch and the client skips the records below the offset (DESIGN.md §3), so the
/// first record seen is exactly the one asked for.
#[test]
fn fetch_from_the_middle_of_a_compressed_batch() -> Result<()> {
    let broker = Broker::start_default()?;
    let producer = producer(
        &broker.bootstrap(),
        &[
            ("compression.type", "gzip"),
            ("linger.ms", "200"),
            ("batch.num.messages", "10000"),
        ],
    )?;
    let delivered = produce_all(&producer, "mid", 1000, |i| {
        (
            Some(0),
            TestRecord {
                key: None,
                value: Some(format!("{i}").into_bytes()),
                headers: Vec::new(),
            },
        )
    })?;
    drop(producer);
    let offset_of: std::collections::HashMap<usize, i64> =
        delivered.iter().map(|d| (d.index, d.offset)).collect();

    for start in [1i64, 537, 999] {
        let c = consumer(&broker.bootstrap(), &[])?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("mid", 0, rdkafka::Offset::Offset(start))?;
        c.assign(&tpl)?;
        let mut got = Vec::new();
        wait_until(
            &format!("records from offset {start}"),
            Duration::from_secs(30),
            || {
                // Drain everything already fetched before the next check.
                let mut wait = Duration::from_millis(100);
                while let Some(m) = c.poll(wait) {
                    let m = m?;
                    got.push((m.offset(), m.payload().map(<[u8]>::to_vec)));
                    wait = Duration::ZERO;
                }
                Ok(got.len() as i64 >= 1000 - start)
            },
        )?;
        ensure!(
            got[0].0 == start,
            "asked for offset {start}, first record is at {}",
            got[0].0
        );
        for (off, value) in &got {
            let i: usize = std::str::from_utf8(value.as_deref().unwrap_or_default())?.parse()?;
            ensure!(
                offset_of.get(&i) == Some(off),
                "offset {off} holds record {i}"
            );
        }
    }
    Ok(())
}

/// acks=0 (fire and forget) and acks=1 produce both land; with acks=0 the
/// client learns no offsets, so completion is observed through the high watermark.
#[test]
fn produce_with_acks_0_and_1() -> Result<()> {
    let broker = Broker::start_default()?;
    for (acks, topic) in [("1", "acks1"), ("0", "acks0")] {
        let producer = producer(&broker.bootstrap(), &[("acks", acks)])?;
        produce_all(&producer, topic, 3000, |i| {
            (
                None,
                TestRecord {
                    key: Some(format!("{i}").into_bytes()),
                    value: Some(vec![b'v'; 100]),
                    headers: Vec::new(),
                },
            )
        })?;
        drop(producer);
        let c = consumer(&broker.bootstrap(), &[])?;
        wait_until(
            &format!("acks={acks}: high watermark 3000"),
            Duration::from_secs(30),
            || {
                let (_, high) = c.fetch_watermarks(topic, 0, Duration::from_secs(5))?;
                ensure!(
                    high <= 3000,
                    "acks={acks}: high watermark {high} > 3000 records sent"
                );
                Ok(high == 3000)
            },
        )?;
        let got = consume_all(&c, topic, &[0])?;
        let n = got.get(&0).map_or(0, Vec::len);
        ensure!(n == 3000, "acks={acks}: consumed {n} of 3000");
    }
    Ok(())
}
