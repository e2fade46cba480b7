//! The partition's durability pipeline: one flusher task per partition turns
//! "make offset N durable" requests into group-committed `fdatasync`s, and
//! publishes the durable offset, raising the high-water mark to it (with
//! brook's default durability the HW is exactly the durable offset).
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
    /// The HW: raised to the durable offset after every flush (a durable
    /// record is always safe to show; with periodic durability the HW is
    /// usually ahead already).
    hw: Arc<watch::Sender<i64>>,
    closed: AtomicBool,
    started: Once,
    last_flush: Mutex<Instant>,
}

impl Flusher {
    pub(super) fn new(log: Arc<PartitionLog>, hw: Arc<watch::Sender<i64>>) -> Arc<Self> {
        let durable = log.recovery_point().max(0);
        Arc::new(Self {
            log,
            wake: Notify::new(),
            durable: watch::Sender::new(Durable {
                offset: durable,
                failed: false,
            }),
            hw,
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
                    *self
                        .last_flush
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Instant::now();
                    self.durable
                        .send_modify(|d| d.offset = d.offset.max(durable));
                    self.hw.send_if_modified(|hw| {
                        let moved = durable > *hw;
                        if moved {
                            *hw = durable;
                        }
                        moved
                    });
                }
                Ok(Err(_)) | Err(_) => {
                    tracing::error!(dir = %self.log.dir().display(), "log flush failed; partition offline");
                    self.durable.send_modify(|d| d.failed = true);
                    return;
                }
            }
        }
    }
}

/// A flush failed (the log is offline).
#[derive(Debug, Clone, Copy)]
pub(super) struct FlushFailed;
