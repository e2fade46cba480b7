//! Admission of records that cannot be appended when `send` is called: the
//! topic's metadata is not known yet, `buffer.memory` has no room, or earlier
//! records are still waiting (so later ones must not overtake them).
//!
//! Memory: a waiting record stays owned by the caller's future, inside a
//! [`Slot`] the future holds strongly; the admission queue holds only a `Weak`
//! to it. So records waiting for space are never producer-held memory (as in
//! the Java client, where a blocked `send` keeps its record on the caller's
//! stack), and dropping the future withdraws its record and frees its bytes at
//! once. Everything the producer does hold — records in batches, queued or in
//! flight — has its size reserved from `buffer.memory` before it is appended
//! and released when its batch completes, so it never exceeds `buffer.memory`.
//!
//! Order and fairness: one task admits waiting records strictly in `send`
//! order, each first waiting for metadata and then for memory. tokio's
//! semaphore serves waiters first-come first-served and the synchronous fast
//! path is closed while anything waits, so no record overtakes an earlier one
//! and a stream of small records cannot starve a large one.
//!
//! Deadline: each record's `max.block.ms` runs from its own `send` call; when
//! it passes, the record fails with [`Error::Timeout`] naming `max.block.ms`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use brook_protocol::error::ErrorCode;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use super::{DeliveryFuture, Inner, Producer};
use crate::error::{Error, Result};
use crate::record::ProducerRecord;

/// A record waiting for admission, shared by its future (strong) and the
/// admission queue (weak).
pub(super) struct Slot {
    record: Mutex<Option<ProducerRecord>>,
    outcome: Mutex<Option<Result<DeliveryFuture>>>,
    done: Notify,
    deadline: Instant,
    /// Told when the slot goes away, so admission stops waiting for it.
    withdrawn: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.withdrawn.notify_one();
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Slot {
    fn complete(&self, outcome: Result<DeliveryFuture>) {
        if let Ok(mut o) = self.outcome.lock() {
            *o = Some(outcome);
        }
        // `notify_one` stores the wake-up if the future is not waiting yet.
        self.done.notify_one();
    }

    /// Waits until the record is in the buffer (or failed to get there).
    pub(super) async fn admitted(&self) -> Result<DeliveryFuture> {
        loop {
            match self.outcome.lock() {
                Ok(mut o) => {
                    if let Some(outcome) = o.take() {
                        return outcome;
                    }
                }
                Err(_) => return Err(Error::Closed),
            }
            self.done.notified().await;
        }
    }
}

struct Entry {
    seq: u64,
    slot: Weak<Slot>,
    withdrawn: Arc<Notify>,
}

/// The ordered queue of waiting records; see the module documentation.
#[derive(Debug)]
pub(super) struct Queue {
    /// Sequence of the last entry queued; the lock also keeps channel order
    /// equal to sequence order when several tasks queue at once.
    tx: Mutex<(u64, mpsc::UnboundedSender<Entry>)>,
    /// Entries queued and not yet finished; the fast path is taken only at 0.
    waiting: AtomicUsize,
    /// Sequence of the last entry admission finished with.
    finished: watch::Sender<u64>,
    max_block: Duration,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("seq", &self.seq).finish()
    }
}

/// The receiving end, handed to [`run`].
pub(super) struct Receiver(mpsc::UnboundedReceiver<Entry>);

impl Queue {
    pub(super) fn new(max_block: Duration) -> (Self, Receiver) {
        // Unbounded in entries only: each entry is a weak pointer whose
        // record is owned, and bounded, by a live caller future.
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Self {
            tx: Mutex::new((0, tx)),
            waiting: AtomicUsize::new(0),
            finished: watch::Sender::new(0),
            max_block,
        };
        (queue, Receiver(rx))
    }

