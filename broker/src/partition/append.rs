//! The leader's append path: checks (role and epoch, timestamps, keys of a
//! compacted topic, idempotence), log-append time, the segment roll moved off
//! the runtime thread, and the append itself.

use brook_config::TopicConfig;
use brook_protocol::records::{BatchHeader, BatchIter};

use super::{monotonic_ms, Appended, Partition, Role};
use crate::error::BrokerError;
use crate::log::AppendInfo;
use crate::producer_state::{BatchIdentity, Refusal, SequenceCheck};

impl Partition {
    /// Append one produce payload (one or more record batches, already taken out
    /// of the request). Validates every batch, applies idempotence, assigns
    /// offsets. Does not wait for durability; see [`Partition::wait_durable`].
    ///
    /// # Errors
    /// Corrupt batches, sequence/epoch violations, storage errors.
    pub async fn append(&self, records: &[u8], now_ms: i64) -> Result<Appended, BrokerError> {
        self.append_in_epoch(records, now_ms, None).await
    }

    /// [`Partition::append`], refused with NOT_LEADER unless this broker
    /// leads the partition in `epoch` (when given): a writer whose view of
    /// the partition belongs to an earlier leadership term must not append
    /// in a later one.
    ///
    /// # Errors
    /// As [`Partition::append`].
    pub async fn append_in_epoch(
        &self,
        records: &[u8],
        now_ms: i64,
        expected_epoch: Option<i32>,
    ) -> Result<Appended, BrokerError> {
        let config = self.config();
        let mut producers = self.producers.lock().await;
        // Under the append lock, so no role change slips between check and write.
        let epoch = {
            let st = self.shared.lock();
            if st.role() != Role::Leader || expected_epoch.is_some_and(|e| e != st.leader_epoch()) {
                drop(st);
                if let Some(id) = first_identity(records) {
                    producers.refused(&id, Refusal::NotLeader, monotonic_ms());
                }
                return Err(BrokerError::NotLeader);
            }
            st.leader_epoch()
        };
        // Idempotence: Kafka clients send one batch per partition per request;
        // the identity of a multi-batch payload is checked per batch.
        let mut ids = Vec::with_capacity(1);
        let mut checked = 0usize;
        let create_time = config.message_timestamp_type == brook_config::TimestampType::CreateTime;
        // Structural pass only: the CRC32C of every batch is checked once, by
        // the log's append, except where a batch is answered without being
        // appended (a duplicate) or rewritten first (log-append time) — those
        // paths validate it themselves below.
        let (mut span, mut max_ts) = (0i64, -1i64);
        for (_, h) in BatchIter::new(records) {
            if create_time {
                check_timestamp(h.max_timestamp(), now_ms, &config)?;
            }
            checked += h.total_size().unwrap_or(0);
            span += i64::from(h.last_offset_delta()) + 1;
            max_ts = max_ts.max(h.max_timestamp());
            ids.push(BatchIdentity::of(&h));
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
            match producers.check_at(&ids[0], monotonic_ms()) {
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
                        leader_epoch: epoch,
                    });
                }
                SequenceCheck::InvalidEpoch => return Err(BrokerError::InvalidProducerEpoch),
                SequenceCheck::OutOfOrder => return Err(BrokerError::OutOfOrderSequence),
                SequenceCheck::UnknownProducer => return Err(BrokerError::UnknownProducerId),
                SequenceCheck::Refused(why) => return Err(refusal_error(why)),
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
        // Log-append time rewrites timestamps inside the CRC'd range: only then
        // are the records copied (offsets and epoch are patched on the way to
        // the file, in copies of the headers).
        let stamped;
        let records: &[u8] = if let Some(ts) = log_append_time {
            // Patching recomputes the CRC, so a corrupt batch must be refused first.
            for (_, h) in BatchIter::new(records) {
                h.validate().map_err(BrokerError::CorruptBatch)?;
            }
            let mut records = records.to_vec();
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
            stamped = records;
            &stamped
        } else {
            records
        };
        let first = log.log_end_offset();
        let max_ts = log_append_time.unwrap_or(max_ts);
        self.roll_off_runtime(&producers, first, first + span - 1, records.len(), max_ts)
            .await?;
        let info: AppendInfo = log.append_as_leader(records, epoch)?;
        for id in &ids {
            producers.record(id, info.first_offset, info.last_offset, info.max_timestamp);
        }
        drop(producers);
        self.appended(info.log_end_offset);
        Ok(Appended {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: self.log.log_start_offset(),
            records: u64::try_from(info.record_count).unwrap_or(0),
            duplicate: false,
            leader_epoch: epoch,
        })
    }

    /// Remember that the produce payload `records` was refused, before any
    /// append, for `why` (a reason that passes): a sequence gap right behind
    /// it is then answered with the same error, not OUT_OF_ORDER_SEQUENCE
    /// (see [`crate::producer_state`]).
    pub async fn refuse(&self, records: &[u8], why: Refusal) {
        if let Some(id) = first_identity(records) {
            self.producers
                .lock()
                .await
                .refused(&id, why, monotonic_ms());
        }
    }

    /// Rolling a segment creates files and trims index maps: when the append
    /// of `len` bytes spanning `first..=last` would roll, roll first on the
    /// blocking pool, not on the runtime thread serving the request, and
    /// snapshot the producer state (`producers`: the batches below `first`)
    /// at the new segment's base. Called under the append lock, so the log
    /// end and the table cannot move in between.
    pub(super) async fn roll_off_runtime(
        &self,
        producers: &crate::producer_state::ProducerStateTable,
        first: i64,
        last: i64,
        len: usize,
        max_ts: i64,
    ) -> Result<(), BrokerError> {
        let len = len as u64;
        if !self.log.roll_due(len, last, max_ts) {
            return Ok(());
        }
        let snapshot = crate::producer_state::snapshot::encode(producers, first);
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || {
            log.roll_for(first, last, len, max_ts)?;
            if log.segment_base_offsets().last() == Some(&first) {
                // Only a shortcut for the next load: a failure costs a longer
                // replay then, never the append.
                if let Err(e) = crate::producer_state::snapshot::write(log.dir(), first, &snapshot)
                {
                    tracing::warn!(dir = %log.dir().display(), error = %e,
                        "producer snapshot not written");
                }
            }
            Ok::<_, crate::log::LogError>(())
        })
        .await
        .map_err(|e| BrokerError::Storage(format!("segment roll panicked: {e}")))??;
        Ok(())
    }
}

/// Largest records section decompressed to check keys on a compacted topic.
const MAX_KEY_CHECK_DECOMPRESSED: usize = 64 << 20;

/// The producer identity of a payload's first batch, if it is idempotent.
fn first_identity(records: &[u8]) -> Option<BatchIdentity> {
    let h = BatchHeader::new(records).ok()?;
    (h.producer_id() >= 0).then(|| BatchIdentity::of(&h))
}

/// The error a gap behind a refused batch is answered with: the refusal's.
fn refusal_error(why: Refusal) -> BrokerError {
    match why {
        Refusal::NotLeader => BrokerError::NotLeader,
        Refusal::NotEnoughReplicas { isr, min } => BrokerError::NotEnoughReplicas { isr, min },
        Refusal::Storage => BrokerError::Storage(
            "an earlier batch of this producer was refused: log directory offline".into(),
        ),
    }
}

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
