//! Replication: this broker's followers pulling from their leaders, and the
//! leaders' ISR changes going to the controller.
//!
//! - [`ReplicaManager`] knows which partitions this broker follows and runs
//!   one fetcher task per (leader broker, fetcher index) — Kafka's
//!   `num.replica.fetchers` — each fetching all of its partitions in one
//!   Fetch request (`fetcher`).
//! - `isr` sends the state machines' ISR proposals to the controller as
//!   AlterPartition requests and ticks the leaders' lag checks.
//! - `unfetched` (leader side) ends a follower's long-poll early when a
//!   partition it must replicate but does not fetch yet appears or fills.
//!
//! The metadata image decides who follows whom: publishing a delta calls
//! [`ReplicaManager::follow`] for every partition whose assignment changed,
//! and a fetcher reconciles a partition with its leader (OffsetForLeaderEpoch,
//! KIP-101/279) once per leader epoch before fetching it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use brook_protocol::codec::Uuid;
use tokio::sync::{watch, Notify};

use crate::broker::Broker;
use crate::partition::state::Role;
use crate::partition::Partition;

mod fetcher;
pub mod isr;
mod session;
#[cfg(test)]
mod sim_tests;
pub mod throttle;
pub mod unfetched;

/// A partition this broker follows.
#[derive(Debug, Clone)]
pub(crate) struct Followed {
    pub part: Arc<Partition>,
    pub leader: i32,
    pub epoch: i32,
    /// Reconciled with the leader of `epoch` (truncated where they diverge).
    pub reconciled: bool,
}

/// One running fetcher's handle.
#[derive(Debug)]
struct FetcherHandle {
    wake: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Inner {
    broker: Option<Weak<Broker>>,
    stop: Option<watch::Receiver<bool>>,
    followed: BTreeMap<(Uuid, i32), Followed>,
    fetchers: BTreeMap<(i32, usize), FetcherHandle>,
    fetchers_per_leader: usize,
    /// Bumped by every change to `followed` or `fetchers_per_leader`: a
    /// fetcher whose last look at its partitions saw this generation has
    /// nothing new to learn (see [`ReplicaManager::assigned`]).
    generation: u64,
}

/// What [`ReplicaManager::assigned`] tells a fetcher.
#[derive(Debug)]
pub(crate) enum Assigned {
    /// Nothing followed changed since the generation the fetcher knows.
    Unchanged,
    /// The fetcher's partitions as of `generation`, in (topic id, partition)
    /// order (the fetcher relies on it).
    Now {
        generation: u64,
        parts: Vec<Followed>,
    },
    /// Nothing left to fetch from this leader: the fetcher is deregistered
    /// and exits.
    Gone,
}

/// The partitions this broker follows and the fetchers that pull them.
#[derive(Debug)]
pub struct ReplicaManager {
    inner: Mutex<Inner>,
    /// `leader.replication.throttled.rate`.
    pub leader_throttle: throttle::Throttle,
    /// `follower.replication.throttled.rate`.
    pub follower_throttle: throttle::Throttle,
    /// Leader side: partitions led here that a follower has yet to fetch.
    pub awaiting: unfetched::AwaitingFollowers,
}

/// Which of a leader's fetchers serves a partition.
fn fetcher_index(key: &(Uuid, i32), n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let h = key
        .0
        .as_bytes()
        .iter()
        .fold(u64::from(key.1.unsigned_abs()), |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(*b))
        });
    (h % n as u64) as usize
}

