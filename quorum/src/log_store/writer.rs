//! The log's single ordered writer: a dedicated thread fed by a bounded channel.
//!
//! It alone writes segment files, `vote.json` and `purged.json`, and alone
//! mutates the shared index (taking the write lock only to publish a change
//! that is already on disk, or written and about to be fsynced). Any I/O
//! failure marks the store failed: later operations error out instead of
//! guessing what reached the disk; reopening recovers from the files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::LogFlushed;
use tokio::sync::{mpsc, oneshot};

use super::{segment, LogStoreError, SegInfo, Shared, Slot};
use crate::fsutil;
use crate::types::{Entry, LogId, TypeConfig, Vote};

/// Most commands handled between two fsyncs.
const MAX_GROUP: usize = 256;

/// Who learns that an append is durable.
pub(super) enum Flushed {
    /// openraft's callback.
    Raft(LogFlushed<TypeConfig>),
    /// A test's channel (openraft alone can make a `LogFlushed`, and its
    /// `blocking_append` waits for it, so a test could not keep several
    /// appends in flight to exercise the group commit).
    #[cfg(test)]
    Test(oneshot::Sender<io::Result<()>>),
}

impl Flushed {
    fn done(self, res: io::Result<()>) {
        match self {
            Flushed::Raft(cb) => cb.log_io_completed(res),
            #[cfg(test)]
            Flushed::Test(tx) => {
                let _ = tx.send(res);
            }
        }
    }
}

pub(super) enum Cmd {
    Append {
        entries: Vec<Entry>,
        written: oneshot::Sender<io::Result<()>>,
        flushed: Flushed,
    },
    Truncate {
        since: LogId,
        done: oneshot::Sender<io::Result<()>>,
    },
    Purge {
        upto: LogId,
        done: oneshot::Sender<io::Result<()>>,
    },
    SaveVote {
        vote: Vote,
        done: oneshot::Sender<io::Result<()>>,
    },
}

pub(super) struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    shared: Shared,
    active: File,
    active_seq: u64,
    active_len: u64,
    /// Callbacks of appends written since the last fsync.
    pending: Vec<Flushed>,
    /// Bytes written to the active segment since its last fsync. Not the same
    /// as `pending` being non-empty: an append that rolls the segment has
    /// written its first frames to the old one before its callback is queued.
    unsynced: bool,
    /// Held for the writer's lifetime; dropping it releases the directory.
    _lock: File,
}

