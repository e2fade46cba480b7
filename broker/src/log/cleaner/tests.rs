//! Cleaner tests: a model-based property test, the swap's crash recovery, producer
//! state and tombstone horizons.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use brook_protocol::records::{BatchBuilder, BatchIter, Compression, RecordBatch};
use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::log::partition_log::{OpenOptions, PartitionLog};
use crate::log::test_batches::{region_bytes, FakeClock};
use crate::log::LogConfig;

type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 64,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, clock: &Arc<FakeClock>, cleaner_offset: i64) -> Result<PartitionLog> {
    Ok(PartitionLog::open_with(
        dir,
        config(),
        OpenOptions {
            clock: clock.clone(),
            cleaner_offset,
            ..OpenOptions::default()
        },
    )?)
}

fn params(delete_retention_ms: i64) -> CleanParams {
    CleanParams {
        min_cleanable_ratio: 0.0,
        delete_retention_ms,
        ..CleanParams::default()
    }
}

/// Append one batch of `(key, value)` records; returns the offsets given.
fn produce(
    log: &PartitionLog,
    recs: &[KeyValue],
    codec: Compression,
    producer: Option<(i64, i32)>,
    ts: i64,
) -> Result<(i64, i64)> {
    let mut b = BatchBuilder::new();
    if let Some((pid, seq)) = producer {
        b.set_producer(pid, 0, seq);
    }
    for (k, v) in recs {
        b.append(ts, k.as_deref(), v.as_deref(), &[])?;
    }
    let bytes = b.build(codec)?.to_vec();
    let info = log.append_as_leader(&bytes, 0)?;
    Ok((info.first_offset, info.last_offset))
}

/// Every record in the log, decoded, with each batch's header checked.
fn read_records(log: &PartitionLog) -> Result<Vec<Rec>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let mut last = -1i64;
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, i64::MAX, true)?;
        let Some(region) = r.region else { break };
        let bytes = Bytes::from(region_bytes(&region)?);
        let mut next = offset;
        for (at, h) in BatchIter::new(&bytes) {
            let size = h.total_size().context("batch size")?;
            let batch = RecordBatch::decode(&bytes.slice(at..at + size), 1 << 24)?;
            ensure!(
                h.base_offset() > last,
                "batches out of order at {}",
                h.base_offset()
            );
            for rec in batch.records() {
                let rec = rec?;
                ensure!(rec.offset > last, "offset {} not increasing", rec.offset);
                ensure!(rec.offset <= h.last_offset(), "record past its batch end");
                last = rec.offset;
                out.push((
                    rec.offset,
                    rec.key.map(|k| k.to_vec()),
                    rec.value.map(|v| v.to_vec()),
                ));
            }
            next = h.last_offset() + 1;
        }
        ensure!(next > offset, "read made no progress at {offset}");
        offset = next;
    }
    Ok(out)
}

/// Check the log against the model (every record ever appended): offsets keep their
/// records, nothing at or above `cleaned_to` was removed, nothing below it is
/// superseded, and each key's latest value is the model's.
fn check(log: &PartitionLog, model: &[Rec], cleaned_to: i64) -> Result<()> {
    let got = check_latest(log, model)?;
    let present: BTreeMap<i64, &Rec> = got.iter().map(|r| (r.0, r)).collect();
    let mut latest_below: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for r in model.iter().filter(|r| r.0 < cleaned_to) {
        if let Some(k) = &r.1 {
            latest_below.insert(k.clone(), r.0);
        }
    }
    for r in model {
        if r.0 >= cleaned_to {
            ensure!(present.contains_key(&r.0), "dirty record {} lost", r.0);
            continue;
        }
        let is_latest =
            r.1.as_ref()
                .is_some_and(|k| latest_below.get(k) == Some(&r.0));
        if present.contains_key(&r.0) {
            ensure!(is_latest, "superseded record {} survived a clean", r.0);
        } else if is_latest {
            ensure!(r.2.is_none(), "latest value at {} was removed", r.0);
        }
    }
    Ok(())
}

