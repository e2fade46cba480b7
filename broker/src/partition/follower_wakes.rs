//! Leader side: per follower broker, a wake-up and a journal of the
//! partitions led here, replicated by that follower, whose answer to it may
//! have changed (an append, a HW move).
//!
//! A follower's fetch long-poll waits on its one wake-up instead of on the
//! log end of each partition it fetches, and an incremental fetch session
//! reads only the partitions journaled since its last round (plus those the
//! request names, and all of them now and then: see
//! `fetch_session::FetchSessionCache::plan`), instead of every partition of
//! the session. With a thousand partitions, touching each one every round
//! cost more than the records replicated (`benches/results/replication.md`).
//!
//! Memory: per follower broker id that ever fetched here (the fetch handler
//! admits registered brokers only), one watch and a journal of at most
//! [`JOURNAL_CAP`] entries; a reader that falls further behind is told so
//! and reads everything.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use brook_protocol::codec::Uuid;
use tokio::sync::watch;

/// Entries a follower's journal keeps.
pub const JOURNAL_CAP: usize = 4096;

/// A partition, as the journal names it.
pub type PartId = (Uuid, i32);

#[derive(Debug, Default)]
pub struct FollowerWakes {
    followers: RwLock<HashMap<i32, Arc<Follower>>>,
    /// HW moves wake the followers too, not only appends: set when
    /// consumers may read from followers (KIP-392), whose HW they read up to
    /// (KIP-1166). Otherwise a follower learns a HW move with its next
    /// round, and the records-free round each HW move would cost is saved.
    hw_wakes: bool,
}

#[derive(Debug)]
struct Follower {
    wake: watch::Sender<i64>,
    journal: Mutex<Journal>,
}

#[derive(Debug, Default)]
struct Journal {
    /// Sequence number of the next entry.
    next: u64,
    /// The last entries, the newest last: entry `i` has sequence number
    /// `next - len + i`.
    entries: VecDeque<PartId>,
    /// The furthest point handed to a reader (`since`'s `upto`, `head`): an
    /// entry below it may have been read, so a change is journaled anew
    /// rather than folded into it.
    handed_out: u64,
}

/// What changed for a follower since a sequence number.
#[derive(Debug, PartialEq, Eq)]
pub struct Changes {
    /// The sequence number these changes run up to (exclusive): the next
    /// read starts there.
    pub upto: u64,
    /// The partitions journaled, or `None` when some were dropped already
    /// (the reader must read everything).
    pub parts: Option<Vec<PartId>>,
}

impl FollowerWakes {
    /// `hw_wakes`: whether HW moves wake the followers (see the field).
    pub fn new(hw_wakes: bool) -> Self {
        Self {
            hw_wakes,
            ..Self::default()
        }
    }

    /// Whether HW moves wake the followers' long-polls.
    pub fn hw_wakes(&self) -> bool {
        self.hw_wakes
    }

