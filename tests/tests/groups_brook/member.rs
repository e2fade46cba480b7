//! The in-process group member the groups_brook tests drive: a
//! brook-consumer polling in a tokio task, publishing what it owns and every
//! record it got (with generation and member id) for the test thread to watch.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Result;
use brook_consumer::group::RebalanceListener;
use brook_consumer::{Consumer, ConsumerConfig, TopicPartition};
use tokio::runtime::Runtime;

use super::PARTITIONS;

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What an in-process member publishes.
#[derive(Debug, Default)]
pub struct View {
    pub owned: BTreeSet<i32>,
    /// `owned` with topic names.
    pub owned_tps: BTreeSet<(String, i32)>,
    pub generation: i32,
    pub member: String,
    /// (generation, member id, partition, offset) of every record returned by poll.
    pub records: Vec<(i32, String, i32, i64)>,
    /// Every partition passed to on_revoked.
    pub revoked: Vec<i32>,
    /// Every partition passed to on_lost.
    pub lost: Vec<i32>,
    pub assignments: usize,
    pub error: Option<String>,
}

struct Recorder(Arc<Mutex<View>>);

impl RebalanceListener for Recorder {
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        lock(&self.0)
            .revoked
            .extend(partitions.iter().map(|tp| tp.partition));
    }
    fn on_assigned(&self, _: &[TopicPartition]) {
        lock(&self.0).assignments += 1;
    }
    fn on_lost(&self, partitions: &[TopicPartition]) {
        lock(&self.0)
            .lost
            .extend(partitions.iter().map(|tp| tp.partition));
    }
}

pub const RUN: u8 = 0;
pub const CLOSE: u8 = 1;
pub const DROP: u8 = 2;
/// Stop calling poll until resumed (the membership task keeps running).
pub const PAUSE: u8 = 3;

/// A brook-consumer group member polling in a tokio task.
pub struct Member {
    pub view: Arc<Mutex<View>>,
    stop: Arc<AtomicU8>,
    resume: Arc<tokio::sync::Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Member {
    pub fn start(
        rt: &Runtime,
        bootstrap: &str,
        group: &str,
        topic: &str,
        extra: &[(&str, &str)],
    ) -> Result<Self> {
        let mut entries = vec![
            ("bootstrap.servers", bootstrap),
            ("group.id", group),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "3000"),
            ("heartbeat.interval.ms", "200"),
            ("max.poll.interval.ms", "20000"),
            ("fetch.max.wait.ms", "100"),
        ];
        entries.extend_from_slice(extra);
        let cfg = ConsumerConfig::from_map(entries)?;
        let view = Arc::new(Mutex::new(View::default()));
        let stop = Arc::new(AtomicU8::new(RUN));
        let resume = Arc::new(tokio::sync::Notify::new());
        let (v, s, r, topic) = (view.clone(), stop.clone(), resume.clone(), topic.to_owned());
        let task = rt.spawn(async move {
            let mut c = Consumer::new(cfg);
            c.set_rebalance_listener(Arc::new(Recorder(v.clone())));
            // "re:<regex>" subscribes to a pattern.
            let subscribed = match topic.strip_prefix("re:") {
                Some(re) => c.subscribe_pattern(re),
                None => c.subscribe(&[&topic]),
            };
            if let Err(e) = subscribed {
                lock(&v).error = Some(e.to_string());
                return;
            }
            loop {
                match s.load(Ordering::SeqCst) {
                    CLOSE => {
                        if let Err(e) = c.close().await {
                            lock(&v).error = Some(format!("close: {e}"));
                        }
                        return;
                    }
                    DROP => return,
                    PAUSE => {
                        r.notified().await;
                        continue;
                    }
                    _ => {}
                }
                let records = match c.poll(Duration::from_millis(100)).await {
                    Ok(r) => r,
                    Err(e) => {
                        lock(&v).error = Some(e.to_string());
                        return;
                    }
                };
                let meta = c.group_metadata();
                let mut view = lock(&v);
                view.owned = c.assignment().iter().map(|tp| tp.partition).collect();
                view.owned_tps = c
                    .assignment()
                    .iter()
                    .map(|tp| (tp.topic.to_string(), tp.partition))
                    .collect();
                if let Some(m) = meta {
                    view.generation = m.generation;
                    view.member = m.member_id;
                }
                for r in records {
                    let (g, m) = (view.generation, view.member.clone());
                    view.records.push((g, m, r.partition, r.offset));
                }
            }
        });
        Ok(Self {
            view,
            stop,
            resume,
            task: Some(task),
        })
    }

    pub fn pause(&self) {
        self.stop.store(PAUSE, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.stop.store(RUN, Ordering::SeqCst);
        self.resume.notify_one();
    }

    pub fn owned(&self) -> BTreeSet<i32> {
        lock(&self.view).owned.clone()
    }

    pub fn generation(&self) -> i32 {
        lock(&self.view).generation
    }

    pub fn check(&self) -> Result<()> {
        match &lock(&self.view).error {
            Some(e) => anyhow::bail!("member failed: {e}"),
            None => Ok(()),
        }
    }

    /// Stops the member: `close()` (commit, LeaveGroup) or a plain drop.
    pub fn stop(&mut self, rt: &Runtime, how: u8) -> Result<()> {
        self.stop.store(how, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            rt.block_on(t)?;
        }
        self.check()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(DROP, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Disjoint, each non-empty, covering every partition, all in one generation.
pub fn partitioned(members: &[&Member]) -> Result<bool> {
    for m in members {
        m.check()?;
    }
    let sets: Vec<BTreeSet<i32>> = members.iter().map(|m| m.owned()).collect();
    let gens: BTreeSet<i32> = members.iter().map(|m| m.generation()).collect();
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    Ok(gens.len() == 1
        && sets.iter().all(|s| !s.is_empty())
        && total == union.len()
        && union == (0..PARTITIONS).collect())
}

pub fn describe(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| format!("gen {} owns {:?}", m.generation(), m.owned()))
        .collect::<Vec<_>>()
        .join("; ")
}
