//! Tests of the I/O shell around the state machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use brook_config::{BrokerConfig, TopicConfig};
use brook_protocol::codec::Uuid;
use tokio::sync::Notify;

use super::*;
use crate::log::LogConfig;
use crate::metadata::PartitionRecord;
use crate::producer_state::Refusal;

fn record(leader: i32, epoch: i32) -> PartitionRecord {
    PartitionRecord {
        topic_id: Uuid([1; 16]),
        partition: 0,
        replicas: vec![1, 2, 3],
        isr: vec![1, 2, 3],
        elr: Vec::new(),
        leader,
        leader_epoch: epoch,
        partition_epoch: epoch,
        ..PartitionRecord::default()
    }
}

/// Found by the replication simulation (seed 178): a broker that led epoch
/// 4 (in the image it restarted with) and is elected again in epoch 7 must
/// record epoch 7's start, or a follower that led epoch 5 meanwhile gets
/// UNDEFINED from OffsetForLeaderEpoch(5) and truncates to its HW.
#[tokio::test]
async fn a_leader_elected_again_in_a_newer_epoch_records_its_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let part = partition_of_node_1(dir.path())?;
    part.assign(&record(1, 4));
    anyhow::ensure!(part.log().latest_epoch() == Some(4));
    part.assign(&record(1, 7));
    anyhow::ensure!(part.is_leader());
    anyhow::ensure!(part.log().latest_epoch() == Some(7));
    // Not UNDEFINED (-1, -1): epoch 5 ends where 7 starts.
    anyhow::ensure!(part.log().end_offset_for_epoch(5).1 == 0);
    Ok(())
}

/// Node 1's replica of partition 0 of topic "t", default log config.
pub(crate) fn partition_of_node_1(dir: &std::path::Path) -> Result<Partition> {
    partition_of_node_1_with(dir, LogConfig::default())
}

fn partition_of_node_1_with(dir: &std::path::Path, log_config: LogConfig) -> Result<Partition> {
    partition_of_node_1_opened(PartitionLog::open(dir, log_config)?)
}

fn partition_of_node_1_opened(log: PartitionLog) -> Result<Partition> {
    partition_sharing_inline_flushes(log, Arc::default())
}

/// A partition whose inline flushes count against `inline` (a broker's
/// partitions share one).
fn partition_sharing_inline_flushes(
    log: PartitionLog,
    inline: Arc<super::InlineFlushes>,
) -> Result<Partition> {
    let config = Arc::new(TopicConfig::resolve(
        &BrokerConfig::default(),
        &BTreeMap::new(),
    )?);
    Ok(Partition::new(
        "t".into(),
        Uuid([1; 16]),
        0,
        log,
        config,
        ProducerStateTable::default(),
        ReplicaSetup {
            node: 1,
            hw: 0,
            lag_max_ms: 1_000,
            isr_wake: Arc::new(Notify::new()),
            inline_flushes: inline,
            follower_wakes: Arc::default(),
        },
    ))
}

/// A batch of 2 records at `base` (the base offset is outside the CRC).
fn batch_at(base: i64) -> Vec<u8> {
    let mut b = crate::log::test_batches::batch(2, 10, 0);
    b[0..8].copy_from_slice(&base.to_be_bytes());
    b
}

/// A replica fetch answered after this replica became leader (or moved to a
/// newer epoch) is dropped, not appended: appended, it would sit beside the
/// new leader's own appends with producer state its retries were never
/// checked against (suspected in the rolling-restart duplicate).
#[tokio::test]
async fn a_fetch_answered_after_leadership_moved_is_not_appended() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let part = partition_of_node_1(dir.path())?;
    part.assign(&record(2, 3));
    part.append_as_follower(&batch_at(0), 3).await?;
    anyhow::ensure!(part.log_end_offset() == 2);
    // Elected in epoch 4 while a fetch sent in epoch 3 was out.
    part.assign(&record(1, 4));
    let late = part.append_as_follower(&batch_at(2), 3).await;
    anyhow::ensure!(
        matches!(late, Err(BrokerError::FencedLeaderEpoch)),
        "a leader appended a stale fetch: {late:?}"
    );
    anyhow::ensure!(part.log_end_offset() == 2);
    // Following again in epoch 5: an answer to an epoch-4 fetch is stale too.
    part.assign(&record(3, 5));
    let late = part.append_as_follower(&batch_at(2), 4).await;
    anyhow::ensure!(matches!(late, Err(BrokerError::FencedLeaderEpoch)));
    part.append_as_follower(&batch_at(2), 5).await?;
    anyhow::ensure!(part.log_end_offset() == 4);
    Ok(())
}

