//! The log of one partition: an ordered set of segments in `<data dir>/<topic>-<partition>/`.
//!
//! - Files: see the `log` module docs; this type owns the directory.
//! - Concurrency: `PartitionLog` is `Send + Sync`; share it as `Arc<PartitionLog>`.
//!   Appends, truncation and retention take the state `RwLock` for writing (an append
//!   holds it for one `pwrite` plus index updates; CRC validation happens before the
//!   lock). Reads take it for reading, so they run in parallel with each other and
//!   only wait for an in-flight append. Log start/end offsets are mirrored in atomics
//!   so they can be read without any lock. Flushing (see `flush`) never holds the
//!   state lock while syncing. All methods are synchronous and may block on disk I/O;
//!   async callers use `spawn_blocking` for flushes (appends and reads are page-cache
//!   operations and short).
//! - Crash: an append is durable only once a flush covers it. On open, a missing
//!   clean-shutdown marker makes `recovery` CRC-scan from the recovery point and cut
//!   the log at the first torn or corrupt batch. Any write or sync error takes the log
//!   offline (see `flush`).
// Hot path: `read` allocates nothing per batch and logs nothing above debug; appends
// live in `append` under the same rule.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::log::checkpoint::sync_dir;
use crate::log::config::{Clock, LogConfig, SystemClock};
use crate::log::error::{IoContext, LogError};
use crate::log::flush::{FlushControl, FsyncSyncer, Syncer};
use crate::log::leader_epoch_cache::{EpochEntry, LeaderEpochCache};
use crate::log::recovery::{self, CLEAN_SHUTDOWN_FILE};
use crate::log::segment::{FileRegion, Segment};
use crate::log::segments::Segments;

/// Where to start and which seams to use when opening a log.
#[derive(Clone)]
pub struct OpenOptions {
    /// Offsets below this were flushed before the last stop (from the data dir's
    /// `recovery-point-offset-checkpoint`); an unclean open scans from its segment on.
    pub recovery_point: i64,
    /// From the data dir's `log-start-offset-checkpoint`.
    pub log_start_offset: i64,
    /// From the data dir's `cleaner-offset-checkpoint`: where the last clean stopped.
    pub cleaner_offset: i64,
    pub syncer: Arc<dyn Syncer>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("recovery_point", &self.recovery_point)
            .field("log_start_offset", &self.log_start_offset)
            .field("cleaner_offset", &self.cleaner_offset)
            .finish_non_exhaustive()
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            recovery_point: 0,
            log_start_offset: 0,
            cleaner_offset: 0,
            syncer: Arc::new(FsyncSyncer),
            clock: Arc::new(SystemClock),
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// Largest batch max timestamp of the append, -1 if none.
    pub max_timestamp: i64,
    /// Last offset of the batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    pub batch_count: u32,
    pub record_count: i64,
    pub bytes: u64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// What a read found.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, to be sent as is; `None` when nothing is visible or fits.
    pub region: Option<FileRegion>,
    /// Base offset of the first batch in `region` (may be below the requested offset).
    pub first_offset: Option<i64>,
    /// Offset after the last batch in `region`, when there is one.
    pub next_offset: Option<i64>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

pub(crate) struct LogState {
    pub(crate) config: LogConfig,
    pub(crate) segments: Segments,
    pub(crate) log_start_offset: i64,
    pub(crate) epochs: LeaderEpochCache,
    pub(crate) closed: bool,
}

impl LogState {
    pub(crate) fn log_end_offset(&self) -> i64 {
        self.segments
            .active()
            .map_or(self.log_start_offset, Segment::next_offset)
    }
}

/// The log of one partition.
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) state: RwLock<LogState>,
    pub(crate) flush: FlushControl,
    /// Cleaner checkpoint (see `cleaner`).
    pub(crate) cleaned: AtomicI64,
    /// Held by a clean for its whole run: one clean of a log at a time.
    pub(crate) cleaning: Mutex<()>,
    /// Earliest delete horizon of a tombstone the last clean kept (`i64::MAX`: none;
    /// `HORIZON_UNKNOWN` after open, until the cleaner scans the headers for it).
    pub(crate) tombstone_horizon: AtomicI64,
    leo: AtomicI64,
    lso: AtomicI64,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.lso)
            .field("log_end_offset", &self.leo)
            .field("flush", &self.flush)
            .finish_non_exhaustive()
    }
}

