//! Regression tests of the coordinator's I/O shell (found in review): records
//! replayed before they were durable, failed appends that changed the group, and a
//! retired slot that could leave two live groups under one id.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use super::{Command, CommitOffset, CommitRequest, OffsetValue, Reply};
use crate::broker::Broker;
use crate::log::Syncer;

/// fsync that can be held (gate closed) or made to fail, switched at run time.
#[derive(Debug, Default)]
struct SwitchSyncer {
    fail: AtomicBool,
    closed: Mutex<bool>,
    cv: Condvar,
    /// Syncs blocked on the closed gate right now.
    held: AtomicUsize,
}

impl SwitchSyncer {
    fn close(&self) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }
    fn open(&self) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.cv.notify_all();
    }
}

impl Syncer for SwitchSyncer {
    fn sync_data(&self, file: &File) -> io::Result<()> {
        let mut g = self
            .closed
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        if *g {
            self.held.fetch_add(1, Ordering::SeqCst);
            while *g {
                g = self.cv.wait(g).map_err(|_| io::Error::other("poisoned"))?;
            }
            self.held.fetch_sub(1, Ordering::SeqCst);
        }
        drop(g);
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected EIO"));
        }
        file.sync_data()
    }
}

/// Opens the gate when a test ends, so a failing test cannot leave a blocking
/// thread stuck in fsync (which would hang the runtime's shutdown).
struct OpenOnDrop(Arc<SwitchSyncer>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A broker over a switchable syncer whose group `g` committed offset 5 of `t-0`.
async fn with_offset_5() -> Result<(
    tempfile::TempDir,
    Arc<SwitchSyncer>,
    OpenOnDrop,
    Arc<Broker>,
)> {
    let dir = tempfile::tempdir()?;
    let syncer = Arc::new(SwitchSyncer::default());
    let open = OpenOnDrop(syncer.clone());
    let b = broker(dir.path(), syncer.clone()).await?;
    ensure!(committed(&run(&b, commit(5)).await), "first commit");
    Ok((dir, syncer, open, b))
}

async fn broker(dir: &std::path::Path, syncer: Arc<SwitchSyncer>) -> Result<Arc<Broker>> {
    let config = brook_config::BrokerConfig {
        log_dirs: vec![dir.to_path_buf()],
        offsets_topic_num_partitions: 1,
        ..brook_config::BrokerConfig::default()
    };
    Ok(Arc::new(Broker::open_with_syncer(config, syncer).await?))
}

/// Wait (bounded) until a sync is blocked on the closed gate.
async fn held(syncer: &SwitchSyncer, what: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while syncer.held.load(Ordering::SeqCst) == 0 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{what} never reached its fsync"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn commit(offset: i64) -> Command {
    Command::Commit(CommitRequest {
        member_id: String::new(),
        instance_id: None,
        generation: -1,
        retention_ms: -1,
        offsets: vec![CommitOffset {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
        }],
    })
}

async fn run(b: &Arc<Broker>, cmd: Command) -> Reply {
    b.groups()
        .execute(b, "g", cmd, true, Reply::None)
        .await
        .finish()
        .await
}

fn committed(r: &Reply) -> bool {
    matches!(r, Reply::Commit(Ok(parts)) if parts.iter().all(Result::is_ok))
}

async fn fetched(b: &Broker) -> Option<OffsetValue> {
    b.groups()
        .fetch_offsets("g", Some(&[("t".into(), 0)]))
        .await
        .ok()?
        .into_iter()
        .next()
        .and_then(|(_, v)| v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_fetch_never_returns_an_offset_before_it_is_durable() -> Result<()> {
    let (_dir, syncer, _open, b) = with_offset_5().await?;
    syncer.close();
    let pending = tokio::spawn({
        let b = b.clone();
        async move { run(&b, commit(9)).await }
    });
    held(&syncer, "the commit").await?;
    // While the commit's fsync is held, a fetch must not see offset 9: it waits
    // (the group is busy) or answers the durable 5.
    let early = tokio::time::timeout(Duration::from_millis(300), fetched(&b)).await;
    if let Ok(v) = early {
        ensure!(
            v.as_ref().map(|v| v.offset) == Some(5),
            "fetch saw an undurable offset: {v:?}"
        );
    }
    syncer.open();
    ensure!(committed(&pending.await?), "second commit");
    ensure!(
        fetched(&b).await.map(|v| v.offset) == Some(9),
        "durable commit not visible"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_leaves_the_group_as_it_was() -> Result<()> {
    let (_dir, syncer, _open, b) = with_offset_5().await?;
    let before = b.groups().view("g").await.context("group")?;
    syncer.fail.store(true, Ordering::SeqCst);
    let r = run(&b, commit(9)).await;
    ensure!(
        matches!(r, Reply::Commit(Err(_))),
        "a commit whose fsync failed was acknowledged: {r:?}"
    );
    ensure!(
        fetched(&b).await.map(|v| v.offset) == Some(5),
        "the failed commit became visible"
    );
    ensure!(
        b.groups().view("g").await.context("group")? == before,
        "group state changed"
    );
    Ok(())
}

// Single-threaded runtime: spawned tasks run in order at each yield, so the commit
// is known to be queued on the group's lock before the delete finishes.
#[tokio::test]
async fn a_request_waiting_on_a_deleted_group_lands_in_the_live_one() -> Result<()> {
    let (_dir, syncer, _open, b) = with_offset_5().await?;
    // DeleteGroups holds the group's lock while its tombstones wait for fsync.
    syncer.close();
    let delete = tokio::spawn({
        let b = b.clone();
        async move {
            b.groups()
                .execute(&b, "g", Command::Delete, false, Reply::None)
                .await
                .finish()
                .await
        }
    });
    held(&syncer, "the delete").await?;
    // A commit arrives, finds the (still registered) slot and queues on its lock.
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { run(&b, commit(7)).await }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    syncer.open();
    let deleted = delete.await?;
    ensure!(
        matches!(deleted, Reply::Delete(Ok(()))),
        "delete: {deleted:?}"
    );
    ensure!(committed(&waiting.await?), "the waiting commit failed");
    let v = fetched(&b).await;
    ensure!(
        v.as_ref().map(|v| v.offset) == Some(7),
        "commit lost in a retired slot: {v:?}"
    );
    ensure!(
        b.groups().group_ids() == vec!["g".to_owned()],
        "one live group"
    );
    Ok(())
}
