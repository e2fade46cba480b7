//! brook-consumer: an async Kafka-protocol consumer built on brook-producer's
//! shared client layer.
//!
//! Assign partitions, then `poll`: fetches are pipelined (the next one is in
//! flight while the application processes the current records), compressed
//! batches are decompressed, records below the requested offset and control
//! batches are hidden. Positions can be moved with `seek`, `seek_to_beginning`
//! and `seek_to_end`; `auto.offset.reset` decides where to start and what to do
//! on OFFSET_OUT_OF_RANGE. With `group.id`, offsets are committed through the
//! group coordinator (OffsetCommit/OffsetFetch), by hand or automatically.
//! [`Consumer::subscribe`] / [`Consumer::subscribe_pattern`] join the consumer
//! group: a background task runs the membership protocol, the assignors in
//! [`group`] (`range`, `roundrobin`, `cooperative-sticky`) split partitions,
//! and rebalances reach the application through `poll` and a
//! [`group::RebalanceListener`].
//!
//! ```no_run
//! use std::time::Duration;
//! use brook_consumer::{Consumer, ConsumerConfig, TopicPartition};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ConsumerConfig::from_map([("bootstrap.servers", "127.0.0.1:9092"), ("auto.offset.reset", "earliest")])?;
//! let mut consumer = Consumer::new(config);
//! consumer.assign([TopicPartition { topic: "events".into(), partition: 0 }]);
//! for record in consumer.poll(Duration::from_secs(1)).await? {
//!     println!("{}@{}: {:?}", record.partition, record.offset, record.value);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `consumer`: [`Consumer`] — assignment, positions, fetch pipeline, `poll`;
//!   `consumer/commit`: commits; `consumer/group`: subscription and rebalance events.
//! - `fetcher`: decoding fetched partition data into records (no I/O).
//! - `offsets`: ListOffsets, FindCoordinator, OffsetCommit, OffsetFetch.
//! - [`group`]: assignors, the consumer protocol, the membership task, rebalance callbacks.
//! - `stream`: [`RecordStream`].
//! - `record`, `error`: [`ConsumerRecord`], [`Error`].

mod consumer;
mod error;
mod fetcher;
pub mod group;
mod offsets;
mod record;
mod stream;

pub use brook_config::client::{AutoOffsetReset, ConsumerConfig};
pub use brook_producer::TopicPartition;
pub use consumer::{Consumer, GroupMetadata};
pub use error::{Error, Result};
pub use record::ConsumerRecord;
pub use stream::RecordStream;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
