//! Unit tests of `PartitionLog` (append, read, roll, truncate, retention, flush).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context, Result};

use super::*;
use crate::log::test_batches::{
    batch, offsets, region_bytes, FailingSyncer, FakeClock, GateSyncer,
};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

fn open_with_clock(dir: &Path, config: LogConfig, clock: Arc<FakeClock>) -> Result<PartitionLog> {
    Ok(PartitionLog::open_with(
        dir,
        config,
        OpenOptions {
            clock,
            ..OpenOptions::default()
        },
    )?)
}

/// Read everything from `offset` up to the log end, one read per segment.
fn read_all(log: &PartitionLog, mut offset: i64) -> Result<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, i64::MAX, true)?;
        let region = r.region.context("no data before log end")?;
        let batches = offsets(&region_bytes(&region)?);
        offset = batches.last().context("empty region")?.1 + 1;
        out.extend(batches);
    }
    Ok(out)
}

#[test]
fn append_assigns_offsets_and_reads_back_across_rolls() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), small_config())?;
    let mut expected = Vec::new();
    let mut next = 0;
    for i in 0..40 {
        let records = 1 + (i % 5);
        let b = batch(records, 20 + (i as usize * 7) % 90, 1000 + i64::from(i));
        let info = log.append_as_leader(&b, 3)?;
        ensure!(info.first_offset == next && info.last_offset == next + i64::from(records) - 1);
        expected.push((next, info.last_offset));
        next = info.log_end_offset;
    }
    ensure!(log.log_end_offset() == next);
    ensure!(
        log.segment_base_offsets().len() > 2,
        "small segment.bytes must roll"
    );
    ensure!(read_all(&log, 0)? == expected);
    // Rolled segments have trimmed indexes; reopening without close must still read all.
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config())?;
    ensure!(log.log_end_offset() == next);
    ensure!(read_all(&log, 0)? == expected);
    Ok(())
}

/// A leader append writes offsets and epoch through patched copies of the
/// headers: the request buffer is left as it was, and a request of more
/// batches than one `pwritev` takes (1,024 iovecs, two per batch) is written
/// whole, every batch at its offset with a CRC that still holds.
#[test]
fn a_leader_append_patches_headers_on_the_way_and_leaves_the_request_alone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), LogConfig::default())?;
    log.append_as_leader(&batch(3, 10, 1), 0)?; // 0..=2
    let mut request = Vec::new();
    for i in 0..1_500 {
        request.extend(batch(2, 5 + i % 40, i as i64));
    }
    let before = request.clone();
    let info = log.append_as_leader(&request, 7)?;
    ensure!(request == before, "the request buffer was modified");
    ensure!((info.first_offset, info.last_offset) == (3, 3 + 2 * 1_500 - 1));
    let mut expected = vec![(0, 2)];
    expected.extend((0..1_500).map(|i| (3 + 2 * i, 4 + 2 * i)));
    ensure!(read_all(&log, 0)? == expected);
    let r = log.read(3, 1 << 30, i64::MAX, true)?;
    let bytes = region_bytes(&r.region.context("region")?)?;
    let mut n = 0;
    for (_, h) in brook_protocol::records::BatchIter::new(&bytes) {
        h.validate()
            .map_err(|e| anyhow::anyhow!("batch at {}: {e}", h.base_offset()))?;
        ensure!(
            h.partition_leader_epoch() == 7,
            "epoch {}",
            h.partition_leader_epoch()
        );
        n += 1;
    }
    ensure!(n == 1_500, "{n} batches read back");
    let last = log
        .leader_epochs()
        .last()
        .map(|e| (e.epoch, e.start_offset));
    ensure!(last == Some((7, 3)), "{:?}", log.leader_epochs());
    Ok(())
}

#[test]
fn read_inside_a_batch_returns_the_whole_batch() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), small_config())?;
    log.append_as_leader(&batch(5, 10, 1), 0)?; // 0..=4
    log.append_as_leader(&batch(5, 10, 2), 0)?; // 5..=9
    let r = log.read(7, 1 << 20, i64::MAX, true)?;
    ensure!(r.first_offset == Some(5));
    let got = offsets(&region_bytes(&r.region.context("region")?)?);
    ensure!(got == vec![(5, 9)], "{got:?}");
    Ok(())
}

