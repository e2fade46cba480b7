//! Background maintenance: retention and producer-id expiry
//! (`log.retention.check.interval.ms`),
//! periodic flushing of topics that relaxed durability (`flush.ms` /
//! `flush.messages`), and the data-dir checkpoint files.
//!
//! Runs as one task; each pass does blocking file work on the blocking pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_config::Durability;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::broker::Broker;
use crate::log::{write_offset_checkpoint, TopicPartitionOffset};

/// How often the loop wakes; each duty keeps its own interval.
const TICK: Duration = Duration::from_millis(100);

pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let retention_every = Duration::from_millis(
        u64::try_from(broker.config().log_retention_check_interval_ms)
            .unwrap_or(300_000)
            .max(100),
    );
    let checkpoint_every = Duration::from_millis(
        u64::try_from(broker.config().log_flush_offset_checkpoint_interval_ms)
            .unwrap_or(60_000)
            .max(100),
    );
    let mut last_retention = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = interval.tick() => {}
        }
        periodic_flush(&broker).await;
        if last_retention.elapsed() >= retention_every {
            last_retention = Instant::now();
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || retention_pass(&b)).await;
        }
        if last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = Instant::now();
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || write_checkpoints(&b)).await;
        }
    }
}

/// Flush partitions of `Periodic` topics whose unflushed data is older than
/// `flush.ms` or larger than `flush.messages`.
async fn periodic_flush(broker: &Arc<Broker>) {
    for t in broker.topics() {
        for p in t.partitions() {
            let cfg = p.config();
            if cfg.durability != Durability::Periodic {
                continue;
            }
            if p.flush_due(cfg.flush_ms, cfg.flush_messages) {
                if let Err(e) = p.flush_all().await {
                    broker.set_offline(&p, &format!("periodic flush failed: {e}"));
                }
            }
        }
    }
}

/// One retention pass over every partition (time and size retention of
/// `cleanup.policy=delete` topics), which also forgets idempotent producers
/// idle for `producer.id.expiration.ms` (every topic).
pub fn retention_pass(broker: &Broker) {
    let now = crate::handlers::now_ms();
    let producer_cutoff = now.saturating_sub(i64::from(broker.config().producer_id_expiration_ms));
    for t in broker.topics() {
        for p in t.partitions() {
            if let Some(n @ 1..) = p.expire_producers(producer_cutoff) {
                debug!(topic = %t.name, partition = p.index, expired = n, "idempotent producers expired");
            }
            // Time and size retention apply only to `cleanup.policy` with
            // `delete`; a compacted topic keeps its segments (log start offset
            // moves only through DeleteRecords).
            if !p.config().cleanup_policy.delete {
                continue;
            }
            match p.log().delete_old_segments(now, p.high_watermark()) {
                Ok(outcome) if outcome.deleted_segments > 0 => {
                    crate::metrics::retention_deleted(
                        outcome.deleted_segments,
                        outcome.deleted_bytes,
                    );
                    debug!(topic = %t.name, partition = p.index, deleted = outcome.deleted_segments, "retention deleted segments");
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(topic = %t.name, partition = p.index, error = %e, "retention failed")
                }
            }
        }
    }
}

/// Write Kafka's data-dir checkpoint files: recovery point, high-water marks
/// and log start offsets.
pub fn write_checkpoints(broker: &Broker) {
    checkpoint_job(broker)();
}

/// [`write_checkpoints`] in two halves: what to write is gathered now, on the
/// caller's thread; the returned job writes and fsyncs the files, so async
/// code can run it on the blocking pool.
pub fn checkpoint_job(broker: &Broker) -> impl FnOnce() + Send + 'static {
    let parts: Vec<_> = broker
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .collect();
    let dirs: Vec<std::path::PathBuf> = broker
        .log_dirs()
        .paths()
        .filter(|dir| !broker.log_dirs().dir_offline(dir))
        .map(std::path::Path::to_path_buf)
        .collect();
    move || {
        for dir in &dirs {
            write_checkpoint_files(
                dir,
                parts
                    .iter()
                    .filter(|p| p.log().dir().parent() == Some(dir.as_path()))
                    .map(|p| &**p),
            );
        }
    }
}

/// [`write_checkpoints`] for the given partitions of the data dir `dir`.
pub(crate) fn write_checkpoint_files<'a>(
    dir: &std::path::Path,
    parts: impl Iterator<Item = &'a crate::partition::Partition>,
) {
    let mut recovery = Vec::new();
    let mut hws = Vec::new();
    let mut starts = Vec::new();
    for p in parts {
        let tp = |offset| TopicPartitionOffset {
            topic: p.topic.to_string(),
            partition: p.index,
            offset,
        };
        recovery.push(tp(p.log().recovery_point()));
        hws.push(tp(p.high_watermark()));
        starts.push(tp(p.log_start_offset()));
    }
    for (name, entries) in [
        ("recovery-point-offset-checkpoint", &recovery),
        ("replication-offset-checkpoint", &hws),
        ("log-start-offset-checkpoint", &starts),
    ] {
        if let Err(e) = write_offset_checkpoint(&dir.join(name), entries) {
            warn!(file = name, error = %e, "writing checkpoint failed");
        }
    }
}
