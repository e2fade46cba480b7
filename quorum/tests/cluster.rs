//! Three quorum members in one process on loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use brook_quorum::{
    call_app, AppRpcHandler, CallError, KvApp, Listen, Quorum, QuorumConfig, WriteError,
};

const CLUSTER: &str = "test-cluster";
const WAIT: Duration = Duration::from_secs(10);

/// Echoes requests with a prefix naming the caller.
struct Echo;

impl AppRpcHandler for Echo {
    async fn handle(&self, from: u64, request: Vec<u8>) -> Result<Vec<u8>, String> {
        let mut out = format!("from {from}: ").into_bytes();
        out.extend_from_slice(&request);
        Ok(out)
    }
}

fn config(id: u64, dir: &Path, listen: Listen, voters: &BTreeMap<u64, String>) -> QuorumConfig {
    let mut c = QuorumConfig::new(
        id,
        CLUSTER,
        dir.join(format!("node{id}")),
        listen,
        voters.clone(),
    );
    c.election_timeout_min = Duration::from_millis(150);
    c.election_timeout_max = Duration::from_millis(300);
    c.heartbeat_interval = Duration::from_millis(50);
    c.snapshot_after_entries = 5;
    // Purge right after each snapshot so a restarted node needs one sent.
    c.logs_kept_after_snapshot = 0;
    c
}

struct Cluster {
    dir: PathBuf,
    voters: BTreeMap<u64, String>,
    nodes: BTreeMap<u64, Quorum<KvApp>>,
}

impl Cluster {
    async fn start(dir: &Path) -> Result<Cluster> {
        let mut listeners = BTreeMap::new();
        let mut voters = BTreeMap::new();
        for id in 1..=3 {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            voters.insert(id, l.local_addr()?.to_string());
            listeners.insert(id, l);
        }
        let mut nodes = BTreeMap::new();
        for (id, l) in listeners {
            nodes.insert(
                id,
                Quorum::start(
                    config(id, dir, Listen::Bound(l), &voters),
                    KvApp::default(),
                    Echo,
                )
                .await?,
            );
        }
        Ok(Cluster {
            dir: dir.to_path_buf(),
            voters,
            nodes,
        })
    }

    async fn restart(&mut self, id: u64) -> Result<()> {
        let addr: SocketAddr = self.voters[&id].parse()?;
        let q = Quorum::start(
            config(id, &self.dir, Listen::Addr(addr), &self.voters),
            KvApp::default(),
            Echo,
        )
        .await?;
        self.nodes.insert(id, q);
        Ok(())
    }

    /// Wait until every running node agrees on one leader with term > `above`.
    async fn leader(&self, above: u64) -> Result<(u64, u64)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut rxs: Vec<_> = self.nodes.values().map(|q| q.metrics()).collect();
        loop {
            let views: Vec<_> = self.nodes.values().map(|q| q.leader()).collect();
            if let Some(Some((l, t))) = views.first() {
                if *t > above
                    && self.nodes.contains_key(l)
                    && views.iter().all(|v| *v == Some((*l, *t)))
                {
                    return Ok((*l, *t));
                }
            }
            // Wake on any metrics change.
            let changed = futures_any(&mut rxs);
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                bail!("no agreed leader above term {above}: {views:?}");
            }
        }
    }

    /// Wait until `key` has `value` on every running node.
    async fn applied_everywhere(&self, key: &str, value: &str) -> Result<()> {
        for (id, q) in &self.nodes {
            let mut rx = q.metrics();
            let wait = async {
                loop {
                    if q.app().read(|a| a.get(key)).as_deref() == Some(value) {
                        return;
                    }
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            };
            tokio::time::timeout(WAIT, wait)
                .await
                .with_context(|| format!("node {id} never applied {key}={value}"))?;
            if q.app().read(|a| a.get(key)).as_deref() != Some(value) {
                bail!("node {id} stopped before applying {key}={value}");
            }
        }
        Ok(())
    }
}

