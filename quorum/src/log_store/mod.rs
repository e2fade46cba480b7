//! brook's on-disk Raft log: segment files, the vote and the purge marker.
//!
//! # Files (under the log directory)
//!
//! ```text
//! LOCK                     held (flock) by the writer thread while the store is open
//! vote.json                the last saved vote, JSON
//! purged.json              the last purged log id, JSON (absent: nothing purged)
//! <seq:020>.seg            segments, byte layout in [`segment`]
//! *.tmp                    leftovers of an interrupted atomic replace; ignored
//! ```
//!
//! `vote.json` and `purged.json` are replaced by temp file + fsync + rename +
//! directory fsync, so each is always either the old or the new value.
//!
//! # Writing
//!
//! One writer thread owns every mutation and executes commands in order from
//! a bounded channel (see [`writer`]). An append is written, made visible to
//! readers, and acknowledged to the caller; then the writer drains whatever
//! else is queued and fsyncs once for all of it before firing the
//! `LogFlushed` callbacks, so openraft learns an entry is stored only after it
//! is on disk. Truncate, purge and vote first flush pending appends and
//! return only once durable.
//!
//! * **Truncate** (conflicting entries from index `i`): unlink newer segments
//!   newest first and fsync the directory, then `ftruncate` the segment
//!   holding `i` at its frame and fsync it. A crash part-way leaves a shorter
//!   suffix deleted, never a hole.
//! * **Purge** (up to `id`): first record `id` in `purged.json` durably, then
//!   unlink segments whose entries are all `<= id`, oldest first. Entries
//!   `<= id` still on disk (in a partly purged segment, or after a crash mid
//!   purge) are skipped on open. Purged entries leave the in-memory index.
//!
//! # Reading
//!
//! Memory holds only an index: one slot (log id, segment, offset, length) per
//! entry not yet purged. Readers copy the slots they need under a short read
//! lock and `pread` the frames on the blocking pool, re-checking the checksum
//! and log id, so replication never waits for an fsync.
//!
//! # Opening after a crash
//!
//! Segments are scanned in order. In the newest segment everything from the
//! first damaged frame (short, oversized, bad checksum, undecodable) on is
//! cut off with a `warn!` log: a torn append that was never acknowledged.
//! Damage in an older segment, or a gap in the indexes, is an error: the
//! store refuses to open rather than drop acknowledged entries.
//!
//! Every sync, create, rename and unlink goes through the `brook_fsio` seam;
//! `power_loss_tests` cuts power at recorded operations of a seeded workload
//! and checks that each reopened log keeps what was reported durable.

#[cfg(test)]
mod power_loss_tests;
pub(crate) mod segment;
mod writer;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, OptionalSend, StorageIOError};
use tokio::sync::{mpsc, oneshot, watch};

use crate::fsutil;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use writer::{Cmd, Flushed, Writer};

/// Errors opening a [`LogStore`].
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// A file could not be read, written or listed.
    #[error("log store I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process (or store in this one) has the directory open.
    #[error("log directory {0} is in use by another store")]
    Locked(PathBuf),
    /// On-disk data that is damaged somewhere other than the newest segment's tail.
    #[error("log store corrupt at {path}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogStoreError + '_ {
    move |source| LogStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tuning for a [`LogStore`].
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A new segment is started once the active one reaches this size.
    pub segment_bytes: u64,
    /// Capacity of the writer's command channel.
    pub queue_capacity: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 16 << 20,
            queue_capacity: 64,
        }
    }
}

/// Where one entry's frame lives.
#[derive(Debug, Clone, Copy)]
struct Slot {
    log_id: LogId,
    seg: u64,
    pos: u64,
    len: u32,
}

/// One segment file as the index knows it.
#[derive(Debug)]
struct SegInfo {
    /// Read handle shared with readers.
    file: Arc<File>,
    /// Highest index written to the segment, purged or not; `None` when empty.
    last_index: Option<u64>,
}

/// The in-memory index shared by the writer (which alone mutates it) and readers.
#[derive(Debug, Default)]
struct State {
    /// Index of `slots[0]`.
    first: u64,
    slots: VecDeque<Slot>,
    segs: BTreeMap<u64, SegInfo>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    /// Set when a write failed; the store then refuses every further operation.
    failed: Option<String>,
}

impl State {
    fn last_log_id(&self) -> Option<LogId> {
        self.slots.back().map(|s| s.log_id).or(self.last_purged)
    }

    /// The index the next append must start at, if fixed.
    fn next_index(&self) -> Option<u64> {
        self.last_log_id().map(|l| l.index + 1)
    }

