//! A replica fetcher's side of an incremental fetch session (KIP-227; Kafka's
//! `FetchSessionHandler`). Pure bookkeeping, no I/O: the fetcher asks
//! [`FetchSession::request`] what to send for the partitions it wants this
//! round, then reports the leader's answer to [`FetchSession::response`].
//!
//! Without a session the fetcher sends every partition with epoch 0 (asking
//! for one). With a session it sends epoch n and only the partitions whose
//! fetch parameters changed since the last answered request, and lists those
//! it no longer wants in `forgotten_topics_data`; an idle follower's request
//! is then a few dozen bytes whatever its partition count.
//!
//! Any doubt ends the session: a session error from the leader, a failed
//! request (the leader may or may not have applied it), a response naming
//! another session. The next request is full again (naming the old session,
//! with epoch 0, so the leader drops it rather than keep it until evicted),
//! and replication never depends on the leader's and the follower's views
//! of a session agreeing.

use brook_protocol::codec::Uuid;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};

use crate::fetch_session::{next_epoch, INITIAL_EPOCH, INVALID_SESSION_ID};

/// What the fetcher asks of one partition, as last sent.
type Params = (i64, i32, i32, i32, i64);

fn params(p: &FetchPartition) -> Params {
    (
        p.fetch_offset,
        p.partition_max_bytes,
        p.current_leader_epoch,
        p.last_fetched_epoch,
        p.log_start_offset,
    )
}

/// Partitions and what was asked of each, sorted by (topic id, partition):
/// a round compares by binary search and merge, without hashing.
type Sent = Vec<((Uuid, i32), Params)>;

fn lookup(sent: &Sent, key: (Uuid, i32)) -> Option<&Params> {
    sent.binary_search_by(|(k, _)| k.cmp(&key))
        .ok()
        .map(|i| &sent[i].1)
}

/// What the leader's session will hold once the request in flight is
/// answered.
#[derive(Debug)]
enum Pending {
    /// Exactly these partitions (a request built from every partition).
    All(Sent),
    /// What it holds now, with these partitions' parameters replaced.
    Changed(Sent),
}

/// The session metadata and partitions of one Fetch request.
#[derive(Debug, PartialEq)]
pub(super) struct Next {
    pub session_id: i32,
    pub epoch: i32,
    pub topics: Vec<FetchTopic>,
    pub forgotten: Vec<ForgottenTopic>,
}

#[derive(Debug, Default)]
pub(super) struct FetchSession {
    /// 0: none (the next request is full and asks for one).
    id: i32,
    /// Epoch of the next incremental request.
    epoch: i32,
    /// What the leader's session holds, as of the last answered request.
    sent: Sent,
    /// What the request in flight would make it hold.
    pending: Option<Pending>,
    /// A session given up on, for the next full request to close.
    close: i32,
}

impl FetchSession {
    /// Drop the session: the next request is full.
    pub fn reset(&mut self) {
        let close = if self.is_open() { self.id } else { self.close };
        *self = Self {
            close,
            ..Self::default()
        };
    }

    /// Whether the next request is incremental.
    pub fn is_open(&self) -> bool {
        self.id != INVALID_SESSION_ID
    }

