//! The record accumulator: one open batch per partition, sealed when it reaches
//! `batch.size` and drained by the sender when sealed or older than `linger.ms`.
//!
//! Concurrency: application tasks append under one short `std` mutex (no I/O,
//! no compression under it: records are encoded uncompressed into the batch
//! builder; compression happens in the sender). The sender is woken through a
//! `Notify` when a batch is sealed or a flush is requested.
//!
//! Every batch from its creation until it completes is also listed as
//! *incomplete* (the Java client's `IncompleteBatches`), so `flush()` can take
//! a snapshot of exactly the batches that exist when it is called and wait for
//! those only; records appended later do not prolong it.
//!
//! Hot path: `append` allocates only when a batch is created; do not add
//! logging above `trace` or any await here.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Accumulator-wide id, the key in the incomplete set.
    pub id: u64,
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
    /// Batches created and not yet completed, by id.
    incomplete: HashMap<u64, Arc<BatchShared>>,
    next_id: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Accumulator {
    inner: Mutex<Inner>,
    /// Wakes the sender.
    pub wake: Notify,
    batch_size: usize,
    linger: Duration,
    /// `flush()` calls in progress; while above zero every open batch is
    /// ready regardless of `linger.ms`.
    flushes: AtomicUsize,
}

/// Keeps open batches ready while a flush is in progress; ends it on drop
/// (also when the flushing future is cancelled).
pub(crate) struct FlushGuard<'a> {
    acc: &'a Accumulator,
}

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.acc.flushes.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where an appended record went.
pub(crate) struct Appended {
    pub shared: Arc<BatchShared>,
    pub index: i32,
}

impl Accumulator {
    pub fn new(batch_size: usize, linger: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
            batch_size: batch_size.max(1),
            linger,
            flushes: AtomicUsize::new(0),
        }
    }

    /// Appends one record; `reserved` buffer-memory permits travel with it.
    ///
    /// With `abort_on_new_batch`, a record that would start a new batch (the
    /// partition has no open batch, or the open one is full) is not appended
    /// and `Ok(None)` is returned, so a sticky partitioner can move on first
    /// (the Java client's `abortOnNewBatch`, KIP-480). A partition has no open
    /// batch after its last one was sealed or sent because `linger.ms` expired.
    #[expect(
        clippy::too_many_arguments,
        reason = "the record's parts are borrowed from the caller's record"
    )]
    pub fn append(
        &self,
        tp: &TopicPartition,
        timestamp: i64,
        key: Option<&Bytes>,
        value: Option<&Bytes>,
        headers: &[Header],
        reserved: usize,
        abort_on_new_batch: bool,
    ) -> Result<Option<Appended>> {
        let enc = |e: brook_protocol::records::RecordError| Error::Encode(e.to_string());
        let mut inner = self.inner.lock().map_err(|_| Error::Closed)?;
        let mut sealed = false;
        if abort_on_new_batch && !inner.open.contains_key(tp) {
            return Ok(None);
        }
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
                if abort_on_new_batch {
                    return Ok(None);
                }
                if let Some(full) = inner.open.remove(tp) {
                    inner.sealed.push_back(full);
                    sealed = true;
                }
            }
        }
        // A new open batch gives the sender a new linger deadline to sleep to.
        let created = !inner.open.contains_key(tp);
        if created {
            let id = inner.next_id;
            inner.next_id += 1;
            let shared = Arc::new(BatchShared::default());
            inner.incomplete.insert(id, shared.clone());
            inner.open.insert(
                tp.clone(),
                Batch {
                    id,
                    tp: tp.clone(),
                    builder: BatchBuilder::new(),
                    shared,
                    created: Instant::now(),
                    reserved: 0,
                },
            );
        }
        let Some(batch) = inner.open.get_mut(tp) else {
            return Err(Error::Closed);
        };
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
        drop(inner);
        if sealed || created {
            self.wake.notify_one();
        }
        Ok(Some(Appended { shared, index }))
    }

    /// Takes every sealed batch and every open batch older than `linger.ms`
    /// (all open batches while flushing). Returns the batches and the instant
    /// the next open batch expires.
    pub fn drain(&self, now: Instant) -> (Vec<Batch>, Option<Instant>) {
        let Ok(mut inner) = self.inner.lock() else {
            return (Vec::new(), None);
        };
        let mut out: Vec<Batch> = inner.sealed.drain(..).collect();
        let flushing = self.flushes.load(Ordering::SeqCst) > 0;
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
        (out, next)
    }

    /// Makes every open batch ready now, until the guard is dropped.
    pub fn start_flush(&self) -> FlushGuard<'_> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
        FlushGuard { acc: self }
    }

    /// The batches not yet completed at this moment.
    pub fn incomplete(&self) -> Vec<Arc<BatchShared>> {
        self.inner
            .lock()
            .map(|i| i.incomplete.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A batch completed: it leaves the incomplete set.
    pub fn completed(&self, id: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.incomplete.remove(&id);
        }
    }

    /// Fails every batch not yet drained (on close).
    pub fn abort(&self, err: &Error) -> Vec<Batch> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        let mut out: Vec<Batch> = inner.sealed.drain(..).collect();
        out.extend(inner.open.drain().map(|(_, b)| b));
        for b in &out {
            inner.incomplete.remove(&b.id);
        }
        drop(inner);
        for b in &out {
            b.shared.complete(Err(err.clone()));
        }
        out
    }
}
