//! Replication throttles, as Kafka's: `leader.replication.throttled.rate`
//! bounds the bytes a leader sends to out-of-sync followers of the replicas
//! its topics list in `leader.replication.throttled.replicas`, and
//! `follower.replication.throttled.rate` the bytes a follower fetches for
//! its own out-of-sync replicas listed in
//! `follower.replication.throttled.replicas` (`*` or `partition:broker`
//! entries). In-sync replicas are never throttled, so the HW never waits on
//! a throttle; catch-up after a restart or a reassignment does.
//!
//! A throttled partition is left out of a fetch (follower) or answered
//! without records (leader) while the measured rate is at the limit; the
//! rate is a sliding window (`quota.window.num` × `quota.window.size.seconds`)
//! shared by all throttled partitions of the broker.

use std::sync::{Mutex, PoisonError};

use crate::quota::rate::{SampledRate, Window};

/// One direction's throttle on this broker.
#[derive(Debug)]
pub struct Throttle {
    /// Bytes per second; `None`: off.
    limit: Option<f64>,
    window: Window,
    rate: Mutex<SampledRate>,
}

impl Throttle {
    /// A throttle at `rate` bytes per second (`i64::MAX`: off).
    pub fn new(rate: i64, window: Window) -> Self {
        Self {
            limit: (rate > 0 && rate < i64::MAX).then_some(rate as f64),
            window,
            rate: Mutex::new(SampledRate::default()),
        }
    }

    pub fn is_on(&self) -> bool {
        self.limit.is_some()
    }

    /// Whether throttled traffic may flow now.
    pub fn allows(&self, now_ms: u64) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let mut r = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
        r.rate(self.window, now_ms) < limit
    }

    /// Count `bytes` of throttled traffic.
    pub fn record(&self, bytes: u64, now_ms: u64) {
        if self.limit.is_some() && bytes > 0 {
            self.rate
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(self.window, bytes as f64, now_ms);
        }
    }
}

/// Whether a topic's throttled-replicas list names `partition` on `broker`.
pub fn listed(list: &[String], partition: i32, broker: i32) -> bool {
    list.iter().any(|e| {
        e == "*"
            || e.split_once(':').is_some_and(|(p, b)| {
                p.trim().parse() == Ok(partition) && b.trim().parse() == Ok(broker)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_match_star_and_exact_entries() {
        let l = vec!["0:1".to_owned(), "2:3".to_owned()];
        assert!(listed(&l, 0, 1));
        assert!(listed(&l, 2, 3));
        assert!(!listed(&l, 0, 3));
        assert!(listed(&["*".to_owned()], 7, 9));
        assert!(!listed(&[], 0, 1));
    }

    #[test]
    fn a_throttle_closes_at_its_rate() {
        let t = Throttle::new(1000, Window::new(11, 1));
        assert!(t.allows(0));
        t.record(5000, 0);
        assert!(
            !t.allows(500),
            "5000 B in the first sample is over 1000 B/s"
        );
        assert!(t.allows(20_000), "the window has moved past it");
        assert!(!Throttle::new(i64::MAX, Window::new(11, 1)).is_on());
    }
}
