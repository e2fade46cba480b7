//! Flush and compaction, driven by the host: lsm-tree runs no threads.
//!
//! A flush rotates the active memtable under the writer lock (so a batch is
//! never split between two memtables) and then writes every sealed memtable
//! to a table without it; data and META rows of a batch become durable
//! together. Flush and compaction garbage-collect versions only below the
//! oldest snapshot a reader pins (see [`crate::snapshot`]).

use std::time::Instant;

use lsm_tree::AbstractTree;

use super::View;
use crate::error::Result;

/// Size and shape of a view's tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewStats {
    /// Approximate rows, including META rows, MARKER rows and tombstones.
    pub approximate_rows: u64,
    /// Bytes of table files.
    pub disk_bytes: u64,
    /// Sorted runs in level 0.
    pub l0_runs: u64,
    /// Table files.
    pub tables: u64,
    /// Bytes in the active memtable.
    pub memtable_bytes: u64,
    /// Memtables sealed but not yet flushed.
    pub sealed_memtables: u64,
}

impl View {
    /// Flush if the memtable is over `max_memtable_bytes`, unflushed data is
    /// older than `max_flush_interval`, or over `max_unflushed_offsets` offsets
    /// were applied since the last flush. Returns whether it flushed.
    ///
    /// # Errors
    /// Storage errors; the sealed memtable stays and the next flush retries.
    pub fn maybe_flush(&self) -> Result<bool> {
        let due = {
            let w = self.writer();
            let bytes = self.tree.active_memtable().size();
            let dirty = w.since_flush > 0 || bytes > 0 || self.tree.sealed_memtable_count() > 0;
            dirty
                && (bytes >= self.options.max_memtable_bytes
                    || w.since_flush >= self.options.max_unflushed_offsets
                    || w.last_flush.elapsed() >= self.options.max_flush_interval)
        };
        if due {
            self.flush()?;
        }
        Ok(due)
    }

    /// Rotate the memtable and flush everything sealed to disk now.
    ///
    /// # Errors
    /// Storage errors.
    pub fn flush(&self) -> Result<()> {
        let started = Instant::now();
        {
            let mut w = self.writer();
            self.tree.rotate_memtable();
            w.since_flush = 0;
            w.last_flush = started;
        }
        let watermark = self.gc_watermark();
        let lock = self.tree.get_flush_lock();
        let flushed = self.tree.flush(&lock, watermark)?;
        drop(lock);
        let secs = started.elapsed().as_secs_f64();
        self.probe.flush_seconds.record(secs);
        tracing::debug!(view = %self.def.name, ?flushed, secs, "flushed view");
        self.record_stats();
        Ok(())
    }

    /// Drop expired deleted-key markers when a sweep is due (see
    /// `view/markers`), then run one compaction step (leveled; a no-op when
    /// nothing is due).
    ///
    /// # Errors
    /// Storage errors; [`crate::ViewError::Corrupt`] for an unreadable MARKER row.
    pub fn maybe_compact(&self) -> Result<()> {
        self.maybe_sweep_markers()?;
        let started = Instant::now();
        let watermark = self.gc_watermark();
        self.tree.compact(self.strategy.clone(), watermark)?;
        self.probe
            .compaction_seconds
            .record(started.elapsed().as_secs_f64());
        self.record_stats();
        Ok(())
    }

    /// Current size and shape.
    pub fn stats(&self) -> ViewStats {
        let n = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
        ViewStats {
            approximate_rows: n(self.tree.approximate_len()),
            disk_bytes: self.tree.disk_space(),
            l0_runs: n(self.tree.l0_run_count()),
            tables: n(self.tree.table_count()),
            memtable_bytes: self.tree.active_memtable().size(),
            sealed_memtables: n(self.tree.sealed_memtable_count()),
        }
    }

    fn gc_watermark(&self) -> u64 {
        let visible = self.published().snapshot;
        self.snapshots
            .watermark(visible, Instant::now(), self.options.cursor_ttl)
    }

    fn record_stats(&self) {
        let s = self.stats();
        self.probe.disk_bytes.set(s.disk_bytes as f64);
        self.probe.l0_runs.set(s.l0_runs as f64);
        self.probe.items.set(s.approximate_rows as f64);
    }
}