/// Rolling a segment creates its files, and a follower's first batch of a
/// new leader epoch rewrites the leader-epoch checkpoint: appends that do
/// either, as leader or as follower, do it on the blocking pool, never on the
/// runtime thread serving the request (a slow disk would stall every
/// connection on it).
#[tokio::test]
async fn segment_rolls_and_new_epochs_write_files_off_the_runtime_thread() -> Result<()> {
    use crate::fsio::sim::Recorder;
    let dir = tempfile::tempdir()?;
    let out = tempfile::tempdir()?;
    let config = LogConfig {
        segment_bytes: 100,
        ..LogConfig::default()
    };
    let part = partition_of_node_1_with(dir.path(), config)?;
    // Elected (the publisher assigns on the blocking pool).
    part.assign(&record(1, 1));
    let rec = Recorder::start(dir.path(), out.path(), Vec::new(), true)?;
    for _ in 0..3 {
        part.append(&batch_at(0), 10).await?;
    }
    part.assign(&record(2, 2));
    for _ in 0..3 {
        // Batches of epoch 2: the first one adds it to the leader-epoch
        // checkpoint.
        let mut b = batch_at(part.log_end_offset());
        b[12..16].copy_from_slice(&2i32.to_be_bytes());
        part.append_as_follower(&b, 2).await?;
    }
    anyhow::ensure!(part.log().latest_epoch() == Some(2));
    anyhow::ensure!(part.log_end_offset() == 12);
    let runtime = format!(
        "[thread {}]",
        std::thread::current().name().unwrap_or("unnamed")
    );
    let created: Vec<String> = rec
        .trace()
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.contains(".log ") || t.contains(".index ") || t.contains("epoch-checkpoint"))
        .collect();
    // One .log, .index and .timeindex per roll; every batch but the first rolls.
    anyhow::ensure!(
        created.len() >= 5 * 2,
        "too few rolls recorded: {created:?}"
    );
    let on_runtime: Vec<&String> = created.iter().filter(|t| t.ends_with(&runtime)).collect();
    anyhow::ensure!(
        on_runtime.is_empty(),
        "files written on the runtime thread: {on_runtime:?}"
    );
    Ok(())
}

/// An idempotent batch of producer 7 (epoch 0): `count` records from
/// sequence `seq`.
fn idempotent_batch(seq: i32, count: i32) -> Result<Vec<u8>> {
    use brook_protocol::records::{BatchBuilder, Compression};
    let mut b = BatchBuilder::new();
    b.set_producer(7, 0, seq);
    for i in 0..count {
        b.append(10, None, Some(format!("v{}", seq + i).as_bytes()), &[])?;
    }
    Ok(b.build(Compression::None)?.to_vec())
}