impl ReplicaManager {
    pub fn new(config: &brook_config::BrokerConfig) -> Self {
        let window = crate::quota::rate::Window::new(
            config.quota_window_num,
            config.quota_window_size_seconds,
        );
        Self {
            inner: Mutex::new(Inner::default()),
            leader_throttle: throttle::Throttle::new(
                config.leader_replication_throttled_rate,
                window,
            ),
            follower_throttle: throttle::Throttle::new(
                config.follower_replication_throttled_rate,
                window,
            ),
            awaiting: unfetched::AwaitingFollowers::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start fetching for every partition followed so far, and from now on
    /// for every one [`ReplicaManager::follow`] adds. Fetchers stop when
    /// `stop` turns true or the broker is dropped.
    pub fn start(&self, broker: &Arc<Broker>, stop: watch::Receiver<bool>) {
        let mut inner = self.lock();
        inner.broker = Some(Arc::downgrade(broker));
        inner.stop = Some(stop);
        inner.fetchers_per_leader =
            usize::try_from(broker.config().num_replica_fetchers.max(1)).unwrap_or(1);
        inner.generation += 1;
        let keys: Vec<(i32, usize)> = {
            let n = inner.fetchers_per_leader;
            inner
                .followed
                .iter()
                .map(|(k, f)| (f.leader, fetcher_index(k, n)))
                .collect()
        };
        for k in keys {
            Self::ensure_fetcher(&mut inner, k);
        }
    }

    /// The partition's role after a metadata change: a follower of `leader`
    /// is fetched from it (reconciled first when the epoch is new); any
    /// other role stops fetching it.
    pub fn follow(&self, _topic: &str, part: &Arc<Partition>, role: Role, epoch: i32) {
        let key = (part.topic_id, part.index);
        let mut inner = self.lock();
        let Role::Follower { leader } = role else {
            if inner.followed.remove(&key).is_some() {
                inner.generation += 1;
            }
            drop(inner);
            if role == Role::Leader {
                self.awaiting.led(part);
            }
            return;
        };
        if let Some(f) = inner.followed.get(&key) {
            if f.leader == leader && f.epoch == epoch && Arc::ptr_eq(&f.part, part) {
                return;
            }
        }
        inner.followed.insert(
            key,
            Followed {
                part: part.clone(),
                leader,
                epoch,
                reconciled: false,
            },
        );
        inner.generation += 1;
        let idx = fetcher_index(&key, inner.fetchers_per_leader);
        Self::ensure_fetcher(&mut inner, (leader, idx));
    }

    /// Stop following a partition (topic deleted).
    pub fn unfollow(&self, part: &Partition) {
        let mut inner = self.lock();
        if inner
            .followed
            .remove(&(part.topic_id, part.index))
            .is_some()
        {
            inner.generation += 1;
        }
    }

    /// Start the fetcher `key` unless it runs (or the manager has not started).
    fn ensure_fetcher(inner: &mut Inner, key: (i32, usize)) {
        if let Some(h) = inner.fetchers.get(&key) {
            h.wake.notify_one();
            return;
        }
        let (Some(broker), Some(stop)) = (inner.broker.clone(), inner.stop.clone()) else {
            return;
        };
        let wake = Arc::new(Notify::new());
        inner
            .fetchers
            .insert(key, FetcherHandle { wake: wake.clone() });
        tokio::spawn(fetcher::run(broker, key.0, key.1, wake, stop));
    }

    /// The partitions fetcher `(leader, index)` fetches, unless nothing
    /// followed changed since `known` (the generation of its last answer; 0
    /// for none yet). A fetcher's round thus costs one lock, not a walk over
    /// every followed partition, while the assignment stands.
    pub(crate) fn assigned(&self, leader: i32, index: usize, known: u64) -> Assigned {
        let mut inner = self.lock();
        if known != 0 && known == inner.generation {
            return Assigned::Unchanged;
        }
        let n = inner.fetchers_per_leader;
        let parts: Vec<Followed> = inner
            .followed
            .iter()
            .filter(|(k, f)| f.leader == leader && fetcher_index(k, n) == index)
            .map(|(_, f)| f.clone())
            .collect();
        if parts.is_empty() {
            inner.fetchers.remove(&(leader, index));
            return Assigned::Gone;
        }
        Assigned::Now {
            generation: inner.generation,
            parts,
        }
    }

    /// A partition was reconciled with the leader of `epoch`.
    pub(crate) fn reconciled(&self, part: &Partition, epoch: i32, done: bool) {
        let mut inner = self.lock();
        let changed = match inner.followed.get_mut(&(part.topic_id, part.index)) {
            Some(f) if f.epoch == epoch && f.reconciled != done => {
                f.reconciled = done;
                true
            }
            _ => false,
        };
        if changed {
            inner.generation += 1;
        }
    }

    /// Partitions followed, for the admin API and metrics.
    pub fn followed_count(&self) -> usize {
        self.lock().followed.len()
    }
}
