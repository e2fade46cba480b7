//! [`Producer`]: the public handle. `send` partitions a record, reserves
//! buffer memory and appends it to the accumulator; a background sender task
//! does the rest (see `sender`).
//!
//! Ordering: records of one partition are sent in the order `send`/`enqueue`
//! was called. `send` enqueues synchronously when the topic's metadata is
//! known, buffer memory is free and no earlier record is waiting (the common
//! case); otherwise the record joins a FIFO wait list that a background task
//! enqueues in order, each after waiting up to `max.block.ms`. Records on the
//! wait list are not counted against `buffer.memory`: callers that need
//! backpressure await [`Producer::enqueue`], which returns once the record is
//! in the buffer.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brook_config::client::ProducerConfig;
use brook_protocol::error::ErrorCode;
use brook_protocol::records::Compression;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::accumulator::{Accumulator, BatchShared, TopicPartition};
use crate::client::{Client, ClientOptions};
use crate::error::{Error, Result};
use crate::partitioner::{DefaultPartitioner, Partitioner};
use crate::record::{ProducerRecord, RecordMetadata};
use crate::sender::{Command, Sender, SenderConfig};

/// An async Kafka producer. Cheap to clone; all clones share one sender.
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    acc: Arc<Accumulator>,
    memory: Arc<Semaphore>,
    buffer_memory: usize,
    max_request_size: usize,
    max_block: Duration,
    partitioner: Arc<dyn Partitioner>,
    cmds: mpsc::UnboundedSender<Command>,
    /// FIFO of records that could not be enqueued synchronously.
    waiting: mpsc::UnboundedSender<Waiting>,
    /// Records on `waiting` not yet enqueued; the fast path is taken only at 0.
    waiting_count: AtomicUsize,
}

struct Waiting {
    record: ProducerRecord,
    reply: oneshot::Sender<Result<DeliveryFuture>>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("topic", &self.record.topic)
            .finish_non_exhaustive()
    }
}

/// Enqueues waiting records in order; ends when the producer is dropped.
async fn wait_list(inner: std::sync::Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Waiting>) {
    while let Some(w) = rx.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        let producer = Producer { inner };
        let result = producer.enqueue_now(w.record).await;
        producer.inner.waiting_count.fetch_sub(1, Ordering::SeqCst);
        let _ = w.reply.send(result);
    }
}

/// Completes when the record is acknowledged (or failed for good).
#[derive(Debug)]
pub struct DeliveryFuture {
    shared: Arc<BatchShared>,
    index: i32,
    topic: Arc<str>,
    partition: i32,
    timestamp: i64,
}

impl DeliveryFuture {
    /// Waits for the delivery report.
    ///
    /// # Errors
    /// The batch's error once retries and `delivery.timeout.ms` are exhausted.
    pub async fn wait(self) -> Result<RecordMetadata> {
        let (base, append_time) = self.shared.wait().await?;
        Ok(RecordMetadata {
            topic: self.topic.to_string(),
            partition: self.partition,
            offset: if base < 0 {
                -1
            } else {
                base + i64::from(self.index)
            },
            timestamp: if append_time >= 0 {
                append_time
            } else {
                self.timestamp
            },
        })
    }
}

impl IntoFuture for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<RecordMetadata>> + Send>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