/// The rolling-restart duplicate (librdkafka#4953): a client pipelines R1
/// and R2 to a replica about to lead. R1 is refused (not the leader yet),
/// R2 arrives once it leads, with a sequence gap. Answered
/// OUT_OF_ORDER_SEQUENCE, librdkafka bumps the producer epoch and rewrites
/// every partition's unacknowledged batches under it, duplicating those
/// already written. Answered with R1's own retriable error, the client
/// retries R1 then R2, in order, unchanged.
#[tokio::test]
async fn a_gap_behind_a_batch_refused_as_follower_is_not_out_of_order() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let part = partition_of_node_1(dir.path())?;
    part.assign(&record(2, 3));
    // R0 replicated from the leader (producer state rebuilt from it).
    let mut r0 = idempotent_batch(0, 5)?;
    r0[12..16].copy_from_slice(&3i32.to_be_bytes());
    part.append_as_follower(&r0, 3).await?;
    // R1 refused by the produce handler: not the leader (yet).
    let r1 = idempotent_batch(5, 5)?;
    part.refuse(&r1, Refusal::NotLeader).await;
    // Elected; R2 arrives before R1's retry.
    part.assign(&record(1, 4));
    let r2 = idempotent_batch(10, 5)?;
    let gap = part.append(&r2.clone(), 10).await;
    anyhow::ensure!(
        matches!(gap, Err(BrokerError::NotLeader)),
        "a gap behind a refused batch answered {gap:?}"
    );
    // The client retries R1, then R2: both land, in order, once.
    let a1 = part.append(&r1, 10).await?;
    let a2 = part.append(&r2, 10).await?;
    anyhow::ensure!((a1.base_offset, a2.base_offset) == (5, 10));
    // A gap with no refusal before it is still out of order.
    let r4 = idempotent_batch(20, 5)?;
    let real_gap = part.append(&r4, 10).await;
    anyhow::ensure!(matches!(real_gap, Err(BrokerError::OutOfOrderSequence)));
    Ok(())
}

/// Found while chasing the 3-node latency stall (the state machine's
/// `a_follower_that_fetched_an_append_before_it_was_reported_counts_with_it`
/// is that one's cause): a flush that completes between the log append and
/// the state machine learning the new log end reports its durable offset
/// clamped to the old end. Nothing reported it again, so the HW stalled
/// until another append's flush. The shell re-reports the log's recovery
/// point once the state machine knows the append.
#[tokio::test]
async fn a_flush_that_overtakes_the_append_still_commits_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let part = partition_of_node_1(dir.path())?;
    part.assign(&PartitionRecord {
        replicas: vec![1],
        isr: vec![1],
        ..record(1, 1)
    });
    let a = part.append(&batch_at(0), 10).await?;
    part.request_flush();
    part.wait_durable(a.last_offset).await?;
    anyhow::ensure!(part.high_watermark() == 2);
    // The interleaving: the batch is in the log (LEO 4) and fsynced, the
    // flush reports 4 while the state machine still knows LEO 2 ...
    part.log().append_as_leader(&batch_at(0), 1)?;
    part.log().flush_up_to(4)?;
    part.shared.step(Event::Durable { offset: 4 });
    anyhow::ensure!(part.high_watermark() == 2);
    // ... and only then learns the append.
    part.appended(4);
    anyhow::ensure!(
        part.high_watermark() == 4,
        "HW {} after a durable append",
        part.high_watermark()
    );
    Ok(())
}

/// The flush loop runs on the blocking pool, one per partition (or one
/// round on a worker thread, inline), and ends when no request is left: many producers appending and waiting at once on
/// a multi-thread runtime are all released with their records committed,
/// flushes shared between them, and the loop ends by itself once they are.
/// (The race between a request and the loop's end is too narrow for this
/// test to hit reliably; `Flusher::run` re-checks for it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_and_waits_share_flushes_and_all_commit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let part = Arc::new(partition_of_node_1(dir.path())?);
    part.assign(&PartitionRecord {
        replicas: vec![1],
        isr: vec![1],
        ..record(1, 1)
    });
    for round in 0..20 {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let part = part.clone();
                tokio::spawn(async move {
                    let a = part.append(&batch_at(0), 10).await?;
                    // Half of them flush on their worker thread when the
                    // loop is idle (an acks=all request alone on its
                    // connection), and hand over to the loop when requests
                    // came meanwhile.
                    if i % 2 == 1 || !part.flush_inline() {
                        part.request_flush();
                    }
                    part.wait_durable(a.last_offset).await?;
                    anyhow::Ok(a.last_offset)
                })
            })
            .collect();
        for t in tasks {
            // A lost request leaves its waiter waiting for good.
            let last = tokio::time::timeout(std::time::Duration::from_secs(10), t)
                .await
                .map_err(|_| anyhow::anyhow!("round {round}: a waiter was never released"))???;
            anyhow::ensure!(
                part.high_watermark() > last,
                "round {round}: {last} not committed"
            );
        }
        let end = part.log_end_offset();
        anyhow::ensure!(part.log().recovery_point() == end);
        // The loop ends by itself once every request is served.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while part.flusher.running() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the flush loop never ended"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    let syncs = part.log().sync_count();
    anyhow::ensure!(
        syncs < 20 * 16,
        "{syncs} syncs for 320 appends: the flushes were not shared"
    );
    Ok(())
}