impl Writer {
    /// Take over the active (newest) segment, creating the first one if none
    /// exists, and remove segments a crashed purge left behind.
    pub(super) fn open(
        dir: PathBuf,
        segment_bytes: u64,
        shared: Shared,
        lock: File,
    ) -> Result<Writer, LogStoreError> {
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| LogStoreError::Io { path, source }
        };
        let newest = shared.read().segs.keys().next_back().copied();
        let (active_seq, active) = match newest {
            Some(seq) => {
                let path = dir.join(segment::file_name(seq));
                (
                    seq,
                    OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .map_err(io(&path))?,
                )
            }
            None => {
                let path = dir.join(segment::file_name(1));
                let file = create_segment(&dir, 1).map_err(io(&path))?;
                let read = File::open(&path).map_err(io(&path))?;
                shared.write().segs.insert(
                    1,
                    SegInfo {
                        file: Arc::new(read),
                        last_index: None,
                    },
                );
                (1, file)
            }
        };
        let path = dir.join(segment::file_name(active_seq));
        let active_len = active.metadata().map_err(io(&path))?.len();
        let mut writer = Writer {
            dir,
            segment_bytes,
            shared,
            active,
            active_seq,
            active_len,
            pending: Vec::new(),
            unsynced: false,
            _lock: lock,
        };
        let dir = writer.dir.clone();
        writer.remove_purged_segments().map_err(io(&dir))?;
        Ok(writer)
    }

    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        while let Some(cmd) = rx.blocking_recv() {
            self.handle(cmd);
            // Group commit: take what is already queued, then fsync once.
            for _ in 1..MAX_GROUP {
                match rx.try_recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(_) => break,
                }
            }
            self.flush();
        }
        self.flush();
    }

    fn failed(&self) -> Option<io::Error> {
        self.shared
            .read()
            .failed
            .as_ref()
            .map(|f| io::Error::other(format!("log store failed earlier: {f}")))
    }

    fn fail(&self, e: &io::Error) {
        tracing::error!(error = %e, dir = %self.dir.display(), "raft log write failed; the log store refuses further writes");
        let mut st = self.shared.write();
        if st.failed.is_none() {
            st.failed = Some(e.to_string());
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Append {
                entries,
                written,
                flushed,
            } => {
                let res = self.guarded(|w| w.append(&entries));
                let ok = res.is_ok();
                let _ = written.send(res);
                if ok {
                    self.pending.push(flushed);
                } else {
                    flushed.done(Err(io::Error::other("append failed")));
                }
            }
            Cmd::Truncate { since, done } => {
                let res = self.guarded(|w| {
                    w.flush_checked()?;
                    w.truncate(since)
                });
                let _ = done.send(res);
            }
            Cmd::Purge { upto, done } => {
                let res = self.guarded(|w| {
                    w.flush_checked()?;
                    w.purge(upto)
                });
                let _ = done.send(res);
            }
            Cmd::SaveVote { vote, done } => {
                let res = self.guarded(|w| {
                    w.flush_checked()?;
                    let json = serde_json::to_vec(&vote).map_err(io::Error::other)?;
                    fsutil::write_atomic(&w.dir.join("vote.json"), &json)?;
                    w.shared.write().vote = Some(vote);
                    Ok(())
                });
                let _ = done.send(res);
            }
        }
    }

    /// Run `f` unless the store has failed; mark it failed if `f` fails.
    fn guarded(&mut self, f: impl FnOnce(&mut Self) -> io::Result<()>) -> io::Result<()> {
        if let Some(e) = self.failed() {
            return Err(e);
        }
        let res = f(self);
        if let Err(e) = &res {
            self.fail(e);
        }
        res
    }

    /// Fsync the active segment and fire the waiting append callbacks.
    fn flush(&mut self) {
        if !self.unsynced && self.pending.is_empty() {
            return;
        }
        let res = if self.unsynced {
            brook_fsio::sync_data(&self.active)
        } else {
            Ok(())
        };
        match &res {
            Ok(()) => self.unsynced = false,
            Err(e) => self.fail(e),
        }
        for cb in self.pending.drain(..) {
            let r = match &res {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            cb.done(r);
        }
    }

    fn flush_checked(&mut self) -> io::Result<()> {
        self.flush();
        self.failed().map_or(Ok(()), Err)
    }

    fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        let (mut expected, purged) = {
            let st = self.shared.read();
            (st.next_index(), st.last_purged.map(|p| p.index))
        };
        let mut buf = Vec::new();
        let mut slots = Vec::with_capacity(entries.len());
        for entry in entries {
            let index = entry.log_id.index;
            // Already covered by a snapshot (openraft purges a log that is
            // behind the state machine on startup): nothing to keep.
            if purged.is_some_and(|p| index <= p) {
                tracing::debug!(log_id = %entry.log_id, "not appending an already purged entry");
                continue;
            }
            if expected.is_some_and(|e| e != index) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "append of {} leaves a gap: expected index {expected:?}",
                        entry.log_id
                    ),
                ));
            }
            expected = Some(index + 1);
            let mut frame = Vec::new();
            let len = segment::encode_frame(entry, &mut frame)?;
            let at = self.active_len + buf.len() as u64;
            if at > 0 && at + u64::from(len) > self.segment_bytes {
                self.write_out(&mut buf, &mut slots)?;
                self.roll()?;
            }
            let pos = self.active_len + buf.len() as u64;
            slots.push(Slot {
                log_id: entry.log_id,
                seg: self.active_seq,
                pos,
                len,
            });
            buf.extend_from_slice(&frame);
        }
        self.write_out(&mut buf, &mut slots)
    }

    /// Write `buf` to the active segment and publish `slots` to readers.
    fn write_out(&mut self, buf: &mut Vec<u8>, slots: &mut Vec<Slot>) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.unsynced = true;
        self.active.write_all(buf)?;
        self.active_len += buf.len() as u64;
        buf.clear();
        let mut st = self.shared.write();
        for slot in slots.drain(..) {
            if st.slots.is_empty() {
                st.first = slot.log_id.index;
            }
            st.slots.push_back(slot);
            if let Some(seg) = st.segs.get_mut(&slot.seg) {
                seg.last_index = Some(slot.log_id.index);
            }
        }
        Ok(())
    }

    /// Start a new segment. Everything written so far is fsynced first.
    fn roll(&mut self) -> io::Result<()> {
        self.flush_checked()?;
        let seq = self.active_seq + 1;
        let file = create_segment(&self.dir, seq)?;
        let read = File::open(self.dir.join(segment::file_name(seq)))?;
        self.shared.write().segs.insert(
            seq,
            SegInfo {
                file: Arc::new(read),
                last_index: None,
            },
        );
        self.active = file;
        self.active_seq = seq;
        self.active_len = 0;
        Ok(())
    }

    fn truncate(&mut self, since: LogId) -> io::Result<()> {
        let cut = {
            let st = self.shared.read();
            let Some(last) = st.slots.back() else {
                return Ok(());
            };
            if since.index > last.log_id.index {
                return Ok(());
            }
            let index = since.index.max(st.first);
            *st.slot(index)
                .ok_or_else(|| io::Error::other(format!("index {index} missing from log index")))?
        };
        // Newest first, and durably before the segment holding `since` is cut:
        // were the cut durable first, a power loss could bring the unlinked
        // newer segments back behind a gap, and the log would refuse to open.
        let newer: Vec<u64> = self
            .shared
            .read()
            .segs
            .range(cut.seg + 1..)
            .map(|(seq, _)| *seq)
            .rev()
            .collect();
        let unlinked = !newer.is_empty();
        for seq in newer {
            brook_fsio::remove_file(&self.dir.join(segment::file_name(seq)))?;
            self.shared.write().segs.remove(&seq);
        }
        if unlinked {
            brook_fsio::sync_dir(&self.dir)?;
        }
        if cut.seg != self.active_seq {
            self.active = OpenOptions::new()
                .append(true)
                .open(self.dir.join(segment::file_name(cut.seg)))?;
            self.active_seq = cut.seg;
        }
        self.active.set_len(cut.pos)?;
        brook_fsio::sync_all(&self.active)?;
        self.unsynced = false;
        self.active_len = cut.pos;

        let mut st = self.shared.write();
        let keep = usize::try_from(cut.log_id.index - st.first).unwrap_or(usize::MAX);
        st.slots.truncate(keep);
        if let Some(seg) = st.segs.get_mut(&cut.seg) {
            seg.last_index = (cut.pos > 0).then(|| cut.log_id.index - 1);
        }
        Ok(())
    }

    fn purge(&mut self, upto: LogId) -> io::Result<()> {
        if self
            .shared
            .read()
            .last_purged
            .is_some_and(|p| p.index >= upto.index)
        {
            return Ok(());
        }
        let json = serde_json::to_vec(&upto).map_err(io::Error::other)?;
        fsutil::write_atomic(&self.dir.join("purged.json"), &json)?;
        {
            let mut st = self.shared.write();
            st.last_purged = Some(upto);
            while st
                .slots
                .front()
                .is_some_and(|s| s.log_id.index <= upto.index)
            {
                st.slots.pop_front();
                st.first += 1;
            }
            if st.slots.is_empty() {
                st.first = upto.index + 1;
            }
        }
        self.remove_purged_segments()
    }

    /// Unlink segments whose every entry is purged, oldest first. The active
    /// segment is replaced by a fresh one first if it is entirely purged.
    fn remove_purged_segments(&mut self) -> io::Result<()> {
        let Some(purged) = self.shared.read().last_purged.map(|p| p.index) else {
            return Ok(());
        };
        let active_done = self
            .shared
            .read()
            .segs
            .get(&self.active_seq)
            .is_some_and(|s| s.last_index.is_some_and(|l| l <= purged));
        if active_done {
            self.roll()?;
        }
        let removable: Vec<u64> = self
            .shared
            .read()
            .segs
            .iter()
            .take_while(|(seq, s)| {
                **seq != self.active_seq && s.last_index.is_none_or(|l| l <= purged)
            })
            .map(|(seq, _)| *seq)
            .collect();
        if removable.is_empty() {
            return Ok(());
        }
        for seq in removable {
            brook_fsio::remove_file(&self.dir.join(segment::file_name(seq)))?;
            self.shared.write().segs.remove(&seq);
        }
        brook_fsio::sync_dir(&self.dir)
    }
}

/// Create an empty segment file durably (file and directory entry).
fn create_segment(dir: &std::path::Path, seq: u64) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.append(true).create_new(true);
    let file = brook_fsio::open(&opts, &dir.join(segment::file_name(seq)))?;
    brook_fsio::sync_all(&file)?;
    brook_fsio::sync_dir(dir)?;
    Ok(file)
}
