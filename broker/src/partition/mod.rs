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

use std::sync::atomic::{AtomicI32, Ordering};
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
        let follows = config.durability == Durability::FsyncBeforeAck;
        Self {
            topic,
            topic_id,
            index,
            flusher: flusher::Flusher::new(log.clone(), hw.clone(), follows),
            log,
            leader_epoch: AtomicI32::new(leader_epoch),
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
        self.flusher
            .set_hw_follows_durable(config.durability == Durability::FsyncBeforeAck);
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
        for (_, h) in BatchIter::new(records) {
            h.validate().map_err(BrokerError::CorruptBatch)?;
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
        if ids.len() == 1 {
            match producers.check(&ids[0]) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(c) => {
                    return Ok(Appended {
                        base_offset: c.first_offset,
                        last_offset: c.last_offset,
                        log_append_time: -1,
                        log_start_offset: self.log.log_start_offset(),
                        records: 0,
                        duplicate: true,
                    })
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

impl Drop for Partition {
    fn drop(&mut self) {
        self.flusher.close();
    }
}
