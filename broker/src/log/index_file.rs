//! A fixed-entry-size index file, preallocated and memory-mapped (memmap2).
//!
//! Shared mechanics of `.index` and `.timeindex`; the typed views live in
//! `offset_index` and `time_index`.
//!
//! - Byte layout: `entries * entry_size` bytes of entries, then (only while the file
//!   is *writable*, i.e. belongs to the active segment) zero-filled preallocation up
//!   to `max_bytes` rounded down to a whole entry.
//! - Concurrency: `&mut self` for every mutation; the owning segment is behind the
//!   partition log's `RwLock`, so readers never observe a half-written entry.
//! - Crash: entries are written through the mapping and reach disk whenever the kernel
//!   writes the pages back; a file whose length is not exactly `entries * entry_size`
//!   (still preallocated) or whose entries do not validate is rebuilt from the `.log`.
//!   The file is therefore never trusted more than the log it indexes.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use crate::log::error::{IoContext, LogError};

pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    /// `None` when the file is empty (a zero-length mapping is not allowed).
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    /// Capacity of the current mapping, in entries.
    capacity: usize,
}

impl std::fmt::Debug for IndexFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexFile")
            .field("path", &self.path)
            .field("entries", &self.entries)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl IndexFile {
    /// Open (or create) the file and map its current length. `entries` starts as the
    /// number of whole entries in the file; the caller validates them and calls
    /// [`IndexFile::set_entries`]. Returns whether the length was a whole number of entries.
    pub(crate) fn open(path: &Path, entry_size: usize) -> Result<(Self, bool), LogError> {
        let file = crate::fsio::open(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
            path,
        )
        .at(path)?;
        let len = file.metadata().at(path)?.len();
        let len = usize::try_from(len).map_err(|_| {
            LogError::io(path, std::io::Error::other("index file larger than memory"))
        })?;
        let mut index = Self {
            path: path.to_path_buf(),
            file,
            mmap: None,
            entry_size,
            entries: len / entry_size,
            capacity: 0,
        };
        index.remap(len)?;
        Ok((index, len % entry_size == 0))
    }

    /// Create an empty file (replacing any existing one), preallocated to `max_bytes`.
    pub(crate) fn create(path: &Path, entry_size: usize, max_bytes: u64) -> Result<Self, LogError> {
        let file = crate::fsio::open(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
            path,
        )
        .at(path)?;
        let mut index = Self {
            path: path.to_path_buf(),
            file,
            mmap: None,
            entry_size,
            entries: 0,
            capacity: 0,
        };
        index.make_writable(max_bytes)?;
        Ok(index)
    }

    fn remap(&mut self, len: usize) -> Result<(), LogError> {
        self.mmap = None;
        if len == 0 {
            self.capacity = 0;
            return Ok(());
        }
        // SAFETY: the file is opened by us and only ever modified through this mapping
        // or `set_len` while no mapping exists (we drop it above). Other processes are
        // not expected to write a broker's data directory; if one truncates the file
        // anyway, access would fault (SIGBUS), the same hazard Kafka accepts.
        let mmap = unsafe { MmapOptions::new().len(len).map_mut(&self.file) }.at(&self.path)?;
        self.mmap = Some(mmap);
        self.capacity = len / self.entry_size;
        Ok(())
    }

    /// Grow (preallocate) to `max_bytes` rounded down to whole entries, keeping entries.
    pub(crate) fn make_writable(&mut self, max_bytes: u64) -> Result<(), LogError> {
        let es = self.entry_size as u64;
        let want = (max_bytes / es).max(self.entries as u64) * es;
        self.mmap = None;
        self.file.set_len(want).at(&self.path)?;
        let want = usize::try_from(want)
            .map_err(|_| LogError::io(&self.path, std::io::Error::other("index too large")))?;
        self.remap(want)
    }

    /// Shrink the file to exactly the live entries (on roll and close).
    pub(crate) fn trim(&mut self) -> Result<(), LogError> {
        if let Some(m) = &self.mmap {
            m.flush().at(&self.path)?;
        }
        self.mmap = None;
        let len = self.entries * self.entry_size;
        self.file.set_len(len as u64).at(&self.path)?;
        self.remap(len)
    }

    /// Write dirty pages and the file length to disk.
    pub(crate) fn sync(&self) -> Result<(), LogError> {
        if let Some(m) = &self.mmap {
            m.flush().at(&self.path)?;
        }
        crate::fsio::sync_all(&self.file).at(&self.path)
    }

    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    /// Keep only the first `n` entries (n ≤ current entries).
    pub(crate) fn set_entries(&mut self, n: usize) {
        self.entries = n.min(self.entries);
    }

    /// Entry `i` (< entries) as raw bytes.
    pub(crate) fn entry(&self, i: usize) -> &[u8] {
        match &self.mmap {
            Some(m) if i < self.entries => &m[i * self.entry_size..(i + 1) * self.entry_size],
            _ => &[],
        }
    }

    /// Append one entry; returns false (and writes nothing) when the file is full.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> bool {
        debug_assert_eq!(bytes.len(), self.entry_size);
        if self.is_full() {
            return false;
        }
        let at = self.entries * self.entry_size;
        match &mut self.mmap {
            Some(m) => {
                m[at..at + self.entry_size].copy_from_slice(bytes);
                self.entries += 1;
                true
            }
            None => false,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the file from disk.
    pub(crate) fn delete(mut self) -> Result<(), LogError> {
        self.mmap = None;
        match crate::fsio::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LogError::io(&self.path, e)),
        }
    }
}