impl PartitionLog {
    /// Open (or create) the log in `dir` with default [`OpenOptions`].
    ///
    /// # Errors
    /// Invalid config, I/O errors, corrupt checkpoint files.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        Self::open_with(dir, config, OpenOptions::default())
    }

    /// Open (or create) the log in `dir`, recovering it if it was not closed cleanly.
    ///
    /// # Errors
    /// Invalid config, I/O errors, corrupt checkpoint files.
    pub fn open_with(dir: &Path, config: LogConfig, opts: OpenOptions) -> Result<Self, LogError> {
        config.validate()?;
        crate::fsio::create_dir_all(dir).at(dir)?;
        let now = opts.clock.now_ms();
        let loaded = recovery::load(
            dir,
            &config,
            opts.recovery_point,
            opts.log_start_offset,
            now,
        )?;
        let segments = loaded.segments;
        let leo = segments.active().map_or(0, Segment::next_offset);
        let first_base = segments.first().map_or(0, Segment::base_offset);
        let lso = opts.log_start_offset.max(first_base).min(leo);
        let mut epochs = LeaderEpochCache::load(dir)?;
        epochs.truncate_from_end(leo)?;
        epochs.truncate_from_start(lso)?;
        let flushed = if loaded.clean {
            leo
        } else {
            opts.recovery_point.clamp(0, leo)
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            clock: opts.clock,
            state: RwLock::new(LogState {
                config,
                segments,
                log_start_offset: lso,
                epochs,
                closed: false,
            }),
            flush: FlushControl::new(opts.syncer, flushed),
            cleaned: AtomicI64::new(opts.cleaner_offset.clamp(lso, leo)),
            cleaning: Mutex::new(()),
            tombstone_horizon: AtomicI64::new(crate::log::cleaner::HORIZON_UNKNOWN),
            leo: AtomicI64::new(leo),
            lso: AtomicI64::new(lso),
        })
    }

    pub(crate) fn poisoned(&self) -> LogError {
        LogError::Poisoned {
            dir: self.dir.clone(),
        }
    }

    pub(crate) fn read_state(&self) -> Result<RwLockReadGuard<'_, LogState>, LogError> {
        self.state.read().map_err(|_| self.poisoned())
    }

    pub(crate) fn write_state(&self) -> Result<RwLockWriteGuard<'_, LogState>, LogError> {
        let st = self.state.write().map_err(|_| self.poisoned())?;
        if st.closed {
            return Err(LogError::Closed {
                dir: self.dir.clone(),
            });
        }
        Ok(st)
    }

    /// Publish offsets after a change (caller holds the write lock).
    pub(crate) fn publish(&self, st: &LogState) {
        self.leo.store(st.log_end_offset(), Ordering::Release);
        self.lso.store(st.log_start_offset, Ordering::Release);
    }

    /// Run a write-path step; an I/O failure in it takes the log offline, because the
    /// files may now hold a partial change.
    pub(crate) fn guard_io<T>(&self, r: Result<T, LogError>) -> Result<T, LogError> {
        if let Err(LogError::Io { path, source }) = &r {
            self.flush.set_offline();
            tracing::error!(path = %path.display(), error = %source, "log write failed; log taken offline");
        }
        r
    }

    /// Read whole batches starting with the one holding `offset`: at most `max_bytes`
    /// (but one whole batch even if larger when `min_one_message`), only batches
    /// entirely below `max_offset` (the high-water mark, exclusive; capped at the log
    /// end), and from one segment only. Offsets in `[max_offset, log end]` give an
    /// empty result. Every batch is returned, empty ones included: what a replica
    /// copies, and what the log's own readers (producer state, group load) need.
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] when `offset` is below the log start or above
    /// the log end; [`LogError::Offline`]; I/O errors.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        max_offset: i64,
        min_one_message: bool,
    ) -> Result<ReadResult, LogError> {
        self.read_batches(offset, max_bytes, max_offset, min_one_message, false)
    }

    /// [`PartitionLog::read`] for a consumer: empty batches before the first batch
    /// holding a record are skipped, across segments (the cleaner leaves whole
    /// segments of header-only batches). librdkafka doubles its fetch size after
    /// each response without a record and fails the read after ten, so a region
    /// of empty batches alone is returned only when nothing but empty batches is
    /// visible past `offset` (then its last batch alone, to move the reader on).
    ///
    /// # Errors
    /// As [`PartitionLog::read`].
    pub fn read_records(
        &self,
        offset: i64,
        max_bytes: u64,
        max_offset: i64,
        min_one_message: bool,
    ) -> Result<ReadResult, LogError> {
        self.read_batches(offset, max_bytes, max_offset, min_one_message, true)
    }

    fn read_batches(
        &self,
        offset: i64,
        max_bytes: u64,
        max_offset: i64,
        min_one_message: bool,
        skip_empty: bool,
    ) -> Result<ReadResult, LogError> {
        self.check_online()?;
        let st = self.read_state()?;
        let (log_start, log_end) = (st.log_start_offset, st.log_end_offset());
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let mut result = ReadResult {
            region: None,
            first_offset: None,
            next_offset: None,
            log_start_offset: log_start,
            log_end_offset: log_end,
        };
        let max_offset = max_offset.min(log_end);
        let mut from = offset;
        for seg in st.segments.from_offset(offset) {
            if from >= max_offset {
                break;
            }
            let Some(r) = seg.read(from, max_bytes, max_offset, min_one_message, skip_empty)?
            else {
                continue;
            };
            if r.region.len > 0 {
                result.first_offset = Some(r.first_offset);
                result.next_offset = Some(r.next_offset);
                result.region = Some(r.region);
                if r.hollow {
                    // Kept unless a later segment has a record to offer.
                    from = r.next_offset;
                    continue;
                }
            }
            break;
        }
        Ok(result)
    }

    /// Remove every batch at or after `offset` (replication: the follower diverged).
    /// Whole batches only: a batch holding `offset` is removed, so the new log end
    /// may be below `offset`. Below the log start, the log is emptied and restarts at
    /// `offset`. Returns the new log end offset.
    ///
    /// # Errors
    /// [`LogError::Offline`], [`LogError::Closed`], I/O errors (which take the log offline).
    pub fn truncate_to(&self, offset: i64) -> Result<i64, LogError> {
        self.check_online()?;
        let _flush = self.flush.lock().map_err(|()| self.poisoned())?;
        let mut st = self.write_state()?;
        if offset >= st.log_end_offset() {
            // Nothing to cut, but an epoch may start at the log end with
            // nothing appended in it (this broker led it and was deposed
            // before appending): drop it, as Kafka does, or appending the
            // leader's older-epoch records here would replace every entry
            // of that older epoch (`LeaderEpochCache::assign`).
            let leo = st.log_end_offset();
            let r = st.epochs.truncate_from_end(leo);
            self.guard_io(r)?;
            return Ok(leo);
        }
        let r = self.truncate_locked(&mut st, offset);
        self.guard_io(r)?;
        let leo = st.log_end_offset();
        let r = st.epochs.truncate_from_end(leo);
        self.guard_io(r)?;
        self.flush.lower_to(leo);
        self.cleaned.fetch_min(leo, Ordering::AcqRel);
        self.flush.mark_dir_dirty();
        self.publish(&st);
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset = leo, "truncated log");
        Ok(leo)
    }

    /// Empty the log and restart it at `offset`, which may be beyond the log
    /// end (a follower whose leader's log starts past everything it has).
    /// Returns the new log end offset.
    ///
    /// # Errors
    /// As [`PartitionLog::truncate_to`].
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<i64, LogError> {
        self.check_online()?;
        let _flush = self.flush.lock().map_err(|()| self.poisoned())?;
        let mut st = self.write_state()?;
        let r = (|| {
            for base in st.segments.bases() {
                if let Some(seg) = st.segments.remove(base) {
                    seg.delete()?;
                }
            }
            let seg = Segment::create(&self.dir, offset, &st.config, self.clock.now_ms())?;
            st.segments.insert(seg);
            st.log_start_offset = offset;
            st.epochs.truncate_from_start(offset)?;
            st.epochs.truncate_from_end(offset)
        })();
        self.guard_io(r)?;
        self.flush.lower_to(offset);
        self.cleaned.fetch_min(offset, Ordering::AcqRel);
        self.flush.mark_dir_dirty();
        self.publish(&st);
        tracing::info!(dir = %self.dir.display(), offset, "emptied log to restart at the leader's log start");
        Ok(offset)
    }

    /// Record that leader epoch `epoch` starts at `start_offset` (a replica
    /// becoming leader, before anything is appended in the epoch).
    ///
    /// # Errors
    /// Writing the leader-epoch checkpoint failed.
    pub fn assign_epoch(&self, epoch: i32, start_offset: i64) -> Result<(), LogError> {
        self.check_online()?;
        let mut st = self.write_state()?;
        let r = st.epochs.assign(epoch, start_offset);
        self.guard_io(r).map(|_| ())
    }

    fn truncate_locked(&self, st: &mut LogState, offset: i64) -> Result<(), LogError> {
        let first_base = st.segments.first().map_or(0, Segment::base_offset);
        if offset < st.log_start_offset || offset <= first_base {
            for base in st.segments.bases() {
                if let Some(seg) = st.segments.remove(base) {
                    seg.delete()?;
                }
            }
            let now = self.clock.now_ms();
            let seg = Segment::create(&self.dir, offset, &st.config, now)?;
            st.segments.insert(seg);
            st.log_start_offset = offset;
            return st.epochs.truncate_from_start(offset);
        }
        for base in st.segments.bases().into_iter().rev() {
            if base < offset {
                break;
            }
            if let Some(seg) = st.segments.remove(base) {
                seg.delete()?;
            }
        }
        let config = st.config.clone();
        if let Some(active) = st.segments.active_mut() {
            active.truncate_to(offset)?;
            active.make_active(&config)?;
        }
        Ok(())
    }

    /// ListOffsets by timestamp: the first batch whose max timestamp is ≥ `timestamp`
    /// and whose last offset is below `max_offset` (the HW for consumers), as
    /// `(offset, that batch's max timestamp)`. The offset is the batch's base offset
    /// (clients skip earlier records), never below the log start.
    ///
    /// # Errors
    /// [`LogError::Offline`], I/O errors.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        max_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        self.check_online()?;
        let st = self.read_state()?;
        let lso = st.log_start_offset;
        for seg in st.segments.iter() {
            if seg.next_offset() <= lso || seg.max_timestamp() < timestamp {
                continue;
            }
            return Ok(seg
                .find_offset_by_timestamp(timestamp)?
                .filter(|m| m.last_offset < max_offset)
                .map(|m| (m.base_offset.max(lso), m.max_timestamp)));
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: `(largest timestamp, last offset of its batch)` over
    /// the batches below `max_offset`; the earliest batch wins a tie.
    ///
    /// # Errors
    /// [`LogError::Offline`], I/O errors.
    pub fn max_timestamp_offset(&self, max_offset: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.check_online()?;
        let st = self.read_state()?;
        let mut best: Option<(i64, i64)> = None;
        for seg in st.segments.iter() {
            if seg.base_offset() >= max_offset {
                break;
            }
            let found = if seg.offset_of_max_timestamp() < max_offset {
                (seg.max_timestamp() >= 0)
                    .then(|| (seg.max_timestamp(), seg.offset_of_max_timestamp()))
            } else {
                seg.max_timestamp_below(max_offset)?
            };
            if let Some((ts, off)) = found {
                if best.is_none_or(|(b, _)| ts > b) {
                    best = Some((ts, off));
                }
            }
        }
        Ok(best)
    }

    fn read_state_lossy(&self) -> RwLockReadGuard<'_, LogState> {
        // Read-only queries of plain data: a panic elsewhere cannot leave these
        // half-updated in a way that matters to the caller, and writes report it.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)`, see [`LeaderEpochCache::end_offset_for`].
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let st = self.read_state_lossy();
        st.epochs.end_offset_for(epoch, st.log_end_offset())
    }

    /// The leader-epoch cache entries.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.read_state_lossy().epochs.entries().to_vec()
    }

    /// Latest leader epoch recorded in the log, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.read_state_lossy().epochs.latest_epoch()
    }

    /// Replace the configuration (AlterConfigs). Takes effect for later appends,
    /// rolls and retention passes; existing segments keep their index sizes.
    ///
    /// # Errors
    /// [`LogError::InvalidConfig`]; [`LogError::Closed`].
    pub fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        config.validate()?;
        self.write_state()?.config = config;
        Ok(())
    }

    /// The configuration in use.
    pub fn config(&self) -> LogConfig {
        self.read_state_lossy().config.clone()
    }

    /// First offset that may be read.
    pub fn log_start_offset(&self) -> i64 {
        self.lso.load(Ordering::Acquire)
    }

    /// Offset the next appended record gets (LEO).
    pub fn log_end_offset(&self) -> i64 {
        self.leo.load(Ordering::Acquire)
    }

    /// Bytes of all segment `.log` files.
    pub fn size_in_bytes(&self) -> u64 {
        self.read_state_lossy().segments.size_in_bytes()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.read_state_lossy().segments.bases()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Clean shutdown: seal the active segment (final time-index entry, trimmed
    /// indexes), sync every file, then write the clean-shutdown marker so the next open
    /// skips recovery. Later appends fail with [`LogError::Closed`].
    ///
    /// # Errors
    /// [`LogError::Offline`]; I/O errors (no marker is written then, so the next open
    /// recovers).
    pub fn close(&self) -> Result<(), LogError> {
        self.check_online()?;
        let _flush = self.flush.lock().map_err(|()| self.poisoned())?;
        let mut st = self.write_state()?;
        let r = self.close_locked(&mut st);
        self.guard_io(r)?;
        self.flush.mark_flushed(st.log_end_offset());
        st.closed = true;
        Ok(())
    }

    fn close_locked(&self, st: &mut LogState) -> Result<(), LogError> {
        if let Some(active) = st.segments.active_mut() {
            active.seal()?;
        }
        for seg in st.segments.iter() {
            seg.sync_all()?;
        }
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        let f = crate::fsio::open(
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
            &marker,
        )
        .at(&marker)?;
        crate::fsio::sync_all(&f).at(&marker)?;
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
#[path = "partition_log_tests.rs"]
mod tests;
