//! Scans (prefix, range, reverse, limit), cursor paging pinned to a snapshot
//! while writes, flushes and compactions go on, and read-your-writes waits.

mod common;

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::records::{Compression, Record};
use brook_views::{ScanRequest, View, ViewDef, ViewError, ViewOptions};
use bytes::Bytes;

fn rec(offset: i64, key: &str, value: Option<&str>) -> Record {
    Record {
        offset,
        timestamp: 0,
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        headers: Vec::new(),
    }
}

/// A table view holding `a0..a9`, `b0..b9` with value = key, at offsets 0..20.
fn filled(options: ViewOptions) -> anyhow::Result<(tempfile::TempDir, Arc<View>)> {
    let dir = tempfile::tempdir()?;
    let view = common::open(dir.path(), &ViewDef::table("t", "topic"), &options)?;
    let mut records = Vec::new();
    for (i, k) in ["a", "b"]
        .iter()
        .flat_map(|p| (0..10).map(move |n| format!("{p}{n}")))
        .enumerate()
    {
        records.push(rec(i64::try_from(i)?, &k, Some(&k)));
    }
    view.apply(0, &records, 0)?;
    Ok((dir, view))
}

fn keys(page: &brook_views::ScanPage) -> Vec<String> {
    page.entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.key).into_owned())
        .collect()
}

fn b(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn prefix_range_reverse_limit() -> anyhow::Result<()> {
    let (_dir, view) = filled(ViewOptions::default())?;
    let page = view.scan(&ScanRequest {
        prefix: b("b"),
        limit: 3,
        ..Default::default()
    })?;
    assert_eq!(keys(&page), ["b0", "b1", "b2"]);
    assert!(page.cursor.is_some());
    assert_eq!(page.offsets.get(&0), Some(&20));

    let page = view.scan(&ScanRequest {
        prefix: b("a"),
        reverse: true,
        limit: 2,
        ..Default::default()
    })?;
    assert_eq!(keys(&page), ["a9", "a8"]);

    let page = view.scan(&ScanRequest {
        from: b("a8"),
        to: b("b2"),
        ..Default::default()
    })?;
    assert_eq!(keys(&page), ["a8", "a9", "b0", "b1"]);
    assert!(page.cursor.is_none());

    let page = view.scan(&ScanRequest {
        from: b("a5"),
        to: b("b5"),
        prefix: b("b"),
        reverse: true,
        ..Default::default()
    })?;
    assert_eq!(keys(&page), ["b4", "b3", "b2", "b1", "b0"]);

    let page = view.scan(&ScanRequest {
        from: b("b5"),
        to: b("a5"),
        ..Default::default()
    })?;
    assert!(page.entries.is_empty());
    let page = view.scan(&ScanRequest {
        prefix: b("c"),
        ..Default::default()
    })?;
    assert!(page.entries.is_empty() && page.cursor.is_none());
    let page = view.scan(&ScanRequest::default())?;
    assert_eq!(page.entries.len(), 20);
    assert_eq!(page.entries[0].value, Bytes::from_static(b"a0"));
    Ok(())
}

fn page_all(
    view: &View,
    mut req: ScanRequest,
    mut between_pages: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut snapshot = None;
    for i in 0.. {
        let page = view.scan(&req)?;
        assert!(
            snapshot.is_none_or(|s| s == page.snapshot),
            "every page reads one snapshot"
        );
        snapshot = Some(page.snapshot);
        out.extend(keys(&page));
        match page.cursor {
            Some(c) => req.cursor = Some(c),
            None => break,
        }
        between_pages(i)?;
    }
    Ok(out)
}

#[test]
fn cursor_paging_is_stable_across_writes_flushes_and_compaction() -> anyhow::Result<()> {
    let options = ViewOptions {
        l0_threshold: 2,
        ..ViewOptions::default()
    };
    let (_dir, view) = filled(options)?;
    let mut next = 20;
    let mut writes = |i: usize| -> anyhow::Result<()> {
        // Delete a key ahead of the scan, insert new ones, overwrite one.
        let recs = vec![
            rec(next, &format!("b{}", 9 - i % 10), None),
            rec(next + 1, &format!("a5x{i}"), Some("new")),
            rec(next + 2, "b8", Some("changed")),
        ];
        next += 3;
        view.apply(0, &recs, 0)?;
        view.flush()?;
        view.maybe_compact()?;
        Ok(())
    };
    let original: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|p| (0..10).map(move |n| format!("{p}{n}")))
        .collect();
    assert_eq!(
        page_all(
            &view,
            ScanRequest {
                limit: 3,
                ..Default::default()
            },
            |_| Ok(())
        )?,
        original
    );
    for reverse in [false, true] {
        let all = ScanRequest {
            limit: 10_000,
            reverse,
            ..Default::default()
        };
        let expect = keys(&view.scan(&all)?);
        let req = ScanRequest {
            limit: 3,
            reverse,
            ..Default::default()
        };
        let during = page_all(&view, req, &mut writes)?;
        assert_eq!(
            during, expect,
            "pages read the first page's snapshot (reverse: {reverse})"
        );
    }
    let now = view.scan(&ScanRequest {
        prefix: b("a5"),
        ..Default::default()
    })?;
    assert!(
        keys(&now).len() > 1,
        "later writes are visible to a new scan"
    );
    assert_eq!(view.get(b"b8")?.value, Some(Bytes::from_static(b"changed")));
    Ok(())
}