    fn slot(&self, index: u64) -> Option<&Slot> {
        let off = index.checked_sub(self.first)?;
        self.slots.get(usize::try_from(off).ok()?)
    }
}

#[derive(Debug, Clone)]
struct Shared {
    state: Arc<RwLock<State>>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock leaves `failed` as the guard against use.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn read_err(msg: impl ToString) -> StorageError {
    StorageIOError::read_logs(AnyError::error(msg)).into()
}

fn write_err(msg: impl ToString) -> StorageError {
    StorageIOError::write_logs(AnyError::error(msg)).into()
}

/// brook's Raft log storage (implements openraft's `RaftLogStorage`).
pub struct LogStore {
    shared: Shared,
    tx: mpsc::Sender<Cmd>,
    exited: watch::Receiver<bool>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

/// A cheap read-only handle on the log for replication (`RaftLogReader`).
#[derive(Debug, Clone)]
pub struct LogReader {
    shared: Shared,
}

impl LogStore {
    /// Open (creating if needed) the log in `dir` and start its writer thread.
    ///
    /// # Errors
    ///
    /// I/O failures, a directory locked by another store, or damage that
    /// cannot be repaired without losing acknowledged entries.
    pub fn open(dir: &Path, options: LogOptions) -> Result<LogStore, LogStoreError> {
        brook_fsio::create_dir_all_synced(dir).map_err(io_err(dir))?;
        let lock_path = dir.join("LOCK");
        let mut lock_opts = OpenOptions::new();
        lock_opts.create(true).truncate(false).write(true);
        let lock = brook_fsio::open(&lock_opts, &lock_path).map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LogStoreError::Locked(dir.to_path_buf()))
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }

        let vote_path = dir.join("vote.json");
        let vote: Option<Vote> = read_json(&vote_path)?;
        let purged_path = dir.join("purged.json");
        let last_purged: Option<LogId> = read_json(&purged_path)?;

