//! The log cleaner manager: picks compacted logs that need cleaning and cleans them
//! on blocking threads (Kafka's `LogCleaner` + `LogCleanerManager`).
//!
//! - Which logs: partitions of topics with `compact` in `cleanup.policy` whose dirty
//!   ratio reached `min.cleanable.dirty.ratio`, whose dirty data is older than
//!   `max.compaction.lag.ms`, or that keep a tombstone whose delete horizon passed.
//!   Overdue logs first, then the dirtiest.
//! - How many: up to `log.cleaner.threads` at once, each with its own offset map of
//!   `log.cleaner.dedupe.buffer.size / threads` bytes (the maps are reused, so the
//!   memory is bounded and allocated once). All threads share one I/O throttle
//!   (`log.cleaner.io.max.bytes.per.second`).
//! - When: as long as some log is due; otherwise it sleeps `log.cleaner.backoff.ms`
//!   or until [`Cleaner::wake`].
//! - After each clean the data dir's `cleaner-offset-checkpoint` is rewritten, so a
//!   restart resumes from where cleaning stopped (losing it only costs a re-clean).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::log::cleaner::{CleanParams, OffsetMap, Throttler};
use crate::log::{write_offset_checkpoint, LogError, TopicPartitionOffset};
use crate::partition::Partition;

/// File in the data dir holding each compacted partition's cleaned point.
pub const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// Shared state of the cleaner threads.
#[derive(Debug)]
pub struct Cleaner {
    throttle: Throttler,
    maps: Mutex<Vec<OffsetMap>>,
    threads: usize,
    backoff: Duration,
    enabled: bool,
    wake: Notify,
    /// Wall-clock ms of the last finished clean, -1 before the first.
    last_clean_ms: AtomicI64,
}

/// The cleaning parameters of a partition's topic config.
pub fn params_of(p: &Partition) -> CleanParams {
    let c = p.config();
    CleanParams {
        min_cleanable_ratio: c.min_cleanable_dirty_ratio,
        min_compaction_lag_ms: c.min_compaction_lag_ms,
        max_compaction_lag_ms: c.max_compaction_lag_ms,
        delete_retention_ms: c.delete_retention_ms,
    }
}

impl Cleaner {
    pub fn new(config: &brook_config::BrokerConfig) -> Self {
        let threads = usize::try_from(config.log_cleaner_threads)
            .unwrap_or(1)
            .max(1);
        let per_thread =
            usize::try_from(config.log_cleaner_dedupe_buffer_size).unwrap_or(usize::MAX) / threads;
        Self {
            throttle: Throttler::new(config.log_cleaner_io_max_bytes_per_second),
            maps: Mutex::new(
                (0..threads)
                    .map(|_| OffsetMap::with_memory(per_thread))
                    .collect(),
            ),
            threads,
            backoff: Duration::from_millis(
                u64::try_from(config.log_cleaner_backoff_ms).unwrap_or(15_000),
            ),
            enabled: config.log_cleaner_enable,
            wake: Notify::new(),
            last_clean_ms: AtomicI64::new(-1),
        }
    }

    /// Look for work now instead of after the back-off.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wall-clock ms of the last finished clean, `None` before the first.
    pub fn last_clean_ms(&self) -> Option<i64> {
        let v = self.last_clean_ms.load(Ordering::Acquire);
        (v >= 0).then_some(v)
    }

    fn take_map(&self) -> Option<OffsetMap> {
        lock(&self.maps).pop()
    }

