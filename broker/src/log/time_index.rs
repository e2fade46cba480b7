//! Sparse time index of one segment: `<base offset>.timeindex`.
//!
//! - Byte layout: 12-byte big-endian entries `(i64 timestamp, u32 relative offset)`.
//!   An entry `(T, O)` means: every batch whose last offset is ≤ `base + O` has a max
//!   timestamp ≤ `T`, and `base + O` is the last offset of the batch that set `T`
//!   (Kafka's "offset of max timestamp" at batch granularity). Timestamps strictly
//!   increase, offsets never decrease. Entries are added alongside offset-index
//!   entries (every `index.interval.bytes`) and once more when the segment is sealed
//!   (roll or close), so the last entry is the segment's max timestamp.
//! - Lookup for ListOffsets: the largest entry with `T < target` proves that the
//!   answer lies after `O`; the segment scans batch headers from there.
//! - Concurrency: as `offset_index`.
//! - Crash: derived data, validated on open and rebuilt from the `.log` when in doubt.
// Hot path: `lookup_below` allocates nothing and does not log.

use std::path::Path;

use crate::log::error::LogError;
use crate::log::index_file::IndexFile;

const ENTRY: usize = 12;

/// One decoded entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

/// The time index of one segment.
#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    file: IndexFile,
}

impl TimeIndex {
    /// Create an empty, preallocated index.
    ///
    /// # Errors
    /// I/O errors creating or mapping the file.
    pub fn create(path: &Path, base_offset: i64, max_bytes: u64) -> Result<Self, LogError> {
        Ok(Self {
            base_offset,
            file: IndexFile::create(path, ENTRY, max_bytes)?,
        })
    }

    /// Open an existing file; returns whether its entries can be trusted (see
    /// [`crate::log::offset_index::OffsetIndex::open`]).
    ///
    /// # Errors
    /// I/O errors opening or mapping the file.
    pub fn open(path: &Path, base_offset: i64) -> Result<(Self, bool), LogError> {
        let (file, whole) = IndexFile::open(path, ENTRY)?;
        let index = Self { base_offset, file };
        let valid = whole && index.check();
        Ok((index, valid))
    }

    fn check(&self) -> bool {
        let mut prev: Option<TimestampOffset> = None;
        for i in 0..self.entries() {
            let e = self.get(i);
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.offset < p.offset {
                    return false;
                }
            }
            prev = Some(e);
        }
        true
    }

    fn get(&self, i: usize) -> TimestampOffset {
        let e = self.file.entry(i);
        if e.len() != ENTRY {
            return TimestampOffset {
                timestamp: -1,
                offset: self.base_offset,
            };
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&e[..8]);
        let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        TimestampOffset {
            timestamp: i64::from_be_bytes(ts),
            offset: self.base_offset + i64::from(rel),
        }
    }

    /// Entry `i`, if it exists.
    pub fn entry(&self, i: usize) -> Option<TimestampOffset> {
        (i < self.entries()).then(|| self.get(i))
    }

    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    /// No room for another entry.
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// The last entry (the segment's max timestamp once sealed).
    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.entries().checked_sub(1).map(|i| self.get(i))
    }

    /// Append `(timestamp, offset)` if the timestamp is larger than the last entry's
    /// and the offset not smaller; otherwise (or when full) do nothing.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        if timestamp < 0 {
            return;
        }
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return;
        };
        if let Some(last) = self.last_entry() {
            if timestamp <= last.timestamp || offset < last.offset {
                return;
            }
        }
        let mut e = [0u8; ENTRY];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&rel.to_be_bytes());
        self.file.push(&e);
    }

    /// Largest entry whose timestamp is < `target`: every batch up to its offset is
    /// older than `target`.
    pub fn lookup_below(&self, target: i64) -> Option<TimestampOffset> {
        let (mut lo, mut hi) = (0usize, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).timestamp < target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map(|i| self.get(i))
    }

    /// Drop entries whose offset is ≥ `offset` (after truncating the log there).
    pub fn truncate_to_offset(&mut self, offset: i64) {
        let keep = (0..self.entries())
            .take_while(|&i| self.get(i).offset < offset)
            .count();
        self.file.set_entries(keep);
    }

    /// Drop all entries (before a rebuild).
    pub fn clear(&mut self) {
        self.file.set_entries(0);
    }

    /// Preallocate for appends (active segment).
    ///
    /// # Errors
    /// I/O errors resizing or mapping.
    pub fn make_writable(&mut self, max_bytes: u64) -> Result<(), LogError> {
        self.file.make_writable(max_bytes)
    }

    /// Shrink the file to its entries.
    ///
    /// # Errors
    /// I/O errors resizing or mapping.
    pub fn trim(&mut self) -> Result<(), LogError> {
        self.file.trim()
    }

    /// Flush the mapping and the file to disk.
    ///
    /// # Errors
    /// I/O errors from msync/fsync.
    pub fn sync(&self) -> Result<(), LogError> {
        self.file.sync()
    }

    /// Remove the file.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub fn delete(self) -> Result<(), LogError> {
        self.file.delete()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_entries_and_lookup() -> Result<(), LogError> {
        let dir = tempfile::tempdir().map_err(|e| LogError::io(Path::new("tmp"), e))?;
        let path = dir.path().join("0.timeindex");
        let mut idx = TimeIndex::create(&path, 1000, 120)?;
        idx.maybe_append(10, 1004);
        idx.maybe_append(10, 1010); // same timestamp: skipped
        idx.maybe_append(5, 1012); // older: skipped
        idx.maybe_append(30, 1020);
        assert_eq!(idx.entries(), 2);
        assert_eq!(idx.lookup_below(10), None);
        assert_eq!(idx.lookup_below(11).map(|e| e.offset), Some(1004));
        assert_eq!(idx.lookup_below(31).map(|e| e.offset), Some(1020));
        idx.trim()?;
        drop(idx);
        let (idx, valid) = TimeIndex::open(&path, 1000)?;
        assert!(valid);
        assert_eq!(idx.last_entry().map(|e| e.timestamp), Some(30));
        Ok(())
    }
}