async fn futures_any(rxs: &mut [tokio::sync::watch::Receiver<brook_quorum::RaftMetrics>]) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    for r in rxs.iter() {
        let mut r = r.clone();
        r.mark_unchanged();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = r.changed().await;
            let _ = tx.send(()).await;
        }));
    }
    drop(tx);
    let _ = rx.recv().await;
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn elect_write_fail_over_and_catch_up() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path()).await?;

    let (leader, term) = cluster.leader(0).await?;
    let (log_id, prev) = cluster.nodes[&leader].write(KvApp::set("a", "1")).await?;
    assert!(prev.is_empty());
    assert_eq!(
        log_id.leader_id.term, term,
        "writes carry the leader's term"
    );
    cluster.applied_everywhere("a", "1").await?;

    // A follower refuses writes and names the leader.
    let follower = *cluster
        .nodes
        .keys()
        .find(|id| **id != leader)
        .context("no follower")?;
    match cluster.nodes[&follower].write(KvApp::set("x", "y")).await {
        Err(WriteError::ForwardToLeader {
            leader_id,
            leader_addr,
        }) => {
            assert_eq!(leader_id, Some(leader));
            assert_eq!(
                leader_addr.as_deref(),
                Some(cluster.voters[&leader].as_str())
            );
        }
        other => bail!("follower write gave {other:?}"),
    }

    // Enough writes to trigger snapshots and log purges.
    for i in 0..12 {
        cluster.nodes[&leader]
            .write(KvApp::set(&format!("k{i}"), &i.to_string()))
            .await?;
    }
    cluster.applied_everywhere("k11", "11").await?;

    // Application RPC on the controller listener.
    let reply = call_app(
        &cluster.voters[&leader],
        CLUSTER,
        99,
        leader,
        b"hi".to_vec(),
        WAIT,
    )
    .await?;
    assert_eq!(reply, b"from 99: hi");

    // Leader goes away: a new one is elected with a higher term, writes continue.
    let old = cluster.nodes.remove(&leader).context("leader")?;
    old.shutdown().await?;
    let (new_leader, new_term) = cluster.leader(term).await?;
    assert_ne!(new_leader, leader);
    assert!(new_term > term);
    let (log_id, _) = cluster.nodes[&new_leader]
        .write(KvApp::set("b", "2"))
        .await?;
    assert_eq!(log_id.leader_id.term, new_term);
    cluster.nodes[&new_leader]
        .write(KvApp::set("c", "3"))
        .await?;

    // The old leader restarts from its directory and catches up.
    cluster.restart(leader).await?;
    cluster.applied_everywhere("c", "3").await?;
    cluster.applied_everywhere("k11", "11").await?;
    let restarted_term = cluster.nodes[&leader].app().read(|a| a.last_term);
    // At least the new term: the restarted node may itself have started an
    // election (and a later term) before it heard from the new leader.
    assert!(
        restarted_term >= new_term,
        "restarted node saw term {restarted_term}, before the new leader's {new_term}"
    );

    for (_, q) in std::mem::take(&mut cluster.nodes) {
        q.shutdown().await?;
    }
    Ok(())
}

#[tokio::test]
async fn wrong_cluster_or_node_id_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?.to_string();
    let voters = BTreeMap::from([(1, addr.clone())]);
    let q = Quorum::start(
        config(1, dir.path(), Listen::Bound(l), &voters),
        KvApp::default(),
        Echo,
    )
    .await?;

    match call_app(&addr, "other-cluster", 7, 1, b"x".to_vec(), WAIT).await {
        Err(CallError::Refused { reason, .. }) => {
            assert!(reason.contains("cluster id"), "{reason}")
        }
        other => bail!("wrong cluster id gave {other:?}"),
    }
    match call_app(&addr, CLUSTER, 7, 2, b"x".to_vec(), WAIT).await {
        Err(CallError::Refused { reason, .. }) => assert!(reason.contains("node id"), "{reason}"),
        other => bail!("wrong node id gave {other:?}"),
    }
    assert_eq!(
        call_app(&addr, CLUSTER, 7, 1, b"x".to_vec(), WAIT).await?,
        b"from 7: x"
    );

    // A single voter elects itself and commits.
    let mut rx = q.metrics();
    tokio::time::timeout(WAIT, rx.wait_for(|m| m.current_leader == Some(1))).await??;
    let (_, prev) = q.write(KvApp::set("k", "v")).await?;
    assert!(prev.is_empty());
    assert_eq!(q.app().read(|a| a.get("k")), Some("v".to_string()));
    q.shutdown().await?;
    Ok(())
}
