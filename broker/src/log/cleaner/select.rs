//! Which part of a log the cleaner may touch, and how dirty it is.
//!
//! ```text
//! log start        first dirty (cleaner checkpoint)      first uncleanable    log end
//!    |---- clean ----|---------------- dirty ---------------|---- not cleanable ---|
//! ```
//!
//! A segment is cleanable when it is not the active segment, lies wholly below the
//! high-water mark, and its newest record is older than `min.compaction.lag.ms`; the
//! cleanable part is the run of such segments from the start of the log. The dirty
//! ratio is dirty bytes / (clean + dirty bytes), Kafka's measure. A log whose first
//! dirty data is older than `max.compaction.lag.ms` must be cleaned whatever its
//! ratio.
//!
//! The selection is taken under the log's read lock and returns [`SegmentFile`]s:
//! shared handles on the segments' `.log` files that the cleaner reads without any
//! lock (a sealed segment is immutable; the swap re-checks that nothing changed).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use brook_protocol::records::{BatchHeader, BATCH_HEADER_LEN};

use crate::log::error::{IoContext, LogError};
use crate::log::partition_log::LogState;
use crate::log::segment::{BatchMeta, Segment};

/// The topic settings that steer a clean (Kafka's names in the docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanParams {
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone outlives its first clean.
    pub delete_retention_ms: i64,
}

impl Default for CleanParams {
    fn default() -> Self {
        Self {
            min_cleanable_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
        }
    }
}

/// The clean/dirty split of a log at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirtySection {
    pub log_start: i64,
    /// Where the last clean stopped (clamped to the log start).
    pub first_dirty: i64,
    /// Base of the first segment the cleaner may not touch.
    pub first_uncleanable: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// Dirty data older than `max.compaction.lag.ms` is waiting.
    pub overdue: bool,
}

impl DirtySection {
    /// dirty / (clean + dirty); 0 for an empty cleanable part.
    pub fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether a clean is due under `params`.
    pub fn should_clean(&self, params: &CleanParams) -> bool {
        self.dirty_bytes > 0 && (self.overdue || self.ratio() >= params.min_cleanable_ratio)
    }
}

/// A sealed segment's `.log`, readable without the log's lock.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    pub file: Arc<File>,
    pub path: PathBuf,
}

impl SegmentFile {
    pub(crate) fn of(seg: &Segment) -> Self {
        Self {
            base_offset: seg.base_offset(),
            next_offset: seg.next_offset(),
            size: seg.size(),
            file: Arc::clone(seg.log_file()),
            path: seg.log_path().to_path_buf(),
        }
    }

    /// Whether `seg` is still exactly this file (same inode handle, same size).
    pub(crate) fn is(&self, seg: &Segment) -> bool {
        Arc::ptr_eq(&self.file, seg.log_file())
            && seg.size() == self.size
            && seg.base_offset() == self.base_offset
    }

    /// The header of the batch at `position`, if a whole batch lies there.
    ///
    /// # Errors
    /// I/O errors from `pread`.
    pub fn header_at(&self, position: u64) -> Result<Option<BatchMeta>, LogError> {
        Ok(self.raw_header_at(position)?.map(|(m, _)| m))
    }

    /// [`SegmentFile::header_at`] with the header's bytes.
    ///
    /// # Errors
    /// I/O errors from `pread`.
    pub fn raw_header_at(
        &self,
        position: u64,
    ) -> Result<Option<(BatchMeta, [u8; BATCH_HEADER_LEN])>, LogError> {
        if position + BATCH_HEADER_LEN as u64 > self.size {
            return Ok(None);
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.file.read_exact_at(&mut buf, position).at(&self.path)?;
        let Ok(h) = BatchHeader::new(&buf) else {
            return Ok(None);
        };
        Ok(BatchMeta::from_header(position, &h)
            .filter(|m| position + m.size <= self.size)
            .map(|m| (m, buf)))
    }

    /// Read the whole batch `m` into `buf`.
    ///
    /// # Errors
    /// I/O errors from `pread`.
    pub fn read_batch(&self, m: &BatchMeta, buf: &mut Vec<u8>) -> Result<(), LogError> {
        let len = usize::try_from(m.size).unwrap_or(usize::MAX);
        buf.resize(len, 0);
        self.file.read_exact_at(buf, m.position).at(&self.path)
    }

    /// Every batch header of the segment, in order.
    pub fn headers(&self) -> impl Iterator<Item = Result<BatchMeta, LogError>> + '_ {
        self.raw_headers().map(|r| r.map(|(m, _)| m))
    }

    /// [`SegmentFile::headers`] with each header's bytes.
    pub fn raw_headers(
        &self,
    ) -> impl Iterator<Item = Result<(BatchMeta, [u8; BATCH_HEADER_LEN]), LogError>> + '_ {
        let mut pos = 0u64;
        std::iter::from_fn(move || match self.raw_header_at(pos) {
            Ok(Some((m, raw))) => {
                pos += m.size;
                Some(Ok((m, raw)))
            }
            Ok(None) => None,
            Err(e) => {
                pos = u64::MAX - BATCH_HEADER_LEN as u64;
                Some(Err(e))
            }
        })
    }
}

/// What the cleaner works on: the dirty section and every segment of the log.
#[derive(Debug, Clone)]
pub struct Selection {
    pub section: DirtySection,
    /// The cleanable segments, from the start of the log.
    pub cleanable: Vec<SegmentFile>,
    /// The segments after them, active one included (scanned for producer state only).
    pub rest: Vec<SegmentFile>,
}

/// Split the log in `st` given the high-water mark, the cleaner checkpoint and now.
pub(crate) fn select(
    st: &LogState,
    hw: i64,
    cleaned_offset: i64,
    now_ms: i64,
    params: &CleanParams,
) -> Selection {
    let log_start = st.log_start_offset;
    let first_dirty = cleaned_offset.max(log_start);
    let active = st.segments.active().map(Segment::base_offset);
    let lag_limit = now_ms.saturating_sub(params.min_compaction_lag_ms);
    let mut cleanable = Vec::new();
    let mut rest = Vec::new();
    let mut first_uncleanable = None;
    for seg in st.segments.iter() {
        let ok = first_uncleanable.is_none()
            && Some(seg.base_offset()) != active
            && seg.next_offset() <= hw
            && (params.min_compaction_lag_ms <= 0 || seg.largest_timestamp() <= lag_limit);
        if ok {
            cleanable.push(SegmentFile::of(seg));
        } else {
            first_uncleanable.get_or_insert(seg.base_offset());
            rest.push(SegmentFile::of(seg));
        }
    }
    let first_uncleanable = first_uncleanable.unwrap_or_else(|| st.log_end_offset());
    let (mut clean_bytes, mut dirty_bytes, mut first_dirty_ts) = (0u64, 0u64, None);
    for (seg, s) in cleanable.iter().zip(st.segments.iter()) {
        if seg.next_offset <= first_dirty {
            clean_bytes += seg.size;
        } else {
            dirty_bytes += seg.size;
            first_dirty_ts.get_or_insert(s.first_batch_timestamp());
        }
    }
    let overdue = params.max_compaction_lag_ms < i64::MAX
        && first_dirty_ts
            .is_some_and(|ts| ts >= 0 && now_ms.saturating_sub(ts) > params.max_compaction_lag_ms);
    Selection {
        section: DirtySection {
            log_start,
            first_dirty,
            first_uncleanable,
            clean_bytes,
            dirty_bytes,
            overdue,
        },
        cleanable,
        rest,
    }
}
