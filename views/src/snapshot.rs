//! Which snapshots readers still need, and so how far garbage collection may go.
//!
//! lsm-tree drops superseded versions (in flush and compaction) and old tree
//! versions below a watermark seqno. A reader at a snapshot below it could see
//! missing rows, or make lsm-tree panic looking for a version, so every read
//! pins its snapshot here and every flush/compaction uses [`Snapshots::watermark`].
//! Scan cursors are remembered for `cursor_ttl`; a cursor whose snapshot fell
//! below the highest watermark ever used (the floor) is refused as expired.
//! In memory only: after a reopen no snapshot of the previous run exists.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Result, ViewError};

#[derive(Debug, Default)]
struct Inner {
    active: BTreeMap<u64, usize>,
    cursors: VecDeque<(Instant, u64)>,
    floor: u64,
}

/// Snapshot registry of one view.
#[derive(Debug, Default)]
pub struct Snapshots {
    inner: Mutex<Inner>,
}

/// Keeps a snapshot alive while a read runs.
#[derive(Debug)]
pub struct Pin<'a> {
    owner: &'a Snapshots,
    seqno: u64,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        let mut inner = self.owner.lock();
        if let Some(n) = inner.active.get_mut(&self.seqno) {
            *n -= 1;
            if *n == 0 {
                inner.active.remove(&self.seqno);
            }
        }
    }
}

impl Snapshots {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent under every panic point, so a poisoned
        // lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pin `seqno` for the lifetime of the returned guard.
    ///
    /// # Errors
    /// [`ViewError::CursorExpired`] if garbage collection already passed it.
    pub fn pin(&self, seqno: u64) -> Result<Pin<'_>> {
        let mut inner = self.lock();
        if seqno < inner.floor {
            return Err(ViewError::CursorExpired);
        }
        *inner.active.entry(seqno).or_insert(0) += 1;
        Ok(Pin { owner: self, seqno })
    }

    /// Remember a cursor's snapshot until `now + ttl`.
    pub fn retain_cursor(&self, seqno: u64, now: Instant) {
        let mut inner = self.lock();
        if inner.cursors.back().is_some_and(|&(_, s)| s == seqno) {
            inner.cursors.pop_back();
        }
        inner.cursors.push_back((now, seqno));
    }

    /// The GC watermark given the newest visible snapshot: the oldest seqno a
    /// reader pins or a live cursor may still read. Raises the floor to it.
    pub fn watermark(&self, visible: u64, now: Instant, ttl: Duration) -> u64 {
        let mut inner = self.lock();
        while inner
            .cursors
            .front()
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) > ttl)
        {
            inner.cursors.pop_front();
        }
        let oldest_pin = inner.active.keys().next().copied();
        let oldest_cursor = inner.cursors.iter().map(|&(_, s)| s).min();
        let w = [Some(visible), oldest_pin, oldest_cursor]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(visible)
            .max(inner.floor);
        inner.floor = w;
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_respects_pins_and_cursors() -> Result<()> {
        let s = Snapshots::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let pin = s.pin(5)?;
        assert_eq!(s.watermark(9, t0, ttl), 5);
        drop(pin);
        s.retain_cursor(7, t0);
        assert_eq!(s.watermark(9, t0, ttl), 7);
        assert_eq!(s.watermark(12, t0 + Duration::from_secs(11), ttl), 12);
        assert!(matches!(s.pin(7), Err(ViewError::CursorExpired)));
        assert!(s.pin(12).is_ok());
        Ok(())
    }
}
