//! Reopen and crash-recovery behaviour of the on-disk Raft log.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use brook_quorum::{AppRequest, Entry, LogId, LogOptions, LogStore, Vote};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::testing::log_id;
use openraft::{EntryPayload, RaftLogId};

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(AppRequest(format!("cmd-{index}").into_bytes())),
    }
}

fn small_segments() -> LogOptions {
    LogOptions {
        segment_bytes: 200,
        ..LogOptions::default()
    }
}

/// Open, run `f`, and close the store, waiting for its writer to exit.
async fn with_store<T>(dir: &Path, f: impl AsyncFnOnce(&mut LogStore) -> Result<T>) -> Result<T> {
    let mut store = LogStore::open(dir, small_segments())?;
    let exited = store.writer_exited();
    let out = f(&mut store).await;
    drop(store);
    exited.await;
    out
}

async fn append(store: &mut LogStore, entries: Vec<Entry>) -> Result<()> {
    use brook_quorum::TypeConfig;
    // `LogFlushed` can only be made by openraft; `blocking_append` builds one
    // and waits for the callback, i.e. for the fsync.
    openraft::storage::RaftLogStorageExt::<TypeConfig>::blocking_append(store, entries).await?;
    Ok(())
}

async fn ids(store: &mut LogStore) -> Result<Vec<LogId>> {
    Ok(store
        .try_get_log_entries(..)
        .await?
        .iter()
        .map(|e| *e.get_log_id())
        .collect())
}

fn segments(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<_> = fs::read_dir(dir)?
        .map(|d| d.map(|d| d.path()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    Ok(v)
}

#[tokio::test]
async fn reopen_after_append_truncate_purge_gives_the_same_state() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("log");
    let before = with_store(&dir, async |s| {
        append(s, (0..20).map(|i| entry(1, i)).collect()).await?;
        s.truncate(log_id(1, 1, 15)).await?;
        append(s, (15..18).map(|i| entry(2, i)).collect()).await?;
        s.purge(log_id(1, 1, 9)).await?;
        s.save_vote(&Vote::new(2, 1)).await?;
        Ok((ids(s).await?, s.get_log_state().await?))
    })
    .await?;
    assert_eq!(before.0.first().map(|l| l.index), Some(10));
    assert_eq!(before.0.last(), Some(&log_id(2, 1, 17)));
    assert!(segments(&dir)?.len() > 1, "small segments roll");

    let after = with_store(&dir, async |s| {
        Ok((
            ids(s).await?,
            s.get_log_state().await?,
            s.read_vote().await?,
        ))
    })
    .await?;
    assert_eq!(after.0, before.0);
    assert_eq!(after.1, before.1);
    assert_eq!(after.1.last_purged_log_id, Some(log_id(1, 1, 9)));
    assert_eq!(after.2, Some(Vote::new(2, 1)), "vote survives reopen");

    // Purged entries are gone from memory and whole purged segments from disk.
    let files_before = segments(&dir)?.len();
    with_store(&dir, async |s| {
        s.purge(log_id(2, 1, 16)).await?;
        append(s, vec![entry(2, 18)]).await?;
        Ok(())
    })
    .await?;
    assert!(segments(&dir)?.len() < files_before);
    let ids = with_store(&dir, async |s| ids(s).await).await?;
    assert_eq!(ids, vec![log_id(2, 1, 17), log_id(2, 1, 18)]);
    Ok(())
}

#[tokio::test]
async fn torn_tail_is_dropped_on_reopen() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("log");
    with_store(&dir, async |s| {
        append(s, (0..3).map(|i| entry(1, i)).collect()).await
    })
    .await?;
    let seg = segments(&dir)?.pop().context("no segment")?;
    let len = fs::metadata(&seg)?.len();
    // Cut the last frame in half, as a crash mid-write would.
    OpenOptions::new()
        .write(true)
        .open(&seg)?
        .set_len(len - 5)?;

    let recovered = with_store(&dir, async |s| {
        let recovered = ids(s).await?;
        // The log continues from the last intact entry.
        append(s, vec![entry(1, 2)]).await?;
        Ok(recovered)
    })
    .await?;
    assert_eq!(recovered, vec![log_id(1, 1, 0), log_id(1, 1, 1)]);
    let again = with_store(&dir, async |s| ids(s).await).await?;
    assert_eq!(again.len(), 3);
    Ok(())
}

#[tokio::test]
async fn flipped_byte_in_the_tail_is_dropped_on_reopen() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("log");
    with_store(&dir, async |s| {
        append(s, (0..3).map(|i| entry(1, i)).collect()).await
    })
    .await?;
    let seg = segments(&dir)?.pop().context("no segment")?;
    let mut bytes = fs::read(&seg)?;
    let last = bytes.len() - 2;
    bytes[last] ^= 0x5a;
    fs::write(&seg, &bytes)?;

    let ids = with_store(&dir, async |s| ids(s).await).await?;
    assert_eq!(ids, vec![log_id(1, 1, 0), log_id(1, 1, 1)]);
    assert!(
        fs::metadata(&seg)?.len() < bytes.len() as u64,
        "damaged frame truncated away"
    );
    Ok(())
}

#[tokio::test]
async fn damage_in_an_older_segment_refuses_to_open() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("log");
    with_store(&dir, async |s| {
        append(s, (0..20).map(|i| entry(1, i)).collect()).await
    })
    .await?;
    let first = segments(&dir)?.into_iter().next().context("no segment")?;
    let mut bytes = fs::read(&first)?;
    bytes[10] ^= 0xff;
    fs::write(&first, &bytes)?;
    assert!(
        LogStore::open(&dir, small_segments()).is_err(),
        "acknowledged entries are never silently dropped"
    );
    Ok(())
}

#[tokio::test]
async fn a_second_store_on_the_same_directory_is_refused() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("log");
    let _first = LogStore::open(&dir, small_segments())?;
    assert!(matches!(
        LogStore::open(&dir, small_segments()),
        Err(brook_quorum::LogStoreError::Locked(_))
    ));
    Ok(())
}