    fn give_map(&self, map: OffsetMap) {
        lock(&self.maps).push(map);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Compacted partitions that need cleaning now, most urgent first.
fn due(broker: &Broker, now: i64) -> Vec<(String, Arc<Partition>)> {
    let mut due = Vec::new();
    for t in broker.topics() {
        for p in t.partitions() {
            if !p.config().cleanup_policy.compact {
                continue;
            }
            let params = params_of(&p);
            let hw = p.high_watermark();
            let Ok(section) = p.log().dirty_section(hw, now, &params) else {
                continue;
            };
            if p.log().needs_cleaning(hw, now, &params).unwrap_or(false) {
                due.push((section.overdue, section.ratio(), t.name.to_string(), p));
            }
        }
    }
    due.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    due.into_iter().map(|(_, _, t, p)| (t, p)).collect()
}

/// Clean one partition on the current (blocking) thread. Returns whether a clean
/// finished.
fn clean_one(broker: &Broker, topic: &str, p: &Partition) -> bool {
    let cleaner = broker.cleaner();
    let Some(mut map) = cleaner.take_map() else {
        return false;
    };
    let params = params_of(p);
    let started = std::time::Instant::now();
    let r = p.log().clean(
        p.high_watermark(),
        &params,
        &mut map,
        &cleaner.throttle,
        false,
    );
    cleaner.give_map(map);
    match r {
        Ok(Some(out)) => {
            crate::metrics::cleaner_ran(&out.stats, started.elapsed());
            cleaner
                .last_clean_ms
                .store(crate::handlers::now_ms(), Ordering::Release);
            info!(
                topic,
                partition = p.index,
                cleaned_to = out.cleaned_to,
                dirty_ratio = format!("{:.2}", out.section.ratio()),
                bytes_read = out.stats.bytes_read,
                bytes_written = out.stats.bytes_written,
                records_kept = out.stats.records_kept,
                records_read = out.stats.records_read,
                ms = started.elapsed().as_millis() as u64,
                "cleaned log"
            );
            true
        }
        Ok(None) => false,
        Err(e @ (LogError::CleaningAborted { .. } | LogError::Closed { .. })) => {
            debug!(topic, partition = p.index, error = %e, "clean aborted; will retry");
            false
        }
        Err(e) => {
            warn!(topic, partition = p.index, error = %e, "cleaning failed");
            false
        }
    }
}

/// Write `cleaner-offset-checkpoint` for every compacted partition.
/// (one file per log directory, listing the partitions in it).
pub fn write_checkpoint(broker: &Broker) {
    let mut by_dir: std::collections::HashMap<std::path::PathBuf, Vec<TopicPartitionOffset>> =
        broker
            .log_dirs()
            .paths()
            .map(|d| (d.to_path_buf(), Vec::new()))
            .collect();
    for t in broker.topics() {
        for p in t.partitions() {
            let Some(entries) = p.log().dir().parent().and_then(|d| by_dir.get_mut(d)) else {
                continue;
            };
            if p.config().cleanup_policy.compact {
                entries.push(TopicPartitionOffset {
                    topic: t.name.to_string(),
                    partition: p.index,
                    offset: p.log().cleaned_offset(),
                });
            }
        }
    }
    for (dir, entries) in by_dir {
        if broker.log_dirs().dir_offline(&dir) {
            continue;
        }
        if let Err(e) = write_offset_checkpoint(&dir.join(CHECKPOINT_FILE), &entries) {
            warn!(file = CHECKPOINT_FILE, dir = %dir.display(), error = %e, "writing checkpoint failed");
        }
    }
}

/// The cleaner loop; returns when `shutdown` turns true.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let cleaner = broker.cleaner();
    if !cleaner.enabled {
        info!("log.cleaner.enable=false: compacted topics are not cleaned");
        return;
    }
    loop {
        let now = crate::handlers::now_ms();
        let b = broker.clone();
        let work = tokio::task::spawn_blocking(move || due(&b, now))
            .await
            .unwrap_or_default();
        if !work.is_empty() {
            let mut running = tokio::task::JoinSet::new();
            for (topic, p) in work.into_iter().take(cleaner.threads) {
                let b = broker.clone();
                running.spawn_blocking(move || clean_one(&b, &topic, &p));
            }
            let mut progress = false;
            while let Some(r) = running.join_next().await {
                progress |= r.unwrap_or(false);
            }
            if progress {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || write_checkpoint(&b)).await;
            }
            if *shutdown.borrow() {
                return;
            }
            // More may be due; after a round that failed, back off instead of spinning.
            if progress {
                continue;
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = cleaner.wake.notified() => {}
            () = tokio::time::sleep(cleaner.backoff) => {}
        }
    }
}
