//! One partition replica hosted by this broker: its log, its leader epoch and
//! high-water mark, its idempotent-producer table, and the notification that
//! wakes long-polling fetches.
//!
//! The high-water mark (HW) is the offset below which records are visible to
//! consumers. With brook's default durability a record counts only once it is
//! fsynced, so HW = durable log end offset (min over the ISR once replication
//! exists); a topic that relaxes durability (`flush.messages` / `flush.ms`) has
//! HW = log end offset. Either way a consumer never reads a record that a crash
//! could take away and hand to another record's offset.
//!
//! Concurrency: appends are serialised by `append` (a tokio mutex that also
//! guards the producer table, so dedup-check + append is atomic); reads take no
//! partition lock. HW changes are published on a `watch` channel.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, RwLock};

use brook_config::{Durability, TopicConfig};
use brook_protocol::codec::Uuid;
use brook_protocol::records::{BatchHeader, BatchIter};
use tokio::sync::{watch, Mutex};

use crate::error::BrokerError;

mod flusher;
use crate::log::{AppendInfo, PartitionLog, ReadResult};
use crate::producer_state::{BatchIdentity, ProducerStateTable, SequenceCheck};

/// Result of a produce append.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// Records appended (0 for a duplicate).
    pub records: u64,
    /// The batch was a retry already in the log: nothing was written.
    pub duplicate: bool,
}

/// A partition hosted by this broker.
#[derive(Debug)]
pub struct Partition {
    pub topic: Arc<str>,
    pub topic_id: Uuid,
    pub index: i32,
    log: Arc<PartitionLog>,
    leader_epoch: AtomicI32,
    /// Whether this broker leads the partition (per the published image).
    leader: AtomicBool,
    hw: Arc<watch::Sender<i64>>,
    flusher: Arc<flusher::Flusher>,
    producers: Mutex<ProducerStateTable>,
    config: RwLock<Arc<TopicConfig>>,
}

impl Partition {
    /// Wrap an opened log. `hw` is the checkpointed high-water mark; it is capped
    /// by what the log holds.
    pub fn new(
        topic: Arc<str>,
        topic_id: Uuid,
        index: i32,
        log: PartitionLog,
        leader_epoch: i32,
        config: Arc<TopicConfig>,
        producers: ProducerStateTable,
    ) -> Self {
        // After recovery everything in the log is durable: the recovery scan
        // only keeps what was written, and on a clean start it was flushed.
        let hw = Arc::new(watch::Sender::new(log.log_end_offset()));
        let log = Arc::new(log);
        Self {
            topic,
            topic_id,
            index,
            flusher: flusher::Flusher::new(log.clone(), hw.clone()),
            log,
            leader_epoch: AtomicI32::new(leader_epoch),
            leader: AtomicBool::new(true),
            hw,
            producers: Mutex::new(producers),
            config: RwLock::new(config),
        }
    }

    /// Whether a periodic-durability partition should flush now: more than
    /// `flush_messages` offsets or more than `flush_ms` since the last flush.
    pub fn flush_due(&self, flush_ms: i64, flush_messages: i64) -> bool {
        let unflushed = self.log.log_end_offset() - self.log.recovery_point();
        if unflushed <= 0 {
            return false;
        }
        if unflushed >= flush_messages {
            return true;
        }
        let last = self.flusher.last_flush();
        u128::try_from(flush_ms).is_ok_and(|ms| last.elapsed().as_millis() >= ms)
    }

    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Take the role and leader epoch of a committed metadata change.
    /// Epochs only move forward: an older one is ignored.
    pub fn set_role(&self, leader: bool, epoch: i32) {
        self.leader_epoch.fetch_max(epoch, Ordering::AcqRel);
        self.leader.store(leader, Ordering::Release);
    }

