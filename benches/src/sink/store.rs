//! The storing sink's one job beyond the sink's: keep what producers send,
//! as cheaply as a broker possibly could. Every produce request's record sets
//! are appended to one file with one positioned write each (no validation, no
//! index, no offsets patched); one background thread `fdatasync`s whatever was
//! written since its last one, over and over (a group commit), and acks=all
//! requests are answered once a sync covers them while the connection goes
//! on reading, as brook does (which also syncs acks=1 data before its
//! high-water mark moves).
//!
//! What remains is the storage cost itself: the copy out of the socket, the
//! copy into the page cache, the filesystem's allocation and the writeback. A
//! client's rate against this sink is the most any broker that stores its
//! records through the page cache can reach on this machine, so brook's
//! produce figure is also stated against it (`e2e --storing-sink`). In
//! direct mode (`O_DIRECT`, `e2e --storing-sink-direct`) the flusher thread
//! also does the writes, from block-aligned copies, so the figure is the
//! ceiling for a broker that keeps a cache of its own instead. An appender
//! that finds `QUEUE_MAX` (16 MiB) waiting blocks its thread until the
//! flusher has written them (the sink's back-pressure).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

/// The append-only file and how much of it is written and synced.
#[derive(Debug)]
pub struct Store {
    file: File,
    /// Written with `O_DIRECT` (see [`Store::open`]).
    direct: bool,
    state: Mutex<State>,
    /// Signalled when data is written (for the flusher) or the store closes.
    written: Condvar,
    /// `O_DIRECT` only: signalled when the flusher has written queued
    /// appends (room for more).
    room: Condvar,
    /// Bytes known durable, or `None` once a sync failed (nothing more will be).
    synced: watch::Sender<Option<u64>>,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes written (the next append's position).
    end: u64,
    /// Bytes the flusher has synced.
    synced: u64,
    closed: bool,
    /// `O_DIRECT` only: appends copied and waiting for the flusher to write
    /// them, at most [`QUEUE_MAX`] bytes (the appender then waits).
    queued: VecDeque<Staged>,
    queued_bytes: usize,
    /// Buffers the flusher has written from, for the next appends.
    spare: Vec<Vec<u8>>,
}

/// One append in `O_DIRECT` mode: the record set copied to a block-aligned
/// address inside `buf`, padded with zeros to whole blocks.
#[derive(Debug)]
struct Staged {
    at: u64,
    buf: Vec<u8>,
    skip: usize,
    len: usize,
}

impl Staged {
    fn block(&self) -> &[u8] {
        &self.buf[self.skip..self.skip + self.len]
    }
}

/// Bytes of `O_DIRECT` appends that may wait for the flusher.
const QUEUE_MAX: usize = 16 << 20;
/// Spare buffers kept for reuse.
const SPARE_MAX: usize = 16;

/// The block size `O_DIRECT` writes are aligned to (offset, length, address).
const BLOCK: usize = 4096;

impl Store {
    /// Create (or truncate) `dir/store.log` and start its flusher thread.
    /// With `direct`, appends bypass the page cache (`O_DIRECT`: DMA from a
    /// block-aligned copy of the record set, padded to whole blocks, so
    /// the file holds gaps of zeros between appends), the way a broker with
    /// its own cache would store: the ceiling for that design.
    ///
    /// # Errors
    /// I/O errors creating the directory or the file (a file system
    /// without `O_DIRECT` refuses it), or spawning the thread.
    pub fn open(dir: &Path, direct: bool) -> io::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let mut options = File::options();
        options.read(true).write(true).create(true).truncate(true);
        if direct {
            options.custom_flags(libc::O_DIRECT);
        }
        let file = options.open(dir.join("store.log"))?;
        let store = Arc::new(Self {
            file,
            direct,
            state: Mutex::new(State::default()),
            written: Condvar::new(),
            room: Condvar::new(),
            synced: watch::Sender::new(Some(0)),
        });
        let bg = Arc::clone(&store);
        std::thread::Builder::new()
            .name("sink-flusher".into())
            .spawn(move || bg.flush_loop())?;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere: the numbers are still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Append `bytes`; returns the end position they reach.
    ///
    /// # Errors
    /// I/O errors from the write.
    pub fn append(&self, bytes: &[u8]) -> io::Result<u64> {
        let mut state = self.lock();
        if self.direct {
            // Copied and queued: the flusher thread writes it, so reading the
            // next request overlaps the write, as a broker's would.
            let padded = bytes.len().div_ceil(BLOCK) * BLOCK;
            while state.queued_bytes >= QUEUE_MAX && !state.closed {
                state = self
                    .room
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            let mut buf = match state.spare.pop() {
                Some(b) if b.len() >= padded + BLOCK => b,
                _ => vec![0; padded.max(1 << 20) + BLOCK],
            };
            let skip = buf.as_ptr().align_offset(BLOCK);
            let block = &mut buf[skip..skip + padded];
            block[..bytes.len()].copy_from_slice(bytes);
            block[bytes.len()..].fill(0);
            let at = state.end;
            state.queued.push_back(Staged {
                at,
                buf,
                skip,
                len: padded,
            });
            state.queued_bytes += padded;
            state.end += padded as u64;
        } else {
            self.file.write_all_at(bytes, state.end)?;
            state.end += bytes.len() as u64;
        }
        let end = state.end;
        drop(state);
        self.written.notify_one();
        Ok(end)
    }

    /// Wait until everything up to `end` is durable.
    ///
    /// # Errors
    /// The flusher's `fdatasync` failed (or it stopped) before covering `end`.
    pub async fn synced(&self, end: u64) -> io::Result<()> {
        let mut rx = self.synced.subscribe();
        let reached = rx
            .wait_for(|s| s.is_none_or(|s| s >= end))
            .await
            .map(|s| s.is_some());
        match reached {
            Ok(true) => Ok(()),
            _ => Err(io::Error::other("the storing sink's fdatasync failed")),
        }
    }

    /// `fdatasync` whenever something was written since the last one.
    fn flush_loop(&self) {
        let mut state = self.lock();
        loop {
            while state.end <= state.synced && !state.closed {
                state = self
                    .written
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if state.closed {
                return;
            }
            let target = state.end;
            let batch: Vec<Staged> = state.queued.drain(..).collect();
            drop(state);
            let res = batch
                .iter()
                .try_for_each(|st| self.file.write_all_at(st.block(), st.at))
                .and_then(|()| self.file.sync_data());
            state = self.lock();
            state.queued_bytes -= batch.iter().map(|st| st.len).sum::<usize>();
            for st in batch {
                if state.spare.len() < SPARE_MAX {
                    state.spare.push(st.buf);
                }
            }
            self.room.notify_all();
            if res.is_err() {
                self.synced.send_replace(None);
                return;
            }
            state.synced = state.synced.max(target);
            self.synced.send_replace(Some(state.synced));
        }
    }

    /// Stop the flusher thread (it exits at its next wake-up).
    pub fn close(&self) {
        self.lock().closed = true;
        self.written.notify_all();
        self.room.notify_all();
    }

    /// Bytes the flusher has synced so far.
    pub fn synced_len(&self) -> u64 {
        self.lock().synced
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        self.lock().end
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_land_in_order_and_the_flusher_syncs_them() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path(), false)?;
        assert_eq!(store.append(b"abc")?, 3);
        let end = store.append(b"defg")?;
        assert_eq!(end, 7);
        store.synced(end).await?;
        assert!(store.lock().synced >= end);
        store.close();
        assert_eq!(std::fs::read(dir.path().join("store.log"))?, b"abcdefg");
        Ok(())
    }

    #[tokio::test]
    async fn direct_appends_are_padded_to_blocks() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = match Store::open(dir.path(), true) {
            Ok(s) => s,
            // tmpfs and some others refuse O_DIRECT: nothing to check there.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(()),
            Err(e) => return Err(e),
        };
        assert_eq!(store.append(b"abc")?, BLOCK as u64);
        let end = store.append(&[7u8; BLOCK + 1])?;
        assert_eq!(end, 3 * BLOCK as u64);
        store.synced(end).await?;
        store.close();
        let file = std::fs::read(dir.path().join("store.log"))?;
        assert_eq!(file.len(), 3 * BLOCK);
        assert_eq!(&file[..3], b"abc");
        assert!(file[3..BLOCK].iter().all(|&b| b == 0));
        assert!(file[BLOCK..2 * BLOCK + 1].iter().all(|&b| b == 7));
        Ok(())
    }
}
