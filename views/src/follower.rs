//! Driving a view from its changelog: read each source partition from the
//! view's META offset, decode, apply, report lag.
//!
//! Synchronous: the host runs [`Follower::step`] in a loop on a blocking
//! thread (and `maybe_flush`/`maybe_compact` between steps). A step reads at
//! most `read_max_bytes` per partition, so it returns quickly; when
//! [`Progress::caught_up`] the host may wait for new data before stepping again.
//!
//! Offsets: a read may start before the requested offset (the batch containing
//! it); records below it are ignored by [`View::apply`]. Compaction gaps are
//! simply offsets without records. If the log start moved past the view's
//! offset (retention or delete-records), the view jumps to the log start: rows
//! whose tombstones were removed in between stay, and a warning is logged.
//! Control batches (transaction markers) are skipped; aborted transactional
//! records are not filtered (changelogs are expected to be non-transactional).

use std::collections::HashMap;
use std::sync::Arc;

use brook_protocol::records::decode_batches;
use metrics::Gauge;

use crate::error::{Result, ViewError};
use crate::probe::Probe;
use crate::source::ChangelogSource;
use crate::view::View;

/// Where one partition stands after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionProgress {
    /// Source partition.
    pub partition: i32,
    /// Next offset the view will apply.
    pub next_offset: i64,
    /// The source's high-water mark.
    pub high_watermark: i64,
    /// `high_watermark - next_offset` (never negative).
    pub lag: i64,
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Records folded into the view.
    pub applied: u64,
    /// Records skipped for format reasons.
    pub skipped: u64,
    /// Per partition state.
    pub partitions: Vec<PartitionProgress>,
}

impl Progress {
    /// Whether every partition is at its high-water mark.
    pub fn caught_up(&self) -> bool {
        self.partitions.iter().all(|p| p.lag == 0)
    }

    /// Total lag over partitions.
    pub fn lag(&self) -> i64 {
        self.partitions.iter().map(|p| p.lag).sum()
    }
}

/// Feeds one view from a [`ChangelogSource`].
pub struct Follower<S> {
    view: Arc<View>,
    source: S,
    lag_gauges: HashMap<i32, Gauge>,
}

impl<S> std::fmt::Debug for Follower<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

impl<S: ChangelogSource> Follower<S> {
    /// A follower of `view`'s topic in `source`.
    pub fn new(view: Arc<View>, source: S) -> Self {
        Follower {
            view,
            source,
            lag_gauges: HashMap::new(),
        }
    }

    /// The view fed.
    pub fn view(&self) -> &Arc<View> {
        &self.view
    }

    /// The source read.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Read and apply once from every partition.
    ///
    /// # Errors
    /// Source errors, undecodable batches ([`ViewError::Decode`]) and storage
    /// errors; what was applied before the error stays applied.
    pub fn step(&mut self) -> Result<Progress> {
        let topic = self.view.def().topic.clone();
        let mut progress = Progress::default();
        for partition in self.source.partitions(&topic)? {
            let p = self.step_partition(&topic, partition, &mut progress)?;
            let gauge = self
                .lag_gauges
                .entry(partition)
                .or_insert_with(|| Probe::lag(&self.view.def().name, partition));
            #[expect(clippy::cast_precision_loss, reason = "a gauge")]
            gauge.set(p.lag as f64);
            progress.partitions.push(p);
        }
        Ok(progress)
    }

    fn step_partition(
        &self,
        topic: &str,
        partition: i32,
        progress: &mut Progress,
    ) -> Result<PartitionProgress> {
        let opts = self.view.options();
        let mut from = self.view.next_offset(partition);
        let mut read = self
            .source
            .read(topic, partition, from, opts.read_max_bytes)?;
        if read.log_start_offset > from && read.batches.is_empty() {
            read =
                self.source
                    .read(topic, partition, read.log_start_offset, opts.read_max_bytes)?;
        }
        if read.log_start_offset > from {
            tracing::warn!(
                view = %self.view.def().name, partition, from,
                log_start = read.log_start_offset,
                "view offset below the log start: restarting from the log start"
            );
            from = read.log_start_offset;
        }

        let mut records = Vec::new();
        let mut end = from;
        let mut batches = decode_batches(&read.batches, opts.max_decompressed_batch);
        for batch in batches.by_ref() {
            let batch = batch.map_err(|source| ViewError::Decode {
                topic: topic.to_owned(),
                partition,
                offset: from,
                source,
            })?;
            end = end.max(batch.last_offset().saturating_add(1));
            if batch.is_control() {
                continue;
            }
            for record in batch.records() {
                let record = record.map_err(|source| ViewError::Decode {
                    topic: topic.to_owned(),
                    partition,
                    offset: from,
                    source,
                })?;
                if record.offset >= from {
                    records.push(record);
                }
            }
        }
        // Trust the source's next offset (it may skip a compacted gap) only
        // when every byte it returned was a whole batch; never above the HW.
        if batches.position() == read.batches.len() {
            end = end.max(read.next_offset.min(read.high_watermark));
        }

        let stats = self.view.apply(partition, &records, end)?;
        progress.applied += stats.applied;
        progress.skipped += stats.skipped;
        Ok(PartitionProgress {
            partition,
            next_offset: stats.next_offset,
            high_watermark: read.high_watermark,
            lag: (read.high_watermark - stats.next_offset).max(0),
        })
    }
}