/// A partition of node 1 in `dir`, its only replica and leader.
fn single_leader_in(dir: &std::path::Path) -> Result<Partition> {
    let part = partition_of_node_1(dir)?;
    single_replica_leader(&part);
    Ok(part)
}

fn single_replica_leader(part: &Partition) {
    part.assign(&PartitionRecord {
        replicas: vec![1],
        isr: vec![1],
        ..record(1, 1)
    });
}

/// An inline flush: the fsync runs on the calling thread, the HW moves
/// before it returns, and no flush loop is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_flush_commits_before_it_returns() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let part = single_leader_in(dir.path())?;
    let a = part.append(&batch_at(0), 10).await?;
    anyhow::ensure!(part.committed_now(a.last_offset, 1).is_none());
    let syncs = part.log().sync_count();
    anyhow::ensure!(part.flush_inline(), "an idle flusher did not flush inline");
    anyhow::ensure!(part.log().sync_count() > syncs);
    anyhow::ensure!(part.committed_now(a.last_offset, 1) == Some(Ok(())));
    anyhow::ensure!(part.high_watermark() == 2);
    anyhow::ensure!(!part.flusher.running());
    // Deposed meanwhile: the wait ends NotLeader, whatever the HW says.
    part.assign(&record(2, 2));
    anyhow::ensure!(part.committed_now(a.last_offset, 1) == Some(Err(NotCommitted::NotLeader)));
    Ok(())
}

/// A flush loop already at work takes the request: the caller does not
/// fsync beside it, and its records commit with the loop's next round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_flush_leaves_a_running_loop_the_work() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gate = Arc::new(crate::log::test_batches::GateSyncer::default());
    let log = PartitionLog::open_with(
        dir.path(),
        LogConfig::default(),
        crate::log::OpenOptions {
            syncer: gate.clone(),
            ..Default::default()
        },
    )?;
    let part = Arc::new(partition_of_node_1_opened(log)?);
    single_replica_leader(&part);
    part.append(&batch_at(0), 10).await?;
    part.request_flush();
    let called = {
        let gate = gate.clone();
        tokio::task::spawn_blocking(move || gate.wait_called(std::time::Duration::from_secs(10)))
    };
    anyhow::ensure!(called.await?, "the loop never synced");
    // The loop is blocked in its fsync; a second batch arrives.
    let b = part.append(&batch_at(0), 10).await?;
    anyhow::ensure!(!part.flush_inline(), "flushed inline beside a running loop");
    anyhow::ensure!(part.committed_now(b.last_offset, 1).is_none());
    gate.open();
    let committed = part.wait_committed(
        b.last_offset,
        1,
        tokio::time::Instant::now() + std::time::Duration::from_secs(10),
    );
    anyhow::ensure!(committed.await == Ok(()));
    anyhow::ensure!(part.high_watermark() == 4);
    Ok(())
}

/// An fsync slower than 1 ms turns inline flushing off: the next caller
/// leaves the flush to the loop instead of holding its worker thread
/// through what may be a disk stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_slow_fsync_the_flush_goes_to_the_loop() -> Result<()> {
    #[derive(Debug)]
    struct Slow;
    impl crate::log::Syncer for Slow {
        fn sync_data(&self, file: &std::fs::File) -> std::io::Result<()> {
            std::thread::sleep(std::time::Duration::from_millis(5));
            file.sync_data()
        }
    }
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open_with(
        dir.path(),
        LogConfig::default(),
        crate::log::OpenOptions {
            syncer: Arc::new(Slow),
            ..Default::default()
        },
    )?;
    let part = partition_of_node_1_opened(log)?;
    single_replica_leader(&part);
    part.append(&batch_at(0), 10).await?;
    // Nothing slow seen yet: inline.
    anyhow::ensure!(part.flush_inline());
    let b = part.append(&batch_at(0), 10).await?;
    anyhow::ensure!(!part.flush_inline(), "flushed inline after a 5 ms fsync");
    part.wait_durable(b.last_offset).await?;
    anyhow::ensure!(part.committed_now(b.last_offset, 1) == Some(Ok(())));
    Ok(())
}

