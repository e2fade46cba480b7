//! brook-producer: an async Kafka-protocol producer, and the shared client
//! layer ([`client`]) that brook-consumer builds on.
//!
//! It speaks the Kafka protocol through brook-protocol, so it works against
//! brook and any Kafka-compatible broker. Records are batched per partition
//! (`batch.size`, `linger.ms`), compressed (none/gzip/snappy/lz4/zstd), and sent
//! over one pipelined connection per broker. The idempotent producer is on by
//! default: retries never duplicate or reorder records within a partition.
//!
//! ```no_run
//! use brook_config::client::ProducerConfig;
//! use brook_producer::{Producer, ProducerRecord};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ProducerConfig::from_map([("bootstrap.servers", "127.0.0.1:9092"), ("linger.ms", "10")])?;
//! let producer = Producer::new(config)?;
//! let meta = producer.send(ProducerRecord::new("events", "hello").with_key("user-1")).await?;
//! println!("stored at {}-{}@{}", meta.topic, meta.partition, meta.offset);
//! producer.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`client`]: pipelined connections, version negotiation, metadata (shared with the consumer).
//! - `producer`: [`Producer`], [`DeliveryFuture`]; `producer::admission` (ordered
//!   wait for metadata and `buffer.memory`), `producer::placement` (partition
//!   choice, sticky switching).
//! - `record`: [`ProducerRecord`], [`RecordMetadata`].
//! - [`partitioner`]: Java-compatible murmur2, sticky, the [`Partitioner`] trait.
//! - `accumulator`: per-partition batches, `linger.ms`, `batch.size`.
//! - `sender`: the background task that sends batches and handles responses;
//!   `sender::background` runs metadata refreshes and connects off its loop.
//! - `partition_state`: per-partition sequence and retry-ordering rules (no I/O).
//! - `error`: [`Error`].

mod accumulator;
pub mod client;
mod error;
mod partition_state;
pub mod partitioner;
mod producer;
mod record;
mod sender;

pub use accumulator::TopicPartition;
pub use brook_config::client::ProducerConfig;
pub use brook_protocol::records::Header;
pub use error::{Error, Result};
pub use partitioner::{DefaultPartitioner, Partitioner};
pub use producer::{DeliveryFuture, Producer};
pub use record::{ProducerRecord, RecordMetadata};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
