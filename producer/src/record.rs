//! What applications send ([`ProducerRecord`]) and get back ([`RecordMetadata`]).

use brook_protocol::records::Header;
use bytes::Bytes;

/// A record to send. Build with [`ProducerRecord::new`] and the `with_*` methods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProducerRecord {
    /// Target topic.
    pub topic: String,
    /// Explicit partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// Key (also what the default partitioner hashes).
    pub key: Option<Bytes>,
    /// Value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Create time in ms since the epoch; `None` uses the time of `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with `value` and nothing else.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets an explicit partition.
    #[must_use]
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Appends a header.
    #[must_use]
    pub fn with_header(mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the create timestamp (ms since the epoch).
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Upper bound of the record's encoded size, for memory accounting.
    pub(crate) fn size_estimate(&self) -> usize {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 10)
            .sum();
        // 21 bytes covers the record's varint length, attributes, timestamp and
        // offset deltas and key/value lengths at their largest.
        21 + len(&self.key) + len(&self.value) + headers
    }
}

/// Where a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset; -1 with acks=0, where the broker does not answer.
    pub offset: i64,
    /// The record's create time, or the broker's append time for topics with
    /// `message.timestamp.type=LogAppendTime`.
    pub timestamp: i64,
}
