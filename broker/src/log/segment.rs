//! One log segment: `<base offset>.log` plus its `.index` and `.timeindex`.
//!
//! - Byte layout of `.log`: record batches (magic 2) back to back, exactly as on the
//!   wire (see `brook_protocol::records::header`), with offsets and partition leader
//!   epoch already assigned. The file name is the segment's base offset, zero-padded to
//!   20 digits. Batches' offsets strictly increase; gaps are allowed (compaction,
//!   follower appends).
//! - Concurrency: appends and truncation take `&mut self`; reads take `&self` and use
//!   positioned reads (`pread`) bounded by the committed `size`, so they never see a
//!   partially appended batch. The owner (`PartitionLog`) holds segments behind a
//!   `RwLock`. Returned [`FileRegion`]s hold an `Arc<File>` and stay readable even if
//!   the segment is deleted afterwards (the inode lives while the descriptor is open).
//! - Crash: the `.log` may end in a torn batch and the indexes may be stale or still
//!   preallocated; `recovery` CRC-checks batches, truncates, and rebuilds the indexes.
// Hot path: `append`, `read` and `translate` do no per-record allocation and log
// nothing above debug; reads pread 61-byte headers into a stack buffer.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use brook_protocol::records::{BatchHeader, BatchIter, BATCH_HEADER_LEN};

use crate::log::config::LogConfig;
use crate::log::error::{IoContext, LogError};
use crate::log::offset_index::OffsetIndex;
use crate::log::patched_write::write_patched;
pub use crate::log::patched_write::Batches;
use crate::log::time_index::TimeIndex;

/// A byte range of a segment file, to be sent with `sendfile` without copying.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

/// What the header of one stored batch says, and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub position: u64,
    pub size: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub leader_epoch: i32,
    /// Records in the batch: 0 for a batch the cleaner emptied (kept as a header
    /// for its producer's sequence numbers or to mark where a cleaned group ends).
    pub record_count: i32,
}

impl BatchMeta {
    pub(crate) fn from_header(position: u64, h: &BatchHeader<'_>) -> Option<Self> {
        let size = h.total_size()? as u64;
        Some(Self {
            position,
            size,
            base_offset: h.base_offset(),
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp(),
            leader_epoch: h.partition_leader_epoch(),
            record_count: h.record_count(),
        })
    }

    /// The batch holds no record (a control batch holds its marker).
    pub fn is_empty(&self) -> bool {
        self.record_count <= 0
    }
}

/// File name of a segment file: 20-digit zero-padded base offset plus extension.
pub fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Result of reading from one segment.
#[derive(Debug, Clone)]
pub struct SegmentRead {
    /// Whole batches starting with the one holding the requested offset (may be empty).
    pub region: FileRegion,
    /// Base offset of the first batch in `region`.
    pub first_offset: i64,
    /// Offset after the last batch in `region` (= `first_offset` when empty).
    pub next_offset: i64,
    /// With `skip_empty`: every batch from the requested offset to the end of what
    /// was visible was empty, and `region` holds only the last of them.
    pub hollow: bool,
}

/// One segment of a partition log.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    log: Arc<File>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Committed bytes of `.log`; reads never look past it.
    size: u64,
    /// Offset after the last batch, or `base_offset` when empty.
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    first_batch_timestamp: i64,
    created_ms: i64,
    bytes_since_last_index_entry: u64,
    index_interval_bytes: u64,
    /// Length the `.log` file is set to (at least `size`): an active
    /// segment's file is extended ahead of its data, sparsely.
    file_len: u64,
    /// How far ahead an append extends the file (0: not at all; sealed
    /// segments and the cleaner's output).
    grow_ahead: u64,
}

/// How far ahead of its data the active segment's file is extended: an
/// append inside that room leaves the file's size alone, so its
/// `fdatasync` writes the data without the inode (about a fifth less time
/// per small fsync on the disks we measured). The room is sparse (no disk
/// blocks), trimmed on roll and close; after a crash, recovery drops it as
/// the zeros it reads back.
pub const GROW_AHEAD_BYTES: u64 = 64 * 1024;

