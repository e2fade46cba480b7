//! Model-based test: random produce / step / flush / compact / crash sequences
//! against three views (table, count, sum) of one in-memory changelog. After
//! every operation each view must equal the model recomputed from the whole
//! log up to the view's own offsets (so nothing is lost or applied twice, even
//! across crashes), offsets never fall below what was flushed, and after a
//! final catch-up every view matches the whole log.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_protocol::records::Compression;
use brook_views::{AppliedOffsets, Follower, Format, View, ViewDef, ViewKind, ViewOptions};
use common::{MemSource, Rec};
use proptest::prelude::*;

const PARTITIONS: i32 = 3;
const KEYS_PER_PARTITION: u8 = 3;

#[derive(Debug, Clone)]
enum Op {
    Produce {
        partition: i32,
        records: Vec<(u8, Option<u8>)>,
        gap: u8,
        compressed: bool,
    },
    Step,
    Flush(usize),
    Compact,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            0..PARTITIONS,
            prop::collection::vec((0..KEYS_PER_PARTITION, prop::option::weighted(0.8, 0u8..10)), 1..5),
            prop_oneof![3 => Just(0u8), 1 => 1u8..4],
            any::<bool>(),
        )
            .prop_map(|(partition, records, gap, compressed)| Op::Produce {
                partition,
                records,
                gap,
                compressed,
            }),
        4 => Just(Op::Step),
        1 => (0usize..3).prop_map(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Crash),
    ]
}

/// Key `k` of `partition`, as produced.
fn key_name(partition: i32, k: u8) -> Vec<u8> {
    format!("p{partition}k{k}").into_bytes()
}

fn value_json(v: u8) -> Vec<u8> {
    format!(r#"{{"n":{v}}}"#).into_bytes()
}

fn defs() -> Vec<ViewDef> {
    let mk = |name: &str, kind, field: Option<&str>, value_format| ViewDef {
        name: name.into(),
        topic: "changes".into(),
        kind,
        field: field.map(str::to_owned),
        key_format: Format::Utf8,
        value_format,
    };
    vec![
        mk("table", ViewKind::Table, None, Format::Bytes),
        mk("count", ViewKind::Count, None, Format::Bytes),
        mk("sum", ViewKind::Sum, Some("n"), Format::Json),
    ]
}

/// The whole log: partition -> [(offset, key index, value)].
type Log = BTreeMap<i32, Vec<(i64, u8, Option<u8>)>>;

/// What `kind` should hold for key `k` of `partition` after applying the log
/// below `next`, and the offset of the tombstone that deleted it if it is
/// deleted (markers never expire here: the retention is the 24 h default).
fn expected(
    log: &Log,
    kind: ViewKind,
    partition: i32,
    k: u8,
    next: i64,
) -> (Option<Vec<u8>>, Option<i64>) {
    let recs = log.get(&partition).into_iter().flatten();
    let mut state: Option<(Vec<u8>, u64, i64)> = None; // (latest value, count, sum)
    let mut deleted_at = None;
    for &(offset, key, value) in recs {
        if offset >= next || key != k {
            continue;
        }
        deleted_at = value.is_none().then_some(offset);
        state = value.map(|v| {
            let (c, s) = state.as_ref().map_or((0, 0), |(_, c, s)| (*c, *s));
            (value_json(v), c + 1, s + i64::from(v))
        });
    }
    let value = state.map(|(latest, count, sum)| match kind {
        ViewKind::Table | ViewKind::Latest => latest,
        ViewKind::Count => count.to_string().into_bytes(),
        ViewKind::Sum => sum.to_string().into_bytes(),
    });
    (value, deleted_at)
}

fn check(view: &View, log: &Log) -> Result<AppliedOffsets, TestCaseError> {
    let published = view.published();
    for partition in 0..PARTITIONS {
        let next = published.offsets.get(&partition).copied().unwrap_or(0);
        for k in 0..KEYS_PER_PARTITION {
            let got = view
                .get(&key_name(partition, k))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got.offsets, &published.offsets);
            let (want, deleted_at) = expected(log, view.def().kind, partition, k, next);
            prop_assert_eq!(
                got.deleted_at,
                deleted_at,
                "deleted_at: view {} partition {} key {} next {}",
                view.def().name,
                partition,
                k,
                next
            );
            prop_assert_eq!(
                got.value.map(|b| b.to_vec()),
                want,
                "view {} partition {} key {} next {}",
                view.def().name,
                partition,
                k,
                next
            );
        }
    }
    Ok(published.offsets.clone())
}