    /// Whether this broker leads the partition: only a leader takes
    /// produce requests and serves consumers.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        *self.hw.borrow()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// A receiver that changes whenever the HW moves (fetch long-poll).
    pub fn subscribe_hw(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set_config(&self, config: Arc<TopicConfig>) {
        if config.durability == Durability::Periodic {
            // Records appended under fsync-before-ack wait for the flusher;
            // under periodic durability they are visible at once.
            self.advance_hw(self.log.log_end_offset());
        }
        let mut guard = match self.config.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *guard = config;
    }

    fn advance_hw(&self, to: i64) {
        self.hw.send_if_modified(|hw| {
            if to > *hw {
                *hw = to;
                true
            } else {
                false
            }
        });
    }

    /// Append one produce payload (one or more record batches, already taken out
    /// of the request). Validates every batch, applies idempotence, assigns
    /// offsets. Does not wait for durability; see [`Partition::wait_durable`].
    ///
    /// # Errors
    /// Corrupt batches, sequence/epoch violations, storage errors.
    pub async fn append(&self, records: &mut [u8], now_ms: i64) -> Result<Appended, BrokerError> {
        let config = self.config();
        let mut producers = self.producers.lock().await;
        // Idempotence: Kafka clients send one batch per partition per request;
        // the identity of a multi-batch payload is checked per batch.
        let mut ids = Vec::with_capacity(1);
        let mut checked = 0usize;
        let create_time = config.message_timestamp_type == brook_config::TimestampType::CreateTime;
        // Structural pass only: the CRC32C of every batch is checked once, by
        // the log's append, except where a batch is answered without being
        // appended (a duplicate) or rewritten first (log-append time) — those
        // paths validate it themselves below.
        for (_, h) in BatchIter::new(records) {
            if create_time {
                check_timestamp(h.max_timestamp(), now_ms, &config)?;
            }
            checked += h.total_size().unwrap_or(0);
            ids.push(BatchIdentity {
                producer_id: h.producer_id(),
                producer_epoch: h.producer_epoch(),
                base_sequence: h.base_sequence(),
                last_sequence: h.last_sequence(),
            });
        }
        if checked != records.len() || ids.is_empty() {
            return Err(BrokerError::CorruptMessage(
                "record set has trailing or missing bytes",
            ));
        }
        if config.cleanup_policy.compact {
            check_keys(records, &self.topic, self.index)?;
        }
        if ids.len() == 1 {
            match producers.check(&ids[0]) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(c) => {
                    // Never acknowledge a corrupt retry as the original.
                    BatchHeader::new(records)
                        .and_then(|h| h.validate())
                        .map_err(BrokerError::CorruptBatch)?;
                    return Ok(Appended {
                        base_offset: c.first_offset,
                        last_offset: c.last_offset,
                        log_append_time: -1,
                        log_start_offset: self.log.log_start_offset(),
                        records: 0,
                        duplicate: true,
                    });
                }
                SequenceCheck::InvalidEpoch => return Err(BrokerError::InvalidProducerEpoch),
                SequenceCheck::OutOfOrder => return Err(BrokerError::OutOfOrderSequence),
                SequenceCheck::UnknownProducer => return Err(BrokerError::UnknownProducerId),
            }
        } else if ids.iter().any(|id| id.producer_id >= 0) {
            return Err(BrokerError::InvalidRecord(
                "idempotent produce requests carry one batch per partition",
            ));
        }
        let log_append_time = match config.message_timestamp_type {
            brook_config::TimestampType::LogAppendTime => Some(now_ms),
            brook_config::TimestampType::CreateTime => None,
        };
        let log = self.log.clone();
        let epoch = self.leader_epoch();
        if let Some(ts) = log_append_time {
            // Patching recomputes the CRC, so a corrupt batch must be refused first.
            for (_, h) in BatchIter::new(records) {
                h.validate().map_err(BrokerError::CorruptBatch)?;
            }
            let mut pos = 0;
            while pos < records.len() {
                let size = BatchHeader::new(&records[pos..])
                    .ok()
                    .and_then(|h| h.total_size())
                    .ok_or(BrokerError::CorruptMessage(
                        "record set changed during append",
                    ))?;
                brook_protocol::records::header::set_log_append_time(
                    &mut records[pos..pos + size],
                    ts,
                )
                .map_err(BrokerError::CorruptBatch)?;
                pos += size;
            }
        }
        let info: AppendInfo = log.append_as_leader(records, epoch)?;
        for id in &ids {
            producers.record(id, info.first_offset, info.last_offset, info.max_timestamp);
        }
        drop(producers);
        if config.durability == Durability::Periodic {
            self.advance_hw(info.last_offset + 1);
        }
        Ok(Appended {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: self.log.log_start_offset(),
            records: u64::try_from(info.record_count).unwrap_or(0),
            duplicate: false,
        })
    }

