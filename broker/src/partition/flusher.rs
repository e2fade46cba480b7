//! The partition's durability pipeline: "make offset N durable" requests
//! become group-committed `fdatasync`s, and the durable offset is reported to
//! the partition's state machine, which moves the high-water mark when that
//! commits anything (the flusher never writes the HW itself).
//!
//! The flush loop runs on the blocking pool and reports from there: a request
//! starts it (at most one per partition) and it flushes back to back while
//! requests keep arriving, then ends. Nothing passes through an async task on
//! the way, so an acks=all producer or a consumer waits one thread wake-up to
//! the fsync and one back, not four (the old task, spawn_blocking and back).
//!
//! One acks=all request alone on its connection, for a partition without
//! followers (or a follower's fetch that brought records for this partition
//! only), may instead flush on the runtime worker that appended it
//! ([`Flusher::flush_inline`]) when no loop is running and the last fsync
//! was quick: one round of the loop on that thread, handed to the blocking
//! pool if more requests came meanwhile. At most the runtime's workers less
//! one flush inline at a time, across all partitions: a disk stall (this
//! machine's cache flushes have taken over a second, see
//! `benches/results/latency.md`) that begins during one never holds every
//! worker, so the broker keeps answering everything else meanwhile.
//!
//! Many produce requests waiting for durability cost one waiting task each and
//! one fsync in flight per partition, never a blocking thread each: requests
//! that arrive during an fsync are covered by the next one, which flushes
//! everything appended by then.
//!
//! An fsync failure is final: the state turns `failed`, every waiter gets an
//! error, and the log itself refuses further writes (it is offline).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::watch;

use crate::log::PartitionLog;

/// What is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    /// Offsets below this are fsynced.
    pub offset: i64,
    /// A flush failed; nothing more will become durable.
    pub failed: bool,
}

/// State shared by the partition and its flusher task.
#[derive(Debug)]
pub(super) struct Flusher {
    log: Arc<PartitionLog>,
    durable: watch::Sender<Durable>,
    /// Where durability is reported (the partition's state machine).
    shared: Arc<super::Shared>,
    closed: AtomicBool,
    /// A flush loop is running (or queued on the blocking pool).
    running: AtomicBool,
    /// A flush was asked for since the loop last looked.
    pending: AtomicBool,
    last_flush: Mutex<Instant>,
    /// How long the last fsync took, in microseconds: a caller about to
    /// flush on its own thread does not while the disk is stalling.
    last_fsync_us: AtomicU64,
    /// The broker's inline flushes, shared by its partitions.
    inline: Arc<InlineFlushes>,
}

/// The last fsync took longer than this: the disk may be stalling, and an
/// inline flush would hold a runtime worker thread for as long.
const INLINE_MAX_LAST_FSYNC_US: u64 = 1_000;

/// How many inline flushes may run at once across a broker's partitions,
/// and how many do: at most the runtime's workers less one (none on a
/// single-worker runtime, and none outside a runtime). One per broker,
/// shared by its partitions.
#[derive(Debug, Default)]
pub struct InlineFlushes(AtomicUsize);

impl InlineFlushes {
    /// A place among the inline flushes, held for one flush.
    fn take(self: &Arc<Self>) -> Option<InlineSlot> {
        let workers = tokio::runtime::Handle::try_current()
            .ok()?
            .metrics()
            .num_workers();
        let max = workers.saturating_sub(1);
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(InlineSlot(self.clone()))
    }
}

/// One inline flush's place; given back when dropped.
struct InlineSlot(Arc<InlineFlushes>);

impl Drop for InlineSlot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Flusher {
    pub(super) fn new(
        log: Arc<PartitionLog>,
        shared: Arc<super::Shared>,
        inline: Arc<InlineFlushes>,
    ) -> Arc<Self> {
        let durable = log.recovery_point().max(0);
        Arc::new(Self {
            log,
            durable: watch::Sender::new(Durable {
                offset: durable,
                failed: false,
            }),
            shared,
            closed: AtomicBool::new(false),
            running: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            last_flush: Mutex::new(Instant::now()),
            last_fsync_us: AtomicU64::new(0),
            inline,
        })
    }

    pub(super) fn last_flush(&self) -> Instant {
        *self
            .last_flush
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Ask for everything appended so far to become durable. Must be called
    /// within the tokio runtime (the loop runs on its blocking pool).
    pub(super) fn request(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) || self.failed() {
            return;
        }
        // SeqCst on both flags, here and in `run`: each side stores one flag
        // and then reads the other, and with weaker orderings both reads
        // may miss the other's store (a request lost while the loop ends).
        self.pending.store(true, Ordering::SeqCst);
        if self.running.swap(true, Ordering::SeqCst) {
            // The running loop sees `pending` before it ends.
            return;
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.run());
    }

