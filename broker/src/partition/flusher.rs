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
//! Many produce requests waiting for durability cost one waiting task each and
//! one fsync in flight per partition, never a blocking thread each: requests
//! that arrive during an fsync are covered by the next one, which flushes
//! everything appended by then.
//!
//! An fsync failure is final: the state turns `failed`, every waiter gets an
//! error, and the log itself refuses further writes (it is offline).

use std::sync::atomic::{AtomicBool, Ordering};
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
}

impl Flusher {
    pub(super) fn new(log: Arc<PartitionLog>, shared: Arc<super::Shared>) -> Arc<Self> {
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
            if !self.pending.load(Ordering::SeqCst) {
                self.running.store(false, Ordering::SeqCst);
                // A request that came after the check above found the loop
                // still running and left it to us: take it over again.
                if !self.pending.load(Ordering::SeqCst) || self.running.swap(true, Ordering::SeqCst)
                {
                    return;
                }
            }
        }
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
        crate::metrics::fsync(started.elapsed());
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
