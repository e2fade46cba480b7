//! An in-memory changelog for tests: batches per partition, a high-water mark
//! that can lag the log end, a movable log start, and offset gaps.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use brook_protocol::records::{BatchBuilder, Compression};
use brook_views::{
    ChangelogSource, SharedResources, SourceError, SourceRead, View, ViewDef, ViewOptions,
};
use bytes::{Bytes, BytesMut};

/// A record as produced: key and value (`None` = tombstone).
pub type Rec = (Option<Vec<u8>>, Option<Vec<u8>>);

#[derive(Debug, Default, Clone)]
struct PartLog {
    /// (base offset, next offset after the batch, encoded batch)
    batches: Vec<(i64, i64, Bytes)>,
    end: i64,
    hw: Option<i64>,
    log_start: i64,
}

/// A shared in-memory topic.
#[derive(Debug, Clone, Default)]
pub struct MemSource {
    topic: String,
    parts: Arc<Mutex<BTreeMap<i32, PartLog>>>,
}

impl MemSource {
    pub fn new(topic: &str, partitions: i32) -> Self {
        let parts = (0..partitions).map(|p| (p, PartLog::default())).collect();
        MemSource {
            topic: topic.to_owned(),
            parts: Arc::new(Mutex::new(parts)),
        }
    }

    /// Append one batch to `partition`, `gap` offsets after the log end.
    /// Returns the offsets of the records.
    pub fn append(
        &self,
        partition: i32,
        records: &[Rec],
        gap: i64,
        compression: Compression,
    ) -> anyhow::Result<Vec<i64>> {
        let mut parts = self.parts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let log = parts.entry(partition).or_default();
        let base = log.end + gap;
        let mut b = BatchBuilder::new();
        b.set_base_offset(base);
        for (k, v) in records {
            b.append(0, k.as_deref(), v.as_deref(), &[])?;
        }
        let bytes = b.build(compression)?;
        let n = i64::try_from(records.len())?;
        log.batches.push((base, base + n, bytes));
        log.end = base + n;
        Ok((base..base + n).collect())
    }

    /// Hold the high-water mark at `hw` (None: HW = log end).
    pub fn set_hw(&self, partition: i32, hw: Option<i64>) {
        if let Ok(mut parts) = self.parts.lock() {
            parts.entry(partition).or_default().hw = hw;
        }
    }

    /// Delete batches wholly below `offset` and move the log start there.
    pub fn delete_records(&self, partition: i32, offset: i64) {
        if let Ok(mut parts) = self.parts.lock() {
            let log = parts.entry(partition).or_default();
            log.batches.retain(|&(_, next, _)| next > offset);
            log.log_start = offset;
        }
    }

    pub fn log_end(&self, partition: i32) -> i64 {
        self.parts
            .lock()
            .map(|p| p.get(&partition).map_or(0, |l| l.end))
            .unwrap_or(0)
    }
}

impl ChangelogSource for MemSource {
    fn partitions(&self, topic: &str) -> Result<Vec<i32>, SourceError> {
        if topic != self.topic {
            return Err(SourceError::UnknownTopic(topic.to_owned()));
        }
        let parts = self
            .parts
            .lock()
            .map_err(|_| SourceError::Other("poisoned".into()))?;
        Ok(parts.keys().copied().collect())
    }

    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<SourceRead, SourceError> {
        let parts = self
            .parts
            .lock()
            .map_err(|_| SourceError::Other("poisoned".into()))?;
        let log = parts
            .get(&partition)
            .filter(|_| topic == self.topic)
            .ok_or_else(|| SourceError::NotReplica {
                topic: topic.into(),
                partition,
            })?;
        let hw = log.hw.unwrap_or(log.end);
        let mut out = BytesMut::new();
        let mut next = offset.max(log.log_start);
        if offset >= log.log_start {
            for (_, batch_next, bytes) in &log.batches {
                if *batch_next <= offset {
                    continue;
                }
                if *batch_next > hw || (!out.is_empty() && out.len() + bytes.len() > max_bytes) {
                    break;
                }
                out.extend_from_slice(bytes);
                next = *batch_next;
            }
        }
        Ok(SourceRead {
            batches: out.freeze(),
            next_offset: next,
            high_watermark: hw,
            log_start_offset: log.log_start,
        })
    }
}

pub fn open(
    dir: &std::path::Path,
    def: &ViewDef,
    options: &ViewOptions,
) -> anyhow::Result<Arc<View>> {
    let shared = SharedResources::new(1 << 20, 64);
    Ok(Arc::new(View::open(
        dir,
        def.clone(),
        options.clone(),
        &shared,
    )?))
}