    fn get(&self, follower: i32) -> Option<Arc<Follower>> {
        self.followers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&follower)
            .cloned()
    }

    fn get_or_add(&self, follower: i32) -> Arc<Follower> {
        if let Some(f) = self.get(follower) {
            return f;
        }
        self.followers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(follower)
            .or_insert_with(|| {
                Arc::new(Follower {
                    wake: watch::Sender::new(0),
                    journal: Mutex::new(Journal::default()),
                })
            })
            .clone()
    }

    /// A receiver that changes at every append (and HW move, with
    /// `hw_wakes`), from now on, of a partition led here that `follower`
    /// replicates. The journal is kept from the
    /// first call on.
    pub fn subscribe(&self, follower: i32) -> watch::Receiver<i64> {
        self.get_or_add(follower).wake.subscribe()
    }

    /// Where `follower`'s journal ends now: a session created now reads its
    /// changes from here.
    pub fn head(&self, follower: i32) -> u64 {
        let f = self.get_or_add(follower);
        let mut j = f.journal.lock().unwrap_or_else(PoisonError::into_inner);
        j.handed_out = j.next;
        j.next
    }

    /// `part`'s answer to `follower` may have changed (new records when
    /// `appended`, else a HW move): journal it and wake the follower's
    /// long-polls (for a HW move only with `hw_wakes`). Nothing is kept for
    /// a follower that never fetched here.
    pub fn changed(&self, follower: i32, part: PartId, appended: bool) {
        let Some(f) = self.get(follower) else {
            return;
        };
        {
            let mut j = f.journal.lock().unwrap_or_else(PoisonError::into_inner);
            // A busy partition journals once between two reads: a change
            // folds into the newest entry only while no reader has been
            // handed a point past it (it would never read the change).
            if j.entries.back() != Some(&part) || j.handed_out == j.next {
                if j.entries.len() == JOURNAL_CAP {
                    j.entries.pop_front();
                }
                j.entries.push_back(part);
                j.next += 1;
            }
        }
        if appended || self.hw_wakes {
            f.wake.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The partitions journaled for `follower` from sequence number `from`.
    pub fn since(&self, follower: i32, from: u64) -> Changes {
        let Some(f) = self.get(follower) else {
            return Changes {
                upto: from,
                parts: None,
            };
        };
        let mut j = f.journal.lock().unwrap_or_else(PoisonError::into_inner);
        j.handed_out = j.next;
        let oldest = j.next - j.entries.len() as u64;
        let parts = (from >= oldest && from <= j.next).then(|| {
            let skip = usize::try_from(from - oldest).unwrap_or(usize::MAX);
            j.entries.iter().skip(skip).copied().collect()
        });
        Changes {
            upto: j.next,
            parts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u8) -> PartId {
        (Uuid::from_bytes([n; 16]), 0)
    }

    #[test]
    fn a_wake_reaches_the_followers_subscribers_only() {
        let wakes = FollowerWakes::default();
        // Nobody subscribed yet: nothing to wake, nothing kept.
        wakes.changed(2, part(1), true);
        let mut two = wakes.subscribe(2);
        let three = wakes.subscribe(3);
        assert!(!two.has_changed().unwrap());
        wakes.changed(2, part(1), true);
        assert!(two.has_changed().unwrap());
        assert!(!three.has_changed().unwrap());
        two.mark_unchanged();
        // A later subscriber sees only later wakes.
        let mut late = wakes.subscribe(2);
        assert!(!late.has_changed().unwrap());
        wakes.changed(3, part(1), true);
        assert!(three.has_changed().unwrap());
        assert!(!two.has_changed().unwrap());
        assert!(!late.has_changed().unwrap());
        wakes.changed(2, part(2), true);
        assert!(two.has_changed().unwrap());
        assert!(late.has_changed().unwrap());
        late.mark_unchanged();
    }

    #[test]
    fn a_hw_move_wakes_followers_only_when_they_serve_consumers() {
        for hw_wakes in [false, true] {
            let wakes = FollowerWakes::new(hw_wakes);
            let from = wakes.head(2);
            let mut rx = wakes.subscribe(2);
            wakes.changed(2, part(1), false);
            assert_eq!(rx.has_changed().unwrap(), hw_wakes);
            rx.mark_unchanged();
            // Journaled either way.
            assert_eq!(wakes.since(2, from).parts, Some(vec![part(1)]));
            wakes.changed(2, part(1), true);
            assert!(rx.has_changed().unwrap());
        }
    }

    #[test]
    fn a_change_after_a_read_is_journaled_anew_not_folded_into_what_was_read() {
        let wakes = FollowerWakes::default();
        let from = wakes.head(2);
        wakes.changed(2, part(1), true);
        wakes.changed(2, part(1), true);
        // Unread: the repeat folded into one entry.
        let read = wakes.since(2, from);
        assert_eq!(read.parts, Some(vec![part(1)]));
        // Read up to here: the same partition changing again must show.
        wakes.changed(2, part(1), true);
        let again = wakes.since(2, read.upto);
        assert_eq!(again.parts, Some(vec![part(1)]));
        // A session created (head) past an entry sees a later change too.
        wakes.changed(2, part(3), true);
        let created = wakes.head(2);
        wakes.changed(2, part(3), true);
        assert_eq!(wakes.since(2, created).parts, Some(vec![part(3)]));
    }

    #[test]
    fn the_journal_lists_changes_since_a_point_and_admits_what_it_dropped() {
        let wakes = FollowerWakes::default();
        assert_eq!(wakes.head(2), 0);
        wakes.changed(2, part(1), true);
        wakes.changed(2, part(1), true);
        wakes.changed(2, part(2), true);
        wakes.changed(2, part(1), true);
        assert_eq!(
            wakes.since(2, 0),
            Changes {
                upto: 3,
                parts: Some(vec![part(1), part(2), part(1)])
            }
        );
        assert_eq!(wakes.since(2, 2).parts, Some(vec![part(1)]));
        assert_eq!(wakes.since(2, 3).parts, Some(vec![]));
        // A point the journal never reached, or one it dropped: read all.
        assert_eq!(wakes.since(2, 9).parts, None);
        assert_eq!(wakes.since(7, 0).parts, None);
        for i in 0..JOURNAL_CAP {
            wakes.changed(2, part(3 + (i % 2) as u8), true);
        }
        let head = wakes.head(2);
        assert_eq!(head, 3 + JOURNAL_CAP as u64);
        assert_eq!(wakes.since(2, 2).parts, None);
        let last = wakes.since(2, head - 2).parts.unwrap();
        assert_eq!(last.len(), 2);
    }
}
