//! Leader side: one wake-up channel per follower broker, bumped by every
//! append to a partition led here that the follower replicates.
//!
//! A follower's fetch long-poll waits on its one channel instead of on the
//! log end of each partition it fetches: subscribing to and polling a
//! thousand watches per long-poll cost more than the reads they guard
//! (`benches/results/replication.md`, many partitions). A wake-up means
//! "something you replicate may have news"; the handler then reads its
//! session again, which is cheap for the partitions with nothing new.
//!
//! Memory: one watch per follower broker id that ever long-polled here (the
//! fetch handler admits registered brokers only).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use tokio::sync::watch;

#[derive(Debug, Default)]
pub struct FollowerWakes {
    senders: RwLock<HashMap<i32, watch::Sender<i64>>>,
}

impl FollowerWakes {
    /// A receiver that changes at every append, from now on, to a partition
    /// led here that `follower` replicates.
    pub fn subscribe(&self, follower: i32) -> watch::Receiver<i64> {
        if let Some(tx) = self
            .senders
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&follower)
        {
            return tx.subscribe();
        }
        self.senders
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(follower)
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Wake `follower`'s long-polls, if it has ever long-polled here.
    pub fn wake(&self, follower: i32) {
        if let Some(tx) = self
            .senders
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&follower)
        {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_reaches_the_followers_subscribers_only() {
        let wakes = FollowerWakes::default();
        // Nobody subscribed yet: nothing to wake, nothing kept.
        wakes.wake(2);
        let mut two = wakes.subscribe(2);
        let mut three = wakes.subscribe(3);
        assert!(!two.has_changed().unwrap());
        wakes.wake(2);
        assert!(two.has_changed().unwrap());
        assert!(!three.has_changed().unwrap());
        two.mark_unchanged();
        // A later subscriber sees only later wakes.
        let mut late = wakes.subscribe(2);
        assert!(!late.has_changed().unwrap());
        wakes.wake(3);
        assert!(three.has_changed().unwrap());
        assert!(!two.has_changed().unwrap());
        assert!(!late.has_changed().unwrap());
        late.mark_unchanged();
    }
}