    /// Whether any record is waiting (then new records must wait too).
    pub(super) fn busy(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// Queues `record`; its `max.block.ms` starts now.
    ///
    /// # Errors
    /// [`Error::Closed`] when the admission task is gone.
    pub(super) fn push(&self, record: ProducerRecord) -> Result<Arc<Slot>> {
        let withdrawn = Arc::new(Notify::new());
        let slot = Arc::new(Slot {
            record: Mutex::new(Some(record)),
            outcome: Mutex::new(None),
            done: Notify::new(),
            deadline: Instant::now() + self.max_block,
            withdrawn: withdrawn.clone(),
        });
        let mut tx = self.tx.lock().map_err(|_| Error::Closed)?;
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let seq = tx.0 + 1;
        let entry = Entry {
            seq,
            slot: Arc::downgrade(&slot),
            withdrawn,
        };
        if tx.1.send(entry).is_err() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Closed);
        }
        tx.0 = seq;
        Ok(slot)
    }

    /// Waits until every record queued before this call was admitted, failed
    /// or withdrawn.
    pub(super) async fn settled(&self) {
        let target = self.tx.lock().map_or(0, |tx| tx.0);
        let mut rx = self.finished.subscribe();
        // An error means the admission task ended: nothing is waiting any more.
        let _ = rx.wait_for(|f| *f >= target).await;
    }

    fn finish(&self, seq: u64) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.finished.send_replace(seq);
    }
}

/// Admits queued records in order; ends when the producer is dropped, failing
/// whatever still waits with [`Error::Closed`].
pub(super) async fn run(producer: Weak<Inner>, rx: Receiver) {
    let mut rx = rx.0;
    while let Some(entry) = rx.recv().await {
        let Some(inner) = producer.upgrade() else {
            if let Some(slot) = entry.slot.upgrade() {
                slot.complete(Err(Error::Closed));
            }
            continue;
        };
        let producer = Producer { inner };
        producer.admit(&entry).await;
        producer.inner.admission.finish(entry.seq);
    }
}

impl Producer {
    async fn admit(&self, entry: &Entry) {
        let Some(slot) = entry.slot.upgrade() else {
            return;
        };
        let deadline = slot.deadline;
        let head = slot.record.lock().ok().and_then(|r| {
            r.as_ref()
                .map(|r| (r.topic.clone(), r.partition, self.check_size(r)))
        });
        let Some((topic, partition, size)) = head else {
            return;
        };
        let size = match size {
            Ok(size) => size,
            Err(e) => return slot.complete(Err(e)),
        };
        // Hold only the weak pointer while waiting: a dropped future frees
        // its record now, not when its turn comes.
        drop(slot);
        let wait = async {
            let partitions = self
                .wait_for_partitions(&topic, partition, deadline)
                .await?;
            let permits = u32::try_from(size).unwrap_or(u32::MAX);
            let permit = tokio::time::timeout_at(deadline, self.inner.memory.acquire_many(permits))
                .await
                .map_err(|_| {
                    Error::Timeout(format!(
                        "no room for a {size}-byte record in buffer.memory ({} bytes, {} in use) \
                         within max.block.ms ({:?})",
                        self.inner.buffer_memory,
                        self.buffered_bytes(),
                        self.inner.admission.max_block
                    ))
                })?
                .map_err(|_| Error::Closed)?;
            Ok((partitions, permit))
        };
        let waited: Result<_> = tokio::select! {
            r = wait => r,
            () = entry.withdrawn.notified() => return,
        };
        // Gone meanwhile: dropping the permit gives the memory back.
        let Some(slot) = entry.slot.upgrade() else {
            return;
        };
        let outcome = waited.and_then(|(partitions, permit)| {
            let record = slot
                .record
                .lock()
                .ok()
                .and_then(|mut r| r.take())
                .ok_or(Error::Closed)?;
            // The reservation now travels with the batch (see `append`).
            permit.forget();
            self.append(record, partitions, size)
        });
        slot.complete(outcome);
    }

