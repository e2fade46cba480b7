//! Appending to a partition log: validation, offset assignment, rolling.
//!
//! - Leader appends (produce) validate every batch of the request first (framing,
//!   magic, CRC32C, record count, `max.message.bytes`) without the state lock, then,
//!   under the write lock, patch base offset and partition leader epoch (both lie
//!   before the CRC'd range) in a copy of each 61-byte header, roll if needed, and
//!   write the request with one `pwritev`: patched headers, the rest straight from
//!   the request buffer. A request with any bad batch writes nothing.
//! - Follower appends keep the leader's offsets and epochs; offsets must not go back.
//! - Crash: a torn write leaves a partial batch at the end of the active segment,
//!   which recovery cuts off; any write error takes the log offline.
// Hot path: one pass over batch headers to validate, one to patch copies of the
// headers, one pwritev; no copy of the records, one small allocation for the
// headers, no logging above debug.

use brook_protocol::records::header::{set_base_offset, set_partition_leader_epoch};
use brook_protocol::records::{BatchError, BatchHeader, BatchIter, BATCH_HEADER_LEN};

use crate::log::error::LogError;
use crate::log::partition_log::{AppendInfo, LogState, PartitionLog};
use crate::log::segment::{Batches, Segment};

/// Totals of a validated append request.
struct Validated {
    batches: u32,
    records: i64,
}

/// Check every batch of a request before anything is written: framing, magic, CRC,
/// record count and size limits. Nothing is allocated.
fn validate(bytes: &[u8], max_batch: u64, leader: bool) -> Result<Validated, LogError> {
    if bytes.is_empty() {
        return Err(LogError::EmptyBatch { position: 0 });
    }
    let mut pos = 0;
    let mut v = Validated {
        batches: 0,
        records: 0,
    };
    while pos < bytes.len() {
        let bad = |source: BatchError| LogError::InvalidBatch {
            position: pos,
            source,
        };
        let h = BatchHeader::new(&bytes[pos..]).map_err(bad)?;
        let total = h.validate().map_err(bad)?;
        if total as u64 > max_batch {
            return Err(LogError::RecordTooLarge {
                size: total,
                max: usize::try_from(max_batch).unwrap_or(usize::MAX),
            });
        }
        if leader && h.record_count() == 0 {
            return Err(LogError::EmptyBatch { position: pos });
        }
        if leader {
            h.check_produced().map_err(bad)?;
        }
        v.batches += 1;
        v.records += i64::from(h.record_count());
        pos += total;
    }
    Ok(v)
}

impl PartitionLog {
    /// Append produced batches as leader: validate each, assign offsets from the log
    /// end and stamp `leader_epoch` in copies of the headers, write them with one
    /// `pwritev` (the records themselves are not copied), and record a new epoch in
    /// the leader-epoch cache.
    ///
    /// # Errors
    /// Invalid or oversized batches (nothing is written), [`LogError::Offline`],
    /// [`LogError::Closed`], I/O errors (which take the log offline).
    pub fn append_as_leader(
        &self,
        batches: &[u8],
        leader_epoch: i32,
    ) -> Result<AppendInfo, LogError> {
        self.check_online()?;
        let max_batch = self.read_state()?.config.max_message_bytes;
        let v = validate(batches, max_batch, true)?;
        let mut st = self.write_state()?;
        self.check_online()?;
        let first = st.log_end_offset();
        let (mut next, mut pos) = (first, 0usize);
        let (mut max_ts, mut offset_of_max) = (-1i64, first);
        let mut headers = Vec::with_capacity(v.batches as usize);
        while pos < batches.len() {
            let bad = |source| LogError::InvalidBatch {
                position: pos,
                source,
            };
            let h = BatchHeader::new(&batches[pos..]).map_err(bad)?;
            let total = h.total_size().ok_or(LogError::InvalidBatch {
                position: pos,
                source: BatchError::InvalidLength(h.batch_length()),
            })?;
            let last = next + i64::from(h.last_offset_delta());
            if h.max_timestamp() > max_ts {
                max_ts = h.max_timestamp();
                offset_of_max = last;
            }
            let mut header = [0u8; BATCH_HEADER_LEN];
            header.copy_from_slice(&batches[pos..pos + BATCH_HEADER_LEN]);
            set_base_offset(&mut header, next).map_err(bad)?;
            set_partition_leader_epoch(&mut header, leader_epoch).map_err(bad)?;
            headers.push(header);
            next = last + 1;
            pos += total;
        }
        let patched = Batches::Patched {
            bytes: batches,
            headers: &headers,
        };
        self.write_batches(&mut st, patched, first, next - 1, max_ts)?;
        let r = st.epochs.assign(leader_epoch, first);
        self.guard_io(r)?;
        self.publish(&st);
        Ok(AppendInfo {
            first_offset: first,
            last_offset: next - 1,
            max_timestamp: max_ts,
            offset_of_max_timestamp: offset_of_max,
            batch_count: v.batches,
            record_count: v.records,
            bytes: batches.len() as u64,
            log_start_offset: st.log_start_offset,
            log_end_offset: next,
        })
    }