    /// Flush everything appended so far on the calling thread, if no flush
    /// loop is running, the last fsync was quick and another worker is left
    /// free (see [`InlineFlushes`]); otherwise ask the loop
    /// (as [`Self::request`]). True when this call flushed (or found the
    /// flush failed): what was appended before it is durable now, or never
    /// will be.
    ///
    /// For a runtime worker handling one acks=all request: the fsync and
    /// every wake-up after it (the producer's reply, a long-polling
    /// consumer) stay on this thread instead of crossing to the blocking
    /// pool and back. The worker is held for one fsync; a slow disk turns
    /// this off until an fsync is quick again.
    pub(super) fn flush_inline(self: &Arc<Self>) -> bool {
        if self.closed.load(Ordering::Acquire) || self.failed() {
            return self.failed();
        }
        if self.last_fsync_us.load(Ordering::Relaxed) > INLINE_MAX_LAST_FSYNC_US {
            self.request();
            return false;
        }
        let Some(slot) = self.inline.take() else {
            self.request();
            return false;
        };
        if self.running.swap(true, Ordering::SeqCst) {
            drop(slot);
            self.request();
            return false;
        }
        // This thread is the flush loop now, for one round.
        self.pending.store(false, Ordering::SeqCst);
        let flushed = self.flush_once();
        drop(slot);
        self.hand_back(flushed);
        true
    }

    /// Wait until offsets below `end` are durable.
    pub(super) async fn wait(self: &Arc<Self>, end: i64) -> Result<(), FlushFailed> {
        let mut rx = self.durable.subscribe();
        loop {
            let d = *rx.borrow_and_update();
            if d.failed {
                return Err(FlushFailed);
            }
            if d.offset >= end {
                return Ok(());
            }
            self.request();
            if rx.changed().await.is_err() {
                return Err(FlushFailed);
            }
        }
    }

    /// The log was truncated to `end`: offsets from there on are not durable
    /// any more, whatever an earlier flush covered.
    pub(super) fn truncated(&self, end: i64) {
        self.durable.send_if_modified(|d| {
            let lower = d.offset > end;
            if lower {
                d.offset = end;
            }
            lower
        });
    }

    /// Whether a flush failed (the log is offline).
    pub(super) fn failed(&self) -> bool {
        self.durable.borrow().failed
    }

    /// Whether a flush loop is running (tests).
    #[cfg(test)]
    pub(super) fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Stop flushing (the partition is going away).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// The flush loop (blocking pool): flush until no request is left.
    fn run(&self) {
        loop {
            self.pending.store(false, Ordering::SeqCst);
            if self.closed.load(Ordering::Acquire) || !self.flush_once() {
                self.running.store(false, Ordering::SeqCst);
                return;
            }
            if !self.keep_running() {
                return;
            }
        }
    }

    /// After an inline flush: give up the loop's role, or, when requests
    /// came meanwhile, hand it to the blocking pool.
    fn hand_back(self: &Arc<Self>, flushed: bool) {
        if !flushed || self.closed.load(Ordering::Acquire) {
            self.running.store(false, Ordering::SeqCst);
        } else if self.keep_running() {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.run());
        }
    }

    /// The loop's end-of-round check (its owner holds `running`): true when
    /// a request is pending and the owner must flush again; false once it
    /// has given `running` up.
    fn keep_running(&self) -> bool {
        if self.pending.load(Ordering::SeqCst) {
            return true;
        }
        self.running.store(false, Ordering::SeqCst);
        // A request that came after the check above found the loop still
        // running and left it to us: take it over again.
        self.pending.load(Ordering::SeqCst) && !self.running.swap(true, Ordering::SeqCst)
    }

    /// Flush what is appended and report it. False once a flush failed.
    fn flush_once(&self) -> bool {
        let target = self.log.log_end_offset();
        if self.durable.borrow().offset >= target {
            return true;
        }
        let started = Instant::now();
        let start_us = crate::path_trace::stamp();
        let res = self.log.flush_up_to(target);
        let took = started.elapsed();
        crate::metrics::fsync(took);
        self.last_fsync_us.store(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match res {
            Ok(durable) => {
                // A truncation that ran after this flush lowered the
                // recovery point: never report more than the log has.
                let durable = durable.min(self.log.recovery_point());
                tracing::trace!(target: "brook::path", stage = "flush", part = %self.shared.name,
                    target, durable, start_us, us = crate::path_trace::now_us());
                *self
                    .last_flush
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Instant::now();
                // The state machine first: whoever wakes on durability
                // finds the HW already moved by it.
                self.shared
                    .step(super::state::Event::Durable { offset: durable });
                self.durable
                    .send_modify(|d| d.offset = d.offset.max(durable));
                true
            }
            Err(_) => {
                tracing::error!(dir = %self.log.dir().display(), "log flush failed; partition offline");
                self.durable.send_modify(|d| d.failed = true);
                // Wake acks=all waiters: they answer with a storage error.
                self.shared.hw.send_modify(|_| {});
                false
            }
        }
    }
}

/// A flush failed (the log is offline).
#[derive(Debug, Clone, Copy)]
pub(super) struct FlushFailed;
