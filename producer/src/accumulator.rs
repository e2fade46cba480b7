//! The record accumulator: one open batch per partition, sealed when it reaches
//! `batch.size` and drained by the sender when sealed or older than `linger.ms`.
//!
//! Concurrency: application tasks append under one short `std` mutex (no I/O,
//! no compression under it: records are encoded uncompressed into the batch
//! builder; compression happens in the sender). The sender is woken through a
//! `Notify` when a batch is sealed or a flush is requested.
//!
//! Hot path: `append` allocates only when a batch is created; do not add
//! logging above `trace` or any await here.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use brook_protocol::records::{BatchBuilder, Header};
use bytes::Bytes;
use tokio::sync::Notify;

use crate::error::{Error, Result};

/// A topic-partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition.
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: Arc::from(topic),
            partition,
        }
    }
}

/// Outcome of a batch, shared by the futures of its records.
#[derive(Debug, Default)]
pub(crate) struct BatchShared {
    /// `(base offset, log append time or -1)`.
    pub result: OnceLock<Result<(i64, i64)>>,
    pub notify: Notify,
}

impl BatchShared {
    pub fn complete(&self, result: Result<(i64, i64)>) {
        let _ = self.result.set(result);
        self.notify.notify_waiters();
    }

    pub async fn wait(&self) -> Result<(i64, i64)> {
        loop {
            let notified = self.notify.notified();
            if let Some(r) = self.result.get() {
                return r.clone();
            }
            notified.await;
        }
    }
}

/// A batch on its way: records encoded, not yet compressed.
#[derive(Debug)]
pub(crate) struct Batch {
    pub tp: TopicPartition,
    pub builder: BatchBuilder,
    pub shared: Arc<BatchShared>,
    pub created: Instant,
    /// Buffer-memory permits to return when the batch completes.
    pub reserved: usize,
}

#[derive(Debug, Default)]
struct Inner {
    open: HashMap<TopicPartition, Batch>,
    sealed: VecDeque<Batch>,
    flushing: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Accumulator {
    inner: Mutex<Inner>,
    /// Wakes the sender.
    pub wake: Notify,
    batch_size: usize,
    linger: Duration,
    /// Records appended and not yet completed.
    pub outstanding: AtomicU64,
    /// Woken whenever `outstanding` drops to zero.
    pub drained: Notify,
}

/// Where an appended record went.
pub(crate) struct Appended {
    pub shared: Arc<BatchShared>,
    pub index: i32,
    /// A batch of this partition was sealed by this append.
    pub sealed: bool,
}

impl Accumulator {
    pub fn new(batch_size: usize, linger: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
            batch_size: batch_size.max(1),
            linger,
            outstanding: AtomicU64::new(0),
            drained: Notify::new(),
        }
    }

    /// Appends one record; `reserved` buffer-memory permits travel with it.
    pub fn append(
        &self,
        tp: &TopicPartition,
        timestamp: i64,
        key: Option<&Bytes>,
        value: Option<&Bytes>,
        headers: &[Header],
        reserved: usize,
    ) -> Result<Appended> {
        let enc = |e: brook_protocol::records::RecordError| Error::Encode(e.to_string());
        let mut inner = self.inner.lock().map_err(|_| Error::Closed)?;
        let mut sealed = false;
        if let Some(open) = inner.open.get(tp) {
            let next = open
                .builder
                .size_of_next(
                    timestamp,
                    key.map(|k| &k[..]),
                    value.map(|v| &v[..]),
                    headers,
                )
                .map_err(enc)?;
            if !open.builder.is_empty() && open.builder.estimated_size() + next > self.batch_size {
                if let Some(full) = inner.open.remove(tp) {
                    inner.sealed.push_back(full);
                    sealed = true;
                }
            }
        }
        // A new open batch gives the sender a new linger deadline to sleep to.
        let created = !inner.open.contains_key(tp);
        let batch = inner.open.entry(tp.clone()).or_insert_with(|| Batch {
            tp: tp.clone(),
            builder: BatchBuilder::new(),
            shared: Arc::new(BatchShared::default()),
            created: Instant::now(),
            reserved: 0,
        });
        let index = batch
            .builder
            .append(
                timestamp,
                key.map(|k| &k[..]),
                value.map(|v| &v[..]),
                headers,
            )
            .map_err(enc)?;
        batch.reserved += reserved;
        let shared = batch.shared.clone();
        if batch.builder.estimated_size() >= self.batch_size {
            if let Some(full) = inner.open.remove(tp) {
                inner.sealed.push_back(full);
                sealed = true;
            }
        }
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        drop(inner);
        if sealed || created {
            self.wake.notify_one();
        }
        Ok(Appended {
            shared,
            index,
            sealed,
        })
    }

    /// Takes every sealed batch and every open batch older than `linger.ms`
    /// (all open batches while flushing). Returns the batches and the instant
    /// the next open batch expires.
    pub fn drain(&self, now: Instant) -> (Vec<Batch>, Option<Instant>) {
        let Ok(mut inner) = self.inner.lock() else {
            return (Vec::new(), None);
        };
        let mut out: Vec<Batch> = inner.sealed.drain(..).collect();
        let flushing = inner.flushing;
        let linger = self.linger;
        let ready: Vec<TopicPartition> = inner
            .open
            .iter()
            .filter(|(_, b)| flushing || b.created + linger <= now)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in ready {
            if let Some(b) = inner.open.remove(&tp) {
                out.push(b);
            }
        }
        let next = inner.open.values().map(|b| b.created + linger).min();
        if self.outstanding.load(Ordering::SeqCst) == 0 {
            inner.flushing = false;
        }
        (out, next)
    }

    /// Makes every open batch ready now, until the accumulator is empty.
    pub fn begin_flush(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.flushing = true;
        }
        self.wake.notify_one();
    }

    /// Records of a completed batch are no longer outstanding.
    pub fn completed(&self, records: u64) {
        let before = self.outstanding.fetch_sub(records, Ordering::SeqCst);
        if before <= records {
            self.drained.notify_waiters();
        }
    }

    /// Fails every batch not yet drained (on close).
    pub fn abort(&self, err: &Error) -> Vec<Batch> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        let mut out: Vec<Batch> = inner.sealed.drain(..).collect();
        out.extend(inner.open.drain().map(|(_, b)| b));
        drop(inner);
        for b in &out {
            b.shared.complete(Err(err.clone()));
        }
        out
    }
}
