//! Rewriting cleanable segments: the offset map pass and the filtering pass.
//!
//! - The map pass reads the dirty section in offset order and records each key's
//!   latest offset until the map is full; the offset where it stopped (`map_end`)
//!   bounds what this clean may decide about. Records at or above it are kept as they
//!   are and stay dirty for the next clean.
//! - The filtering pass rewrites a group of consecutive segments into one
//!   `<base>.log.cleaned` segment (with its indexes). A record below `map_end` is
//!   kept when it is its key's latest; a keyless record is dropped (a compacted topic
//!   refuses them at produce time, as Kafka does). A kept tombstone stamps its batch
//!   with a delete horizon (now + `delete.retention.ms`, KIP-534) the first time it is
//!   cleaned, and goes in the first clean after the horizon.
//! - A batch that loses every record is dropped, except a producer's last batch
//!   (its sequence numbers are producer state) and the group's last batch (it marks
//!   where the group ends, which the swap's crash recovery relies on): those stay as
//!   header-only batches. Unchanged batches are copied byte for byte; control batches
//!   are never touched.
//! - Nothing here takes the log's lock: it reads [`SegmentFile`]s and writes new files.

use std::collections::HashMap;
use std::path::Path;

use brook_protocol::records::compact::rebuild_batch;
use brook_protocol::records::{BatchHeader, RecordBatch};
use bytes::Bytes;

use crate::log::cleaner::offset_map::{key_hash, OffsetMap};
use crate::log::cleaner::select::SegmentFile;
use crate::log::cleaner::throttle::Throttler;
use crate::log::config::LogConfig;
use crate::log::error::LogError;
use crate::log::segment::{Batches, Segment};

/// Largest records section the cleaner decompresses; a bigger batch is kept as is.
const MAX_DECOMPRESSED: usize = 64 << 20;
/// Bytes of rewritten batches buffered before one positioned write.
const WRITE_BUFFER: usize = 512 << 10;

/// Counters of one clean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_kept: u64,
    pub segments_cleaned: u64,
    /// Batches kept unread because they would not decode within the cap.
    pub batches_skipped: u64,
    /// Earliest delete horizon of a tombstone kept by this clean (`i64::MAX`: none):
    /// the log is worth cleaning again once it passes, dirty or not.
    pub earliest_horizon: i64,
}

impl CleanStats {
    fn new() -> Self {
        Self {
            earliest_horizon: i64::MAX,
            ..Self::default()
        }
    }
}

/// Fill `map` from the dirty records `[first_dirty, end)` of `segments`. Returns the
/// offset the map covers up to: `end`, or the first record that did not fit.
///
/// # Errors
/// I/O errors reading the segments.
pub(crate) fn new_stats() -> CleanStats {
    CleanStats::new()
}

pub(crate) fn build_offset_map(
    segments: &[SegmentFile],
    first_dirty: i64,
    end: i64,
    map: &mut OffsetMap,
    throttle: &Throttler,
    stats: &mut CleanStats,
) -> Result<i64, LogError> {
    let mut buf = Vec::new();
    for seg in segments.iter().filter(|s| s.next_offset > first_dirty) {
        for m in seg.headers() {
            let m = m?;
            if m.last_offset < first_dirty {
                continue;
            }
            if m.base_offset >= end {
                return Ok(end);
            }
            seg.read_batch(&m, &mut buf)?;
            throttle.acquire(m.size);
            stats.bytes_read += m.size;
            let Some(batch) = decode(&buf, stats) else {
                continue;
            };
            if batch.is_control() {
                continue;
            }
            for r in batch.records() {
                let Ok(r) = r else { break };
                if r.offset < first_dirty || r.offset >= end {
                    continue;
                }
                if let Some(key) = &r.key {
                    if !map.put(key_hash(key), r.offset) {
                        return Ok(r.offset);
                    }
                }
            }
        }
    }
    Ok(end)
}

fn decode(bytes: &[u8], stats: &mut CleanStats) -> Option<RecordBatch> {
    match RecordBatch::decode(&Bytes::copy_from_slice(bytes), MAX_DECOMPRESSED) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(error = %e, "cleaner: keeping a batch it cannot decode");
            stats.batches_skipped += 1;
            None
        }
    }
}

/// What the filtering pass decides with.
pub(crate) struct FilterContext<'a> {
    pub map: &'a OffsetMap,
    pub map_end: i64,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    /// Producer id → last offset of its last batch in the whole log.
    pub producer_last: &'a HashMap<i64, i64>,
}

enum Filtered {
    Unchanged,
    Rebuilt(Bytes),
    Dropped,
}

