//! Log compaction (`cleanup.policy=compact`): keep the latest record per key.
//!
//! One clean of one log ([`PartitionLog::clean`]):
//! 1. `select`: under the read lock, find the cleanable segments (sealed, below the
//!    high-water mark, older than `min.compaction.lag.ms`) and the dirty part of
//!    them, after the cleaner checkpoint;
//! 2. `rewrite::build_offset_map`: without any lock, map each key of the dirty part
//!    to its latest offset, within the dedupe buffer (`offset_map`);
//! 3. `rewrite::write_cleaned`: for each size-bounded group of segments below where
//!    the map ends, write a `.cleaned` segment keeping each key's latest record;
//! 4. `swap`: under the write lock, swap it in crash-safely;
//! 5. move the cleaner checkpoint to where the map ended.
//!
//! Offsets never change (gaps are fine), the active segment and everything at or
//! above the high-water mark are never touched, and a clean that finds its segments
//! changed (retention, truncation, deletion) aborts without changing anything.
//! `throttle` holds all cleaner I/O under `log.cleaner.io.max.bytes.per.second`.
//! The broker's cleaner manager (`crate::cleaner`) picks logs and runs cleans on
//! blocking threads.
//!
//! # Layout
//! - `select`: the dirty section and the dirty ratio.
//! - `offset_map`: the bounded key → latest offset map.
//! - `rewrite`: the map pass and the filtering pass.
//! - `swap`: `.cleaned` → `.swap` → final names, and finishing a swap on open.
//! - `throttle`: the shared I/O rate limit.

pub mod offset_map;
pub mod rewrite;
pub mod select;
pub mod swap;
pub mod throttle;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

pub use offset_map::OffsetMap;
pub use rewrite::CleanStats;
pub use select::{CleanParams, DirtySection};
pub use swap::SwapStep;
pub use throttle::Throttler;

use crate::log::error::LogError;
use crate::log::partition_log::PartitionLog;

/// `PartitionLog::tombstone_horizon` before the first look after an open.
pub(crate) const HORIZON_UNKNOWN: i64 = i64::MIN;

/// What a clean did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanOutcome {
    pub section: DirtySection,
    pub stats: CleanStats,
    /// The new cleaner checkpoint: offsets below it are clean.
    pub cleaned_to: i64,
}