/// Offsets keep their records and each key reads its latest value; returns the log.
fn check_latest(log: &PartitionLog, model: &[Rec]) -> Result<Vec<Rec>> {
    let got = read_records(log)?;
    let by_offset: BTreeMap<i64, &Rec> = model.iter().map(|r| (r.0, r)).collect();
    for r in &got {
        let m = by_offset
            .get(&r.0)
            .context("record at an offset never written")?;
        ensure!(
            *m == r,
            "offset {} changed meaning: {:?} vs {:?}",
            r.0,
            m,
            r
        );
    }
    let mut want: BTreeMap<&Vec<u8>, &Option<Vec<u8>>> = BTreeMap::new();
    for r in model {
        if let Some(k) = &r.1 {
            want.insert(k, &r.2);
        }
    }
    let mut have: BTreeMap<&Vec<u8>, &Option<Vec<u8>>> = BTreeMap::new();
    for r in &got {
        if let Some(k) = &r.1 {
            have.insert(k, &r.2);
        }
    }
    for (k, v) in want {
        match (v, have.get(k)) {
            (Some(v), Some(Some(h))) => ensure!(v == h, "key {k:?}: {h:?} instead of {v:?}"),
            (Some(_), other) => anyhow::bail!("key {k:?}: latest value lost ({other:?})"),
            (None, None | Some(None)) => {}
            (None, Some(Some(h))) => anyhow::bail!("key {k:?}: deleted, still reads {h:?}"),
        }
    }
    Ok(got)
}

#[derive(Debug, Clone)]
enum Op {
    Produce(Vec<(Option<u8>, Option<u8>)>, u8),
    Clean { advance_ms: i64, map_entries: usize },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec(
                (prop::option::weighted(0.95, 0u8..12), prop::option::weighted(0.8, any::<u8>())),
                1..6
            ),
            0u8..3
        )
            .prop_map(|(r, c)| Op::Produce(r, c)),
        2 => (0i64..300, 1usize..20).prop_map(|(advance_ms, map_entries)| Op::Clean { advance_ms, map_entries }),
        1 => Just(Op::Reopen),
    ]
}

fn run_model(ops: Vec<Op>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    clock.0.store(1_000_000, Ordering::SeqCst);
    let mut log = open(dir.path(), &clock, 0)?;
    let mut model: Vec<Rec> = Vec::new();
    for op in ops {
        match op {
            Op::Produce(recs, codec) => {
                let recs: Vec<_> = recs
                    .into_iter()
                    .map(|(k, v)| (k.map(|k| vec![b'k', k]), v.map(|v| vec![v; 3])))
                    .collect();
                let codec =
                    [Compression::None, Compression::Lz4, Compression::Zstd][usize::from(codec)];
                let now = clock.now_ms();
                let (first, _) = produce(&log, &recs, codec, None, now)?;
                for (i, (k, v)) in recs.into_iter().enumerate() {
                    model.push((first + i as i64, k, v));
                }
            }
            Op::Clean {
                advance_ms,
                map_entries,
            } => {
                clock.0.fetch_add(advance_ms, Ordering::SeqCst);
                let mut map = OffsetMap::with_memory(map_entries * offset_map::ENTRY_BYTES);
                let hw = log.log_end_offset();
                log.clean(hw, &params(100), &mut map, &Throttler::unlimited(), false)?;
                check(&log, &model, log.cleaned_offset())?;
            }
            Op::Reopen => {
                let cleaned = log.cleaned_offset();
                drop(log);
                log = open(dir.path(), &clock, cleaned)?;
                check(&log, &model, cleaned)?;
            }
        }
    }
    let cleaned = log.cleaned_offset();
    check(&log, &model, cleaned)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn cleaning_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run_model(ops).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
    }
}

use crate::log::config::Clock as _;

