//! The librdkafka side: one producer phase and one consumer phase, each timed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use brook_benches::sink;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Upper bound on one produce or consume phase.
const PHASE_TIMEOUT: Duration = Duration::from_secs(300);

/// Counts delivery reports; remembers the first failure.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// The producer settings, also printed into the results file.
pub fn producer_config(bootstrap: &str, acks: &str) -> Vec<(&'static str, String)> {
    let idempotent = acks == "all";
    vec![
        ("bootstrap.servers", bootstrap.to_owned()),
        ("acks", acks.to_owned()),
        ("enable.idempotence", idempotent.to_string()),
        ("linger.ms", "5".into()),
        ("batch.size", "1000000".into()),
        ("compression.type", "none".into()),
    ]
}

/// Partitions of `__consumer_offsets` under the default
/// `offsets.topic.num.partitions`.
const OFFSETS_PARTITIONS: i32 = 50;

/// The consumer's group id: one whose `__consumer_offsets` partition is the
/// last (49). brook opens a new topic's partitions in order, so once this
/// group's coordinator answers, the whole topic is open and no one-time
/// creation work runs beside the timed consume phase.
fn group_id() -> String {
    (0..)
        .map(|i| format!("brook-e2e-{i}"))
        .find(|g| {
            brook_broker::group::partition_for(g, OFFSETS_PARTITIONS) == OFFSETS_PARTITIONS - 1
        })
        .unwrap_or_default()
}

pub fn consumer_config(bootstrap: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", bootstrap.to_owned()),
        // librdkafka's `assign` needs a group handle; the group is never joined
        // (no subscribe) and never committed to.
        ("group.id", group_id()),
        ("enable.auto.commit", "false".into()),
        // librdkafka pauses fetching for `fetch.queue.backoff.ms` (default 1 s) each
        // time its local queue passes `queued.min.messages`; at these rates that
        // happens a few times per run, at random points, and the pauses (not the
        // broker) then decide the figure. 10 ms keeps the pause without the cliff.
        ("fetch.queue.backoff.ms", "10".into()),
        ("enable.auto.offset.store", "false".into()),
    ]
}

fn client_config(pairs: &[(&'static str, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in pairs {
        c.set(*k, v);
    }
    c
}

/// Produce `n` records of `size` bytes to partition 0 of `topic`; returns the time
/// from the first send to the last delivery report (after a metadata warm-up that
/// also creates the topic, which is not measured).
pub fn produce(bootstrap: &str, topic: &str, acks: &str, size: usize, n: u64) -> Result<Duration> {
    let producer: BaseProducer<Deliveries> = client_config(&producer_config(bootstrap, acks))
        .create_with_context(Deliveries::default())?;
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .context("producer metadata warm-up")?;
    let payload = sink::payload(size);
    let start = Instant::now();
    for i in 0..n {
        let mut record = BaseRecord::to(topic).partition(0).payload(&payload[..]);
        loop {
            match producer.send::<[u8], [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The local queue is full: serve delivery reports, then retry.
                    producer.poll(Duration::from_millis(1));
                    record = r;
                }
                Err((e, _)) => return Err(e).context("producing"),
            }
        }
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
        ensure!(
            start.elapsed() < PHASE_TIMEOUT,
            "produce phase exceeded {PHASE_TIMEOUT:?}"
        );
    }
    producer
        .flush(PHASE_TIMEOUT)
        .context("flushing the producer")?;
    let elapsed = start.elapsed();
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = ctx.first_error.lock().ok().and_then(|f| f.clone());
        bail!(
            "{failed} deliveries failed; first: {}",
            first.unwrap_or_default()
        );
    }
    let ok = ctx.ok.load(Ordering::Relaxed);
    ensure!(ok == n, "{ok} of {n} records acknowledged");
    Ok(elapsed)
}

/// Consume `n` records from offset 0 of partition 0 of `topic` with an explicit
/// assignment; checks offsets are contiguous and every value has `size` bytes.
/// Returns the time from `assign` to the n-th record.
///
/// With `groups` (the target has group coordinators: brook, not the sink),
/// waits for the consumer's group coordinator before the timed phase.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    size: usize,
    n: u64,
    groups: bool,
) -> Result<Duration> {
    let consumer: BaseConsumer = client_config(&consumer_config(bootstrap)).create()?;
    consumer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .context("consumer metadata warm-up")?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(0))?;
    // The group id makes librdkafka look up its coordinator at once, and the
    // first lookup creates `__consumer_offsets` (50 partitions). Wait for all
    // of it here (see `group_id`): otherwise the one-time creation overlaps the
    // timed phase. It did for brook, whose creation runs beside the fetches
    // (the pre-cluster brook created it on the runtime thread, before
    // answering), and made 1 KiB consume look 14 % slower than it is.
    if groups {
        consumer
            .committed_offsets(tpl.clone(), Duration::from_secs(30))
            .context("consumer coordinator warm-up")?;
    }
    let start = Instant::now();
    consumer.assign(&tpl)?;
    let mut next: i64 = 0;
    let end = i64::try_from(n)?;
    while next < end {
        ensure!(
            start.elapsed() < PHASE_TIMEOUT,
            "consume phase exceeded {PHASE_TIMEOUT:?} at offset {next}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => return Err(e).context("consuming"),
            Some(Ok(m)) => {
                ensure!(
                    m.offset() == next,
                    "expected offset {next}, got {}",
                    m.offset()
                );
                let len = m.payload().map_or(0, <[u8]>::len);
                ensure!(
                    len == size,
                    "record {next} has {len} bytes, expected {size}"
                );
                next += 1;
            }
        }
    }
    Ok(start.elapsed())
}
