//! Deleting old data: `retention.ms`, `retention.bytes` (cleanup.policy=delete) and
//! DeleteRecords.
//!
//! - Only whole segments are deleted, always a prefix of the log, never the active
//!   segment. The log start offset moves to the first remaining segment's base (or
//!   further, for DeleteRecords); the leader-epoch cache is trimmed to match.
//! - Concurrency: takes the log's state lock for writing while deciding and unlinking.
//!   Readers holding a [`crate::log::FileRegion`] of a deleted segment can still send it
//!   (the open descriptor keeps the inode).
//! - Crash: files are unlinked `.log` first, then the indexes; a crash in between leaves
//!   index files without a log, which `recovery` removes on open. The broker persists
//!   the new log start offset in `log-start-offset-checkpoint`; if it crashes before
//!   that, the start offset falls back to the first remaining segment's base.

use crate::log::error::LogError;
use crate::log::partition_log::{LogState, PartitionLog};

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    pub deleted_segments: usize,
    pub deleted_bytes: u64,
    pub log_start_offset: i64,
}

impl PartitionLog {
    /// Delete segments whose largest timestamp is older than `retention.ms` before
    /// `now_ms`, then the oldest segments while the log exceeds `retention.bytes`, and
    /// segments wholly below the log start offset. Only segments wholly below `hw`
    /// (the high-water mark) go, as in Kafka: records no consumer could read yet
    /// are never deleted, however old their timestamps.
    ///
    /// # Errors
    /// [`LogError::Offline`], [`LogError::Closed`], I/O errors (which take the log offline).
    pub fn delete_old_segments(&self, now_ms: i64, hw: i64) -> Result<RetentionOutcome, LogError> {
        self.check_online()?;
        let mut st = self.write_state()?;
        let (retention_ms, retention_bytes) = (st.config.retention_ms, st.config.retention_bytes);
        let mut excess = if retention_bytes >= 0 {
            i128::from(st.segments.size_in_bytes()) - i128::from(retention_bytes)
        } else {
            0
        };
        let mut doomed = 0usize;
        let active = st.segments.active().map(|s| s.base_offset());
        for seg in st.segments.iter() {
            if Some(seg.base_offset()) == active || seg.next_offset() > hw {
                break;
            }
            let expired = retention_ms >= 0 && now_ms - seg.largest_timestamp() > retention_ms;
            let too_big = retention_bytes >= 0 && excess >= i128::from(seg.size());
            let below_start = st
                .segments
                .next_base(seg.base_offset())
                .is_some_and(|next| next <= st.log_start_offset);
            if !(expired || too_big || below_start) {
                break;
            }
            excess -= i128::from(seg.size());
            doomed += 1;
        }
        let r = self.delete_prefix(&mut st, doomed);
        let outcome = self.guard_io(r)?;
        if outcome.deleted_segments > 0 {
            tracing::info!(
                dir = %self.dir.display(), segments = outcome.deleted_segments,
                bytes = outcome.deleted_bytes, log_start_offset = outcome.log_start_offset,
                "retention deleted segments"
            );
        }
        Ok(outcome)
    }

    /// DeleteRecords: move the log start offset up to `offset` (no-op if already past
    /// it) and delete segments wholly below it. The caller checks `offset` ≤ HW.
    /// Returns the new log start offset.
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] above the log end; [`LogError::Offline`],
    /// [`LogError::Closed`], I/O errors.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        self.check_online()?;
        let mut st = self.write_state()?;
        let log_end = st.log_end_offset();
        if offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: st.log_start_offset,
                log_end,
            });
        }
        if offset <= st.log_start_offset {
            return Ok(st.log_start_offset);
        }
        st.log_start_offset = offset;
        let bases = st.segments.bases();
        let doomed = bases.windows(2).take_while(|w| w[1] <= offset).count();
        let r = self.delete_prefix(&mut st, doomed);
        self.guard_io(r)?;
        Ok(st.log_start_offset)
    }

    /// Delete the first `count` segments (never the active one), advance the log start
    /// offset past them and trim the leader-epoch cache.
    fn delete_prefix(&self, st: &mut LogState, count: usize) -> Result<RetentionOutcome, LogError> {
        let mut outcome = RetentionOutcome::default();
        let bases = st.segments.bases();
        for &base in bases.iter().take(count.min(bases.len().saturating_sub(1))) {
            if let Some(seg) = st.segments.remove(base) {
                outcome.deleted_bytes += seg.size();
                outcome.deleted_segments += 1;
                seg.delete()?;
            }
        }
        if let Some(first) = st.segments.first() {
            st.log_start_offset = st.log_start_offset.max(first.base_offset());
        }
        st.epochs.truncate_from_start(st.log_start_offset)?;
        if outcome.deleted_segments > 0 {
            self.flush.mark_dir_dirty();
        }
        self.publish(st);
        outcome.log_start_offset = st.log_start_offset;
        Ok(outcome)
    }
}
