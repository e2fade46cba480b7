//! [`Producer`]: the public handle. `send` partitions a record, reserves
//! buffer memory and appends it to the accumulator; a background sender task
//! does the rest (see `sender`).
//!
//! Ordering: records of one partition are sent in the order `send`/`enqueue`
//! was called. `send` appends synchronously when the topic's metadata is
//! known, buffer memory is free and no earlier record is waiting (the common
//! case); otherwise the record waits for admission, in order, for at most
//! `max.block.ms` from the call (see `admission`). Memory held by the producer
//! (records in batches, queued or in flight) never exceeds `buffer.memory`; a
//! waiting record belongs to the caller's future until it is admitted.
//!
//! `flush` waits for the records sent before it was called (Java semantics),
//! not for the producer to become idle.
//!
//! # Layout
//! - `admission`: the ordered wait for metadata and memory.
//! - `placement`: choosing the partition and appending (sticky switching).

mod admission;
mod placement;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brook_config::client::ProducerConfig;
use brook_protocol::records::Compression;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::accumulator::{Accumulator, BatchShared};
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
    partitioner: Arc<dyn Partitioner>,
    cmds: mpsc::UnboundedSender<Command>,
    admission: admission::Queue,
}

/// Where `send` left a record.
enum Staged {
    Appended(DeliveryFuture),
    Waiting(Arc<admission::Slot>),
    Failed(Error),
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
        let (admission, admission_rx) = admission::Queue::new(ms(config.max_block_ms));
        let inner = Arc::new(Inner {
            client,
            acc,
            memory,
            buffer_memory,
            max_request_size: usize::try_from(config.max_request_size).unwrap_or(1 << 20),
            partitioner,
            cmds,
            admission,
        });
        tokio::spawn(admission::run(Arc::downgrade(&inner), admission_rx));
        Ok(Self { inner })
    }

    /// The shared client layer (connections and metadata).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Bytes of `buffer.memory` reserved by records the producer holds
    /// (batched, queued or in flight); never more than `buffer.memory`.
    pub fn buffered_bytes(&self) -> usize {
        self.inner
            .buffer_memory
            .saturating_sub(self.inner.memory.available_permits())
    }

    /// Sends a record; the future resolves to where it was stored.
    ///
    /// The record is appended before `send` returns whenever that needs no
    /// waiting (see the module docs), so many sends can be in flight at once:
    /// collect the futures and await them later. Otherwise it waits, in
    /// `send` order and without being polled, for metadata and for room in
    /// `buffer.memory`, for at most `max.block.ms` from this call. Dropping the
    /// future while the record still waits withdraws it; once appended it is
    /// sent whether or not the future is kept.
    ///
    /// # Errors
    /// The future fails as [`Producer::enqueue`] does, or with the delivery
    /// error of [`DeliveryFuture::wait`].
    pub fn send(
        &self,
        record: ProducerRecord,
    ) -> impl Future<Output = Result<RecordMetadata>> + Send + 'static {
        let staged = self.stage(record);
        async move {
            match staged {
                Staged::Appended(delivery) => delivery.wait().await,
                Staged::Waiting(slot) => {
                    let delivery = slot.admitted().await;
                    // Free the slot (and wake admission) before the long wait.
                    drop(slot);
                    delivery?.wait().await
                }
                Staged::Failed(e) => Err(e),
            }
        }
    }

    /// Appends now if possible, else queues for admission.
    fn stage(&self, record: ProducerRecord) -> Staged {
        match self.try_enqueue(record) {
            Ok(Ok(delivery)) => Staged::Appended(delivery),
            Ok(Err(record)) => match self.inner.admission.push(record) {
                Ok(slot) => Staged::Waiting(slot),
                Err(e) => Staged::Failed(e),
            },
            Err(e) => Staged::Failed(e),
        }
    }

    /// Enqueues a record, waiting up to `max.block.ms` for metadata and buffer
    /// memory; the returned future completes on delivery. Dropping this
    /// future before it completes withdraws the record.
    ///
    /// # Errors
    /// [`Error::Timeout`] after `max.block.ms`, [`Error::UnknownTopic`],
    /// [`Error::UnknownPartition`], [`Error::RecordTooLarge`] (larger than
    /// `max.request.size` or `buffer.memory`), [`Error::Closed`].
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        match self.stage(record) {
            Staged::Appended(delivery) => Ok(delivery),
            Staged::Waiting(slot) => slot.admitted().await,
            Staged::Failed(e) => Err(e),
        }
    }

    /// Fast path: `Ok(Err(record))` means "must wait".
    fn try_enqueue(
        &self,
        record: ProducerRecord,
    ) -> Result<Result<DeliveryFuture, ProducerRecord>> {
        if self.inner.admission.busy() {
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

    /// Appends a record whose `size` bytes of memory are reserved; on failure
    /// the reservation is returned.
    fn append(
        &self,
        record: ProducerRecord,
        partitions: usize,
        size: usize,
    ) -> Result<DeliveryFuture> {
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let placed = placement::place(
            &self.inner.acc,
            &*self.inner.partitioner,
            &record,
            partitions,
            timestamp,
            size,
        );
        match placed {
            Ok((tp, appended)) => Ok(DeliveryFuture {
                shared: appended.shared,
                index: appended.index,
                topic: tp.topic,
                partition: tp.partition,
                timestamp,
            }),
            Err(e) => {
                self.inner.memory.add_permits(size);
                Err(e)
            }
        }
    }

    /// Sends every buffered record now and waits until the records sent
    /// before this call have completed (acknowledged or failed), as the Java
    /// client does. Records sent meanwhile by other tasks are not waited for,
    /// so a steady stream of sends cannot hold `flush` up.
    pub async fn flush(&self) {
        // Linger no longer: every open batch is ready until the guard drops.
        let _flushing = self.inner.acc.start_flush();
        // Records sent earlier but still waiting for admission count too;
        // they are admitted in order, so this waits for all of them.
        self.inner.admission.settled().await;
        for batch in self.inner.acc.incomplete() {
            // Failed batches count as completed: flush reports no errors.
            let _ = batch.wait().await;
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
