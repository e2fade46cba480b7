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
//! records can reach on this machine, so brook's produce figure is also stated
//! against it (`e2e --storing-sink`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

/// The append-only file and how much of it is written and synced.
#[derive(Debug)]
pub struct Store {
    file: File,
    state: Mutex<State>,
    /// Signalled when data is written (for the flusher) or the store closes.
    written: Condvar,
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
}

impl Store {
    /// Create (or truncate) `dir/store.log` and start its flusher thread.
    ///
    /// # Errors
    /// I/O errors creating the directory or the file, or spawning the thread.
    pub fn open(dir: &Path) -> io::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("store.log"))?;
        let store = Arc::new(Self {
            file,
            state: Mutex::new(State::default()),
            written: Condvar::new(),
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
        self.file.write_all_at(bytes, state.end)?;
        state.end += bytes.len() as u64;
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
            drop(state);
            let res = self.file.sync_data();
            state = self.lock();
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
        let store = Store::open(dir.path())?;
        assert_eq!(store.append(b"abc")?, 3);
        let end = store.append(b"defg")?;
        assert_eq!(end, 7);
        store.synced(end).await?;
        assert!(store.lock().synced >= end);
        store.close();
        assert_eq!(std::fs::read(dir.path().join("store.log"))?, b"abcdefg");
        Ok(())
    }
}