#[test]
fn max_bytes_min_one_and_high_watermark() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), LogConfig::default())?;
    for _ in 0..4 {
        log.append_as_leader(&batch(2, 139, 1), 0)?; // 200 bytes each
    }
    // Cut at whole batches.
    let r = log.read(0, 450, i64::MAX, false)?;
    ensure!(r.region.as_ref().map(|r| r.len) == Some(400));
    // A first batch larger than max_bytes: all of it with min_one, nothing without.
    let r = log.read(0, 10, i64::MAX, true)?;
    ensure!(r.region.as_ref().map(|r| r.len) == Some(200));
    let r = log.read(0, 10, i64::MAX, false)?;
    ensure!(r.region.is_none());
    // Never past the high-water mark (exclusive), even inside a batch.
    let r = log.read(0, 1 << 20, 4, true)?;
    ensure!(offsets(&region_bytes(&r.region.context("region")?)?) == vec![(0, 1), (2, 3)]);
    let r = log.read(0, 1 << 20, 5, true)?;
    ensure!(offsets(&region_bytes(&r.region.context("region")?)?).len() == 2);
    ensure!(log.read(4, 1 << 20, 4, true)?.region.is_none());
    // At the log end: empty; past it or below the start: out of range.
    ensure!(log.read(8, 1 << 20, i64::MAX, true)?.region.is_none());
    ensure!(matches!(
        log.read(9, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange {
            log_start: 0,
            log_end: 8,
            ..
        })
    ));
    ensure!(matches!(
        log.read(-1, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    Ok(())
}

#[test]
fn invalid_batches_are_rejected_before_writing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), LogConfig::default())?;
    let mut good_then_bad = batch(1, 10, 1);
    let mut bad = batch(1, 10, 1);
    bad[70] ^= 0xff;
    good_then_bad.extend_from_slice(&bad);
    ensure!(matches!(
        log.append_as_leader(&good_then_bad, 0),
        Err(LogError::InvalidBatch { position: 71, .. })
    ));
    let mut torn = batch(1, 10, 1);
    torn.truncate(50);
    ensure!(log.append_as_leader(&torn, 0).is_err());
    ensure!(log.append_as_leader(&[], 0).is_err());
    let huge = batch(1, 2_000_000, 1);
    ensure!(matches!(
        log.append_as_leader(&huge, 0),
        Err(LogError::RecordTooLarge { .. })
    ));
    ensure!(log.log_end_offset() == 0 && log.size_in_bytes() == 0);
    Ok(())
}

#[test]
fn offset_for_timestamp_and_max_timestamp() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), small_config())?;
    // Timestamps 100, 200, ... with one out-of-order batch; spans several segments.
    let mut ts_of = Vec::new();
    for i in 0..30i64 {
        let ts = if i == 12 { 50 } else { 100 * (i + 1) };
        let info = log.append_as_leader(&batch(2, 60, ts), 0)?;
        ts_of.push((info.first_offset, ts));
    }
    for target in [0, 100, 101, 650, 1300, 3000] {
        let want = ts_of.iter().find(|(_, ts)| *ts >= target).copied();
        let got = log.offset_for_timestamp(target, i64::MAX)?;
        ensure!(got == want, "target {target}: got {got:?}, want {want:?}");
    }
    ensure!(log.offset_for_timestamp(3001, i64::MAX)?.is_none());
    // Bounded by the high-water mark.
    ensure!(log.offset_for_timestamp(3000, 58)?.is_none());
    ensure!(log.max_timestamp_offset(i64::MAX)? == Some((3000, 59)));
    ensure!(log.max_timestamp_offset(58)? == Some((2900, 57)));
    ensure!(log.max_timestamp_offset(4)? == Some((200, 3)));
    Ok(())
}

#[test]
fn leader_epochs_are_recorded_and_stamped() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), LogConfig::default())?;
    log.append_as_leader(&batch(3, 0, 1), 1)?;
    log.append_as_leader(&batch(3, 0, 1), 1)?;
    log.append_as_leader(&batch(3, 0, 1), 4)?;
    ensure!(log.end_offset_for_epoch(1) == (1, 6));
    ensure!(log.end_offset_for_epoch(2) == (1, 6));
    ensure!(log.end_offset_for_epoch(4) == (4, 9));
    let r = log.read(6, 1000, i64::MAX, true)?;
    let bytes = region_bytes(&r.region.context("region")?)?;
    ensure!(brook_protocol::records::BatchHeader::new(&bytes)?.partition_leader_epoch() == 4);
    // Truncation drops the epoch that started past the new end.
    log.truncate_to(6)?;
    ensure!(log.latest_epoch() == Some(1));
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default())?;
    ensure!(log.leader_epochs().len() == 1);
    Ok(())
}

