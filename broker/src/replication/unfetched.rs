//! Leader side: partitions this broker leads that an in-sync follower has
//! not fetched yet in the current leader epoch (a new partition, or one
//! whose leadership just came here).
//!
//! A follower learns of such a partition from its own copy of the metadata
//! and adds it to its fetcher's next request, after the request it has out
//! returns. That request is usually a long-poll on the follower's other
//! partitions (`replica.fetch.wait.max.ms`, 500 ms by default), so the first
//! acks=all produce to a new topic waited it out: 450–480 ms measured on
//! three nodes. Kafka's fetcher threads behave the same way.
//!
//! So a follower's long-poll here also ends:
//! - when a partition is added for it (its metadata may know it by now);
//! - when one of its unfetched partitions gets an append;
//! - within [`BACKLOG_POLL`] while one of them holds records above its HW,
//!   i.e. while the leader waits for this follower to commit them (its
//!   metadata may lag the producer's).
//!
//! An entry leaves when the follower has fetched the partition in its
//! epoch, left the ISR, or the partition is no longer led here in that
//! epoch; [`AwaitingFollowers::unfetched`] prunes them. At most one entry per
//! (follower, partition), for followers with a registered broker (the fetch
//! handler checks the id before asking).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use brook_protocol::codec::Uuid;
use tokio::sync::watch;

use crate::partition::Partition;

/// How soon a follower's long-poll ends while it holds back the HW of a
/// partition it does not fetch yet.
pub const BACKLOG_POLL: Duration = Duration::from_millis(10);

/// Per follower broker, the partitions awaiting its first fetch.
#[derive(Debug, Default)]
pub struct AwaitingFollowers {
    inner: Mutex<HashMap<i32, Awaited>>,
}

#[derive(Debug)]
struct Awaited {
    /// Bumped whenever a partition is added.
    added: watch::Sender<i64>,
    /// (topic id, partition) → (the partition, the leader epoch awaited).
    parts: HashMap<(Uuid, i32), (Weak<Partition>, i32)>,
}

impl Default for Awaited {
    fn default() -> Self {
        Self {
            added: watch::Sender::new(0),
            parts: HashMap::new(),
        }
    }
}

/// What a follower's long-poll waits on besides its own partitions.
#[derive(Debug)]
pub struct Unfetched {
    /// Changes when a partition is added for the follower.
    pub added: watch::Receiver<i64>,
    /// The log ends of the partitions it has not fetched.
    pub ends: Vec<watch::Receiver<i64>>,
    /// Some of them hold records above their HW.
    pub backlog: bool,
}

