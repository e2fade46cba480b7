//! One partition replica hosted by this broker: the I/O shell around the
//! pure replication state machine in [`state`].
//!
//! The shell owns the log, the idempotent-producer table, the flusher (which
//! reports "durable up to X" and never touches the HW) and the purgatory: a
//! `watch` on the HW that wakes acks=all produces and long-polling fetches
//! when the HW moves, plus a `watch` on the log end that wakes follower
//! fetches. Every change to replication state goes through
//! [`Partition::step`], which runs the state machine under a short lock and
//! carries out its effects; the HW is computed only there.
//!
//! The HW is the offset below which records are committed: durable on the
//! leader (under brook's default fsync-before-ack) and on every member of the
//! ISR. A consumer never reads a record that a crash could take away.
//!
//! Concurrency: appends are serialised by `producers` (a tokio mutex that also
//! guards the producer table, so dedup-check + append is atomic); reads take no
//! partition lock.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use brook_config::{Durability, TopicConfig};
use brook_protocol::codec::Uuid;
use brook_protocol::records::{BatchHeader, BatchIter};
use tokio::sync::{watch, Mutex, Notify};

use crate::error::BrokerError;

mod flusher;
mod follower;
#[cfg(test)]
mod shell_tests;
pub mod state;
use crate::log::{AppendInfo, PartitionLog, ReadResult};
use crate::producer_state::{BatchIdentity, ProducerStateTable, Refusal, SequenceCheck};
use state::{Assignment, Effects, Event, InFlight, PartitionState, Role, Settings};

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
    /// The leader epoch it was appended in.
    pub leader_epoch: i32,
}

/// Why an acks=all wait ended without the batch being committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCommitted {
    /// This broker stopped leading the partition (or a new epoch began).
    NotLeader,
    /// The ISR shrank below `min.insync.replicas` while waiting.
    NotEnoughReplicas,
    /// A flush failed: the log is offline.
    Storage,
    /// The deadline passed.
    TimedOut,
}