/// Found by the replication simulation (seed 534): a broker elected leader
/// records its epoch at its log end, is deposed before appending, and then
/// follows a leader whose records at that offset carry an older epoch.
/// Without dropping the empty epoch first, appending them replaced every
/// entry of the older epoch, so the records below had no epoch left (and a
/// restart emptied the cache: the follower then truncated to its HW).
#[test]
fn truncating_at_the_log_end_drops_an_epoch_started_there() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), LogConfig::default())?;
    log.append_as_leader(&batch(3, 0, 1), 0)?;
    log.assign_epoch(1, 3)?;
    ensure!(log.truncate_to(3)? == 3);
    ensure!(log.latest_epoch() == Some(0));
    let mut b = batch(2, 5, 1);
    brook_protocol::records::header::set_base_offset(&mut b, 3)?;
    brook_protocol::records::header::set_partition_leader_epoch(&mut b, 0)?;
    log.append_as_follower(&b)?;
    ensure!(
        log.leader_epochs()
            == vec![crate::log::leader_epoch_cache::EpochEntry {
                epoch: 0,
                start_offset: 0
            }]
    );
    Ok(())
}

#[test]
fn follower_append_keeps_offsets_and_rejects_going_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), LogConfig::default())?;
    let mut a = batch(2, 5, 1);
    brook_protocol::records::header::set_base_offset(&mut a, 10)?;
    brook_protocol::records::header::set_partition_leader_epoch(&mut a, 7)?;
    let info = log.append_as_follower(&a)?;
    ensure!(info.first_offset == 10 && log.log_end_offset() == 12);
    ensure!(log.end_offset_for_epoch(7) == (7, 12));
    ensure!(matches!(
        log.append_as_follower(&a),
        Err(LogError::UnexpectedAppendOffset { expected: 12, .. })
    ));
    ensure!(log.read(10, 1000, i64::MAX, true)?.first_offset == Some(10));
    Ok(())
}

#[test]
fn truncate_to_removes_whole_batches_and_segments() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), small_config())?;
    for _ in 0..30 {
        log.append_as_leader(&batch(2, 80, 5), 0)?;
    }
    let segs_before = log.segment_base_offsets().len();
    ensure!(
        log.truncate_to(21)? == 20,
        "batch 20..=21 holds 21 and goes entirely"
    );
    ensure!(log.segment_base_offsets().len() < segs_before);
    ensure!(read_all(&log, 0)?.last() == Some(&(18, 19)));
    let info = log.append_as_leader(&batch(1, 5, 5), 0)?;
    ensure!(info.first_offset == 20);
    ensure!(log.truncate_to(100)? == 21, "past the end is a no-op");
    // Below the start: empties the log and restarts there.
    ensure!(log.truncate_to(0)? == 0);
    ensure!(log.segment_base_offsets() == vec![0]);
    ensure!(log.append_as_leader(&batch(1, 5, 5), 0)?.first_offset == 0);
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config())?;
    ensure!(log.log_end_offset() == 1);
    Ok(())
}