    /// The topic's partition count once metadata knows it (and, for an
    /// explicit partition, once the topic has that partition).
    async fn wait_for_partitions(
        &self,
        topic: &str,
        partition: Option<i32>,
        deadline: Instant,
    ) -> Result<usize> {
        let fits = |n: usize| partition.is_none_or(|p| usize::try_from(p).is_ok_and(|p| p < n));
        let mut backoff = Duration::from_millis(20);
        loop {
            let cluster = self.inner.client.cluster();
            let known = cluster.partition_count(topic);
            if let Some(n) = known.filter(|n| fits(*n)) {
                return Ok(n);
            }
            if Instant::now() >= deadline {
                let meta = cluster.topics.get(topic);
                return Err(match (known, partition, meta) {
                    (Some(count), Some(partition), _) => Error::UnknownPartition {
                        topic: topic.to_owned(),
                        partition,
                        count,
                    },
                    (_, _, Some(t)) if t.error == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => {
                        Error::UnknownTopic(topic.to_owned())
                    }
                    (_, _, Some(t))
                        if !t.error.is_ok() && t.error != ErrorCode::LEADER_NOT_AVAILABLE =>
                    {
                        Error::broker(t.error, format!("topic {topic}"))
                    }
                    _ => Error::Timeout(format!(
                        "no metadata for topic {topic} within max.block.ms ({:?})",
                        self.inner.admission.max_block
                    )),
                });
            }
            match tokio::time::timeout_at(deadline, self.inner.client.refresh_metadata(&[topic]))
                .await
            {
                Ok(Ok(c)) => {
                    let code = c.topics.get(topic).map(|t| t.error);
                    if code == Some(ErrorCode::INVALID_TOPIC_EXCEPTION) {
                        return Err(Error::broker(
                            ErrorCode::INVALID_TOPIC_EXCEPTION,
                            format!("topic {topic}"),
                        ));
                    }
                }
                Ok(Err(e)) if !e.is_retriable() => return Err(e),
                Ok(Err(_)) | Err(_) => {}
            }
            if self
                .inner
                .client
                .cluster()
                .partition_count(topic)
                .is_some_and(fits)
            {
                continue;
            }
            tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())))
                .await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use bytes::Bytes;

    use super::*;
    use crate::ProducerConfig;

    /// A producer whose bootstrap server refuses connections: every send
    /// waits for metadata that never comes.
    fn unreachable(max_block_ms: &str, buffer_memory: &str) -> Producer {
        let config = ProducerConfig::from_map([
            ("bootstrap.servers", "127.0.0.1:1"),
            ("max.block.ms", max_block_ms),
            ("buffer.memory", buffer_memory),
        ])
        .unwrap();
        Producer::new(config).unwrap()
    }

    /// Regression: each waiting record's max.block.ms used to start only when
    /// the record reached the head of the wait list.
    #[tokio::test]
    async fn max_block_runs_from_each_send_not_from_its_turn() {
        let max_block = Duration::from_millis(300);
        let p = unreachable("300", "1048576");
        let started = Instant::now();
        let sends: Vec<_> = (0..20)
            .map(|i| tokio::spawn(p.send(ProducerRecord::new("t", format!("{i}")))))
            .collect();
        for s in sends {
            let err = s.await.unwrap().unwrap_err();
            assert!(
                matches!(&err, Error::Timeout(m) if m.contains("max.block.ms")),
                "{err}"
            );
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= max_block, "failed early: {elapsed:?}");
        assert!(
            elapsed < max_block * 5,
            "failed one after another: {elapsed:?}"
        );
    }

    #[tokio::test]
    async fn a_record_larger_than_buffer_memory_fails_at_once() {
        let p = unreachable("60000", "1024");
        let err = p
            .send(ProducerRecord::new("t", vec![0u8; 2000]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::RecordTooLarge {
                    key: "buffer.memory",
                    ..
                }
            ),
            "{err}"
        );
    }

    struct Owner(Vec<u8>, Arc<AtomicBool>);

    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    impl Drop for Owner {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }

    /// A waiting record belongs to its future: dropping the future frees the
    /// record's bytes at once, not when admission reaches or times it out.
    #[tokio::test]
    async fn dropping_a_waiting_send_frees_its_record() {
        let p = unreachable("60000", "1048576");
        let freed = Arc::new(AtomicBool::new(false));
        let value = Bytes::from_owner(Owner(vec![7; 100], freed.clone()));
        let first = p.send(ProducerRecord::new("t", "head"));
        let waiting = p.send(ProducerRecord::new("t", value));
        assert!(p.inner.admission.busy());
        assert!(!freed.load(Ordering::SeqCst));
        drop(waiting);
        assert!(
            freed.load(Ordering::SeqCst),
            "the record outlived its future"
        );
        drop(first);
        // Admission skips withdrawn records instead of waiting for them.
        let settled = tokio::time::timeout(Duration::from_secs(5), p.inner.admission.settled());
        assert!(
            settled.await.is_ok(),
            "admission kept waiting for withdrawn records"
        );
    }
}
