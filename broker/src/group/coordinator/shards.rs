//! Which `__consumer_offsets` partitions (shards) this broker coordinates:
//! taking a shard when the broker becomes its leader (loading its groups
//! once the partition's HW covers its log), dropping it when leadership
//! moves away, and answering whether a group's shard is here.

use std::sync::Arc;

use tracing::warn;

use super::{lock, new_slot, GroupCoordinator, Shard};
use crate::group::error::GroupError;
use crate::group::load;
use crate::partition::Partition;

impl GroupCoordinator {
    /// This broker now leads `p` (an `__consumer_offsets` partition of a
    /// topic with `count` partitions): load its shard once the partition's
    /// HW covers what its log held when leadership began, so only committed
    /// records are replayed. Meanwhile its groups answer
    /// COORDINATOR_LOAD_IN_PROGRESS.
    pub fn take_shard(&self, p: &Arc<Partition>, count: i32) {
        self.partitions
            .store(count, std::sync::atomic::Ordering::Release);
        let generation = self.next_generation();
        if p.log_end_offset() == p.log_start_offset() && p.high_watermark() >= p.log_end_offset() {
            // Nothing to replay (a new partition): loaded at once.
            lock(&self.shards).insert(p.index, Shard::Loaded(generation, p.leader_epoch()));
            return;
        }
        lock(&self.shards).insert(p.index, Shard::Loading(generation));
        let (p, groups, shards, clock) = (
            p.clone(),
            self.groups.clone(),
            self.shards.clone(),
            self.clock.clone(),
        );
        tokio::spawn(async move {
            let end = p.log_end_offset();
            let epoch = p.leader_epoch();
            let mut hw = p.subscribe_hw();
            loop {
                let still = || {
                    p.is_leader()
                        && p.leader_epoch() == epoch
                        && lock(&shards).get(&p.index) == Some(&Shard::Loading(generation))
                };
                if !still() {
                    return;
                }
                if *hw.borrow_and_update() >= end {
                    break;
                }
                // The HW moves as followers catch up; leadership changes
                // poke the same channel.
                if hw.changed().await.is_err() {
                    return;
                }
            }
            let now = clock.now_ms();
            let part = p.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                load::load_groups(std::slice::from_ref(&part), end, now)
            })
            .await;
            let loaded = match loaded {
                Ok(Ok(g)) => g,
                Ok(Err(e)) => {
                    warn!(partition = p.index, error = %e, "loading consumer groups failed");
                    lock(&shards).remove(&p.index);
                    return;
                }
                Err(e) => {
                    warn!(partition = p.index, error = %e, "loading consumer groups panicked");
                    lock(&shards).remove(&p.index);
                    return;
                }
            };
            let mut shards = lock(&shards);
            if shards.get(&p.index) != Some(&Shard::Loading(generation)) {
                return;
            }
            let n = loaded.len();
            lock(&groups).extend(
                loaded
                    .into_iter()
                    .map(|(id, g)| (id, new_slot(g, generation))),
            );
            shards.insert(p.index, Shard::Loaded(generation, epoch));
            tracing::info!(
                partition = p.index,
                groups = n,
                "consumer group shard loaded"
            );
        });
    }

    /// [`GroupCoordinator::take_shard`] unless the shard is loaded or loading.
    pub fn ensure_shard(&self, p: &Arc<Partition>, count: i32) {
        let taken = matches!(
            lock(&self.shards).get(&p.index),
            Some(Shard::Loading(_) | Shard::Loaded(..))
        );
        if !taken {
            self.take_shard(p, count);
        }
    }

    /// The image now makes this broker the leader of offsets partition
    /// `index` (of `count`), whose replica is yet to be opened: until
    /// [`GroupCoordinator::take_shard`] (or [`GroupCoordinator::drop_shard`]
    /// if opening fails) its groups answer COORDINATOR_LOAD_IN_PROGRESS, as
    /// Kafka's do while a shard loads, not NOT_COORDINATOR (FindCoordinator
    /// already names this broker, and clients give up on NOT_COORDINATOR for
    /// some requests: librdkafka's `committed()` did while the 50 partitions of
    /// a new `__consumer_offsets` were being created).
    pub fn expect_shard(&self, index: i32, count: i32) {
        self.partitions
            .store(count, std::sync::atomic::Ordering::Release);
        lock(&self.shards).entry(index).or_insert(Shard::Opening);
    }

    /// Of `indexes` marked by [`GroupCoordinator::expect_shard`], forget
    /// those still opening (their replica did not open as leader).
    pub fn forget_opening(&self, indexes: &[i32]) {
        let mut shards = lock(&self.shards);
        for index in indexes {
            if shards.get(index) == Some(&Shard::Opening) {
                shards.remove(index);
            }
        }
    }

    /// This broker no longer leads offsets partition `index`: forget its
    /// groups (their requests now get NOT_COORDINATOR; parked responses are
    /// answered when their slots drop).
    pub fn drop_shard(&self, index: i32) {
        if lock(&self.shards).remove(&index).is_none() {
            return;
        }
        let count = self.partitions.load(std::sync::atomic::Ordering::Acquire);
        lock(&self.groups).retain(|id, _| super::partition_for(id, count) != index);
        tracing::info!(partition = index, "consumer group shard unloaded");
    }

    /// Whether this broker coordinates `group` now: the generation of its
    /// shard's load, or why not. `Ok(None)`: `__consumer_offsets` does not
    /// exist yet (no group exists anywhere).
    pub(super) fn shard_of(&self, group: &str) -> Result<Option<u64>, GroupError> {
        Ok(self.shard_epoch(group)?.map(|(g, _)| g))
    }

    /// The generation and leader epoch of `group`'s loaded shard.
    pub(super) fn shard_epoch(&self, group: &str) -> Result<Option<(u64, i32)>, GroupError> {
        let count = self.partitions.load(std::sync::atomic::Ordering::Acquire);
        if count <= 0 {
            return Ok(None);
        }
        match lock(&self.shards).get(&super::partition_for(group, count)) {
            Some(Shard::Loaded(g, e)) => Ok(Some((*g, *e))),
            Some(Shard::Opening | Shard::Loading(_)) => Err(GroupError::CoordinatorLoadInProgress),
            None => Err(GroupError::NotCoordinator),
        }
    }

    /// Whether this broker coordinates `group` (requests that read group
    /// state check this first).
    ///
    /// # Errors
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS.
    pub fn check_coordinator(&self, group: &str) -> Result<(), GroupError> {
        self.shard_of(group).map(|_| ())
    }
}