impl AwaitingFollowers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Awaited>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `part` is led here: await each in-sync follower that has not fetched
    /// it in the current leader epoch, and end its long-poll so its next
    /// request can name the partition.
    pub fn led(&self, part: &Arc<Partition>) {
        let state = part.state();
        if !state.is_leader() {
            return;
        }
        let epoch = state.leader_epoch();
        let key = (part.topic_id, part.index);
        let mut inner = self.lock();
        for &r in state.isr() {
            if r == state.node_id() || part.unfetched_by(r, epoch).is_none() {
                continue;
            }
            let awaited = inner.entry(r).or_default();
            let known = awaited
                .parts
                .get(&key)
                .is_some_and(|(p, e)| *e == epoch && p.as_ptr() == Arc::as_ptr(part));
            if !known {
                awaited.parts.insert(key, (Arc::downgrade(part), epoch));
                awaited.added.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// What follower `replica`'s long-poll should also wait on. Entries it
    /// has since fetched (or that no longer apply) are dropped here.
    pub fn unfetched(&self, replica: i32) -> Unfetched {
        let mut inner = self.lock();
        let awaited = inner.entry(replica).or_default();
        let mut ends = Vec::new();
        let mut backlog = false;
        awaited.parts.retain(|_, (part, epoch)| {
            let Some(part) = part.upgrade() else {
                return false;
            };
            match part.unfetched_by(replica, *epoch) {
                Some(held_back) => {
                    backlog |= held_back;
                    ends.push(part.subscribe_end());
                    true
                }
                None => false,
            }
        });
        Unfetched {
            added: awaited.added.subscribe(),
            ends,
            backlog,
        }
    }

    /// Partitions awaited for `replica` (tests, diagnostics).
    pub fn count(&self, replica: i32) -> usize {
        self.lock().get(&replica).map_or(0, |a| a.parts.len())
    }
}

#[cfg(test)]
mod tests {
    use anyhow::{ensure, Result};

    use super::*;
    use crate::metadata::PartitionRecord;

    fn record(epoch: i32, partition_epoch: i32, isr: &[i32]) -> PartitionRecord {
        PartitionRecord {
            topic_id: Uuid([1; 16]),
            partition: 0,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader: 1,
            leader_epoch: epoch,
            partition_epoch,
            ..PartitionRecord::default()
        }
    }

    /// Node 1's replica of a partition replicated on nodes 1, 2 and 3.
    fn partition(dir: &std::path::Path) -> Result<Arc<Partition>> {
        Ok(Arc::new(
            crate::partition::shell_tests::partition_of_node_1(dir)?,
        ))
    }

    #[tokio::test]
    async fn a_new_leader_awaits_each_in_sync_follower_until_it_fetches() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let part = partition(dir.path())?;
        let awaiting = AwaitingFollowers::default();
        // Follower 2 long-polls before the partition exists here.
        let before = awaiting.unfetched(2);
        ensure!(before.ends.is_empty() && !before.backlog);
        part.assign(&record(1, 1, &[1, 2, 3]));
        awaiting.led(&part);
        ensure!(
            before.added.has_changed()?,
            "adding a partition must end the follower's long-poll"
        );
        ensure!(awaiting.count(1) == 0, "the leader awaits itself");
        let polling = awaiting.unfetched(2);
        ensure!(polling.ends.len() == 1 && !polling.backlog);
        ensure!(awaiting.count(3) == 1);
        // The same epoch again (another delta touching the partition): no wake.
        awaiting.led(&part);
        ensure!(!polling.added.has_changed()?);

        // A produce: the follower's long-poll on the partition ends, and
        // while the records wait for it the next one is short.
        part.append(&crate::log::test_batches::batch(2, 10, 0), 10)
            .await?;
        ensure!(polling.ends[0].has_changed()?, "an append must wake it");
        ensure!(awaiting.unfetched(2).backlog);

        // Follower 2 fetches: no longer awaited; follower 3 still is.
        part.follower_fetched(2, 0);
        let after = awaiting.unfetched(2);
        ensure!(after.ends.is_empty() && !after.backlog);
        ensure!(awaiting.count(2) == 0 && awaiting.count(3) == 1);

        // A new leader epoch: everyone in the ISR is awaited again.
        part.assign(&record(2, 2, &[1, 2, 3]));
        awaiting.led(&part);
        ensure!(after.added.has_changed()?);
        ensure!(awaiting.unfetched(2).ends.len() == 1);

        // Follower 3 leaves the ISR: it holds nothing back, not awaited.
        part.assign(&record(2, 3, &[1, 2]));
        ensure!(awaiting.unfetched(3).ends.is_empty());
        ensure!(awaiting.count(3) == 0);

        // The partition goes away (topic deleted): dropped too.
        drop(part);
        ensure!(awaiting.unfetched(2).ends.is_empty());
        ensure!(awaiting.count(2) == 0);
        Ok(())
    }

    #[tokio::test]
    async fn a_follower_is_not_awaited_for_a_partition_it_leads_or_has_fetched() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let part = partition(dir.path())?;
        let awaiting = AwaitingFollowers::default();
        // Node 1 follows node 2: nothing to await here.
        let mut following = record(1, 1, &[1, 2, 3]);
        following.leader = 2;
        part.assign(&following);
        awaiting.led(&part);
        ensure!(awaiting.count(2) == 0 && awaiting.count(3) == 0);
        // Leading, after both followers fetched: a later delta of the same
        // epoch adds nothing.
        part.assign(&record(2, 2, &[1, 2, 3]));
        part.follower_fetched(2, 0);
        part.follower_fetched(3, 0);
        awaiting.led(&part);
        ensure!(awaiting.count(2) == 0 && awaiting.count(3) == 0);
        Ok(())
    }
}