#[test]
fn delete_records_moves_log_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), small_config())?;
    for _ in 0..30 {
        log.append_as_leader(&batch(2, 80, 5), 0)?;
    }
    let bases = log.segment_base_offsets();
    let cut = bases[2] + 1;
    ensure!(log.delete_records_before(cut)? == cut);
    ensure!(log.log_start_offset() == cut);
    ensure!(log.segment_base_offsets()[0] == bases[2]);
    ensure!(matches!(
        log.read(cut - 1, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    ensure!(log.read(cut, 100, i64::MAX, true)?.region.is_some());
    ensure!(log.delete_records_before(1)? == cut, "never moves back");
    ensure!(matches!(
        log.delete_records_before(1000),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Up to the log end: every older segment goes, the active one stays.
    ensure!(log.delete_records_before(60)? == 60);
    ensure!(log.segment_base_offsets().len() == 1);
    Ok(())
}

#[test]
fn retention_by_time_and_size_never_deletes_active() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    let config = LogConfig {
        retention_ms: 1000,
        retention_bytes: -1,
        ..small_config()
    };
    let log = open_with_clock(dir.path(), config, Arc::clone(&clock))?;
    for i in 0..30 {
        log.append_as_leader(&batch(1, 90, i * 100), 0)?;
    }
    let before = log.segment_base_offsets();
    // Segment max timestamps are multiples of 100 up to 2900; at now=2500 only those
    // whose newest batch is older than 1500 go.
    let out = log.delete_old_segments(2500, i64::MAX)?;
    ensure!(out.deleted_segments > 0 && out.deleted_segments < before.len());
    ensure!(log.log_start_offset() == log.segment_base_offsets()[0]);
    ensure!(out.log_start_offset == log.log_start_offset());
    let out = log.delete_old_segments(1_000_000, i64::MAX)?;
    ensure!(
        log.segment_base_offsets().len() == 1,
        "active segment kept: {out:?}"
    );
    ensure!(log.log_start_offset() == *before.last().context("bases")?);

    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        retention_ms: -1,
        retention_bytes: 2000,
        ..small_config()
    };
    let log = open_with_clock(dir.path(), config, clock)?;
    for _ in 0..40 {
        log.append_as_leader(&batch(1, 90, 0), 0)?;
    }
    log.delete_old_segments(0, i64::MAX)?;
    let size = log.size_in_bytes();
    ensure!(size <= 2000 + 1024, "size {size}");
    ensure!(size > 2000 - 1024);
    Ok(())
}

/// Regression (review of the storage code): retention deleted segments above the
/// high-water mark, i.e. records no consumer had been able to read yet.
#[test]
fn retention_never_deletes_above_the_high_water_mark() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    let config = LogConfig {
        retention_ms: 1000,
        ..small_config()
    };
    let log = open_with_clock(dir.path(), config, clock)?;
    for _ in 0..30 {
        log.append_as_leader(&batch(1, 90, 0), 0)?;
    }
    let bases = log.segment_base_offsets();
    ensure!(bases.len() > 3, "want several segments");
    // Everything is ancient, but only what lies below HW = third segment's base may go.
    let hw = bases[2];
    let out = log.delete_old_segments(1_000_000, hw)?;
    ensure!(out.deleted_segments == 2, "{out:?}");
    ensure!(log.log_start_offset() == hw);
    let out = log.delete_old_segments(1_000_000, hw)?;
    ensure!(out.deleted_segments == 0, "{out:?}");
    Ok(())
}

#[test]
fn segment_ms_rolls_by_time() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let log = open_with_clock(dir.path(), config, Arc::clone(&clock))?;
    log.append_as_leader(&batch(1, 10, 100), 0)?;
    log.append_as_leader(&batch(1, 10, 900), 0)?;
    ensure!(log.segment_base_offsets().len() == 1);
    log.append_as_leader(&batch(1, 10, 1200), 0)?;
    ensure!(log.segment_base_offsets() == vec![0, 2]);
    Ok(())
}

#[test]
fn full_index_rolls_segment() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        segment_index_bytes: 48, // 6 offset entries, 4 time entries
        index_interval_bytes: 0,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config)?;
    for i in 0..20 {
        log.append_as_leader(&batch(1, 10, i), 0)?;
    }
    ensure!(log.segment_base_offsets().len() > 3);
    ensure!(read_all(&log, 0)?.len() == 20);
    Ok(())
}

#[test]
fn group_commit_shares_fsyncs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let syncer = Arc::new(GateSyncer::default());
    let log = Arc::new(PartitionLog::open_with(
        dir.path(),
        LogConfig::default(),
        OpenOptions {
            syncer: Arc::clone(&syncer) as Arc<dyn Syncer>,
            ..OpenOptions::default()
        },
    )?);
    // The first flusher blocks inside fsync while holding the flush lock.
    let first = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || -> Result<i64> {
            let info = log.append_as_leader(&batch(1, 10, 1), 0)?;
            ensure!(log.flush_up_to(info.log_end_offset)? >= info.log_end_offset);
            Ok(info.log_end_offset)
        })
    };
    while syncer.calls.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    const WAITERS: usize = 8;
    let entered = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (log, entered) = (Arc::clone(&log), Arc::clone(&entered));
            std::thread::spawn(move || -> Result<()> {
                let info = log.append_as_leader(&batch(1, 10, 1), 0)?;
                entered.fetch_add(1, Ordering::SeqCst);
                let flushed = log.flush_up_to(info.log_end_offset)?;
                ensure!(
                    flushed >= info.log_end_offset,
                    "{flushed} < {}",
                    info.log_end_offset
                );
                Ok(())
            })
        })
        .collect();
    while entered.load(Ordering::SeqCst) < WAITERS {
        std::thread::yield_now();
    }
    syncer.open();
    first.join().map_err(|_| anyhow::anyhow!("panic"))??;
    for w in waiters {
        w.join().map_err(|_| anyhow::anyhow!("panic"))??;
    }
    // First flush: segment + directory; then one more segment sync covers all 8 waiters.
    let syncs = log.sync_count();
    ensure!(syncs <= 3, "{syncs} syncs for {} flush calls", WAITERS + 1);
    ensure!(log.recovery_point() == log.log_end_offset());
    Ok(())
}

