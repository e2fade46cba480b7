//! Test helpers: hand-built record batches and fake seams (tests only).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use brook_protocol::records::BatchIter;

use crate::log::config::Clock;
use crate::log::flush::Syncer;
use crate::log::segment::FileRegion;

/// A valid magic-2 batch of `records` records with `payload` opaque bytes after the
/// header (the log never parses records, only the CRC covers them).
pub(crate) fn batch(records: i32, payload: usize, max_timestamp: i64) -> Vec<u8> {
    let total = 61 + payload;
    let mut b = vec![0u8; total];
    b[8..12].copy_from_slice(&((total - 12) as i32).to_be_bytes());
    b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b[27..35].copy_from_slice(&max_timestamp.to_be_bytes());
    b[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    for (i, x) in b[61..].iter_mut().enumerate() {
        *x = (i % 251) as u8;
    }
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The bytes a region points at.
pub(crate) fn region_bytes(r: &FileRegion) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; usize::try_from(r.len).map_err(io::Error::other)?];
    r.file.read_exact_at(&mut buf, r.position)?;
    Ok(buf)
}

/// `(base offset, last offset)` of each batch in `bytes`.
pub(crate) fn offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    BatchIter::new(bytes)
        .map(|(_, h)| (h.base_offset(), h.last_offset()))
        .collect()
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub(crate) struct FakeClock(pub(crate) AtomicI64);

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Syncer that always fails, as a disk returning EIO would.
#[derive(Debug, Default)]
pub(crate) struct FailingSyncer;

impl Syncer for FailingSyncer {
    fn sync_data(&self, _file: &File) -> io::Result<()> {
        Err(io::Error::other("injected EIO"))
    }
}

/// Syncer whose calls block until `open()` and are counted.
#[derive(Debug, Default)]
pub(crate) struct GateSyncer {
    pub(crate) calls: AtomicU64,
    open: Mutex<bool>,
    cv: Condvar,
}

impl GateSyncer {
    pub(crate) fn open(&self) {
        if let Ok(mut g) = self.open.lock() {
            *g = true;
        }
        self.cv.notify_all();
    }
}

impl GateSyncer {
    /// Block until some sync has been called, or `timeout` passes (false).
    pub(crate) fn wait_called(&self, timeout: std::time::Duration) -> bool {
        let Ok(g) = self.open.lock() else {
            return false;
        };
        self.cv
            .wait_timeout_while(g, timeout, |_| self.calls.load(Ordering::SeqCst) == 0)
            .is_ok_and(|(_, t)| !t.timed_out())
    }
}

impl Syncer for GateSyncer {
    fn sync_data(&self, file: &File) -> io::Result<()> {
        let mut g = self.open.lock().map_err(|_| io::Error::other("poisoned"))?;
        self.calls.fetch_add(1, Ordering::SeqCst);
        // Wake `wait_called` (the same condvar as `open`; both re-check).
        self.cv.notify_all();
        while !*g {
            g = self.cv.wait(g).map_err(|_| io::Error::other("poisoned"))?;
        }
        file.sync_data()
    }
}
