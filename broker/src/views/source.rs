//! [`ChangelogSource`] over this broker's local partition logs.
//!
//! Reads go through [`crate::partition::Partition::read`], which never returns
//! anything at or above the high-water mark, so a view only ever applies committed
//! records. The region found is copied out of the page cache with one `pread`
//! (views decode records, so zero-copy buys nothing here).

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use brook_views::{ChangelogSource, SourceError, SourceRead};
use bytes::Bytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::log::LogError;

/// The local logs of one broker.
#[derive(Debug, Clone)]
pub struct BrokerSource {
    broker: Arc<Broker>,
}

impl BrokerSource {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }
}

impl ChangelogSource for BrokerSource {
    fn partitions(&self, topic: &str) -> Result<Vec<i32>, SourceError> {
        let t = self
            .broker
            .topic(topic)
            .ok_or_else(|| SourceError::UnknownTopic(topic.to_owned()))?;
        Ok(t.partitions().iter().map(|p| p.index).collect())
    }

    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<SourceRead, SourceError> {
        let t = self
            .broker
            .topic(topic)
            .ok_or_else(|| SourceError::UnknownTopic(topic.to_owned()))?;
        let p = t
            .partition(partition)
            .ok_or_else(|| SourceError::NotReplica {
                topic: topic.to_owned(),
                partition,
            })?;
        let (hw, start) = (p.high_watermark(), p.log_start_offset());
        let empty = |next_offset| SourceRead {
            batches: Bytes::new(),
            next_offset,
            high_watermark: hw,
            log_start_offset: start,
        };
        if offset < start {
            return Ok(empty(start));
        }
        if offset >= hw {
            return Ok(empty(offset.min(hw)));
        }
        let r = match p.read(offset, max_bytes, true) {
            Ok(r) => r,
            Err(BrokerError::Log(LogError::OffsetOutOfRange { log_start, .. })) => {
                return Ok(SourceRead {
                    log_start_offset: log_start,
                    ..empty(log_start.max(offset))
                })
            }
            Err(e) => return Err(SourceError::Other(e.to_string())),
        };
        let Some(region) = r.region else {
            return Ok(empty(offset));
        };
        let len = usize::try_from(region.len).map_err(|e| SourceError::Other(e.to_string()))?;
        let mut buf = vec![0u8; len];
        region
            .file
            .read_exact_at(&mut buf, region.position)
            .map_err(|e| SourceError::Other(format!("reading {topic}-{partition}: {e}")))?;
        Ok(SourceRead {
            batches: Bytes::from(buf),
            next_offset: r.next_offset.unwrap_or(offset).min(hw),
            high_watermark: hw,
            log_start_offset: r.log_start_offset,
        })
    }
}
