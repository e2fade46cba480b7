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
//! Layout: this file (the shell, roles, reads, waits), `append` (the
//! leader's append path), `follower` (appending fetched batches), `flusher`,
//! `state` (the state machine).
//!
//! Concurrency: appends are serialised by `producers` (a tokio mutex that also
//! guards the producer table, so dedup-check + append is atomic); reads take no
//! partition lock.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use brook_config::{Durability, TopicConfig};
use brook_protocol::codec::Uuid;
use brook_protocol::records::BatchIter;
use tokio::sync::{watch, Mutex, Notify};

use crate::error::BrokerError;

mod append;
mod flusher;
mod follower;
mod follower_wakes;
#[cfg(test)]
pub(crate) mod shell_tests;
pub mod state;
use crate::log::{AppendInfo, PartitionLog, ReadResult};
use crate::producer_state::{BatchIdentity, ProducerStateTable};
pub use flusher::InlineFlushes;
pub use follower_wakes::FollowerWakes;
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
    /// (topic id, index), for the followers' journals.
    id: (Uuid, i32),
    /// Told of every append and HW move while this replica leads.
    follower_wakes: Arc<FollowerWakes>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, PartitionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run one event through the state machine and carry out its effects.
    pub(crate) fn step(&self, event: Event) -> Effects {
        let appended = matches!(event, Event::Appended { .. });
        let mut st = self.lock();
        let fx = st.step(event, monotonic_ms());
        if st.is_leader() && (appended || fx.hw.is_some()) {
            // The followers' sessions read this partition next round; new
            // records end their long-polls, and so does a HW move when
            // consumers may read from followers (KIP-1166: a follower's HW,
            // which those consumers read up to, is not left behind until
            // the next append).
            for &r in st.replicas() {
                if r != st.node_id() {
                    self.follower_wakes.changed(r, self.id, appended);
                }
            }
        }
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
    /// The broker's inline flushes (see [`Partition::flush_inline`]).
    pub inline_flushes: Arc<InlineFlushes>,
    /// Woken for each follower of a partition led here when it is appended to.
    pub follower_wakes: Arc<FollowerWakes>,
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
            id: (topic_id, index),
            follower_wakes: setup.follower_wakes,
        });
        let log = Arc::new(log);
        Self {
            topic,
            topic_id,
            index,
            flusher: flusher::Flusher::new(log.clone(), shared.clone(), setup.inline_flushes),
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

    /// Whether `replica`, in the ISR of leader epoch `epoch` that this
    /// broker leads, has not fetched in that epoch yet: `Some(true)` when
    /// records wait above the HW (the leader waits for it), `None` when it
    /// has fetched or the question no longer applies.
    pub fn unfetched_by(&self, replica: i32, epoch: i32) -> Option<bool> {
        let st = self.shared.lock();
        let waiting = st.is_leader()
            && st.leader_epoch() == epoch
            && st.isr().contains(&replica)
            && st.progress(replica).is_some_and(|p| p.leo < 0);
        waiting.then(|| st.leo() > st.hw())
    }

    /// The leader's HW, from a fetch response (follower only).
    pub fn leader_hw(&self, hw: i64) {
        self.shared.step(Event::LeaderHw { hw });
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
            if let Some(done) = self.committed_now(offset, epoch) {
                return done;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(NotCommitted::NotLeader),
                Err(_) => return Err(NotCommitted::TimedOut),
            }
        }
    }

    /// Where an acks=all wait for `offset`, appended as leader in `epoch`,
    /// stands now: `None` while it must go on waiting.
    pub fn committed_now(&self, offset: i64, epoch: i32) -> Option<Result<(), NotCommitted>> {
        {
            // Leadership first: once deposed, this broker may have
            // truncated `offset` and fetched another record there by the
            // time the waiter runs, under a HW past it.
            let st = self.shared.lock();
            if st.role() != Role::Leader || st.leader_epoch() != epoch {
                return Some(Err(NotCommitted::NotLeader));
            }
            if st.hw() > offset {
                return Some(Ok(()));
            }
            if !st.enough_replicas() {
                return Some(Err(NotCommitted::NotEnoughReplicas));
            }
        }
        self.flusher.failed().then_some(Err(NotCommitted::Storage))
    }

    /// Flush what is appended on this thread when no flush is under way and
    /// the disk has been quick, else start the flush loop as
    /// [`Self::request_flush`]. True when this thread flushed: the HW has
    /// moved as far as durability alone lets it.
    ///
    /// Not for a leader with followers: theirs are the fetches the append
    /// just woke, and they would wait on this thread for the leader's fsync
    /// instead of running beside it. A follower's fetcher may: it waits for
    /// this fsync before its next fetch in any case.
    pub fn flush_inline(&self) -> bool {
        let leads_followers = {
            let st = self.shared.lock();
            st.role() == Role::Leader && st.replicas().len() > 1
        };
        if leads_followers {
            self.flusher.request();
            return false;
        }
        self.flusher.flush_inline()
    }

    /// Flush and close the log and stop the flusher (shutdown, topic deletion).
    /// Later appends fail with a partition-local error.
    ///
    /// # Errors
    /// The final flush failed.
    pub fn close(&self) -> Result<(), BrokerError> {
        self.flusher.close();
        // A snapshot at the log end: the next start replays nothing. Skipped
        // if an append still holds the table (it is only a shortcut).
        if let Ok(producers) = self.producers.try_lock() {
            let end = self.log.log_end_offset();
            let bytes = crate::producer_state::snapshot::encode(&producers, end);
            if let Err(e) = crate::producer_state::snapshot::write(self.log.dir(), end, &bytes) {
                tracing::warn!(dir = %self.log.dir().display(), error = %e,
                    "producer snapshot not written at close");
            }
        }
        Ok(self.log.close()?)
    }

    /// Forget idempotent producers whose newest batch is older than
    /// `cutoff_ms` (`producer.id.expiration.ms`). Skipped, returning `None`,
    /// while an append holds the table: the next pass does it.
    pub fn expire_producers(&self, cutoff_ms: i64) -> Option<usize> {
        Some(self.producers.try_lock().ok()?.expire(cutoff_ms))
    }

    /// A copy of the idempotent-producer table (tests).
    #[cfg(test)]
    pub(crate) async fn producer_table(&self) -> ProducerStateTable {
        self.producers.lock().await.clone()
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

    /// Read records for a consumer: at most up to the HW, empty batches before
    /// the first record skipped ([`PartitionLog::read_records`]).
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
        Ok(self
            .log
            .read_records(offset, max_bytes as u64, hw, min_one)?)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.flusher.close();
    }
}