/// A log of many segments with few keys: most of it is superseded.
fn build_dirty_log(dir: &Path, clock: &Arc<FakeClock>) -> Result<(PartitionLog, Vec<Rec>)> {
    let log = open(dir, clock, 0)?;
    let mut model = Vec::new();
    for i in 0..60u8 {
        let recs = vec![(Some(vec![b'k', i % 5]), Some(vec![i; 20]))];
        let (first, _) = produce(&log, &recs, Compression::None, None, clock.now_ms())?;
        model.push((first, recs[0].0.clone(), recs[0].1.clone()));
    }
    ensure!(
        log.segment_base_offsets().len() > 4,
        "want several segments"
    );
    Ok((log, model))
}

#[test]
fn clean_shrinks_the_log_and_keeps_latest_values() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    let (log, model) = build_dirty_log(dir.path(), &clock)?;
    let before = log.size_in_bytes();
    let section = log.dirty_section(log.log_end_offset(), 0, &params(0))?;
    ensure!(section.ratio() > 0.99, "a never-cleaned log is all dirty");
    let mut map = OffsetMap::with_memory(1 << 20);
    let out = log
        .clean(
            log.log_end_offset(),
            &params(0),
            &mut map,
            &Throttler::unlimited(),
            false,
        )?
        .context("a dirty log is cleaned")?;
    ensure!(
        log.size_in_bytes() < before / 2,
        "{} → {}",
        before,
        log.size_in_bytes()
    );
    ensure!(out.cleaned_to == section.first_uncleanable);
    check(&log, &model, out.cleaned_to)?;
    // The active segment was not touched.
    let last = model.last().context("model")?.0;
    ensure!(read_records(&log)?.last().map(|r| r.0) == Some(last));
    // Nothing dirty now: no second clean.
    ensure!(log
        .clean(
            log.log_end_offset(),
            &params(0),
            &mut map,
            &Throttler::unlimited(),
            false
        )?
        .is_none());
    Ok(())
}

#[test]
fn clean_never_touches_data_at_or_above_the_high_water_mark() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    let (log, model) = build_dirty_log(dir.path(), &clock)?;
    let hw = 20;
    let mut map = OffsetMap::with_memory(1 << 20);
    log.clean(hw, &params(0), &mut map, &Throttler::unlimited(), true)?;
    ensure!(log.cleaned_offset() <= hw);
    for r in model.iter().filter(|r| r.0 >= hw) {
        ensure!(
            read_records(&log)?.iter().any(|g| g.0 == r.0),
            "record {} above HW removed",
            r.0
        );
    }
    Ok(())
}

#[test]
fn a_crash_at_every_swap_step_recovers_a_valid_log() -> Result<()> {
    for step in [SwapStep::Committed, SwapStep::OldDeleted, SwapStep::Renamed] {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(FakeClock::default());
        let (log, model) = build_dirty_log(dir.path(), &clock)?;
        let leo = log.log_end_offset();
        let mut map = OffsetMap::with_memory(1 << 20);
        log.clean_with(
            leo,
            &params(0),
            &mut map,
            &Throttler::unlimited(),
            true,
            Some(step),
        )?;
        drop(log); // no close: an unclean stop
        let log = open(dir.path(), &clock, 0)?;
        ensure!(log.log_end_offset() == leo, "{step:?}: log end moved");
        // Whatever was swapped holds only latest values; the rest is untouched.
        check_latest(&log, &model).with_context(|| format!("{step:?}"))?;
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned"))
            .collect();
        ensure!(leftovers.is_empty(), "{step:?}: left {leftovers:?}");
        let out = log
            .clean(leo, &params(0), &mut map, &Throttler::unlimited(), true)?
            .context("clean after recovery")?;
        check(&log, &model, out.cleaned_to).with_context(|| format!("{step:?} after re-clean"))?;
    }
    Ok(())
}

#[test]
fn a_crash_while_writing_cleaned_files_is_rolled_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    let (log, model) = build_dirty_log(dir.path(), &clock)?;
    let leo = log.log_end_offset();
    drop(log);
    std::fs::write(
        dir.path().join("00000000000000000000.log.cleaned"),
        b"half written",
    )?;
    let log = open(dir.path(), &clock, 0)?;
    ensure!(!dir.path().join("00000000000000000000.log.cleaned").exists());
    ensure!(log.log_end_offset() == leo);
    check(&log, &model, 0)
}