#[test]
fn fsync_failure_takes_log_offline_for_good() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open_with(
        dir.path(),
        LogConfig::default(),
        OpenOptions {
            syncer: Arc::new(FailingSyncer),
            ..OpenOptions::default()
        },
    )?;
    log.append_as_leader(&batch(1, 10, 1), 0)?;
    ensure!(matches!(log.flush(), Err(LogError::Io { .. })));
    ensure!(log.is_offline());
    ensure!(matches!(log.flush(), Err(LogError::Offline { .. })));
    ensure!(matches!(log.flush_up_to(0), Err(LogError::Offline { .. })));
    ensure!(matches!(
        log.append_as_leader(&batch(1, 10, 1), 0),
        Err(LogError::Offline { .. })
    ));
    ensure!(matches!(
        log.read(0, 100, i64::MAX, true),
        Err(LogError::Offline { .. })
    ));
    ensure!(log.close().is_err());
    ensure!(log.recovery_point() == 0, "nothing may be reported durable");
    Ok(())
}

#[test]
fn closed_log_refuses_appends_and_reopens_cleanly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), small_config())?;
    for i in 0..10 {
        log.append_as_leader(&batch(1, 100, i), 0)?;
    }
    log.close()?;
    ensure!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    ensure!(matches!(
        log.append_as_leader(&batch(1, 1, 1), 0),
        Err(LogError::Closed { .. })
    ));
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config())?;
    ensure!(
        !dir.path().join(CLEAN_SHUTDOWN_FILE).exists(),
        "marker removed on open"
    );
    ensure!(log.log_end_offset() == 10);
    ensure!(log.recovery_point() == 10);
    ensure!(log.max_timestamp_offset(i64::MAX)? == Some((9, 9)));
    ensure!(log.append_as_leader(&batch(1, 1, 1), 0)?.first_offset == 10);
    Ok(())
}

fn log_file_len(dir: &Path, base: i64) -> Result<u64> {
    Ok(std::fs::metadata(dir.join(crate::log::segment::file_name(base, "log")))?.len())
}

/// The active segment's file is kept ahead of its data (an append's fsync
/// then leaves the inode alone); a roll and a close trim it, and a crash
/// leaves room that recovery drops without calling it corruption: no
/// record lost, and a segment after one whose trim was lost survives.
#[test]
fn the_room_ahead_of_the_active_segment_is_trimmed_and_survives_a_crash() -> Result<()> {
    use crate::log::segment::GROW_AHEAD_BYTES;
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        segment_bytes: 4096,
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config.clone())?;
    log.append_as_leader(&batch(3, 50, 1000), 1)?;
    let data = log.size_in_bytes();
    ensure!(
        log_file_len(dir.path(), 0)? == data + GROW_AHEAD_BYTES,
        "active file {} for {data} bytes of data",
        log_file_len(dir.path(), 0)?
    );
    // Fill the first segment until it rolls: the rolled file is trimmed.
    while log.segment_base_offsets().len() < 2 {
        log.append_as_leader(&batch(3, 500, 1000), 1)?;
    }
    let bases = log.segment_base_offsets();
    let first_data = {
        let (first, second) = (bases[0], bases[1]);
        let len = log_file_len(dir.path(), first)?;
        ensure!(log_file_len(dir.path(), second)? > GROW_AHEAD_BYTES);
        len
    };
    let end = log.log_end_offset();
    let before = read_all(&log, 0)?;
    log.flush_up_to(end)?;
    // A crash (no close) with a trim of the rolled segment lost as well:
    // its file comes back with room after its data.
    drop(log);
    let first = dir
        .path()
        .join(crate::log::segment::file_name(bases[0], "log"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&first)?
        .set_len(first_data + GROW_AHEAD_BYTES)?;
    let log = PartitionLog::open(dir.path(), config.clone())?;
    ensure!(
        log.log_end_offset() == end,
        "log end {} after the crash, {end} before",
        log.log_end_offset()
    );
    ensure!(
        log.segment_base_offsets() == bases,
        "segments {:?}, were {bases:?}",
        log.segment_base_offsets()
    );
    ensure!(read_all(&log, 0)? == before);
    ensure!(log_file_len(dir.path(), bases[0])? == first_data);
    // A clean close leaves every file at its data.
    log.close()?;
    let active = log_file_len(dir.path(), bases[1])?;
    let log = PartitionLog::open(dir.path(), config)?;
    ensure!(log.log_end_offset() == end);
    ensure!(read_all(&log, 0)? == before);
    ensure!(
        active < GROW_AHEAD_BYTES,
        "closed active segment file {active} bytes"
    );
    Ok(())
}