    /// Append batches fetched from the leader, keeping their offsets and epochs.
    /// Offsets must not go backwards (gaps are allowed, as after compaction).
    ///
    /// # Errors
    /// As [`PartitionLog::append_as_leader`], plus [`LogError::UnexpectedAppendOffset`].
    pub fn append_as_follower(&self, batches: &[u8]) -> Result<AppendInfo, LogError> {
        self.check_online()?;
        // The leader enforced max.message.bytes; a follower only needs batches to fit
        // a segment.
        let max_batch = self.read_state()?.config.segment_bytes;
        let v = validate(batches, max_batch, false)?;
        let mut st = self.write_state()?;
        self.check_online()?;
        let mut expected = st.log_end_offset();
        let mut first = None;
        let (mut max_ts, mut offset_of_max) = (-1i64, expected);
        for (_, h) in BatchIter::new(batches) {
            if h.base_offset() < expected {
                return Err(LogError::UnexpectedAppendOffset {
                    first_offset: h.base_offset(),
                    expected,
                });
            }
            first.get_or_insert(h.base_offset());
            if h.max_timestamp() > max_ts {
                max_ts = h.max_timestamp();
                offset_of_max = h.last_offset();
            }
            expected = h.next_offset();
        }
        let first = first.unwrap_or(expected);
        for (_, h) in BatchIter::new(batches) {
            let r = st
                .epochs
                .assign(h.partition_leader_epoch(), h.base_offset());
            self.guard_io(r)?;
        }
        self.write_batches(
            &mut st,
            Batches::Whole(batches),
            first,
            expected - 1,
            max_ts,
        )?;
        self.publish(&st);
        Ok(AppendInfo {
            first_offset: first,
            last_offset: expected - 1,
            max_timestamp: max_ts,
            offset_of_max_timestamp: offset_of_max,
            batch_count: v.batches,
            record_count: v.records,
            bytes: batches.len() as u64,
            log_start_offset: st.log_start_offset,
            log_end_offset: expected,
        })
    }

    /// Whether an append of `len` bytes ending at offset `last`, with max
    /// timestamp `max_ts`, would roll a new segment first. A check under the
    /// read lock, so that a caller on an async runtime thread can move the roll
    /// (creating files, trimming indexes) to a blocking thread with
    /// [`PartitionLog::roll_for`] before it appends.
    pub fn roll_due(&self, len: u64, last: i64, max_ts: i64) -> bool {
        let Ok(st) = self.read_state() else {
            return false;
        };
        let now = self.clock.now_ms();
        st.segments
            .active()
            .is_none_or(|s| s.should_roll(&st.config, len, last, max_ts, now))
    }

    /// Roll to a new segment based at `first` now if an append of `len` bytes
    /// spanning `first..=last` with max timestamp `max_ts` would roll. A stale
    /// call (the log end moved past `first` meanwhile) does nothing: the append
    /// itself then rolls if it still must.
    ///
    /// # Errors
    /// [`LogError::Offline`], [`LogError::Closed`], I/O errors (which take the
    /// log offline).
    pub fn roll_for(&self, first: i64, last: i64, len: u64, max_ts: i64) -> Result<(), LogError> {
        self.check_online()?;
        let mut st = self.write_state()?;
        self.check_online()?;
        if first < st.log_end_offset() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let due = st
            .segments
            .active()
            .is_none_or(|s| s.should_roll(&st.config, len, last, max_ts, now));
        if due {
            let r = self.roll(&mut st, first, now);
            self.guard_io(r)?;
        }
        Ok(())
    }

    /// Roll if needed, then write with one `pwrite`.
    fn write_batches(
        &self,
        st: &mut LogState,
        bytes: Batches<'_>,
        first: i64,
        last: i64,
        max_ts: i64,
    ) -> Result<(), LogError> {
        let now = self.clock.now_ms();
        let config = &st.config;
        let roll = st
            .segments
            .active()
            .is_none_or(|s| s.should_roll(config, bytes.len() as u64, last, max_ts, now));
        if roll {
            let r = self.roll(st, first, now);
            self.guard_io(r)?;
        }
        let r = match st.segments.active_mut() {
            Some(active) => active.append(bytes).map(|_| ()),
            None => Err(LogError::io(
                &self.dir,
                std::io::Error::other("no active segment"),
            )),
        };
        self.guard_io(r)
    }

    fn roll(&self, st: &mut LogState, new_base: i64, now: i64) -> Result<(), LogError> {
        if let Some(active) = st.segments.active_mut() {
            active.seal()?;
        }
        let seg = Segment::create(&self.dir, new_base, &st.config, now)?;
        tracing::debug!(dir = %self.dir.display(), base_offset = new_base, "rolled segment");
        // The first segment of an empty log is a creation, not a roll.
        if !st.segments.is_empty() {
            metrics::counter!("brook_segment_rolls_total").increment(1);
        }
        st.segments.insert(seg);
        self.flush.mark_dir_dirty();
        Ok(())
    }
}