impl PartitionLog {
    /// The clean/dirty split of this log now, given its high-water mark.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn dirty_section(
        &self,
        hw: i64,
        now_ms: i64,
        params: &CleanParams,
    ) -> Result<DirtySection, LogError> {
        let st = self.read_state()?;
        Ok(select::select(&st, hw, self.cleaned_offset(), now_ms, params).section)
    }

    /// Whether a clean is due: the dirty ratio, `max.compaction.lag.ms`, or a kept
    /// tombstone whose delete horizon has passed.
    ///
    /// # Errors
    /// A poisoned lock; I/O errors reading batch headers (first call after open).
    pub fn needs_cleaning(
        &self,
        hw: i64,
        now_ms: i64,
        params: &CleanParams,
    ) -> Result<bool, LogError> {
        let sel = {
            let st = self.read_state()?;
            select::select(&st, hw, self.cleaned_offset(), now_ms, params)
        };
        let section = sel.section;
        Ok(section.should_clean(params)
            || (section.clean_bytes > 0 && now_ms >= self.known_horizon(&sel.cleanable)?))
    }

    /// The earliest delete horizon of a kept tombstone (`i64::MAX`: none). After
    /// an open it is not known yet: the batch headers of the cleanable segments are
    /// scanned once for it (headers only), so tombstones whose horizon passed while
    /// the broker was down still go.
    fn known_horizon(&self, cleanable: &[select::SegmentFile]) -> Result<i64, LogError> {
        let h = self.tombstone_horizon.load(Ordering::Acquire);
        if h != HORIZON_UNKNOWN {
            return Ok(h);
        }
        let mut earliest = i64::MAX;
        for seg in cleanable {
            for r in seg.raw_headers() {
                let (_, raw) = r?;
                if let Some(t) = brook_protocol::records::BatchHeader::new(&raw)
                    .ok()
                    .and_then(|h| h.delete_horizon_ms())
                {
                    earliest = earliest.min(t);
                }
            }
        }
        let _ = self.tombstone_horizon.compare_exchange(
            HORIZON_UNKNOWN,
            earliest,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        Ok(earliest)
    }

    /// Where the last clean stopped: offsets below it hold only latest values.
    pub fn cleaned_offset(&self) -> i64 {
        self.cleaned.load(Ordering::Acquire)
    }

    /// Clean this log if its dirty section is due under `params` (or always, with
    /// `force`). `hw` bounds what may be touched. Returns `None` when nothing was due.
    ///
    /// # Errors
    /// [`LogError::CleaningAborted`] when the log changed under the clean (retry
    /// later); I/O errors. An error after a swap committed takes the log offline.
    pub fn clean(
        &self,
        hw: i64,
        params: &CleanParams,
        map: &mut OffsetMap,
        throttle: &Throttler,
        force: bool,
    ) -> Result<Option<CleanOutcome>, LogError> {
        self.clean_with(hw, params, map, throttle, force, None)
    }

    /// [`PartitionLog::clean`] that stops the first swap at `crash_after`, as a crash
    /// would (tests of the swap's recovery).
    #[doc(hidden)]
    pub fn clean_with(
        &self,
        hw: i64,
        params: &CleanParams,
        map: &mut OffsetMap,
        throttle: &Throttler,
        force: bool,
        crash_after: Option<SwapStep>,
    ) -> Result<Option<CleanOutcome>, LogError> {
        self.check_online()?;
        let _one_at_a_time = self.cleaning.lock().map_err(|_| self.poisoned())?;
        let now = self.clock.now_ms();
        let (sel, config) = {
            let st = self.read_state()?;
            let sel = select::select(&st, hw, self.cleaned_offset(), now, params);
            (sel, st.config.clone())
        };
        let section = sel.section;
        let horizon_passed = now >= self.known_horizon(&sel.cleanable)?;
        let due = force || section.should_clean(params) || horizon_passed;
        if sel.cleanable.is_empty()
            || !due
            || (section.dirty_bytes == 0 && !force && !horizon_passed)
        {
            return Ok(None);
        }
        map.clear();
        let mut stats = rewrite::new_stats();
        let map_end = rewrite::build_offset_map(
            &sel.cleanable,
            section.first_dirty,
            section.first_uncleanable,
            map,
            throttle,
            &mut stats,
        )?;
        let producer_last = producer_last_batches(sel.cleanable.iter().chain(&sel.rest))?;
        let ctx = rewrite::FilterContext {
            map,
            map_end,
            now_ms: now,
            delete_retention_ms: params.delete_retention_ms,
            producer_last: &producer_last,
        };
        let to_rewrite: Vec<_> = sel
            .cleanable
            .iter()
            .filter(|s| s.base_offset < map_end)
            .cloned()
            .collect();
        for group in rewrite::group_by_size(&to_rewrite, config.segment_bytes) {
            let base = group.first().map_or(0, |s| s.base_offset);
            let cleaned = match rewrite::write_cleaned(
                &self.dir, &group, &config, &ctx, throttle, &mut stats,
            ) {
                Ok(c) => c,
                Err(e) => {
                    swap::discard_cleaned(&self.dir, base);
                    return Err(e);
                }
            };
            let mut st = self.write_state()?;
            let r = swap::swap_in(
                &self.dir,
                &mut st,
                cleaned,
                &group,
                &config,
                now,
                crash_after,
            );
            match r {
                Err(e @ LogError::CleaningAborted { .. }) => return Err(e),
                r => self.guard_io(r)?,
            }
            self.flush.mark_dir_dirty();
            self.publish(&st);
            if crash_after.is_some() {
                return Ok(None);
            }
        }
        self.cleaned.fetch_max(map_end, Ordering::AcqRel);
        self.tombstone_horizon
            .store(stats.earliest_horizon, Ordering::Release);
        tracing::debug!(
            dir = %self.dir.display(), cleaned_to = map_end, bytes_read = stats.bytes_read,
            bytes_written = stats.bytes_written, "cleaned log"
        );
        Ok(Some(CleanOutcome {
            section,
            stats,
            cleaned_to: map_end,
        }))
    }
}

/// Producer id → last offset of its last batch, over `segments` (headers only).
fn producer_last_batches<'a>(
    segments: impl Iterator<Item = &'a select::SegmentFile>,
) -> Result<HashMap<i64, i64>, LogError> {
    let mut last = HashMap::new();
    for seg in segments {
        for r in seg.raw_headers() {
            let (_, raw) = r?;
            if let Ok(h) = brook_protocol::records::BatchHeader::new(&raw) {
                if h.producer_id() >= 0 && !h.is_control() {
                    last.insert(h.producer_id(), h.last_offset());
                }
            }
        }
    }
    Ok(last)
}