fn compression(name: &str) -> Compression {
    match name {
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    }
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Producer {
    /// Starts a producer with the default partitioner. Must be called inside a
    /// tokio runtime; nothing is connected until the first record.
    ///
    /// # Errors
    /// None today; reserved for configuration checks.
    pub fn new(config: ProducerConfig) -> Result<Self> {
        let partitioner = Arc::new(DefaultPartitioner::new(config.partitioner_ignore_keys));
        Self::with_partitioner(config, partitioner)
    }

    /// Starts a producer with a custom partitioner.
    ///
    /// # Errors
    /// As [`Producer::new`].
    pub fn with_partitioner(
        config: ProducerConfig,
        partitioner: Arc<dyn Partitioner>,
    ) -> Result<Self> {
        let request_timeout = ms(i64::from(config.request_timeout_ms));
        let client = Client::new(ClientOptions {
            bootstrap: config.bootstrap(),
            client_id: config.client_id.clone(),
            request_timeout,
            connect_timeout: Duration::from_secs(10),
            allow_auto_topic_creation: true,
        });
        let buffer_memory = usize::try_from(config.buffer_memory)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        let acc = Arc::new(Accumulator::new(
            usize::try_from(config.batch_size).unwrap_or(16_384),
            ms(config.linger_ms),
        ));
        let memory = Arc::new(Semaphore::new(buffer_memory));
        let cfg = SenderConfig {
            acks: config.acks(),
            idempotence: config.idempotence(),
            compression: compression(&config.compression_type),
            max_in_flight: usize::try_from(config.max_in_flight).unwrap_or(1).max(1),
            retries: u32::try_from(config.retries).unwrap_or(0),
            retry_backoff: ms(config.retry_backoff_ms),
            delivery_timeout: ms(i64::from(config.delivery_timeout_ms)),
            request_timeout,
            max_request_size: usize::try_from(config.max_request_size).unwrap_or(1 << 20),
            metadata_max_age: ms(config.metadata_max_age_ms),
        };
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let sender = Sender::new(client.clone(), acc.clone(), memory.clone(), cfg, cmd_rx);
        tokio::spawn(sender.run());
        let (waiting, waiting_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            client,
            acc,
            memory,
            buffer_memory,
            max_request_size: usize::try_from(config.max_request_size).unwrap_or(1 << 20),
            max_block: ms(config.max_block_ms),
            partitioner,
            cmds,
            waiting,
            waiting_count: AtomicUsize::new(0),
        });
        tokio::spawn(wait_list(Arc::downgrade(&inner), waiting_rx));
        Ok(Self { inner })
    }

    /// The shared client layer (connections and metadata).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Sends a record; the future resolves to where it was stored.
    ///
    /// The record is enqueued before `send` returns whenever that needs no
    /// waiting (see the module docs), so many sends can be in flight at once:
    /// collect the futures and await them later.
    pub fn send(
        &self,
        record: ProducerRecord,
    ) -> impl Future<Output = Result<RecordMetadata>> + Send + 'static {
        let staged = match self.try_enqueue(record) {
            Ok(Ok(delivery)) => Ok(delivery),
            Ok(Err(record)) => Err(self.queue_waiting(record)),
            Err(e) => Err(Err(e)),
        };
        async move {
            match staged {
                Ok(delivery) => delivery.wait().await,
                Err(Ok(rx)) => rx.await.map_err(|_| Error::Closed)??.wait().await,
                Err(Err(e)) => Err(e),
            }
        }
    }

    fn queue_waiting(
        &self,
        record: ProducerRecord,
    ) -> Result<oneshot::Receiver<Result<DeliveryFuture>>> {
        let (reply, rx) = oneshot::channel();
        self.inner.waiting_count.fetch_add(1, Ordering::SeqCst);
        if self.inner.waiting.send(Waiting { record, reply }).is_err() {
            self.inner.waiting_count.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Closed);
        }
        Ok(rx)
    }

    /// Enqueues a record, waiting up to `max.block.ms` for metadata and buffer
    /// memory; the returned future completes on delivery.
    ///
    /// # Errors
    /// [`Error::Timeout`] after `max.block.ms`, [`Error::UnknownTopic`],
    /// [`Error::UnknownPartition`], [`Error::RecordTooLarge`], [`Error::Closed`].
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        match self.try_enqueue(record)? {
            Ok(delivery) => Ok(delivery),
            Err(record) => self
                .queue_waiting(record)?
                .await
                .map_err(|_| Error::Closed)?,
        }
    }

    async fn enqueue_now(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let deadline = tokio::time::Instant::now() + self.inner.max_block;
        let partitions = self.wait_for_partitions(&record, deadline).await?;
        let size = self.check_size(&record)?;
        let permits = u32::try_from(size).unwrap_or(u32::MAX);
        let permit = tokio::time::timeout_at(deadline, self.inner.memory.acquire_many(permits))
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "no buffer memory within max.block.ms ({:?})",
                    self.inner.max_block
                ))
            })?
            .map_err(|_| Error::Closed)?;
        permit.forget();
        self.append(record, partitions, size)
    }

    /// Fast path: `Ok(Err(record))` means "must wait".
    fn try_enqueue(
        &self,
        record: ProducerRecord,
    ) -> Result<Result<DeliveryFuture, ProducerRecord>> {
        if self.inner.waiting_count.load(Ordering::SeqCst) > 0 {
            return Ok(Err(record));
        }
        let Some(partitions) = self.inner.client.cluster().partition_count(&record.topic) else {
            return Ok(Err(record));
        };
        if record
            .partition
            .is_some_and(|p| usize::try_from(p).map_or(true, |p| p >= partitions))
        {
            return Ok(Err(record));
        }
        let size = self.check_size(&record)?;
        let Ok(permit) = self
            .inner
            .memory
            .try_acquire_many(u32::try_from(size).unwrap_or(u32::MAX))
        else {
            return Ok(Err(record));
        };
        permit.forget();
        self.append(record, partitions, size).map(Ok)
    }

    fn check_size(&self, record: &ProducerRecord) -> Result<usize> {
        let size = record.size_estimate();
        if size > self.inner.max_request_size {
            return Err(Error::RecordTooLarge {
                size,
                limit: self.inner.max_request_size,
                key: "max.request.size",
            });
        }
        if size > self.inner.buffer_memory {
            return Err(Error::RecordTooLarge {
                size,
                limit: self.inner.buffer_memory,
                key: "buffer.memory",
            });
        }
        Ok(size)
    }

    fn append(
        &self,
        record: ProducerRecord,
        partitions: usize,
        size: usize,
    ) -> Result<DeliveryFuture> {
        let partition = match record.partition {
            Some(p) => p,
            None => {
                let p = self.inner.partitioner.partition(
                    &record.topic,
                    record.key.as_deref(),
                    partitions,
                );
                i32::try_from(p.min(partitions.saturating_sub(1))).unwrap_or(0)
            }
        };
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let tp = TopicPartition {
            topic: Arc::from(record.topic.as_str()),
            partition,
        };
        let appended = self.inner.acc.append(
            &tp,
            timestamp,
            record.key.as_ref(),
            record.value.as_ref(),
            &record.headers,
            size,
        );
        let appended = match appended {
            Ok(a) => a,
            Err(e) => {
                self.inner.memory.add_permits(size);
                return Err(e);
            }
        };
        if appended.sealed && record.partition.is_none() {
            self.inner.partitioner.on_new_batch(
                &record.topic,
                usize::try_from(partition).unwrap_or(0),
                partitions,
            );
        }
        Ok(DeliveryFuture {
            shared: appended.shared,
            index: appended.index,
            topic: tp.topic,
            partition,
            timestamp,
        })
    }

    /// The topic's partition count once metadata knows it (and, for an
    /// explicit partition, once the topic has that partition).
    async fn wait_for_partitions(
        &self,
        record: &ProducerRecord,
        deadline: tokio::time::Instant,
    ) -> Result<usize> {
        let topic = record.topic.as_str();
        let mut backoff = Duration::from_millis(20);
        loop {
            let cluster = self.inner.client.cluster();
            let known = cluster.partition_count(topic);
            match (known, record.partition) {
                (Some(n), None) => return Ok(n),
                (Some(n), Some(p)) if usize::try_from(p).is_ok_and(|p| p < n) => return Ok(n),
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let meta = cluster.topics.get(topic);
                return Err(match (known, record.partition, meta) {
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
                        self.inner.max_block
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
                .is_some_and(|n| {
                    record
                        .partition
                        .is_none_or(|p| usize::try_from(p).is_ok_and(|p| p < n))
                })
            {
                continue;
            }
            tokio::time::sleep(
                backoff.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
            )
            .await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Sends every buffered record now and waits until all records enqueued so
    /// far have completed (acknowledged or failed).
    pub async fn flush(&self) {
        loop {
            let drained = self.inner.acc.drained.notified();
            if self.inner.acc.outstanding.load(Ordering::SeqCst) == 0 {
                return;
            }
            self.inner.acc.begin_flush();
            drained.await;
        }
    }

    /// Flushes, then stops the sender and closes connections. Records sent
    /// after `close` fail with [`Error::Closed`].
    pub async fn close(&self) {
        self.flush().await;
        let (tx, rx) = oneshot::channel();
        if self.inner.cmds.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
        self.inner.memory.close();
        self.inner.client.close();
    }
}