/// A log at t=10 s: key `gone` written then deleted (returns the tombstone's
/// offset), then 30 other keys so the tombstone lies in a cleanable segment.
fn tombstone_log(
    dir: &Path,
    clock: &Arc<FakeClock>,
) -> Result<(PartitionLog, Option<Vec<u8>>, i64)> {
    clock.0.store(10_000, Ordering::SeqCst);
    let log = open(dir, clock, 0)?;
    let key = Some(b"gone".to_vec());
    let old = [(key.clone(), Some(vec![1; 50]))];
    produce(&log, &old, Compression::None, None, 10_000)?;
    let (tomb, _) = produce(
        &log,
        &[(key.clone(), None)],
        Compression::None,
        None,
        10_000,
    )?;
    for i in 0..30u8 {
        let recs = [(Some(vec![b'x', i]), Some(vec![i; 30]))];
        produce(&log, &recs, Compression::None, None, 10_000)?;
    }
    Ok((log, key, tomb))
}

#[test]
fn tombstones_stay_for_delete_retention_then_go() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    let (log, key, tomb) = tombstone_log(dir.path(), &clock)?;
    let hw = log.log_end_offset();
    let mut map = OffsetMap::with_memory(1 << 20);
    let t = Throttler::unlimited();
    log.clean(hw, &params(1_000), &mut map, &t, true)?;
    let has_tomb =
        |log: &PartitionLog| -> Result<bool> { Ok(read_records(log)?.iter().any(|r| r.0 == tomb)) };
    ensure!(has_tomb(&log)?, "first clean keeps the tombstone");
    ensure!(
        !read_records(&log)?.iter().any(|r| r.0 < tomb && r.1 == key),
        "old value gone"
    );
    clock.0.fetch_add(999, Ordering::SeqCst);
    log.clean(hw, &params(1_000), &mut map, &t, true)?;
    ensure!(has_tomb(&log)?, "kept until the horizon");
    clock.0.fetch_add(2, Ordering::SeqCst);
    log.clean(hw, &params(1_000), &mut map, &t, true)?;
    ensure!(!has_tomb(&log)?, "removed after the horizon");
    Ok(())
}

/// Regression: the earliest horizon lived only in memory, so after a restart a log
/// with nothing dirty kept an expired tombstone for ever.
#[test]
fn a_tombstone_whose_horizon_passed_while_down_goes_after_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    let (log, _, tomb) = tombstone_log(dir.path(), &clock)?;
    let hw = log.log_end_offset();
    let mut map = OffsetMap::with_memory(1 << 20);
    let p = params(1_000);
    log.clean(hw, &p, &mut map, &Throttler::unlimited(), true)?;
    let cleaned = log.cleaned_offset();
    ensure!(
        read_records(&log)?.iter().any(|r| r.0 == tomb),
        "tombstone kept at first"
    );
    drop(log);
    clock.0.fetch_add(5_000, Ordering::SeqCst);
    let log = open(dir.path(), &clock, cleaned)?;
    ensure!(
        log.needs_cleaning(hw, clock.now_ms(), &p)?,
        "expired tombstone not noticed"
    );
    log.clean(hw, &p, &mut map, &Throttler::unlimited(), false)?;
    ensure!(
        !read_records(&log)?.iter().any(|r| r.0 == tomb),
        "expired tombstone kept"
    );
    ensure!(
        !log.needs_cleaning(hw, clock.now_ms(), &p)?,
        "nothing left to do"
    );
    Ok(())
}

