//! Dropping deleted-key MARKER rows older than
//! [`crate::ViewOptions::deleted_marker_retention`].
//!
//! Markers are written by the apply path (see [`crate::keys`]); this module
//! only bounds how long they live, the way a compacted topic drops its
//! tombstones after `delete.retention.ms`. The sweep runs from
//! [`View::maybe_compact`] at most once per [`sweep_interval`], scans the MARKER
//! prefix and removes expired markers under ONE new seqno, holding the writer
//! lock so no apply can rewrite a key between the check and the removal and no
//! memtable rotation splits the removals. It publishes a new snapshot with
//! unchanged offsets. After a crash an unflushed sweep is simply lost: the
//! markers are back and the next sweep drops them again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lsm_tree::{AbstractTree, Guard as _};

use super::{Published, View};
use crate::error::Result;
use crate::keys::{self, Marker};

/// How often the sweep runs: a tenth of the retention, at least every 10 min.
pub(super) fn sweep_interval(retention: Duration) -> Duration {
    (retention / 10).min(Duration::from_secs(600))
}

impl View {
    /// Drop the MARKER rows written before `now - deleted_marker_retention`.
    /// Returns how many were dropped. [`View::maybe_compact`] calls this with
    /// the wall clock; tests pass a later `now` instead of waiting.
    ///
    /// # Errors
    /// [`crate::ViewError::Corrupt`] for an unreadable MARKER row; storage
    /// errors. Nothing is written then.
    pub fn sweep_deleted_markers(&self, now: SystemTime) -> Result<u64> {
        let mut w = self.writer();
        w.last_sweep = Some(Instant::now());
        if !w.markers {
            return Ok(0);
        }
        let horizon = now
            .checked_sub(self.options.deleted_marker_retention)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(i64::MIN, |d| {
                i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
            });
        let (pin, p) = self.pin_current()?;
        let mut expired = Vec::new();
        let mut kept = 0u64;
        for item in self.tree.prefix([keys::MARKER_TAG], p.snapshot, None) {
            let (k, v) = item.into_inner()?;
            if Marker::decode(&v)?.written_ms < horizon {
                expired.push(k);
            } else {
                kept += 1;
            }
        }
        drop(pin);
        let dropped = u64::try_from(expired.len()).unwrap_or(u64::MAX);
        if !expired.is_empty() {
            let seq = self.seqno.next();
            for k in expired {
                let _ = self.tree.remove(k, seq);
            }
            self.published.send_replace(std::sync::Arc::new(Published {
                snapshot: seq + 1,
                offsets: w.offsets.clone(),
            }));
        }
        w.markers = kept > 0;
        tracing::debug!(view = %self.def.name, dropped, kept, "swept deleted-key markers");
        Ok(dropped)
    }

    /// Sweep when the last sweep is older than [`sweep_interval`].
    pub(super) fn maybe_sweep_markers(&self) -> Result<u64> {
        let due = self
            .writer()
            .last_sweep
            .is_none_or(|t| t.elapsed() >= sweep_interval(self.options.deleted_marker_retention));
        if due {
            self.sweep_deleted_markers(SystemTime::now())
        } else {
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_bounded() {
        let day = Duration::from_secs(86_400);
        assert_eq!(sweep_interval(day), Duration::from_secs(600));
        assert_eq!(
            sweep_interval(Duration::from_secs(60)),
            Duration::from_secs(6)
        );
    }
}