/// Milliseconds since this process started (the state machine's clock).
pub fn monotonic_ms() -> state::Millis {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// State shared by the partition and its flusher: the state machine and the
/// channels its effects go out on.
#[derive(Debug)]
pub(crate) struct Shared {
    state: StdMutex<PartitionState>,
    /// The HW (purgatory for acks=all and consumer long-polls). Also poked
    /// without a change when the role changes, so waiters re-check.
    hw: watch::Sender<i64>,
    /// Cached leader epoch (hot path: every request checks it).
    leader_epoch: AtomicI32,
    /// Woken when the state machine proposes an ISR change.
    isr_wake: Arc<Notify>,
    /// "topic-index", for path tracing.
    name: String,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, PartitionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run one event through the state machine and carry out its effects.
    pub(crate) fn step(&self, event: Event) -> Effects {
        let mut st = self.lock();
        let fx = st.step(event, monotonic_ms());
        self.leader_epoch
            .store(st.leader_epoch(), Ordering::Release);
        if let Some(hw) = fx.hw {
            tracing::trace!(target: "brook::path", stage = "hw", part = %self.name, hw,
                us = crate::path_trace::now_us());
            self.hw.send_replace(hw);
        } else if st.hw() < *self.hw.borrow() {
            // A truncation lowered the HW: the watch must not keep the old one
            // (fetch responses, consumer reads and acks=all go by it).
            self.hw.send_replace(st.hw());
        } else if fx.role_changed {
            self.hw.send_modify(|_| {});
        }
        drop(st);
        if fx.propose_isr.is_some() {
            self.isr_wake.notify_one();
        }
        fx
    }
}

/// A partition hosted by this broker.
#[derive(Debug)]
pub struct Partition {
    pub topic: Arc<str>,
    pub topic_id: Uuid,
    pub index: i32,
    log: Arc<PartitionLog>,
    shared: Arc<Shared>,
    /// The log end offset, for follower fetches waiting for new data.
    end: watch::Sender<i64>,
    flusher: Arc<flusher::Flusher>,
    producers: Mutex<ProducerStateTable>,
    config: RwLock<Arc<TopicConfig>>,
    lag_max_ms: u64,
}

/// How a hosted partition replica is set up.
#[derive(Debug, Clone)]
pub struct ReplicaSetup {
    /// This broker's node id.
    pub node: i32,
    /// The HW it had when it last stopped (replication-offset-checkpoint).
    pub hw: i64,
    /// `replica.lag.time.max.ms`.
    pub lag_max_ms: u64,
    /// Woken when any partition proposes an ISR change.
    pub isr_wake: Arc<Notify>,
}

fn settings(config: &TopicConfig, lag_max_ms: u64) -> Settings {
    Settings {
        min_isr: usize::try_from(config.min_insync_replicas.max(1)).unwrap_or(1),
        lag_max_ms,
        fsync: config.durability == Durability::FsyncBeforeAck,
    }
}

impl Partition {
    /// Wrap an opened log. The partition has no role until [`Partition::assign`].
    pub fn new(
        topic: Arc<str>,
        topic_id: Uuid,
        index: i32,
        log: PartitionLog,
        config: Arc<TopicConfig>,
        producers: ProducerStateTable,
        setup: ReplicaSetup,
    ) -> Self {
        let leo = log.log_end_offset();
        let state = PartitionState::new(
            setup.node,
            leo,
            log.recovery_point(),
            setup.hw,
            settings(&config, setup.lag_max_ms),
        );
        let shared = Arc::new(Shared {
            hw: watch::Sender::new(state.hw()),
            leader_epoch: AtomicI32::new(state.leader_epoch()),
            state: StdMutex::new(state),
            isr_wake: setup.isr_wake,
            name: format!("{topic}-{index}"),
        });
        let log = Arc::new(log);
        Self {
            topic,
            topic_id,
            index,
            flusher: flusher::Flusher::new(log.clone(), shared.clone()),
            end: watch::Sender::new(leo),
            log,
            shared,
            producers: Mutex::new(producers),
            config: RwLock::new(config),
            lag_max_ms: setup.lag_max_ms,
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
        self.shared.leader_epoch.load(Ordering::Acquire)
    }

    /// Take a committed assignment (leader, epochs, replicas, ISR) from the
    /// metadata image. Stale ones (older epochs) are ignored. Returns the
    /// role before and after.
    pub fn assign(&self, record: &crate::metadata::PartitionRecord) -> (Role, Role) {
        let before = self.role();
        let a = Assignment {
            leader: record.leader,
            leader_epoch: record.leader_epoch,
            partition_epoch: record.partition_epoch,
            replicas: record.replicas.clone(),
            isr: record.isr.clone(),
        };
        if self.shared.lock().check(&a).is_err() {
            return (before, before);
        }
        let (node, epoch) = {
            let st = self.shared.lock();
            (st.node_id(), st.leader_epoch())
        };
        if record.leader == node && (before != Role::Leader || record.leader_epoch != epoch) {
            // The new epoch starts at the log end: followers' OffsetForLeaderEpoch
            // must find it before anything is appended in it. Also when this
            // broker led the previous epoch it knows of: epochs it never saw
            // may lie between, and a follower asking for one of them must get
            // the end of the latest epoch below it, not "undefined" (which
            // makes it truncate to its HW, KIP-101).
            if let Err(e) = self
                .log
                .assign_epoch(record.leader_epoch, self.log.log_end_offset())
            {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "recording the leader epoch failed");
            }
        }
        let old_isr = self.shared.lock().isr().to_vec();
        let new_isr = a.isr.clone();
        self.shared.step(Event::Assigned(a));
        let after = self.role();
        if before == Role::Leader && after == Role::Leader {
            let shrunk = old_isr.iter().filter(|r| !new_isr.contains(r)).count();
            let grew = new_isr.iter().filter(|r| !old_isr.contains(r)).count();
            crate::metrics::isr_changed(shrunk as u64, grew as u64);
        }
        (before, after)
    }

    /// Whether this broker leads the partition and its ISR is smaller than
    /// its replica set.
    pub fn under_replicated(&self) -> bool {
        self.shared.lock().under_replicated()
    }

    pub fn role(&self) -> Role {
        self.shared.lock().role()
    }

    /// Whether this broker leads the partition: only a leader takes
    /// produce requests and serves consumers.
    pub fn is_leader(&self) -> bool {
        self.role() == Role::Leader
    }

    /// A copy of the replication state (admin API, metrics, tests).
    pub fn state(&self) -> PartitionState {
        self.shared.lock().clone()
    }

    pub fn high_watermark(&self) -> i64 {
        *self.shared.hw.borrow()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// A receiver that changes whenever the HW moves (fetch long-poll).
    pub fn subscribe_hw(&self) -> watch::Receiver<i64> {
        self.shared.hw.subscribe()
    }

    /// A receiver that changes whenever the log end moves (follower fetches).
    pub fn subscribe_end(&self) -> watch::Receiver<i64> {
        self.end.subscribe()
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set_config(&self, config: Arc<TopicConfig>) {
        self.shared
            .step(Event::Settings(settings(&config, self.lag_max_ms)));
        let mut guard = match self.config.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *guard = config;
    }

    /// Check lag and stale proposals; returns an ISR change to send, if any.
    pub fn tick(&self) -> Option<InFlight> {
        self.shared.step(Event::Tick).propose_isr
    }

    /// The ISR change in flight, if the state machine has one waiting to be sent.
    pub fn isr_in_flight(&self) -> Option<InFlight> {
        self.shared.lock().in_flight().cloned()
    }

    /// The controller refused the ISR change in flight.
    pub fn isr_rejected(&self) {
        self.shared.step(Event::IsrRejected);
    }

    /// Whether acks=all produces may be appended (ISR ≥ min.insync.replicas).
    pub fn enough_replicas(&self) -> (bool, usize) {
        let st = self.shared.lock();
        (st.enough_replicas(), st.isr().len())
    }

    fn appended(&self, end: i64) {
        self.end.send_replace(end);
        self.shared.step(Event::Appended { end });
        // A flush running while this append was written may already cover
        // it, but it reported its durable offset clamped to the log end the
        // state machine knew then; nothing would report it again until the
        // next append's flush, and an acks=all producer with its in-flight
        // requests all waiting sends none: the HW would stall until some
        // other event. The log's recovery point is exact (truncation lowers
        // it under the flush lock), so report it again now.
        self.shared.step(Event::Durable {
            offset: self.log.recovery_point(),
        });
    }

    /// A follower fetched from `offset`: record its progress (leader only).
    pub fn follower_fetched(&self, replica: i32, offset: i64) {
        self.shared.step(Event::FollowerFetch { replica, offset });
    }

    /// The leader's HW, from a fetch response (follower only).
    pub fn leader_hw(&self, hw: i64) {
        self.shared.step(Event::LeaderHw { hw });
    }
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
        self.roll_off_runtime(first, first + span - 1, records.len(), max_ts)
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
    /// blocking pool, not on the runtime thread serving the request. Called
    /// under the append lock, so the log end cannot move in between.
    async fn roll_off_runtime(
        &self,
        first: i64,
        last: i64,
        len: usize,
        max_ts: i64,
    ) -> Result<(), BrokerError> {
        let len = len as u64;
        if !self.log.roll_due(len, last, max_ts) {
            return Ok(());
        }
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.roll_for(first, last, len, max_ts))
            .await
            .map_err(|e| BrokerError::Storage(format!("segment roll panicked: {e}")))??;
        Ok(())
    }

    /// Make everything up to and including `offset` durable (group-committed with
    /// concurrent callers). The flusher reports durability to the state
    /// machine, which moves the HW if that commits anything.
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

    /// Wait in the purgatory until the HW passes `offset` (acks=all), while
    /// this broker leads the partition in `epoch`.
    pub async fn wait_committed(
        &self,
        offset: i64,
        epoch: i32,
        deadline: tokio::time::Instant,
    ) -> Result<(), NotCommitted> {
        let mut rx = self.shared.hw.subscribe();
        loop {
            drop(rx.borrow_and_update());
            {
                // Leadership first: once deposed, this broker may have
                // truncated `offset` and fetched another record there by
                // the time this task runs, under a HW past it.
                let st = self.shared.lock();
                if st.role() != Role::Leader || st.leader_epoch() != epoch {
                    return Err(NotCommitted::NotLeader);
                }
                if st.hw() > offset {
                    return Ok(());
                }
                if !st.enough_replicas() {
                    return Err(NotCommitted::NotEnoughReplicas);
                }
            }
            if self.flusher.failed() {
                return Err(NotCommitted::Storage);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(NotCommitted::NotLeader),
                Err(_) => return Err(NotCommitted::TimedOut),
            }
        }
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

impl Drop for Partition {
    fn drop(&mut self) {
        self.flusher.close();
    }
}