#[test]
fn a_producers_last_batch_survives_as_a_header() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    let log = open(dir.path(), &clock, 0)?;
    let k = Some(b"k".to_vec());
    // Producer 7's only batch is superseded by a non-idempotent write.
    let (_, last7) = produce(
        &log,
        &[(k.clone(), Some(vec![1; 80]))],
        Compression::None,
        Some((7, 5)),
        0,
    )?;
    overwrite(&log, b"k", 20, 40)?;
    clean_all(&log)?;
    let r = log.read(0, 1 << 20, i64::MAX, true)?;
    let bytes = region_bytes(&r.region.context("data")?)?;
    let (_, h) = BatchIter::new(&bytes).next().context("a batch")?;
    ensure!(h.producer_id() == 7 && h.record_count() == 0 && h.last_offset() == last7);
    ensure!(
        h.last_sequence() == 5,
        "sequence kept: {}",
        h.last_sequence()
    );
    let mut table = crate::producer_state::ProducerStateTable::default();
    crate::producer_state::rebuild(&log, &mut table)?;
    Ok(())
}

/// `count` single-record batches of `key`, values `len` bytes of their index.
fn overwrite(log: &PartitionLog, key: &[u8], count: u8, len: usize) -> Result<()> {
    for i in 0..count {
        let recs = [(Some(key.to_vec()), Some(vec![i; len]))];
        produce(log, &recs, Compression::None, None, 0)?;
    }
    Ok(())
}

/// Clean everything below the log end; whether there was anything to clean.
fn clean_all(log: &PartitionLog) -> Result<bool> {
    let mut map = OffsetMap::with_memory(1 << 20);
    let out = log.clean(
        log.log_end_offset(),
        &params(0),
        &mut map,
        &Throttler::unlimited(),
        true,
    )?;
    Ok(out.is_some())
}

/// The batches of one read, as (base offset, record count).
fn batches_of(r: &crate::log::ReadResult) -> Result<Vec<(i64, i32)>> {
    let Some(region) = &r.region else {
        return Ok(Vec::new());
    };
    let bytes = region_bytes(region)?;
    Ok(BatchIter::new(&bytes)
        .map(|(_, h)| (h.base_offset(), h.record_count()))
        .collect())
}

#[test]
fn a_consumer_read_skips_the_empty_batches_a_clean_leaves() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(FakeClock::default());
    let log = open(dir.path(), &clock, 0)?;
    // One key written over and over: the clean leaves every segment but the
    // active one holding only its group's header-only last batch.
    overwrite(&log, b"k", 60, 20)?;
    ensure!(clean_all(&log)?, "a dirty log is cleaned");
    let segments = log.segment_base_offsets();
    ensure!(segments.len() > 4, "segments after the clean: {segments:?}");
    let active = *segments.last().context("segments")?;
    let end = log.log_end_offset();

    // A replica copies every batch, empty ones included.
    let all = batches_of(&log.read(0, 1 << 20, end, true)?)?;
    ensure!(
        all.first().is_some_and(|b| b.1 == 0),
        "a follower's read starts at the empty batch: {all:?}"
    );
    // A consumer's read starts at the first batch with a record, past every
    // emptied segment: the key's last write below the active segment (the clean's
    // offset map covered the segments before it only).
    let r = log.read_records(0, 1 << 20, end, true)?;
    let got = batches_of(&r)?;
    ensure!(
        got.first() == Some(&(active - 1, 1)),
        "a consumer's read from 0: {got:?} (active segment at {active})"
    );
    ensure!(r.first_offset == Some(active - 1) && r.next_offset == Some(active));
    // Every read from every offset brings a record, or is empty at the end.
    for offset in 0..end {
        let got = batches_of(&log.read_records(offset, 1 << 20, end, true)?)?;
        ensure!(
            got.first().is_some_and(|b| b.1 > 0),
            "a read from {offset} brought no record first: {got:?}"
        );
    }
    // Below a visible limit with nothing but empty batches before it, the read is
    // the last empty batch alone, so the reader moves past them.
    let limit = active - 1;
    let r = log.read_records(0, 1 << 20, limit, true)?;
    let got = batches_of(&r)?;
    ensure!(
        got.len() == 1 && got[0].1 == 0 && r.next_offset > Some(0) && r.next_offset <= Some(limit),
        "a read of empty batches only: {got:?}, next {:?}",
        r.next_offset
    );
    Ok(())
}