        let mut seqs = Vec::new();
        for dirent in fs::read_dir(dir).map_err(io_err(dir))? {
            let dirent = dirent.map_err(io_err(dir))?;
            if let Some(seq) = dirent
                .file_name()
                .to_str()
                .and_then(segment::parse_file_name)
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();

        let mut state = State {
            last_purged,
            vote,
            ..State::default()
        };
        let purged_index = last_purged.map(|l| l.index);
        for (i, &seq) in seqs.iter().enumerate() {
            let newest = i + 1 == seqs.len();
            let path = dir.join(segment::file_name(seq));
            let data = fs::read(&path).map_err(io_err(&path))?;
            let scan = segment::scan(&data);
            if let Some(damage) = scan.damage {
                if !newest {
                    return Err(LogStoreError::Corrupt {
                        path,
                        reason: format!(
                            "{damage} at offset {} of an older segment",
                            scan.valid_len
                        ),
                    });
                }
                tracing::warn!(
                    path = %path.display(),
                    offset = scan.valid_len,
                    dropped_bytes = data.len() as u64 - scan.valid_len,
                    "log segment has a torn or corrupt tail ({damage}); truncating it"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(scan.valid_len).map_err(io_err(&path))?;
                brook_fsio::sync_all(&f).map_err(io_err(&path))?;
            }
            for frame in &scan.frames {
                let index = frame.log_id.index;
                if purged_index.is_some_and(|p| index <= p) {
                    continue;
                }
                let expected = state.next_index();
                if expected.is_some_and(|e| e != index) {
                    return Err(LogStoreError::Corrupt {
                        path,
                        reason: format!(
                            "entry {} at offset {} where {expected:?} was expected",
                            frame.log_id, frame.pos
                        ),
                    });
                }
                if state.slots.is_empty() {
                    state.first = index;
                }
                state.slots.push_back(Slot {
                    log_id: frame.log_id,
                    seg: seq,
                    pos: frame.pos,
                    len: frame.len,
                });
            }
            let file = File::open(&path).map_err(io_err(&path))?;
            let last_index = scan.frames.last().map(|f| f.log_id.index);
            state.segs.insert(
                seq,
                SegInfo {
                    file: Arc::new(file),
                    last_index,
                },
            );
        }

        let shared = Shared {
            state: Arc::new(RwLock::new(state)),
        };
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let (exited_tx, exited) = watch::channel(false);
        let writer = Writer::open(
            dir.to_path_buf(),
            options.segment_bytes,
            shared.clone(),
            lock,
        )?;
        std::thread::Builder::new()
            .name("quorum-log-writer".into())
            .spawn(move || {
                writer.run(rx);
                let _ = exited_tx.send(true);
            })
            .map_err(io_err(dir))?;
        Ok(LogStore { shared, tx, exited })
    }

    /// Resolves once the writer thread has finished its queue and released the
    /// directory, which happens after every handle to this store is dropped.
    pub fn writer_exited(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.exited.clone();
        async move {
            // An error means the sender is gone, i.e. the thread has exited too.
            let _ = rx.wait_for(|done| *done).await;
        }
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<io::Result<T>>) -> Cmd,
    ) -> Result<T, io::Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| io::Error::other("log writer has stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("log writer has stopped"))?
    }
}

#[cfg(test)]
impl LogStore {
    /// [`RaftLogStorage::append`] with a test's channel for the flush: returns
    /// once the entries are written; `flushed` hears when they are durable.
    pub(crate) async fn append_notify(
        &mut self,
        entries: Vec<Entry>,
        flushed: oneshot::Sender<io::Result<()>>,
    ) -> io::Result<()> {
        self.call(|written| Cmd::Append {
            entries,
            written,
            flushed: Flushed::Test(flushed),
        })
        .await
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, LogStoreError> {
    match fsutil::read_optional(path).map_err(io_err(path))? {
        None => Ok(None),
        Some(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| LogStoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        }
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl Shared {
    async fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = bounds(&range);
        // Copy what is needed under the lock; do the reads without it.
        let runs: Vec<(Arc<File>, Vec<Slot>)> = {
            let st = self.read();
            if let Some(f) = &st.failed {
                return Err(read_err(format!("log store failed earlier: {f}")));
            }
            let Some(last) = st.slots.back().map(|s| s.log_id.index) else {
                return Ok(Vec::new());
            };
            let from = start.max(st.first);
            let to = end.map_or(last, |e| e.saturating_sub(1).min(last));
            if end == Some(0) || from > to {
                return Ok(Vec::new());
            }
            let mut runs: Vec<(Arc<File>, Vec<Slot>)> = Vec::new();
            for index in from..=to {
                let slot = *st
                    .slot(index)
                    .ok_or_else(|| read_err(format!("index {index} missing from log index")))?;
                match runs.last_mut() {
                    Some((_, slots)) if slots.last().is_some_and(|s| s.seg == slot.seg) => {
                        slots.push(slot)
                    }
                    _ => {
                        let seg = st
                            .segs
                            .get(&slot.seg)
                            .ok_or_else(|| read_err(format!("segment {} missing", slot.seg)))?;
                        runs.push((seg.file.clone(), vec![slot]));
                    }
                }
            }
            runs
        };
        tokio::task::spawn_blocking(move || read_runs(&runs))
            .await
            .map_err(|e| read_err(format!("log read task failed: {e}")))?
            .map_err(read_err)
    }
}

/// Read consecutive frames of each segment with one `pread` per segment.
fn read_runs(runs: &[(Arc<File>, Vec<Slot>)]) -> Result<Vec<Entry>, String> {
    let mut out = Vec::with_capacity(runs.iter().map(|(_, s)| s.len()).sum());
    for (file, slots) in runs {
        let (Some(first), Some(last)) = (slots.first(), slots.last()) else {
            continue;
        };
        let span = (last.pos + u64::from(last.len) - first.pos) as usize;
        let buf = segment::read_at(file, first.pos, span)
            .map_err(|e| format!("reading log segment: {e}"))?;
        for slot in slots {
            let at = (slot.pos - first.pos) as usize;
            let (entry, _) = segment::decode_frame(&buf[at..])
                .map_err(|e| format!("log entry {} unreadable: {e}", slot.log_id))?;
            if entry.log_id != slot.log_id {
                return Err(format!(
                    "log entry at {} is {}, index says {}",
                    slot.pos, entry.log_id, slot.log_id
                ));
            }
            out.push(entry);
        }
    }
    Ok(out)
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.shared.entries(range).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.shared.entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let st = self.shared.read();
        Ok(LogState {
            last_purged_log_id: st.last_purged,
            last_log_id: st.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.call(|done| Cmd::SaveVote { vote, done })
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.shared.read().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // Wait until the frames are written (not fsynced) so that readers see
        // them; the callback fires after the fsync.
        self.call(|written| Cmd::Append {
            entries,
            written,
            flushed: Flushed::Raft(callback),
        })
        .await
        .map_err(|e| write_err(format!("appending to the log: {e}")))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.call(|done| Cmd::Truncate {
            since: log_id,
            done,
        })
        .await
        .map_err(|e| write_err(format!("truncating the log at {log_id}: {e}")))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.call(|done| Cmd::Purge { upto: log_id, done })
            .await
            .map_err(|e| write_err(format!("purging the log up to {log_id}: {e}")))
    }
}