/// A leader with followers never flushes inline: the fetches its append
/// woke would wait on this thread for its fsync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_with_followers_leaves_the_flush_to_the_loop() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let part = partition_of_node_1(dir.path())?;
    part.assign(&record(1, 1));
    let a = part.append(&batch_at(0), 10).await?;
    anyhow::ensure!(!part.flush_inline(), "flushed inline with followers");
    part.wait_durable(a.last_offset).await?;
    anyhow::ensure!(part.log().recovery_point() == 2);
    Ok(())
}

/// A follower flushes inline: its fetcher waits for that fsync before its
/// next fetch anyway, and nobody fetches from it. The same replica leading
/// with followers leaves the flush to the loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_flushes_inline() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let part = partition_of_node_1(dir.path())?;
    part.assign(&record(2, 3));
    part.append_as_follower(&batch_at(0), 3).await?;
    anyhow::ensure!(part.flush_inline(), "a follower left its flush to the loop");
    anyhow::ensure!(
        part.log().recovery_point() == 2,
        "not durable after the inline flush: recovery point {}",
        part.log().recovery_point()
    );
    part.assign(&record(1, 4));
    part.append(&batch_at(2), 10).await?;
    anyhow::ensure!(
        !part.flush_inline(),
        "a leader with followers flushed inline"
    );
    Ok(())
}

/// Inline flushes leave a runtime worker free: with two workers, while one
/// partition's inline fsync is stuck (a disk stall), another partition of
/// the same broker leaves its flush to the loop instead of taking the
/// second worker; once the first is done, inline flushing resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_flushes_leave_a_worker_free() -> Result<()> {
    let inline = Arc::new(super::InlineFlushes::default());
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let gate = Arc::new(crate::log::test_batches::GateSyncer::default());
    // Opens the gate however the test ends: the runtime's shutdown waits
    // for the thread stuck in it.
    struct OpenOnDrop(Arc<crate::log::test_batches::GateSyncer>);
    impl Drop for OpenOnDrop {
        fn drop(&mut self) {
            self.0.open();
        }
    }
    let _open = OpenOnDrop(gate.clone());
    let stuck = PartitionLog::open_with(
        dir_a.path(),
        LogConfig::default(),
        crate::log::OpenOptions {
            syncer: gate.clone(),
            ..Default::default()
        },
    )?;
    let stuck = Arc::new(partition_sharing_inline_flushes(stuck, inline.clone())?);
    single_replica_leader(&stuck);
    let other = partition_sharing_inline_flushes(
        PartitionLog::open(dir_b.path(), LogConfig::default())?,
        inline.clone(),
    )?;
    single_replica_leader(&other);
    stuck.append(&batch_at(0), 10).await?;
    // The stuck flush holds its thread (a blocking-pool thread stands in
    // for the worker it would hold).
    let held = {
        let stuck = stuck.clone();
        tokio::task::spawn_blocking(move || stuck.flush_inline())
    };
    let called = {
        let gate = gate.clone();
        tokio::task::spawn_blocking(move || gate.wait_called(std::time::Duration::from_secs(10)))
    };
    anyhow::ensure!(called.await?, "the stuck partition never synced");
    let b = other.append(&batch_at(0), 10).await?;
    anyhow::ensure!(
        !other.flush_inline(),
        "a second inline flush took the last free worker"
    );
    other.wait_durable(b.last_offset).await?;
    anyhow::ensure!(other.committed_now(b.last_offset, 1) == Some(Ok(())));
    gate.open();
    anyhow::ensure!(held.await?, "the stuck partition did not flush inline");
    // A third partition (its own flusher idle, no fsync of its own seen
    // yet) finds the place free again.
    let dir_c = tempfile::tempdir()?;
    let third = partition_sharing_inline_flushes(
        PartitionLog::open(dir_c.path(), LogConfig::default())?,
        inline,
    )?;
    single_replica_leader(&third);
    let c = third.append(&batch_at(0), 10).await?;
    anyhow::ensure!(third.flush_inline(), "inline flushing did not resume");
    anyhow::ensure!(third.committed_now(c.last_offset, 1) == Some(Ok(())));
    Ok(())
}