    /// Make everything up to and including `offset` durable (group-committed with
    /// concurrent callers) and advance the HW accordingly.
    ///
    /// # Errors
    /// A failed fsync; the log is then offline for good.
    pub async fn wait_durable(&self, offset: i64) -> Result<(), BrokerError> {
        self.flusher
            .wait(offset.saturating_add(1))
            .await
            .map_err(|_| {
                BrokerError::Storage(format!(
                    "{}-{}: log flush failed; partition offline",
                    self.topic, self.index
                ))
            })
    }

    /// Flush and close the log and stop the flusher (shutdown, topic deletion).
    /// Later appends fail with a partition-local error.
    ///
    /// # Errors
    /// The final flush failed.
    pub fn close(&self) -> Result<(), BrokerError> {
        self.flusher.close();
        Ok(self.log.close()?)
    }

    /// Start making everything appended so far durable, without waiting.
    pub fn request_flush(&self) {
        self.flusher.request();
    }

    /// Flush whatever is appended (periodic flusher, shutdown).
    ///
    /// # Errors
    /// A failed fsync.
    pub async fn flush_all(&self) -> Result<(), BrokerError> {
        let end = self.log.log_end_offset();
        if end > 0 {
            self.wait_durable(end - 1).await?;
        }
        Ok(())
    }

    /// Read records for a consumer: at most up to the HW.
    ///
    /// # Errors
    /// OFFSET_OUT_OF_RANGE and storage errors.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult, BrokerError> {
        let hw = self.high_watermark();
        Ok(self.log.read(offset, max_bytes as u64, hw, min_one)?)
    }
}

/// Largest records section decompressed to check keys on a compacted topic.
const MAX_KEY_CHECK_DECOMPRESSED: usize = 64 << 20;

/// A compacted topic refuses records without a key, as Kafka does: the whole batch
/// fails with INVALID_RECORD and each keyless record is named (KIP-467).
fn check_keys(records: &[u8], topic: &str, index: i32) -> Result<(), BrokerError> {
    // Listed per record up to this many (a hostile batch of a million tiny keyless
    // records must not cost a million messages); the summary counts them all.
    const MAX_LISTED: usize = 1000;
    let mut errors = Vec::new();
    let mut keyless = 0usize;
    let mut at = 0i32;
    for (pos, h) in BatchIter::new(records) {
        if h.is_control() {
            continue;
        }
        let size = h.total_size().unwrap_or(0);
        let bytes = bytes::Bytes::copy_from_slice(&records[pos..pos + size]);
        let batch =
            brook_protocol::records::RecordBatch::decode(&bytes, MAX_KEY_CHECK_DECOMPRESSED)
                .map_err(|_| BrokerError::CorruptMessage("record batch does not decode"))?;
        for r in batch.records() {
            let r = r.map_err(|_| BrokerError::CorruptMessage("record does not decode"))?;
            if r.key.is_none() {
                keyless += 1;
                if errors.len() < MAX_LISTED {
                    errors.push((
                        at,
                        format!("Compacted topic cannot accept message without key in topic partition {topic}-{index}."),
                    ));
                }
            }
            at = at.saturating_add(1);
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = errors.iter().take(3).map(|(_, m)| m.as_str()).collect();
    Err(BrokerError::RecordErrors {
        summary: format!(
            "One or more records have been rejected due to {keyless} record errors in total, and only showing the first three errors at most: {shown:?}"
        ),
        errors,
    })
}

/// `message.timestamp.before.max.ms` / `after.max.ms`: a timestamp far in the
/// future would keep its segment (and all after it) from ever expiring.
fn check_timestamp(ts: i64, now_ms: i64, config: &TopicConfig) -> Result<(), BrokerError> {
    // -1 is "no timestamp" (old clients); Kafka lets it through.
    if ts < 0 {
        return Ok(());
    }
    if ts > now_ms.saturating_add(config.message_timestamp_after_max_ms) {
        return Err(BrokerError::InvalidTimestamp(format!(
            "timestamp {ts} is more than message.timestamp.after.max.ms={} ahead of the broker's clock ({now_ms})",
            config.message_timestamp_after_max_ms
        )));
    }
    if ts < now_ms.saturating_sub(config.message_timestamp_before_max_ms) {
        return Err(BrokerError::InvalidTimestamp(format!(
            "timestamp {ts} is more than message.timestamp.before.max.ms={} behind the broker's clock ({now_ms})",
            config.message_timestamp_before_max_ms
        )));
    }
    Ok(())
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.flusher.close();
    }
}
