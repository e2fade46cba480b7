//! The partition's durability pipeline: one flusher task per partition turns
//! "make offset N durable" requests into group-committed `fdatasync`s, and
//! reports the durable offset to the partition's state machine, which moves
//! the high-water mark when that commits anything (the flusher never writes
//! the HW itself).
//!
//! Many produce requests waiting for durability cost one waiting task each and
//! one fsync in flight per partition, never a blocking thread each: requests
//! that arrive during an fsync are covered by the next one, which flushes
//! everything appended by then.
//!
//! An fsync failure is final: the state turns `failed`, every waiter gets an
//! error, and the log itself refuses further writes (it is offline).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::Instant;

use tokio::sync::{watch, Notify};

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
    wake: Notify,
    durable: watch::Sender<Durable>,
    /// Where durability is reported (the partition's state machine).
    shared: Arc<super::Shared>,
    closed: AtomicBool,
    started: Once,
    last_flush: Mutex<Instant>,
}

impl Flusher {
    pub(super) fn new(log: Arc<PartitionLog>, shared: Arc<super::Shared>) -> Arc<Self> {
        let durable = log.recovery_point().max(0);
        Arc::new(Self {
            log,
            wake: Notify::new(),
            durable: watch::Sender::new(Durable {
                offset: durable,
                failed: false,
            }),
            shared,
            closed: AtomicBool::new(false),
            started: Once::new(),
            last_flush: Mutex::new(Instant::now()),
        })
    }

    pub(super) fn last_flush(&self) -> Instant {
        *self
            .last_flush
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Ask for everything appended so far to become durable.
    pub(super) fn request(self: &Arc<Self>) {
        self.started.call_once(|| {
            let me = self.clone();
            tokio::spawn(async move { me.run().await });
        });
        self.wake.notify_one();
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

    /// Stop the task (the partition is going away).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let log = self.log.clone();
            let target = log.log_end_offset();
            if self.durable.borrow().offset >= target {
                continue;
            }
            let started = Instant::now();
            let res = tokio::task::spawn_blocking(move || log.flush_up_to(target)).await;
            crate::metrics::fsync(started.elapsed());
            match res {
                Ok(Ok(durable)) => {
                    // A truncation that ran after this flush lowered the
                    // recovery point: never report more than the log has.
                    let durable = durable.min(self.log.recovery_point());
                    *self
                        .last_flush
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Instant::now();
                    self.durable
                        .send_modify(|d| d.offset = d.offset.max(durable));
                    self.shared
                        .step(super::state::Event::Durable { offset: durable });
                }
                Ok(Err(_)) | Err(_) => {
                    tracing::error!(dir = %self.log.dir().display(), "log flush failed; partition offline");
                    self.durable.send_modify(|d| d.failed = true);
                    // Wake acks=all waiters: they answer with a storage error.
                    self.shared.hw.send_modify(|_| {});
                    return;
                }
            }
        }
    }
}

/// A flush failed (the log is offline).
#[derive(Debug, Clone, Copy)]
pub(super) struct FlushFailed;
