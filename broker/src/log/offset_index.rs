//! Sparse offset index of one segment: `<base offset>.index`.
//!
//! - Byte layout: 8-byte big-endian entries `(u32 relative offset, u32 position)`,
//!   where `relative offset = batch base offset - segment base offset` and `position`
//!   is the byte position of that batch in the `.log` file. Relative offsets and
//!   positions strictly increase. One entry is added before a batch once more than
//!   `index.interval.bytes` were appended since the previous entry; the file is
//!   preallocated to `segment.index.bytes` and trimmed on roll and close.
//! - Lookup: the largest entry whose offset is ≤ the target (binary search), i.e. a
//!   position at or before the batch holding the target; callers scan forward.
//!   (Kafka indexes a batch's *last* offset instead; either file works with either
//!   reader, since both only promise "the batch at this position starts at or before
//!   the target".)
//! - Concurrency: mutation takes `&mut self`; lookups `&self` (see `segment`).
//! - Crash: derived data. A file that is still preallocated or whose entries are not
//!   strictly increasing is rebuilt from the `.log` by `recovery`.
// Hot path: `lookup` and `lookup_by_position` run on every fetch; no allocation, no logging.

use std::path::Path;

use crate::log::error::LogError;
use crate::log::index_file::IndexFile;

const ENTRY: usize = 8;

/// The offset index of one segment.
#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    file: IndexFile,
}

/// One decoded entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: i64,
    pub position: u32,
}

impl OffsetIndex {
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

    /// Open an existing file and check it against a log of `log_size` bytes. Returns
    /// the index and whether it is trustworthy; an untrustworthy index must be rebuilt
    /// (call [`OffsetIndex::clear`] and re-append).
    ///
    /// # Errors
    /// I/O errors opening or mapping the file.
    pub fn open(path: &Path, base_offset: i64, log_size: u64) -> Result<(Self, bool), LogError> {
        let (file, whole) = IndexFile::open(path, ENTRY)?;
        let index = Self { base_offset, file };
        let valid = whole && index.check(log_size);
        Ok((index, valid))
    }

    fn check(&self, log_size: u64) -> bool {
        let mut prev: Option<(u32, u32)> = None;
        for i in 0..self.file.entries() {
            let (rel, pos) = self.raw(i);
            if u64::from(pos) >= log_size.max(1) {
                return false;
            }
            if let Some((prel, ppos)) = prev {
                if rel <= prel || pos <= ppos {
                    return false;
                }
            }
            prev = Some((rel, pos));
        }
        true
    }

    fn raw(&self, i: usize) -> (u32, u32) {
        let e = self.file.entry(i);
        if e.len() != ENTRY {
            return (0, 0);
        }
        let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        (rel, pos)
    }

    fn get(&self, i: usize) -> OffsetPosition {
        let (rel, pos) = self.raw(i);
        OffsetPosition {
            offset: self.base_offset + i64::from(rel),
            position: pos,
        }
    }

    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    /// No room for another entry.
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// The last entry, if any.
    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.entries().checked_sub(1).map(|i| self.get(i))
    }

    /// Add an entry for the batch starting at `offset` / `position`. Entries that would
    /// not strictly increase, do not fit the u32 fields, or find the file full are
    /// skipped: the index is sparse, so a missing entry only lengthens a scan.
    pub fn append(&mut self, offset: i64, position: u64) {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return;
        };
        let Ok(pos) = u32::try_from(position) else {
            return;
        };
        if let Some(last) = self.last_entry() {
            if offset <= last.offset || pos <= last.position {
                return;
            }
        }
        let mut e = [0u8; ENTRY];
        e[..4].copy_from_slice(&rel.to_be_bytes());
        e[4..].copy_from_slice(&pos.to_be_bytes());
        self.file.push(&e);
    }

    /// Largest entry with offset ≤ `target`, or `(base offset, 0)`.
    pub fn lookup(&self, target: i64) -> OffsetPosition {
        self.search(|e| e.offset <= target)
    }

    /// Largest entry with position ≤ `position`, or `(base offset, 0)`.
    pub fn lookup_by_position(&self, position: u64) -> OffsetPosition {
        self.search(|e| u64::from(e.position) <= position)
    }

    /// Binary search for the last entry satisfying a predicate that is true for a
    /// prefix of the entries.
    fn search(&self, below: impl Fn(OffsetPosition) -> bool) -> OffsetPosition {
        let (mut lo, mut hi) = (0usize, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(self.get(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        match lo.checked_sub(1) {
            Some(i) => self.get(i),
            None => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// Drop entries at or past `position` of the log (after the log was truncated there).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = (0..self.entries())
            .take_while(|&i| u64::from(self.get(i).position) < position)
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

    /// Path of the file.
    pub fn path(&self) -> &Path {
        self.file.path()
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
    use proptest::prelude::*;

    #[test]
    fn lookup_finds_largest_entry_at_or_below() -> Result<(), LogError> {
        let dir = tempfile::tempdir().map_err(|e| LogError::io(Path::new("tmp"), e))?;
        let mut idx = OffsetIndex::create(&dir.path().join("a.index"), 100, 1024)?;
        idx.append(110, 500);
        idx.append(120, 1000);
        idx.append(115, 2000); // not increasing: skipped
        assert_eq!(idx.entries(), 2);
        assert_eq!(idx.lookup(99).position, 0);
        assert_eq!(idx.lookup(109).position, 0);
        assert_eq!(idx.lookup(110).position, 500);
        assert_eq!(idx.lookup(119).position, 500);
        assert_eq!(idx.lookup(500).position, 1000);
        assert_eq!(idx.lookup_by_position(999).offset, 110);
        idx.trim()?;
        let (reopened, valid) = OffsetIndex::open(&dir.path().join("a.index"), 100, 5000)?;
        assert!(valid);
        assert_eq!(reopened.lookup(125).offset, 120);
        Ok(())
    }

    #[test]
    fn preallocated_file_is_not_trusted() -> Result<(), LogError> {
        let dir = tempfile::tempdir().map_err(|e| LogError::io(Path::new("tmp"), e))?;
        let path = dir.path().join("b.index");
        let mut idx = OffsetIndex::create(&path, 0, 1024)?;
        idx.append(5, 100);
        drop(idx);
        let (_, valid) = OffsetIndex::open(&path, 0, 5000)?;
        assert!(!valid, "zero-filled preallocation must force a rebuild");
        Ok(())
    }

    #[test]
    fn full_index_skips_entries() -> Result<(), LogError> {
        let dir = tempfile::tempdir().map_err(|e| LogError::io(Path::new("tmp"), e))?;
        let mut idx = OffsetIndex::create(&dir.path().join("c.index"), 0, 16)?;
        for i in 1..10 {
            idx.append(i, i as u64 * 10);
        }
        assert_eq!(idx.entries(), 2);
        assert!(idx.is_full());
        Ok(())
    }

    proptest! {
        #[test]
        fn lookup_matches_linear_scan(mut offs in proptest::collection::btree_set(0i64..100_000, 0..200), target in 0i64..100_000) {
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut idx = OffsetIndex::create(&dir.path().join("p.index"), 0, 4096)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            offs.remove(&0);
            for &o in &offs {
                idx.append(o, o as u64 * 3);
            }
            let expect = offs.iter().copied().filter(|&o| o <= target).max().unwrap_or(0);
            prop_assert_eq!(idx.lookup(target).offset, expect);
        }
    }
}