/// An append leaves at least this much room (or none, once sealed): more
/// than a batch header, so an all-zero tail this long is room, never the
/// first bytes of a torn batch (whose length field is not zero).
pub const ROOM_MIN_BYTES: u64 = 64;

impl Segment {
    /// Create a new, empty active segment (existing files with this base are replaced).
    ///
    /// # Errors
    /// I/O errors creating the files.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        let mut seg = Self::create_with_suffix(dir, base_offset, config, now_ms, "")?;
        seg.grow_ahead = GROW_AHEAD_BYTES;
        Ok(seg)
    }

    /// [`Segment::create`] with `suffix` after each file name (`.cleaned` for the
    /// cleaner's output, which is renamed into place later).
    ///
    /// # Errors
    /// I/O errors creating the files.
    pub fn create_with_suffix(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        suffix: &str,
    ) -> Result<Self, LogError> {
        let name = |ext: &str| dir.join(file_name(base_offset, ext) + suffix);
        let log_path = name("log");
        let log = crate::fsio::open(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
            &log_path,
        )
        .at(&log_path)?;
        let offset_index =
            OffsetIndex::create(&name("index"), base_offset, config.segment_index_bytes)?;
        let time_index =
            TimeIndex::create(&name("timeindex"), base_offset, config.segment_index_bytes)?;
        Ok(Self {
            base_offset,
            log_path,
            log: Arc::new(log),
            offset_index,
            time_index,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: -1,
            created_ms: now_ms,
            bytes_since_last_index_entry: 0,
            index_interval_bytes: config.index_interval_bytes,
            file_len: 0,
            grow_ahead: 0,
        })
    }

    /// Open an existing segment. Returns the segment and whether its indexes (and the
    /// log tail they point into) are consistent; if not, the caller must run
    /// [`crate::log::recovery::recover_segment`] before using it.
    ///
    /// # Errors
    /// I/O errors opening or reading the files.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(Self, bool), LogError> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .at(&log_path)?;
        let size = log.metadata().at(&log_path)?.len();
        let (offset_index, oi_ok) = OffsetIndex::open(
            &dir.join(file_name(base_offset, "index")),
            base_offset,
            size,
        )?;
        let (time_index, ti_ok) =
            TimeIndex::open(&dir.join(file_name(base_offset, "timeindex")), base_offset)?;
        let mut seg = Self {
            base_offset,
            log_path,
            log: Arc::new(log),
            offset_index,
            time_index,
            size,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: -1,
            created_ms: now_ms,
            bytes_since_last_index_entry: 0,
            index_interval_bytes: config.index_interval_bytes,
            file_len: size,
            grow_ahead: 0,
        };
        // An empty offset index over a log longer than one index interval means the
        // index file was lost: rebuild it rather than scan from 0 on every read.
        let index_lost =
            seg.offset_index.entries() == 0 && seg.size > seg.index_interval_bytes.max(1) * 2;
        let ok = oi_ok && ti_ok && !index_lost && seg.load_tail()?;
        Ok((seg, ok))
    }

    /// Derive `next_offset` and the max timestamp from the last index entries plus a
    /// scan of the batches after them. Returns false when the scan does not end
    /// exactly at the end of the file (a torn tail: recovery needed).
    fn load_tail(&mut self) -> Result<bool, LogError> {
        let start = self
            .offset_index
            .last_entry()
            .map_or(0, |e| u64::from(e.position));
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        if let Some(e) = self.time_index.last_entry() {
            self.max_timestamp = e.timestamp;
            self.offset_of_max_timestamp = e.offset;
        }
        self.first_batch_timestamp = self.read_header(0)?.map_or(-1, |m| m.max_timestamp);
        let mut pos = start;
        while let Some(m) = self.read_header(pos)? {
            self.next_offset = m.last_offset + 1;
            if m.max_timestamp > self.max_timestamp {
                self.max_timestamp = m.max_timestamp;
                self.offset_of_max_timestamp = m.last_offset;
            }
            pos += m.size;
        }
        self.bytes_since_last_index_entry = pos - start;
        Ok(pos == self.size)
    }

    /// Read the header of the batch at `position`, if a complete batch lies there
    /// within the committed size.
    ///
    /// # Errors
    /// I/O errors from `pread`.
    pub fn read_header(&self, position: u64) -> Result<Option<BatchMeta>, LogError> {
        if position + BATCH_HEADER_LEN as u64 > self.size {
            return Ok(None);
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.log
            .read_exact_at(&mut buf, position)
            .at(&self.log_path)?;
        let Ok(h) = BatchHeader::new(&buf) else {
            return Ok(None);
        };
        Ok(BatchMeta::from_header(position, &h).filter(|m| position + m.size <= self.size))
    }

    /// The first batch whose last offset is ≥ `offset`, found through the offset index
    /// and a forward scan of headers.
    ///
    /// # Errors
    /// I/O errors from `pread`.
    pub fn translate(&self, offset: i64) -> Result<Option<BatchMeta>, LogError> {
        let mut pos = u64::from(self.offset_index.lookup(offset).position);
        while let Some(m) = self.read_header(pos)? {
            if m.last_offset >= offset {
                return Ok(Some(m));
            }
            pos += m.size;
        }
        Ok(None)
    }

    /// Read whole batches starting with the one holding `offset`, up to `max_bytes`
    /// (but at least one batch when `min_one`), and only batches whose last offset is
    /// below `max_offset`. `None` when no batch of this segment reaches `offset`.
    /// With `skip_empty`, the region starts at the first batch holding a record; when
    /// every visible batch from `offset` on is empty, it is the last of them alone
    /// (`hollow`), so a reader still moves past them.
    ///
    /// # Errors
    /// I/O errors from `pread`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        max_offset: i64,
        min_one: bool,
        skip_empty: bool,
    ) -> Result<Option<SegmentRead>, LogError> {
        let Some(mut first) = self.translate(offset)? else {
            return Ok(None);
        };
        let (end, end_offset) = if max_offset >= self.next_offset {
            (self.size, self.next_offset)
        } else {
            // The batch holding max_offset is not visible yet, nor anything after it.
            self.translate(max_offset)?
                .map_or((self.size, self.next_offset), |m| {
                    (m.position, m.base_offset)
                })
        };
        if skip_empty {
            // `end` is a batch boundary: a batch ending before it is followed by a
            // visible one.
            while first.is_empty() && first.position + first.size < end {
                match self.read_header(first.position + first.size)? {
                    Some(next) => first = next,
                    None => break,
                }
            }
        }
        let hollow = skip_empty && first.is_empty();
        let available = end.saturating_sub(first.position);
        let (len, next_offset) = if available <= max_bytes {
            (available, end_offset)
        } else if first.size > max_bytes {
            if min_one {
                (first.size, first.last_offset + 1)
            } else {
                (0, first.base_offset)
            }
        } else {
            let limit = first.position + max_bytes;
            let mut pos =
                u64::from(self.offset_index.lookup_by_position(limit).position).max(first.position);
            let mut next = self.next_offset;
            while let Some(m) = self.read_header(pos)? {
                if m.position + m.size > limit {
                    // The region ends right before this batch.
                    next = m.base_offset;
                    break;
                }
                pos += m.size;
                next = m.last_offset + 1;
            }
            (pos - first.position, next)
        };
        Ok(Some(SegmentRead {
            region: FileRegion {
                file: Arc::clone(&self.log),
                position: first.position,
                len,
            },
            first_offset: first.base_offset,
            next_offset,
            hollow,
        }))
    }

    /// First batch whose max timestamp is ≥ `timestamp`.
    ///
    /// # Errors
    /// I/O errors from `pread`.
    pub fn find_offset_by_timestamp(&self, timestamp: i64) -> Result<Option<BatchMeta>, LogError> {
        let from = self
            .time_index
            .lookup_below(timestamp)
            .map_or(self.base_offset, |e| e.offset + 1);
        let Some(start) = self.translate(from)? else {
            return Ok(None);
        };
        let mut pos = start.position;
        while let Some(m) = self.read_header(pos)? {
            if m.max_timestamp >= timestamp {
                return Ok(Some(m));
            }
            pos += m.size;
        }
        Ok(None)
    }

    /// `(max timestamp, last offset of its batch)` over batches whose last offset is
    /// below `max_offset`. Starts from the last time-index entry below the bound and
    /// scans headers from there.
    ///
    /// # Errors
    /// I/O errors from `pread`.
    pub fn max_timestamp_below(&self, max_offset: i64) -> Result<Option<(i64, i64)>, LogError> {
        let mut best: Option<(i64, i64)> = None;
        let mut from = self.base_offset;
        for i in (0..self.time_index.entries()).rev() {
            if let Some(e) = self.time_index.entry(i) {
                if e.offset < max_offset {
                    best = Some((e.timestamp, e.offset));
                    from = e.offset + 1;
                    break;
                }
            }
        }
        let Some(start) = self.translate(from)? else {
            return Ok(best);
        };
        let mut pos = start.position;
        while let Some(m) = self.read_header(pos)? {
            if m.last_offset >= max_offset {
                break;
            }
            if m.max_timestamp >= 0 && best.is_none_or(|(ts, _)| m.max_timestamp > ts) {
                best = Some((m.max_timestamp, m.last_offset));
            }
            pos += m.size;
        }
        Ok(best)
    }

    /// Append already validated and offset-assigned batches with one positioned
    /// write, then index them. Returns the position they were written at.
    ///
    /// # Errors
    /// I/O errors from the write; the caller must then treat the log as offline,
    /// since the file may hold part of the batches.
    pub fn append(&mut self, batches: Batches<'_>) -> Result<u64, LogError> {
        let position = self.size;
        let end = position + batches.len() as u64;
        if self.grow_ahead > 0 && end + ROOM_MIN_BYTES > self.file_len {
            let len = end + self.grow_ahead;
            self.log.set_len(len).at(&self.log_path)?;
            self.file_len = len;
        }
        match batches {
            Batches::Whole(bytes) => self.log.write_all_at(bytes, position),
            Batches::Patched { bytes, headers } => {
                write_patched(&self.log, bytes, headers, position)
            }
        }
        .at(&self.log_path)?;
        match batches {
            Batches::Whole(bytes) => {
                for (at, h) in BatchIter::new(bytes) {
                    if let Some(m) = BatchMeta::from_header(position + at as u64, &h) {
                        self.index_batch(&m);
                    }
                }
            }
            Batches::Patched { headers, .. } => {
                let mut at = position;
                for h in headers {
                    let Ok(h) = BatchHeader::new(h) else { break };
                    let Some(m) = BatchMeta::from_header(at, &h) else {
                        break;
                    };
                    at += m.size;
                    self.index_batch(&m);
                }
            }
        }
        self.size = end;
        self.file_len = self.file_len.max(end);
        Ok(position)
    }

    /// Account for one batch that now lies at `m.position` (append and rebuild).
    pub(crate) fn index_batch(&mut self, m: &BatchMeta) {
        if self.first_batch_timestamp < 0 && m.position == 0 {
            self.first_batch_timestamp = m.max_timestamp;
        }
        if m.max_timestamp > self.max_timestamp {
            self.max_timestamp = m.max_timestamp;
            self.offset_of_max_timestamp = m.last_offset;
        }
        if self.bytes_since_last_index_entry > self.index_interval_bytes {
            self.offset_index.append(m.base_offset, m.position);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += m.size;
        self.next_offset = m.last_offset + 1;
    }

    /// Whether an append of `len` bytes whose last offset is `last_offset` and max
    /// timestamp `max_timestamp` must go to a new segment. Empty segments never roll.
    pub fn should_roll(
        &self,
        config: &LogConfig,
        len: u64,
        last_offset: i64,
        max_timestamp: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        // Kafka's rule: time since the first batch's timestamp when batches carry
        // timestamps, otherwise wall time since the segment was created/loaded.
        let waited = if self.first_batch_timestamp >= 0 && max_timestamp >= 0 {
            max_timestamp.saturating_sub(self.first_batch_timestamp)
        } else {
            now_ms.saturating_sub(self.created_ms)
        };
        self.size + len > config.segment_bytes
            || waited > config.segment_ms
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || last_offset - self.base_offset > i64::from(u32::MAX)
    }

    /// Seal on roll/close: write the final time-index entry and trim both indexes.
    ///
    /// # Errors
    /// I/O errors resizing the index files.
    pub fn seal(&mut self) -> Result<(), LogError> {
        self.time_index
            .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
        self.offset_index.trim()?;
        self.time_index.trim()?;
        self.grow_ahead = 0;
        if self.file_len > self.size {
            self.log.set_len(self.size).at(&self.log_path)?;
            self.file_len = self.size;
        }
        Ok(())
    }

    /// Preallocate the indexes again so the segment can take appends.
    ///
    /// # Errors
    /// I/O errors resizing or mapping.
    pub fn make_active(&mut self, config: &LogConfig) -> Result<(), LogError> {
        self.offset_index
            .make_writable(config.segment_index_bytes)?;
        self.time_index.make_writable(config.segment_index_bytes)?;
        self.grow_ahead = GROW_AHEAD_BYTES;
        Ok(())
    }

    /// Drop every batch at or after `offset` (whole batches: a batch holding `offset`
    /// goes entirely). Returns the bytes removed.
    ///
    /// # Errors
    /// I/O errors truncating the file.
    pub fn truncate_to(&mut self, offset: i64) -> Result<u64, LogError> {
        match self.translate(offset)? {
            Some(m) => self.truncate_bytes(m.position),
            None => Ok(0),
        }
    }

    /// Cut the log file at `position` (a batch boundary) and fix indexes and
    /// in-memory state. Returns the bytes removed.
    ///
    /// # Errors
    /// I/O errors truncating the file.
    pub(crate) fn truncate_bytes(&mut self, position: u64) -> Result<u64, LogError> {
        let removed = self.size.saturating_sub(position);
        self.log.set_len(position).at(&self.log_path)?;
        self.size = position;
        self.file_len = position;
        self.offset_index.truncate_to_position(position);
        // Entries pointing past the new end would otherwise survive in the time index.
        let mut end = self.base_offset;
        let mut pos = 0;
        let start = self.offset_index.last_entry();
        if let Some(e) = start {
            pos = u64::from(e.position);
        }
        while let Some(m) = self.read_header(pos)? {
            end = m.last_offset + 1;
            pos += m.size;
        }
        self.time_index.truncate_to_offset(end);
        self.load_tail()?;
        Ok(removed)
    }

    /// Forget all index entries and in-memory stats before a rebuild scan; the log
    /// size becomes the file length so the scan can see everything on disk.
    pub(crate) fn reset_for_rebuild(&mut self, config: &LogConfig) -> Result<(), LogError> {
        self.offset_index.clear();
        self.time_index.clear();
        self.make_active(config)?;
        self.size = self.file_len()?;
        self.file_len = self.size;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.first_batch_timestamp = -1;
        self.bytes_since_last_index_entry = 0;
        Ok(())
    }

    /// Length of the `.log` file on disk.
    ///
    /// # Errors
    /// I/O errors from `fstat`.
    pub fn file_len(&self) -> Result<u64, LogError> {
        Ok(self.log.metadata().at(&self.log_path)?.len())
    }

    /// Positioned read of raw bytes (recovery's CRC scan).
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<(), LogError> {
        self.log.read_exact_at(buf, position).at(&self.log_path)
    }

    /// Sync the log and both index files (used on close).
    ///
    /// # Errors
    /// I/O errors from fsync/msync.
    pub fn sync_all(&self) -> Result<(), LogError> {
        crate::fsio::sync_data(&self.log).at(&self.log_path)?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Remove the segment's files.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub fn delete(self) -> Result<(), LogError> {
        match crate::fsio::remove_file(&self.log_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io(&self.log_path, e)),
        }
        self.offset_index.delete()?;
        self.time_index.delete()
    }

    /// Largest batch timestamp, or the file's modification time when no batch has
    /// one (as Kafka does for retention).
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(0)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// Max timestamp of the first batch, -1 when empty or without timestamps.
    pub fn first_batch_timestamp(&self) -> i64 {
        self.first_batch_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub fn log_file(&self) -> &Arc<File> {
        &self.log
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }
}