/// A single-worker runtime has no worker to leave free: it never flushes
/// inline.
#[tokio::test]
async fn a_single_worker_runtime_never_flushes_inline() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let part = single_leader_in(dir.path())?;
    let a = part.append(&batch_at(0), 10).await?;
    anyhow::ensure!(!part.flush_inline(), "flushed inline on a single worker");
    part.wait_durable(a.last_offset).await?;
    anyhow::ensure!(part.committed_now(a.last_offset, 1) == Some(Ok(())));
    Ok(())
}

/// An idempotent batch of producer `pid` in `epoch`: `count` records from
/// sequence `seq`.
fn producer_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Result<Vec<u8>> {
    use brook_protocol::records::{BatchBuilder, Compression};
    let mut b = BatchBuilder::new();
    b.set_producer(pid, epoch, seq);
    for i in 0..count {
        b.append(
            10,
            None,
            Some(format!("p{pid}e{epoch}s{}", seq + i).as_bytes()),
            &[],
        )?;
    }
    Ok(b.build(Compression::None)?.to_vec())
}

/// Appends from four producers (epoch bumps, retries of the last batch,
/// and batches of no producer) picked by a seeded generator, rolling a
/// segment every few batches. Returns how many batches were appended.
async fn produce_mixed(part: &Partition, seed: u64, appends: usize) -> Result<usize> {
    let mut rng = seed.max(1);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut state: std::collections::HashMap<i64, (i16, i32)> = Default::default();
    let mut last: std::collections::HashMap<i64, Vec<u8>> = Default::default();
    let mut appended = 0;
    for _ in 0..appends {
        let r = next();
        let pid = [3i64, 5, 7, 9][(r % 4) as usize];
        let bytes = match (r >> 8) % 10 {
            0 => batch_at(0),
            1 => {
                let e = state.entry(pid).or_insert((0, 0));
                *e = (e.0 + 1, 1);
                producer_batch(pid, e.0, 0, 1)?
            }
            // A retry of the producer's last batch: a duplicate.
            2 if last.contains_key(&pid) => last[&pid].clone(),
            _ => {
                let (epoch, seq) = *state.entry(pid).or_insert((0, 0));
                let count = 1 + ((r >> 16) % 3) as i32;
                state.insert(pid, (epoch, seq + count));
                producer_batch(pid, epoch, seq, count)?
            }
        };
        if (r >> 8) % 10 != 0 {
            last.insert(pid, bytes.clone());
        }
        let a = part.append(&bytes, 10).await?;
        if !a.duplicate {
            appended += 1;
        }
    }
    Ok(appended)
}

/// Segments of 1,500 bytes: the snapshot tests roll often.
fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1_500,
        ..LogConfig::default()
    }
}

fn full_replay(log: &PartitionLog) -> Result<crate::producer_state::ProducerStateTable> {
    let mut t = crate::producer_state::ProducerStateTable::default();
    crate::producer_state::rebuild(log, &mut t)?;
    Ok(t)
}

