//! [`ConsumerRecord`]: one record as the application sees it.

use brook_protocol::records::Header;
use bytes::Bytes;

/// A fetched record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: std::sync::Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Create time (or log append time), ms since the epoch.
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value; `None` for tombstones.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<Header>,
}