#[test]
fn cursor_errors() -> anyhow::Result<()> {
    let options = ViewOptions {
        cursor_ttl: Duration::ZERO,
        ..ViewOptions::default()
    };
    let (dir, view) = filled(options.clone())?;
    let req = ScanRequest {
        limit: 2,
        ..Default::default()
    };
    let cursor = view.scan(&req)?.cursor;
    assert!(cursor.is_some());

    let wrong_direction = ScanRequest {
        cursor: cursor.clone(),
        reverse: true,
        ..req.clone()
    };
    assert!(matches!(
        view.scan(&wrong_direction),
        Err(ViewError::InvalidCursor(_))
    ));
    let garbage = ScanRequest {
        cursor: Some("zz".into()),
        ..req.clone()
    };
    assert!(matches!(
        view.scan(&garbage),
        Err(ViewError::InvalidCursor(_))
    ));

    // A write, then a flush with a zero TTL lets GC pass the cursor's snapshot.
    view.apply(0, &[rec(20, "c", Some("c"))], 0)?;
    std::thread::sleep(Duration::from_millis(2)); // the TTL is measured on a real clock
    view.flush()?;
    let expired = ScanRequest {
        cursor: cursor.clone(),
        ..req.clone()
    };
    assert!(matches!(view.scan(&expired), Err(ViewError::CursorExpired)));

    // Cursors do not survive a reopen.
    let fresh = view.scan(&req)?.cursor;
    drop(view);
    let view = common::open(dir.path(), &ViewDef::table("t", "topic"), &options)?;
    let stale = ScanRequest {
        cursor: fresh,
        ..req
    };
    assert!(matches!(view.scan(&stale), Err(ViewError::CursorExpired)));
    Ok(())
}

#[test]
fn reopen_with_changed_definition_is_refused() -> anyhow::Result<()> {
    let (dir, view) = filled(ViewOptions::default())?;
    drop(view);
    let mut def = ViewDef::table("t", "topic");
    def.kind = brook_views::ViewKind::Count;
    assert!(matches!(
        common::open(dir.path(), &def, &ViewOptions::default())
            .map_err(|e| e.downcast::<ViewError>()),
        Err(Ok(ViewError::Def(_)))
    ));
    Ok(())
}

#[tokio::test]
async fn wait_for_sees_applied_offsets() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let source = common::MemSource::new("topic", 1);
    let view = common::open(
        dir.path(),
        &ViewDef::table("t", "topic"),
        &ViewOptions::default(),
    )?;
    assert!(!view.wait_for(0, 0, Duration::from_millis(10)).await?);
    let offsets = source.append(
        0,
        &[(Some(b"k".to_vec()), Some(b"v".to_vec()))],
        0,
        Compression::Zstd,
    )?;
    let mut follower = brook_views::Follower::new(Arc::clone(&view), source);
    let waiter = {
        let view = Arc::clone(&view);
        tokio::spawn(async move { view.wait_for(0, offsets[0], Duration::from_secs(30)).await })
    };
    let progress = tokio::task::spawn_blocking(move || follower.step()).await??;
    assert!(progress.caught_up());
    assert!(waiter.await??);
    assert_eq!(view.get(b"k")?.value, Some(Bytes::from_static(b"v")));
    Ok(())
}

#[test]
fn follower_handles_gaps_hw_and_log_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let source = common::MemSource::new("topic", 1);
    let view = common::open(
        dir.path(),
        &ViewDef::table("t", "topic"),
        &ViewOptions::default(),
    )?;
    let kv = |k: &str, v: &str| (Some(k.as_bytes().to_vec()), Some(v.as_bytes().to_vec()));
    source.append(0, &[kv("a", "1"), kv("b", "1")], 0, Compression::None)?;
    source.append(0, &[kv("a", "2")], 5, Compression::Gzip)?; // offsets 2..7 compacted away
    source.set_hw(0, Some(2));
    let mut f = brook_views::Follower::new(Arc::clone(&view), source.clone());
    let p = f.step()?;
    assert_eq!(
        (p.partitions[0].next_offset, p.partitions[0].lag),
        (2, 0),
        "stops at the HW"
    );
    source.set_hw(0, None);
    let p = f.step()?;
    assert_eq!((p.partitions[0].next_offset, p.lag()), (8, 0));
    assert_eq!(view.get(b"a")?.value, Some(Bytes::from_static(b"2")));

    // A new view behind a moved log start restarts there.
    source.append(0, &[kv("c", "1")], 0, Compression::Snappy)?;
    source.delete_records(0, 8);
    let dir2 = tempfile::tempdir()?;
    let late = common::open(
        dir2.path(),
        &ViewDef::table("t", "topic"),
        &ViewOptions::default(),
    )?;
    let mut f = brook_views::Follower::new(Arc::clone(&late), source);
    let p = f.step()?;
    assert!(p.caught_up());
    assert_eq!(late.next_offset(0), 9);
    assert_eq!(late.get(b"a")?.value, None);
    assert_eq!(late.get(b"c")?.value, Some(Bytes::from_static(b"1")));
    Ok(())
}
