//! Group-committed durability and the offline ("poisoned") state of a partition log.
//!
//! - `flushed` is a watermark: every offset below it is on disk. [`PartitionLog::flush_up_to`]
//!   returns at once when the watermark already covers the caller's offset; otherwise
//!   the caller takes the flush mutex. Whoever holds it snapshots the log end offset
//!   and `fdatasync`s every segment with data past the watermark, which covers all
//!   appends made so far, so callers queued behind it usually find their offset
//!   covered when they get the mutex and return without a second sync.
//! - Blocking: flushes block the calling thread on disk I/O. From async code call
//!   them through `tokio::task::spawn_blocking` (the log is `Send + Sync`, share it as
//!   `Arc<PartitionLog>`); appends and reads never wait for a flush.
//! - Crash/failure: an fsync error means the kernel may have dropped dirty pages, so
//!   the data can no longer be trusted. The log goes offline: this and every later
//!   append, read and flush return [`LogError::Offline`]; an fsync is never retried.
//!   The [`Syncer`] seam lets tests inject failures and count syncs.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::log::error::LogError;
use crate::log::partition_log::PartitionLog;

/// How data reaches the disk; swapped in tests.
pub trait Syncer: Send + Sync + std::fmt::Debug {
    /// Make `file`'s data durable (`fdatasync` for files, `fsync` for directories).
    ///
    /// # Errors
    /// The I/O error of the sync.
    fn sync_data(&self, file: &File) -> io::Result<()>;
}

/// The real thing: `fdatasync(2)` through [`crate::fsio`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FsyncSyncer;

impl Syncer for FsyncSyncer {
    fn sync_data(&self, file: &File) -> io::Result<()> {
        crate::fsio::sync_data(file)
    }
}

pub(crate) struct FlushControl {
    lock: Mutex<()>,
    flushed: AtomicI64,
    offline: AtomicBool,
    syncs: AtomicU64,
    /// A segment file was created or deleted since the last directory fsync.
    dir_dirty: AtomicBool,
    syncer: Arc<dyn Syncer>,
}

impl std::fmt::Debug for FlushControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushControl")
            .field("flushed", &self.flushed)
            .field("offline", &self.offline)
            .field("syncs", &self.syncs)
            .finish()
    }
}

impl FlushControl {
    pub(crate) fn new(syncer: Arc<dyn Syncer>, flushed: i64) -> Self {
        Self {
            lock: Mutex::new(()),
            flushed: AtomicI64::new(flushed),
            offline: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
            dir_dirty: AtomicBool::new(true),
            syncer,
        }
    }

    pub(crate) fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    pub(crate) fn set_offline(&self) {
        self.offline.store(true, Ordering::Release);
    }

    pub(crate) fn flushed(&self) -> i64 {
        self.flushed.load(Ordering::Acquire)
    }

    /// Lower the watermark after truncation (caller holds the flush lock).
    pub(crate) fn lower_to(&self, offset: i64) {
        self.flushed.fetch_min(offset, Ordering::AcqRel);
    }

    /// Everything below `offset` is durable (after close).
    pub(crate) fn mark_flushed(&self, offset: i64) {
        self.flushed.fetch_max(offset, Ordering::AcqRel);
    }

    pub(crate) fn mark_dir_dirty(&self) {
        self.dir_dirty.store(true, Ordering::Release);
    }

    pub(crate) fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, ()> {
        self.lock.lock().map_err(|_| ())
    }

    fn sync(&self, file: &File, path: &Path) -> Result<(), LogError> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.syncer.sync_data(file).map_err(|e| {
            self.set_offline();
            tracing::error!(path = %path.display(), error = %e, "fsync failed; log taken offline");
            LogError::io(path, e)
        })
    }
}

impl PartitionLog {
    /// Make every offset below `offset` durable (group commit, see module docs).
    /// Returns the flushed watermark, which is ≥ `offset` unless `offset` is past the
    /// log end. Blocks on disk I/O.
    ///
    /// # Errors
    /// [`LogError::Offline`] if the log is offline; the I/O error of a failed sync
    /// (which takes the log offline).
    pub fn flush_up_to(&self, offset: i64) -> Result<i64, LogError> {
        let fc = &self.flush;
        self.check_online()?;
        if fc.flushed() >= offset {
            return Ok(fc.flushed());
        }
        let _guard = fc.lock().map_err(|()| self.poisoned())?;
        // Re-check: the holder before us may have covered our offset, or failed.
        self.check_online()?;
        if fc.flushed() >= offset {
            return Ok(fc.flushed());
        }
        let flushed = fc.flushed();
        let (target, files) = {
            let st = self.read_state()?;
            let files: Vec<_> = st
                .segments
                .iter()
                .filter(|s| s.next_offset() > flushed)
                .map(|s| (Arc::clone(s.log_file()), s.log_path().to_path_buf()))
                .collect();
            (st.log_end_offset(), files)
        };
        for (file, path) in &files {
            fc.sync(file, path)?;
        }
        if fc.dir_dirty.swap(false, Ordering::AcqRel) {
            let dir = File::open(&self.dir).map_err(|e| LogError::io(&self.dir, e))?;
            if let Err(e) = fc.sync(&dir, &self.dir) {
                fc.mark_dir_dirty();
                return Err(e);
            }
        }
        fc.flushed.fetch_max(target, Ordering::AcqRel);
        Ok(fc.flushed())
    }

    /// Flush everything appended so far.
    ///
    /// # Errors
    /// As [`PartitionLog::flush_up_to`].
    pub fn flush(&self) -> Result<i64, LogError> {
        self.flush_up_to(self.log_end_offset())
    }

    /// Offsets below this are durable: the recovery point to checkpoint.
    pub fn recovery_point(&self) -> i64 {
        self.flush.flushed()
    }

    /// Number of sync calls made (segment files and directory), for tests and metrics.
    pub fn sync_count(&self) -> u64 {
        self.flush.syncs.load(Ordering::Relaxed)
    }

    /// Whether an I/O failure took the log offline.
    pub fn is_offline(&self) -> bool {
        self.flush.is_offline()
    }

    pub(crate) fn check_online(&self) -> Result<(), LogError> {
        if self.flush.is_offline() {
            return Err(LogError::Offline {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }
}