struct Harness {
    dirs: Vec<tempfile::TempDir>,
    followers: Vec<Follower<MemSource>>,
    flushed: Vec<AppliedOffsets>,
    source: MemSource,
    options: ViewOptions,
}

impl Harness {
    fn new() -> anyhow::Result<Self> {
        let source = MemSource::new("changes", PARTITIONS);
        let options = ViewOptions {
            read_max_bytes: 1, // one batch per partition and step
            max_memtable_bytes: 4 << 10,
            ..ViewOptions::default()
        };
        let dirs = (0..3)
            .map(|_| tempfile::tempdir())
            .collect::<Result<Vec<_>, _>>()?;
        let mut h = Harness {
            dirs,
            followers: Vec::new(),
            flushed: vec![AppliedOffsets::new(); 3],
            source,
            options,
        };
        h.reopen()?;
        Ok(h)
    }

    fn reopen(&mut self) -> anyhow::Result<()> {
        self.followers.clear(); // drops the views: unflushed data is lost
        for (dir, def) in self.dirs.iter().zip(defs()) {
            let view = common::open(dir.path(), &def, &self.options)?;
            self.followers
                .push(Follower::new(view, self.source.clone()));
        }
        Ok(())
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let fail = |e: anyhow::Error| TestCaseError::fail(format!("{e:#}"));
    let mut h = Harness::new().map_err(fail)?;
    let mut log: Log = BTreeMap::new();
    for op in ops {
        match op {
            Op::Produce {
                partition,
                records,
                gap,
                compressed,
            } => {
                let recs: Vec<Rec> = records
                    .iter()
                    .map(|&(k, v)| (Some(key_name(partition, k)), v.map(value_json)))
                    .collect();
                let codec = if compressed {
                    Compression::Lz4
                } else {
                    Compression::None
                };
                let offsets = h
                    .source
                    .append(partition, &recs, i64::from(gap), codec)
                    .map_err(fail)?;
                let entry = log.entry(partition).or_default();
                for (o, (k, v)) in offsets.into_iter().zip(records) {
                    entry.push((o, k, v));
                }
            }
            Op::Step => {
                for f in &mut h.followers {
                    f.step().map_err(|e| fail(e.into()))?;
                }
            }
            Op::Flush(i) => {
                if let Some(f) = h.followers.get(i) {
                    f.view().flush().map_err(|e| fail(e.into()))?;
                    h.flushed[i] = f.view().published().offsets.clone();
                }
            }
            Op::Compact => {
                for f in &h.followers {
                    f.view().maybe_flush().map_err(|e| fail(e.into()))?;
                    f.view().maybe_compact().map_err(|e| fail(e.into()))?;
                }
            }
            Op::Crash => {
                h.reopen().map_err(fail)?;
                for (f, flushed) in h.followers.iter().zip(&h.flushed) {
                    let now = f.view().published().offsets.clone();
                    for (p, o) in flushed {
                        prop_assert!(now.get(p).copied().unwrap_or(0) >= *o, "lost flushed data");
                    }
                }
            }
        }
        for f in &h.followers {
            check(f.view(), &log)?;
        }
    }
    // Catch up and compare with the whole log.
    for f in &mut h.followers {
        let mut steps = 0;
        while !f.step().map_err(|e| fail(e.into()))?.caught_up() {
            steps += 1;
            prop_assert!(steps < 10_000, "no progress");
        }
        let offsets = check(f.view(), &log)?;
        for p in 0..PARTITIONS {
            prop_assert_eq!(offsets.get(&p).copied().unwrap_or(0), h.source.log_end(p));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn views_match_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

#[test]
fn crash_replays_only_the_unflushed_tail() -> anyhow::Result<()> {
    let source = MemSource::new("changes", 1);
    let dir = tempfile::tempdir()?;
    let def = &defs()[1]; // count
    let options = ViewOptions::default();
    let produce = |v: u8| {
        source.append(
            0,
            &[(Some(b"k".to_vec()), Some(vec![v]))],
            0,
            Compression::None,
        )
    };
    produce(1)?;
    produce(2)?;
    let view = common::open(dir.path(), def, &options)?;
    let mut f = Follower::new(Arc::clone(&view), source.clone());
    f.step()?;
    view.flush()?;
    produce(3)?;
    f.step()?;
    assert_eq!(view.get(b"k")?.value.as_deref(), Some(&b"3"[..]));
    drop(f);
    drop(view);

    let view = common::open(dir.path(), def, &options)?;
    let got = view.get(b"k")?;
    assert_eq!(
        got.value.as_deref(),
        Some(&b"2"[..]),
        "only flushed state survives"
    );
    assert_eq!(got.offsets.get(&0), Some(&2));
    let mut f = Follower::new(Arc::clone(&view), source.clone());
    assert!(f.step()?.caught_up());
    assert_eq!(
        view.get(b"k")?.value.as_deref(),
        Some(&b"3"[..]),
        "tail replayed once"
    );
    Ok(())
}

#[test]
fn replaying_records_is_a_noop() -> anyhow::Result<()> {
    use brook_protocol::records::Record;
    let dir = tempfile::tempdir()?;
    let view = common::open(dir.path(), &defs()[2], &ViewOptions::default())?; // sum of n
    let rec = |offset: i64, n: u8| Record {
        offset,
        timestamp: 0,
        key: Some(bytes::Bytes::from_static(b"k")),
        value: Some(value_json(n).into()),
        headers: Vec::new(),
    };
    let batch = [rec(0, 1), rec(1, 2), rec(2, 4)];
    let first = view.apply(0, &batch, 0)?;
    assert_eq!((first.applied, first.next_offset), (3, 3));
    let again = view.apply(0, &batch, 0)?;
    assert_eq!((again.applied, again.duplicates), (0, 3));
    let overlap = view.apply(0, &[rec(2, 4), rec(3, 8)], 0)?;
    assert_eq!((overlap.applied, overlap.duplicates), (1, 1));
    assert_eq!(view.get(b"k")?.value.as_deref(), Some(&b"15"[..]));
    let skipped = view.apply(
        0,
        &[Record {
            value: Some("nope".into()),
            ..rec(4, 0)
        }],
        0,
    )?;
    assert_eq!(
        (skipped.skipped, skipped.next_offset),
        (1, 5),
        "skipped records still advance"
    );
    Ok(())
}

#[test]
fn deleted_keys_answer_with_their_tombstone_offset() -> anyhow::Result<()> {
    use brook_protocol::records::Record;
    use brook_views::ScanRequest;
    use std::time::{Duration, SystemTime};
    let rec = |offset: i64, key: &'static [u8], n: Option<u8>| Record {
        offset,
        timestamp: 0,
        key: Some(bytes::Bytes::from_static(key)),
        value: n.map(|n| value_json(n).into()),
        headers: Vec::new(),
    };
    for def in defs() {
        let dir = tempfile::tempdir()?;
        let view = common::open(dir.path(), &def, &ViewOptions::default())?;
        // Deleted then written again in one batch: no marker; a tombstone for
        // a key never written still records who deleted it.
        view.apply(
            0,
            &[
                rec(0, b"a", Some(1)),
                rec(1, b"a", None),
                rec(2, b"a", Some(2)),
                rec(3, b"b", Some(1)),
                rec(4, b"b", None),
                rec(5, b"c", None),
            ],
            0,
        )?;
        let got = |k: &[u8]| -> anyhow::Result<_> {
            let l = view.get(k)?;
            Ok((l.value.is_some(), l.deleted_at))
        };
        assert_eq!(got(b"a")?, (true, None), "{}", def.name);
        assert_eq!(got(b"b")?, (false, Some(4)), "{}", def.name);
        assert_eq!(got(b"c")?, (false, Some(5)), "{}", def.name);
        assert_eq!(got(b"zz")?, (false, None), "{}", def.name);
        let all = view.scan(&ScanRequest::default())?;
        let keys: Vec<_> = all.entries.iter().map(|e| e.key.to_vec()).collect();
        assert_eq!(keys, vec![b"a".to_vec()], "scans never see markers");

        // Survives a flush and a reopen; writing the key again clears it.
        view.flush()?;
        drop(view);
        let view = common::open(dir.path(), &def, &ViewOptions::default())?;
        assert_eq!(view.get(b"b")?.deleted_at, Some(4));
        view.apply(0, &[rec(6, b"b", Some(3))], 0)?;
        assert_eq!(view.get(b"b")?.deleted_at, None);
        view.apply(0, &[rec(7, b"b", None)], 0)?;
        assert_eq!(view.get(b"b")?.deleted_at, Some(7));

        // Kept for the retention, dropped by the sweep after it.
        assert_eq!(view.sweep_deleted_markers(SystemTime::now())?, 0);
        assert_eq!(view.get(b"c")?.deleted_at, Some(5));
        let later = SystemTime::now() + Duration::from_secs(25 * 3600);
        assert_eq!(view.sweep_deleted_markers(later)?, 2);
        assert_eq!(view.get(b"b")?.deleted_at, None);
        assert_eq!(view.get(b"c")?.deleted_at, None);
        assert!(view.get(b"a")?.value.is_some());
    }
    Ok(())
}