/// Producer snapshots are taken as segments roll: loading the newest and
/// replaying the headers after it gives exactly the table a replay of the
/// whole log gives, with far fewer headers read; after a clean close none
/// at all; and a torn newest snapshot falls back to the one before it.
#[tokio::test]
async fn producer_snapshots_shorten_the_replay_and_match_a_full_one() -> Result<()> {
    use crate::producer_state::snapshot;
    for seed in 1..=4u64 {
        let dir = tempfile::tempdir()?;
        let config = small_segments();
        let part = partition_of_node_1_with(dir.path(), config.clone())?;
        single_replica_leader(&part);
        let batches = produce_mixed(&part, seed, 300).await?;
        let segments = part.log().segment_base_offsets();
        anyhow::ensure!(segments.len() > 10, "seed {seed}: only {segments:?}");
        let snaps = snapshot::list(dir.path())?;
        anyhow::ensure!(
            snaps.len() == 2 && snaps.last() == segments.last(),
            "seed {seed}: snapshots {snaps:?}, segments end {:?}",
            segments.last()
        );
        let full = full_replay(part.log())?;
        let mut loaded = crate::producer_state::ProducerStateTable::default();
        let how = snapshot::load(part.log(), &mut loaded)?;
        anyhow::ensure!(
            loaded.same_state(&full),
            "seed {seed}: differs from a full replay"
        );
        anyhow::ensure!(loaded.same_state(&*part.producers.lock().await));
        anyhow::ensure!(
            how.snapshot == segments.last().copied() && how.replayed * 5 < batches as u64,
            "seed {seed}: {how:?} for {batches} batches"
        );
        // A torn newest snapshot: the older one, and more replay.
        let newest = dir.path().join(format!("{:020}.producers", snaps[1]));
        let len = std::fs::metadata(&newest)?.len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&newest)?
            .set_len(len / 2)?;
        let mut fallback = crate::producer_state::ProducerStateTable::default();
        let how = snapshot::load(part.log(), &mut fallback)?;
        anyhow::ensure!(how.snapshot == Some(snaps[0]), "seed {seed}: {how:?}");
        anyhow::ensure!(fallback.same_state(&full), "seed {seed}: fallback differs");
        // A clean close leaves one at the log end: nothing to replay.
        part.close()?;
        let log = PartitionLog::open(dir.path(), config)?;
        let mut reopened = crate::producer_state::ProducerStateTable::default();
        let how = snapshot::load(&log, &mut reopened)?;
        anyhow::ensure!(
            how.snapshot == Some(log.log_end_offset()) && how.replayed == 0,
            "seed {seed}: {how:?}"
        );
        anyhow::ensure!(reopened.same_state(&full), "seed {seed}: reopened differs");
    }
    Ok(())
}

/// A snapshot above the log end (a power loss cut the log below it) is
/// deleted, not used: it describes batches the log does not hold.
#[tokio::test]
async fn a_producer_snapshot_past_the_log_end_is_deleted() -> Result<()> {
    use crate::producer_state::snapshot;
    let dir = tempfile::tempdir()?;
    let part = single_leader_in(dir.path())?;
    part.append(&producer_batch(3, 0, 0, 2)?, 10).await?;
    let end = part.log_end_offset();
    let mut ghost = crate::producer_state::ProducerStateTable::default();
    ghost.record(
        &crate::producer_state::BatchIdentity {
            producer_id: 99,
            producer_epoch: 0,
            base_sequence: 0,
            last_sequence: 4,
        },
        end,
        end + 4,
        10,
    );
    snapshot::write(dir.path(), end + 5, &snapshot::encode(&ghost, end + 5))?;
    // And a write a crash cut short.
    let tmp = dir.path().join(format!("{:020}.producers.tmp", end + 9));
    std::fs::write(&tmp, b"BRPS")?;
    let mut loaded = crate::producer_state::ProducerStateTable::default();
    let how = snapshot::load(part.log(), &mut loaded)?;
    anyhow::ensure!(how.snapshot.is_none(), "{how:?}");
    anyhow::ensure!(snapshot::list(dir.path())?.is_empty());
    anyhow::ensure!(!tmp.exists(), "the temporary file was left");
    anyhow::ensure!(loaded.same_state(&full_replay(part.log())?));
    anyhow::ensure!(loaded.len() == 1);
    Ok(())
}