    /// The request for `wanted` (every partition to fetch this round, by
    /// topic id).
    pub fn request(&mut self, wanted: Vec<FetchTopic>) -> Next {
        let mut now: Sent = wanted
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| ((t.topic_id, p.partition), params(p)))
            })
            .collect();
        // The fetcher lists partitions in this order already (a sorted run
        // costs one pass); a partition named twice keeps its last entry.
        now.sort_by_key(|a| a.0);
        now.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = later.1;
            }
            same
        });
        if !self.is_open() {
            self.pending = Some(Pending::All(now));
            return Next {
                session_id: self.close,
                epoch: INITIAL_EPOCH,
                topics: wanted,
                forgotten: Vec::new(),
            };
        }
        let mut topics = wanted;
        for t in &mut topics {
            let id = t.topic_id;
            t.partitions
                .retain(|p| lookup(&self.sent, (id, p.partition)) != Some(&params(p)));
        }
        topics.retain(|t| !t.partitions.is_empty());
        let mut forgotten: Vec<ForgottenTopic> = Vec::new();
        let gone = self
            .sent
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| lookup(&now, *k).is_none());
        for (topic_id, partition) in gone {
            match forgotten.last_mut() {
                Some(f) if f.topic_id == topic_id => f.partitions.push(partition),
                _ => forgotten.push(ForgottenTopic {
                    topic_id,
                    partitions: vec![partition],
                    ..Default::default()
                }),
            }
        }
        self.pending = Some(Pending::All(now));
        Next {
            session_id: self.id,
            epoch: self.epoch,
            topics,
            forgotten,
        }
    }

    /// The incremental request for a round in which only the partitions in
    /// `changed` may have new fetch parameters: every other partition of
    /// the session stays as last sent, and none is forgotten. Partitions in
    /// `changed` that the session does not hold are added. Without a session
    /// this is [`FetchSession::request`] of `changed` alone, so callers
    /// check [`FetchSession::is_open`] first.
    pub fn request_changed(&mut self, changed: Vec<FetchTopic>) -> Next {
        if !self.is_open() {
            return self.request(changed);
        }
        let mut updates: Sent = Vec::new();
        let mut topics = changed;
        for t in &mut topics {
            let id = t.topic_id;
            t.partitions.retain(|p| {
                let key = (id, p.partition);
                let now = params(p);
                let moved = lookup(&self.sent, key) != Some(&now);
                if moved {
                    updates.push((key, now));
                }
                moved
            });
        }
        topics.retain(|t| !t.partitions.is_empty());
        self.pending = Some(Pending::Changed(updates));
        Next {
            session_id: self.id,
            epoch: self.epoch,
            topics,
            forgotten: Vec::new(),
        }
    }

    /// The leader answered the last request with this top-level error and
    /// session id. `Err` carries a session error: the session is gone and
    /// the fetcher should send a full request at once.
    ///
    /// # Errors
    /// The leader's session error code.
    pub fn response(&mut self, error: ErrorCode, session_id: i32) -> Result<(), ErrorCode> {
        let pending = self.pending.take();
        match error {
            ErrorCode::NONE => {}
            ErrorCode::FETCH_SESSION_ID_NOT_FOUND
            | ErrorCode::INVALID_FETCH_SESSION_EPOCH
            | ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR => {
                self.reset();
                return Err(error);
            }
            _ => {
                self.reset();
                return Ok(());
            }
        }
        let (Some(sent), true) = (pending, session_id != INVALID_SESSION_ID) else {
            // No session (the leader had no room, or it closed it); a
            // session named for closing is gone too.
            self.reset();
            self.close = INVALID_SESSION_ID;
            return Ok(());
        };
        if self.is_open() && session_id != self.id {
            self.reset();
            return Ok(());
        }
        self.close = INVALID_SESSION_ID;
        self.epoch = if self.is_open() {
            next_epoch(self.epoch)
        } else {
            next_epoch(INITIAL_EPOCH)
        };
        self.id = session_id;
        match sent {
            Pending::All(sent) => self.sent = sent,
            Pending::Changed(updates) => {
                for (key, now) in updates {
                    match self.sent.binary_search_by(|(k, _)| k.cmp(&key)) {
                        Ok(i) => self.sent[i].1 = now,
                        Err(i) => self.sent.insert(i, (key, now)),
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(id: u8, parts: &[(i32, i64)]) -> FetchTopic {
        FetchTopic {
            topic_id: Uuid::from_bytes([id; 16]),
            partitions: parts
                .iter()
                .map(|&(partition, fetch_offset)| FetchPartition {
                    partition,
                    fetch_offset,
                    partition_max_bytes: 1024,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn names(next: &Next) -> Vec<(u8, i32, i64)> {
        next.topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic_id.as_bytes()[0], p.partition, p.fetch_offset))
            })
            .collect()
    }

    #[test]
    fn full_then_incremental_with_changes_and_forgotten() {
        let mut s = FetchSession::default();
        let next = s.request(vec![topic(1, &[(0, 5), (1, 7)]), topic(2, &[(0, 0)])]);
        assert_eq!((next.session_id, next.epoch), (0, 0));
        assert_eq!(names(&next).len(), 3);
        assert_eq!(s.response(ErrorCode::NONE, 42), Ok(()));
        // Nothing changed: an empty incremental request.
        let next = s.request(vec![topic(1, &[(0, 5), (1, 7)]), topic(2, &[(0, 0)])]);
        assert_eq!((next.session_id, next.epoch), (42, 1));
        assert!(next.topics.is_empty() && next.forgotten.is_empty());
        assert_eq!(s.response(ErrorCode::NONE, 42), Ok(()));
        // p1 moved on, topic 2 dropped.
        let next = s.request(vec![topic(1, &[(0, 5), (1, 9)])]);
        assert_eq!(next.epoch, 2);
        assert_eq!(names(&next), vec![(1, 1, 9)]);
        assert_eq!(next.forgotten.len(), 1);
        assert_eq!(next.forgotten[0].partitions, vec![0]);
        assert_eq!(next.forgotten[0].topic_id, Uuid::from_bytes([2; 16]));
        assert_eq!(s.response(ErrorCode::NONE, 42), Ok(()));
        let next = s.request(vec![topic(1, &[(0, 5), (1, 9)])]);
        assert_eq!(next.epoch, 3);
        assert!(next.topics.is_empty() && next.forgotten.is_empty());
    }

    #[test]
    fn partitions_out_of_order_are_compared_by_key() {
        let mut s = FetchSession::default();
        s.request(vec![topic(2, &[(1, 4), (0, 3)]), topic(1, &[(0, 5)])]);
        s.response(ErrorCode::NONE, 42).unwrap();
        // Same partitions, another order, one moved on: only it is named.
        let next = s.request(vec![topic(1, &[(0, 5)]), topic(2, &[(0, 3), (1, 6)])]);
        assert_eq!(names(&next), vec![(2, 1, 6)]);
        assert!(next.forgotten.is_empty());
        s.response(ErrorCode::NONE, 42).unwrap();
        // Topic 2's partition 0 dropped; a partition named twice keeps its
        // last entry.
        let next = s.request(vec![topic(2, &[(1, 6), (1, 8)]), topic(1, &[(0, 5)])]);
        assert_eq!(names(&next), vec![(2, 1, 8)]);
        assert_eq!(next.forgotten.len(), 1);
        assert_eq!(next.forgotten[0].partitions, vec![0]);
        s.response(ErrorCode::NONE, 42).unwrap();
        let next = s.request(vec![topic(1, &[(0, 5)]), topic(2, &[(1, 8)])]);
        assert!(next.topics.is_empty() && next.forgotten.is_empty());
    }

    #[test]
    fn a_round_naming_only_what_changed_keeps_the_rest_of_the_session() {
        let mut s = FetchSession::default();
        // Without a session it is a full request of what it names.
        let next = s.request_changed(vec![topic(1, &[(0, 5)])]);
        assert_eq!((next.session_id, next.epoch), (0, 0));
        s.response(ErrorCode::NONE, 0).unwrap();
        s.request(vec![topic(1, &[(0, 5), (1, 7)]), topic(2, &[(0, 0)])]);
        s.response(ErrorCode::NONE, 42).unwrap();
        // Topic 1 partition 1 moved on, partition 0 did not: only p1 goes,
        // and nothing is forgotten although topic 2 is not named.
        let next = s.request_changed(vec![topic(1, &[(0, 5), (1, 9)])]);
        assert_eq!((next.session_id, next.epoch), (42, 1));
        assert_eq!(names(&next), vec![(1, 1, 9)]);
        assert!(next.forgotten.is_empty());
        s.response(ErrorCode::NONE, 42).unwrap();
        // The session now holds p1 at 9 (and the rest as before): a full
        // round of the same offsets names nothing and forgets nothing.
        let next = s.request(vec![topic(1, &[(0, 5), (1, 9)]), topic(2, &[(0, 0)])]);
        assert!(next.topics.is_empty() && next.forgotten.is_empty());
        s.response(ErrorCode::NONE, 42).unwrap();
        // A changed round that is not answered leaves the session as it was.
        let next = s.request_changed(vec![topic(2, &[(0, 3)])]);
        assert_eq!(names(&next), vec![(2, 0, 3)]);
        assert_eq!(
            s.response(ErrorCode::INVALID_FETCH_SESSION_EPOCH, 0),
            Err(ErrorCode::INVALID_FETCH_SESSION_EPOCH)
        );
        let next = s.request(vec![topic(1, &[(0, 5), (1, 9)]), topic(2, &[(0, 3)])]);
        assert_eq!((next.session_id, next.epoch), (42, 0));
        assert_eq!(names(&next).len(), 3);
        s.response(ErrorCode::NONE, 43).unwrap();
        // A partition the session lacks is added by a changed round.
        let next = s.request_changed(vec![topic(3, &[(0, 1)])]);
        assert_eq!(names(&next), vec![(3, 0, 1)]);
        s.response(ErrorCode::NONE, 43).unwrap();
        let next = s.request(vec![
            topic(1, &[(0, 5), (1, 9)]),
            topic(2, &[(0, 3)]),
            topic(3, &[(0, 1)]),
        ]);
        assert!(next.topics.is_empty() && next.forgotten.is_empty());
    }

    #[test]
    fn any_session_error_or_failure_falls_back_to_a_full_fetch() {
        for code in [
            ErrorCode::FETCH_SESSION_ID_NOT_FOUND,
            ErrorCode::INVALID_FETCH_SESSION_EPOCH,
            ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR,
        ] {
            let mut s = FetchSession::default();
            s.request(vec![topic(1, &[(0, 5)])]);
            s.response(ErrorCode::NONE, 7).unwrap();
            s.request(vec![topic(1, &[(0, 5)])]);
            assert_eq!(s.response(code, 0), Err(code));
            // Full again, closing the old session.
            let next = s.request(vec![topic(1, &[(0, 5)])]);
            assert_eq!((next.session_id, next.epoch), (7, 0));
            assert_eq!(names(&next), vec![(1, 0, 5)]);
            s.response(ErrorCode::NONE, 9).unwrap();
            let next = s.request(vec![topic(1, &[(0, 5)])]);
            assert_eq!((next.session_id, next.epoch), (9, 1));
            assert!(next.topics.is_empty());
        }
        // A failed request (no response): the fetcher resets.
        let mut s = FetchSession::default();
        s.request(vec![topic(1, &[(0, 5)])]);
        s.response(ErrorCode::NONE, 7).unwrap();
        s.request(vec![topic(1, &[(0, 6)])]);
        s.reset();
        let next = s.request(vec![topic(1, &[(0, 6)])]);
        assert_eq!((next.session_id, next.epoch), (7, 0));
        assert_eq!(names(&next), vec![(1, 0, 6)]);
        // The leader had no room: stay sessionless.
        let mut s = FetchSession::default();
        s.request(vec![topic(1, &[(0, 5)])]);
        s.response(ErrorCode::NONE, 0).unwrap();
        assert!(!s.is_open());
        // Another session id than ours: start over.
        let mut s = FetchSession::default();
        s.request(vec![topic(1, &[(0, 5)])]);
        s.response(ErrorCode::NONE, 7).unwrap();
        s.request(vec![topic(1, &[(0, 5)])]);
        s.response(ErrorCode::NONE, 8).unwrap();
        assert!(!s.is_open());
    }
}
