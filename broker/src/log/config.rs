//! Per-partition log configuration and the clock seam.
//!
//! The broker fills [`LogConfig`] from brook-config's topic config; the defaults are
//! Kafka's.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::log::error::LogError;

/// Settings of one partition log (Kafka topic config names in the field docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment spans more than this.
    pub segment_ms: i64,
    /// `segment.index.bytes`: preallocated size of each index file.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of batches between two index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments older than this; negative = keep forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete old segments while the log is larger; negative = no limit.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest batch accepted by append.
    pub max_message_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
        }
    }
}

impl LogConfig {
    /// Reject values the on-disk format cannot represent.
    ///
    /// # Errors
    /// [`LogError::InvalidConfig`] naming the key.
    pub fn validate(&self) -> Result<(), LogError> {
        // Positions in the offset index are u32 and Kafka caps segment.bytes at i32::MAX.
        if self.segment_bytes < 14 || self.segment_bytes > i32::MAX as u64 {
            return Err(LogError::InvalidConfig {
                key: "segment.bytes",
                reason: "must be between 14 and 2147483647",
            });
        }
        if self.segment_ms < 1 {
            return Err(LogError::InvalidConfig {
                key: "segment.ms",
                reason: "must be at least 1",
            });
        }
        // Room for a few entries of the larger (12-byte) time index entry.
        if self.segment_index_bytes < 48 || self.segment_index_bytes > i32::MAX as u64 {
            return Err(LogError::InvalidConfig {
                key: "segment.index.bytes",
                reason: "must be between 48 and 2147483647",
            });
        }
        Ok(())
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, behind a seam so tests
/// can drive segment rolls and retention without sleeping.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}