/// A follower truncating below its snapshots deletes them and rebuilds its
/// table from what is left (an older snapshot, or the whole log): the same
/// table a full replay of the truncated log gives. Restarting the log at a
/// new offset deletes them all.
#[tokio::test]
async fn truncation_drops_the_producer_snapshots_past_the_cut() -> Result<()> {
    use crate::producer_state::snapshot;
    let dir = tempfile::tempdir()?;
    let part = partition_of_node_1_with(dir.path(), small_segments())?;
    single_replica_leader(&part);
    produce_mixed(&part, 9, 300).await?;
    let snaps = snapshot::list(dir.path())?;
    anyhow::ensure!(snaps.len() == 2, "{snaps:?}");
    // Now following broker 2, and diverging from it just past the older one.
    part.assign(&record(2, 2));
    let cut = snaps[0] + 1;
    let end = part.truncate_to(cut).await?;
    anyhow::ensure!(end <= cut);
    let left = snapshot::list(dir.path())?;
    anyhow::ensure!(left == snaps[..1], "{left:?} after cutting at {cut}");
    anyhow::ensure!(part
        .producers
        .lock()
        .await
        .same_state(&full_replay(part.log())?));
    part.restart_at(end + 100).await?;
    anyhow::ensure!(snapshot::list(dir.path())?.is_empty());
    Ok(())
}

/// A follower's first batch of a new leader epoch that rolls the segment
/// leaves a producer snapshot at the new segment's base, as any other roll
/// does (that append runs on the blocking pool, and rolled there unseen).
#[tokio::test]
async fn a_roll_by_a_new_epochs_first_batch_snapshots_the_producers() -> Result<()> {
    use crate::producer_state::snapshot;
    // As fetched from the leader: its offsets and epoch (outside the CRC).
    fn fetched(mut b: Vec<u8>, base: i64, epoch: i32) -> Vec<u8> {
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[12..16].copy_from_slice(&epoch.to_be_bytes());
        b
    }
    let dir = tempfile::tempdir()?;
    let part = partition_of_node_1_with(dir.path(), small_segments())?;
    part.assign(&record(2, 3));
    let (mut base, mut seq) = (0i64, 0i32);
    loop {
        let b = fetched(producer_batch(7, 0, seq, 3)?, base, 3);
        if part.log().size_in_bytes() + b.len() as u64 > small_segments().segment_bytes {
            break;
        }
        part.append_as_follower(&b, 3).await?;
        (base, seq) = (base + 3, seq + 3);
    }
    anyhow::ensure!(part.log().segment_base_offsets() == [0]);
    anyhow::ensure!(snapshot::list(dir.path())?.is_empty());
    // The leader moved to epoch 4; its first batch does not fit the segment.
    part.assign(&record(2, 4));
    part.append_as_follower(&fetched(producer_batch(7, 0, seq, 3)?, base, 4), 4)
        .await?;
    anyhow::ensure!(part.log().segment_base_offsets() == [0, base]);
    let snaps = snapshot::list(dir.path())?;
    anyhow::ensure!(
        snaps == [base],
        "snapshots {snaps:?} after a roll at {base}"
    );
    let mut loaded = crate::producer_state::ProducerStateTable::default();
    snapshot::load(part.log(), &mut loaded)?;
    anyhow::ensure!(loaded.same_state(&full_replay(part.log())?));
    Ok(())
}

/// `producer.id.expiration.ms`: a producer whose newest batch is older than
/// the cutoff is forgotten, so its next batch in sequence is refused as
/// UNKNOWN_PRODUCER_ID (the client starts over), and a producer active
/// since stays.
#[tokio::test]
async fn idle_producers_expire() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let part = single_leader_in(dir.path())?;
    // `producer_batch` stamps its records at 10 ms after the epoch.
    part.append(&producer_batch(3, 0, 0, 2)?, 10).await?;
    let now = crate::handlers::now_ms();
    let mut fresh = brook_protocol::records::BatchBuilder::new();
    fresh.set_producer(5, 0, 0);
    fresh.append(now, None, Some(b"now"), &[])?;
    let fresh = fresh
        .build(brook_protocol::records::Compression::None)?
        .to_vec();
    part.append(&fresh, now).await?;
    let cutoff = now - 86_400_000;
    anyhow::ensure!(part.expire_producers(cutoff) == Some(1));
    let e = part.append(&producer_batch(3, 0, 2, 1)?, 10).await;
    anyhow::ensure!(
        matches!(e, Err(BrokerError::UnknownProducerId)),
        "after expiry: {e:?}"
    );
    anyhow::ensure!(part.producer_table().await.len() == 1);
    Ok(())
}