fn filter_batch(
    bytes: &[u8],
    ctx: &FilterContext<'_>,
    group_last: bool,
    stats: &mut CleanStats,
) -> Result<Filtered, LogError> {
    let Ok(h) = BatchHeader::new(bytes) else {
        return Ok(Filtered::Unchanged);
    };
    if h.is_control() || h.base_offset() >= ctx.map_end {
        return Ok(Filtered::Unchanged);
    }
    let Some(batch) = decode(bytes, stats) else {
        return Ok(Filtered::Unchanged);
    };
    let horizon = h.delete_horizon_ms();
    let horizon_passed = horizon.is_some_and(|t| t <= ctx.now_ms);
    let mut kept = Vec::new();
    let (mut changed, mut decided_tombstone) = (false, false);
    for r in batch.records() {
        let r = r.map_err(|e| LogError::CorruptStoredBatch {
            path: Path::new("").to_path_buf(),
            offset: h.base_offset(),
            reason: e.to_string(),
        })?;
        stats.records_read += 1;
        let keep = if r.offset >= ctx.map_end {
            true
        } else {
            match &r.key {
                None => false,
                Some(key) => {
                    let latest = ctx.map.get(key_hash(key)).is_none_or(|o| o <= r.offset);
                    if latest && r.value.is_none() {
                        decided_tombstone = true;
                        !horizon_passed
                    } else {
                        latest
                    }
                }
            }
        };
        if keep {
            kept.push(r);
        } else {
            changed = true;
        }
    }
    stats.records_kept += kept.len() as u64;
    let new_horizon = match horizon {
        Some(t) => Some(t),
        None if decided_tombstone && kept.iter().any(|r| r.value.is_none()) => {
            Some(ctx.now_ms.saturating_add(ctx.delete_retention_ms))
        }
        None => None,
    };
    if let Some(t) = new_horizon.filter(|_| kept.iter().any(|r| r.value.is_none())) {
        stats.earliest_horizon = stats.earliest_horizon.min(t);
    }
    if kept.is_empty() {
        let producers_last = h.producer_id() >= 0
            && ctx.producer_last.get(&h.producer_id()) == Some(&h.last_offset());
        if !(producers_last || group_last) {
            return Ok(Filtered::Dropped);
        }
    } else if !changed && new_horizon == horizon {
        return Ok(Filtered::Unchanged);
    }
    rebuild_batch(&batch, &kept, new_horizon)
        .map(Filtered::Rebuilt)
        .map_err(|e| LogError::CorruptStoredBatch {
            path: Path::new("").to_path_buf(),
            offset: h.base_offset(),
            reason: e.to_string(),
        })
}

/// Rewrite `group` (consecutive segments) into a new segment named
/// `<first base>.*.cleaned` in `dir`, sealed and synced.
///
/// # Errors
/// I/O errors; a stored batch whose records do not decode.
pub(crate) fn write_cleaned(
    dir: &Path,
    group: &[SegmentFile],
    config: &LogConfig,
    ctx: &FilterContext<'_>,
    throttle: &Throttler,
    stats: &mut CleanStats,
) -> Result<Segment, LogError> {
    let base = group.first().map_or(0, |s| s.base_offset);
    let group_end = group.iter().map(|s| s.next_offset).max().unwrap_or(base);
    let mut out = Segment::create_with_suffix(dir, base, config, ctx.now_ms, super::swap::CLEANED)?;
    let mut pending: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
    let mut buf = Vec::new();
    let flush = |out: &mut Segment, pending: &mut Vec<u8>, stats: &mut CleanStats| {
        if pending.is_empty() {
            return Ok(());
        }
        throttle.acquire(pending.len() as u64);
        stats.bytes_written += pending.len() as u64;
        out.append(Batches::Whole(pending))?;
        pending.clear();
        Ok::<(), LogError>(())
    };
    for seg in group {
        for m in seg.headers() {
            let m = m?;
            seg.read_batch(&m, &mut buf)?;
            throttle.acquire(m.size);
            stats.bytes_read += m.size;
            let group_last = m.last_offset + 1 == group_end;
            match filter_batch(&buf, ctx, group_last, stats).map_err(|e| match e {
                LogError::CorruptStoredBatch { offset, reason, .. } => {
                    LogError::CorruptStoredBatch {
                        path: seg.path.clone(),
                        offset,
                        reason,
                    }
                }
                other => other,
            })? {
                Filtered::Unchanged => pending.extend_from_slice(&buf),
                Filtered::Rebuilt(b) => pending.extend_from_slice(&b),
                Filtered::Dropped => {}
            }
            if pending.len() >= WRITE_BUFFER {
                flush(&mut out, &mut pending, stats)?;
            }
        }
        stats.segments_cleaned += 1;
    }
    flush(&mut out, &mut pending, stats)?;
    out.seal()?;
    out.sync_all()?;
    Ok(out)
}

/// Split the segments to rewrite into groups whose output fits one segment:
/// at most `segment.bytes` of input, offsets within the index's 32-bit range.
pub(crate) fn group_by_size(segments: &[SegmentFile], max_bytes: u64) -> Vec<Vec<SegmentFile>> {
    let mut groups: Vec<Vec<SegmentFile>> = Vec::new();
    let mut size = 0u64;
    for seg in segments {
        let fits = groups.last().is_some_and(|g| {
            let base = g.first().map_or(seg.base_offset, |s| s.base_offset);
            size + seg.size <= max_bytes && seg.next_offset - base <= i64::from(i32::MAX)
        });
        if fits {
            size += seg.size;
            if let Some(g) = groups.last_mut() {
                g.push(seg.clone());
            }
        } else {
            size = seg.size;
            groups.push(vec![seg.clone()]);
        }
    }
    groups
}
