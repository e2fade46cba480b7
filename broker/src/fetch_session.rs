//! Incremental fetch sessions (KIP-227): the broker-side cache and its state
//! machine. No I/O and no clock of its own: the fetch handler passes `now_ms`.
//!
//! A client that sends a full fetch with `session_id` 0 and epoch 0 asks for a
//! session. When the cache has room (or can evict, below), the response carries
//! a new session id and the session remembers every partition the client asked
//! for (fetch offset, sizes, epochs) and what it last answered for each (HW,
//! LSO, log start). The client's next fetch is *incremental*: epoch 1, 2, …,
//! naming only partitions whose fetch parameters changed and, in
//! `forgotten_topics_data`, those to drop. The broker fetches every partition
//! of the session and answers only those with something new: records, a
//! changed HW/LSO/log start, an error or a preferred read replica.
//!
//! Request metadata (Kafka's `FetchMetadata`):
//! - epoch -1 (FINAL): sessionless full fetch; a non-zero id closes that session.
//! - epoch 0 (INITIAL): full fetch; a non-zero id closes that session; a new
//!   session is created when there is room.
//! - epoch n > 0: incremental on session `id`; `FETCH_SESSION_ID_NOT_FOUND` if
//!   there is no such session, `INVALID_FETCH_SESSION_EPOCH` if `n` is not the
//!   epoch the session expects, `FETCH_SESSION_TOPIC_ID_ERROR` if the session
//!   was created with topic ids (v13+) and this request uses names, or the
//!   reverse. A session that ends up with no partitions is closed.
//!
//! Eviction (Kafka's `FetchSessionCache`): at most `slots` sessions
//! (`max.incremental.fetch.session.cache.slots`). A new session may take the
//! place of (1) the least recently used session when it has been idle for more
//! than `eviction_ms`; otherwise (2) the least valuable evictable session, if
//! the newcomer is worth more. Worth orders by (privileged, size): follower
//! (replica) sessions are privileged. A consumer's session may only evict
//! sessions created more than `eviction_ms` ago; a follower's may also evict
//! any consumer session.
//!
//! Memory: `slots` sessions, each of at most [`MAX_SESSION_PARTITIONS`]
//! partitions (one that would grow past it is closed).
//!
//! Rotation: a partition that appears in an incremental response moves to the
//! end of its session's order, so partitions behind it get the byte budget
//! first next time (clients rotate themselves for full fetches).
//!
//! Narrowed rounds (brook's own, for follower sessions): with a
//! [`ChangeJournal`] (the partitions whose answer to this follower may have
//! changed, in order), an incremental round reads only the partitions the
//! request names and those journaled since the session's last round, not the
//! whole session. Every `rescan_ms` (and after a round that left records
//! unread) a round reads everything, which also catches what the journal
//! does not record (a log start moving, leadership leaving) and keeps each
//! partition's record of the follower fresh for the ISR lag check.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use brook_protocol::codec::Uuid;
use brook_protocol::error::ErrorCode;

/// `session_id` meaning "no session".
pub const INVALID_SESSION_ID: i32 = 0;
/// Epoch of a full fetch that asks for a session.
pub const INITIAL_EPOCH: i32 = 0;
/// Epoch of a sessionless full fetch (or one that closes a session).
pub const FINAL_EPOCH: i32 = -1;
/// How long a session is safe from eviction by an equal or larger newcomer,
/// and how long it may go unused before any newcomer may take its place
/// (Kafka's `MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS`).
pub const MIN_EVICTION_MS: u64 = 120_000;
/// Most partitions one session may hold.
pub const MAX_SESSION_PARTITIONS: usize = 200_000;

/// The epoch after `epoch` (wraps to 1, never back to 0 or -1).
#[must_use]
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        epoch
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// A topic as the request names it: by id from Fetch v13, by name before.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(Uuid),
    Name(Arc<str>),
}

/// One partition of a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartKey {
    pub topic: TopicKey,
    pub partition: i32,
}

/// What the client asks of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchParams {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    /// The fetcher's own log start (followers).
    pub log_start_offset: i64,
}

/// What a response said about one partition: what decides whether an
/// incremental response must include it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub error_code: i16,
    pub has_records: bool,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub preferred_read_replica: i32,
}

/// What a session last answered for one partition. An incremental response
/// carries the partition only when its new answer is not
/// [`Prior::unchanged`]: the fetch handler skips the others while it builds
/// (most partitions of a follower's session, every round), and
/// [`FetchSessionCache::answer`] decides the same way for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prior {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

impl Prior {
    /// Whether answer `a` tells the client nothing this one did not.
    #[must_use]
    pub fn unchanged(&self, a: &Answer) -> bool {
        !a.has_records
            && a.preferred_read_replica < 0
            && a.error_code == 0
            && a.high_watermark == self.high_watermark
            && a.last_stable_offset == self.last_stable_offset
            && a.log_start_offset == self.log_start_offset
    }
}

/// The partitions whose answer to one follower may have changed, by
/// sequence number (`partition::FollowerWakes`).
pub trait ChangeJournal {
    /// Where the journal ends now.
    fn head(&self) -> u64;
    /// The partitions journaled from `from` on and where that read ends, or
    /// `None` for the partitions when some were dropped (read everything).
    fn since(&self, from: u64) -> (u64, Option<Vec<(Uuid, i32)>>);
}

/// How often a narrowed session reads all its partitions by default.
pub const DEFAULT_RESCAN_MS: u64 = 1000;

/// What the handler should fetch for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Fetch the request's partitions; answer with session id 0.
    Sessionless,
    /// Fetch the request's partitions, then offer a session ([`FetchSessionCache::create`]).
    Full,
    /// Fetch every partition of session `id` (in this order), then answer
    /// through [`FetchSessionCache::answer`] for those not left out as
    /// unchanged since their [`Prior`].
    Incremental {
        id: i32,
        /// The epoch of the request (to detect a concurrent duplicate).
        epoch: i32,
        partitions: Vec<(PartKey, FetchParams, Prior)>,
        /// With a journal: where this round's read of it ends (pass it to
        /// [`FetchSessionCache::answer_round`]).
        journal_upto: Option<u64>,
    },
    /// Refuse the request with this top-level error and session id 0.
    Error(ErrorCode),
}

/// What an incremental request's answer should be.
#[derive(Debug, PartialEq, Eq)]
pub enum Filter {
    /// Keep the partitions marked `true` (same order as the answers given).
    Keep(Vec<bool>),
    /// The session moved on (a duplicate request) or is gone: answer with
    /// this error and no partitions.
    Error(ErrorCode),
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    params: FetchParams,
    /// Position in the session's order.
    seq: u64,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

impl Cached {
    fn prior(&self) -> Prior {
        Prior {
            high_watermark: self.high_watermark,
            last_stable_offset: self.last_stable_offset,
            log_start_offset: self.log_start_offset,
        }
    }
}

#[derive(Debug)]
struct Session {
    privileged: bool,
    uses_topic_ids: bool,
    /// The epoch the next incremental request must carry.
    epoch: i32,
    created_ms: u64,
    last_used_ms: u64,
    parts: HashMap<PartKey, Cached>,
    order: BTreeMap<u64, PartKey>,
    next_seq: u64,
    /// Narrowed rounds: the journal's sequence number the next round reads
    /// from, and when the session last read all its partitions.
    journal_seq: u64,
    scanned_ms: u64,
    /// The last round left records unread: the next reads everything.
    rescan: bool,
}

impl Session {
    fn push(&mut self, key: PartKey, mut cached: Cached) {
        cached.seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(cached.seq, key.clone());
        self.parts.insert(key, cached);
    }

    fn remove(&mut self, key: &PartKey) {
        if let Some(c) = self.parts.remove(key) {
            self.order.remove(&c.seq);
        }
    }

    /// The session's partitions among `keys`, once each, in its order.
    fn select(
        &self,
        keys: impl IntoIterator<Item = PartKey>,
    ) -> Vec<(PartKey, FetchParams, Prior)> {
        let mut found: Vec<(u64, &PartKey, &Cached)> = keys
            .into_iter()
            .filter_map(|k| self.parts.get_key_value(&k))
            .map(|(k, c)| (c.seq, k, c))
            .collect();
        found.sort_unstable_by_key(|(seq, _, _)| *seq);
        found.dedup_by_key(|(seq, _, _)| *seq);
        found
            .into_iter()
            .map(|(_, k, c)| (k.clone(), c.params, c.prior()))
            .collect()
    }

    /// Move `key` to the end of the order.
    fn rotate(&mut self, key: &PartKey) {
        let seq = self.next_seq;
        if let Some(c) = self.parts.get_mut(key) {
            self.order.remove(&c.seq);
            c.seq = seq;
            self.order.insert(seq, key.clone());
            self.next_seq += 1;
        }
    }
}

/// Counters the metrics read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub sessions: usize,
    pub partitions: usize,
    pub evictions: u64,
    pub created: u64,
}

/// The broker's fetch sessions. Callers wrap it in a mutex; every method is
/// short (no I/O), at worst linear in the number of sessions (eviction).
#[derive(Debug)]
pub struct FetchSessionCache {
    slots: usize,
    eviction_ms: u64,
    sessions: HashMap<i32, Session>,
    partitions: usize,
    evictions: u64,
    created: u64,
    rescan_ms: u64,
}

impl FetchSessionCache {
    /// A cache of at most `slots` sessions (0 disables sessions).
    #[must_use]
    pub fn new(slots: usize, eviction_ms: u64) -> Self {
        Self {
            slots,
            eviction_ms,
            sessions: HashMap::new(),
            partitions: 0,
            evictions: 0,
            created: 0,
            rescan_ms: DEFAULT_RESCAN_MS,
        }
    }

    /// How often a narrowed session reads all its partitions.
    #[must_use]
    pub fn with_rescan_ms(mut self, ms: u64) -> Self {
        self.rescan_ms = ms.max(1);
        self
    }

    #[must_use]
    pub fn stats(&self) -> Stats {
        Stats {
            sessions: self.sessions.len(),
            partitions: self.partitions,
            evictions: self.evictions,
            created: self.created,
        }
    }

    /// Decide how to serve a Fetch of `version` with this session metadata,
    /// applying an incremental request's changes (`updates`: partitions the
    /// request names; `forgotten`: partitions to drop) to its session.
    pub fn plan(
        &mut self,
        now_ms: u64,
        version: i16,
        session_id: i32,
        epoch: i32,
        updates: impl IntoIterator<Item = (PartKey, FetchParams)>,
        forgotten: impl IntoIterator<Item = PartKey>,
    ) -> Plan {
        self.plan_with(now_ms, version, session_id, epoch, updates, forgotten, None)
    }

    /// [`FetchSessionCache::plan`], narrowed by `journal` for a session
    /// that names topics by id (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub fn plan_with(
        &mut self,
        now_ms: u64,
        version: i16,
        session_id: i32,
        epoch: i32,
        updates: impl IntoIterator<Item = (PartKey, FetchParams)>,
        forgotten: impl IntoIterator<Item = PartKey>,
        journal: Option<&dyn ChangeJournal>,
    ) -> Plan {
        if version < 7 {
            return Plan::Sessionless;
        }
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            // Any session a full fetch names is closed.
            if session_id != INVALID_SESSION_ID {
                self.remove(session_id);
            }
            return if epoch == FINAL_EPOCH || self.slots == 0 {
                Plan::Sessionless
            } else {
                Plan::Full
            };
        }
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return Plan::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.epoch != epoch {
            return Plan::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH);
        }
        if session.uses_topic_ids != (version >= 13) {
            return Plan::Error(ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR);
        }
        let before = session.parts.len();
        let mut named = Vec::new();
        for (key, params) in updates {
            if journal.is_some() {
                named.push(key.clone());
            }
            match session.parts.get_mut(&key) {
                Some(c) => c.params = params,
                None => session.push(
                    key,
                    Cached {
                        params,
                        seq: 0,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                    },
                ),
            }
        }
        for key in forgotten {
            session.remove(&key);
        }
        let after = session.parts.len();
        self.partitions = self.partitions.saturating_sub(before) + after;
        if after == 0 {
            // Nothing left to fetch: the session ends.
            self.remove(session_id);
            return Plan::Sessionless;
        }
        if after > MAX_SESSION_PARTITIONS {
            self.remove(session_id);
            self.evictions += 1;
            return Plan::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
        }
        session_touch(session, now_ms);
        session.epoch = next_epoch(session.epoch);
        let journal = journal.filter(|_| session.uses_topic_ids);
        let due = session.rescan || now_ms >= session.scanned_ms.saturating_add(self.rescan_ms);
        let narrowed = journal
            .filter(|_| !due)
            .map(|j| j.since(session.journal_seq))
            .and_then(|(upto, changed)| changed.map(|c| (upto, c)));
        let (partitions, journal_upto) = match narrowed {
            Some((upto, changed)) => {
                let keys = changed
                    .into_iter()
                    .map(|(id, partition)| PartKey {
                        topic: TopicKey::Id(id),
                        partition,
                    })
                    .chain(named);
                (session.select(keys), Some(upto))
            }
            None => {
                let upto = journal.map(ChangeJournal::head);
                if journal.is_some() {
                    session.scanned_ms = now_ms;
                    session.rescan = false;
                }
                let all = session
                    .order
                    .values()
                    .filter_map(|k| {
                        session
                            .parts
                            .get(k)
                            .map(|c| (k.clone(), c.params, c.prior()))
                    })
                    .collect();
                (all, upto)
            }
        };
        Plan::Incremental {
            id: session_id,
            epoch,
            partitions,
            journal_upto,
        }
    }

    /// The partitions of session `id` among `keys`, in the session's order
    /// (a long-poll adding those journaled while it waited).
    pub fn select(
        &self,
        id: i32,
        keys: impl IntoIterator<Item = PartKey>,
    ) -> Vec<(PartKey, FetchParams, Prior)> {
        self.sessions
            .get(&id)
            .map(|s| s.select(keys))
            .unwrap_or_default()
    }

    /// After a full fetch with epoch 0: create a session holding `parts`
    /// (what was asked, what was answered). Returns its id, or
    /// [`INVALID_SESSION_ID`] when there is no room.
    pub fn create(
        &mut self,
        now_ms: u64,
        privileged: bool,
        uses_topic_ids: bool,
        parts: Vec<(PartKey, FetchParams, Answer)>,
    ) -> i32 {
        self.create_at(now_ms, privileged, uses_topic_ids, parts, 0, false)
    }

    /// [`FetchSessionCache::create`] for a session narrowed by a journal
    /// whose head was `journal_seq` before the full fetch was read;
    /// `unread` when that fetch left records unread (the session's first
    /// incremental round then reads everything).
    pub fn create_at(
        &mut self,
        now_ms: u64,
        privileged: bool,
        uses_topic_ids: bool,
        parts: Vec<(PartKey, FetchParams, Answer)>,
        journal_seq: u64,
        unread: bool,
    ) -> i32 {
        let size = parts.len();
        if self.slots == 0 || size == 0 || size > MAX_SESSION_PARTITIONS {
            return INVALID_SESSION_ID;
        }
        if self.sessions.len() >= self.slots && !self.try_evict(privileged, size, now_ms) {
            return INVALID_SESSION_ID;
        }
        let id = loop {
            let id = rand::random_range(1..i32::MAX);
            if !self.sessions.contains_key(&id) {
                break id;
            }
        };
        let mut session = Session {
            privileged,
            uses_topic_ids,
            epoch: next_epoch(INITIAL_EPOCH),
            created_ms: now_ms,
            last_used_ms: now_ms,
            parts: HashMap::with_capacity(size),
            order: BTreeMap::new(),
            next_seq: 0,
            journal_seq,
            scanned_ms: now_ms,
            rescan: unread,
        };
        for (key, params, answer) in parts {
            // A request naming a partition twice keeps the last.
            session.remove(&key);
            session.push(
                key,
                Cached {
                    params,
                    seq: 0,
                    high_watermark: if answer.error_code == 0 {
                        answer.high_watermark
                    } else {
                        -1
                    },
                    last_stable_offset: answer.last_stable_offset,
                    log_start_offset: answer.log_start_offset,
                },
            );
        }
        self.partitions += session.parts.len();
        self.sessions.insert(id, session);
        self.created += 1;
        id
    }

    /// After an incremental fetch planned with `epoch`: which of `answers`
    /// (the session's partitions in the order planned, less any the handler
    /// left out as unchanged since their [`Prior`]) the response must carry.
    /// Updates what the session last answered and rotates the partitions that
    /// are sent to the end.
    pub fn answer<'a>(
        &mut self,
        id: i32,
        epoch: i32,
        answers: impl IntoIterator<Item = (&'a PartKey, Answer)>,
    ) -> Filter {
        self.answer_round(id, epoch, answers, None, false)
    }

    /// [`FetchSessionCache::answer`] for a round that read its journal up
    /// to `journal_upto`; `unread` when it left records unread (a byte
    /// budget or throttle ran out): the next round then reads everything.
    pub fn answer_round<'a>(
        &mut self,
        id: i32,
        epoch: i32,
        answers: impl IntoIterator<Item = (&'a PartKey, Answer)>,
        journal_upto: Option<u64>,
        unread: bool,
    ) -> Filter {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Filter::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.epoch != next_epoch(epoch) {
            // Another request on this session was planned meanwhile.
            return Filter::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH);
        }
        if let Some(upto) = journal_upto {
            session.journal_seq = upto;
        }
        session.rescan |= unread;
        let mut keep = Vec::new();
        for (key, a) in answers {
            let Some(c) = session.parts.get_mut(key) else {
                keep.push(true);
                continue;
            };
            let respond = !c.prior().unchanged(&a);
            // After an error the partition is sent again once it clears.
            c.high_watermark = if a.error_code == 0 {
                a.high_watermark
            } else {
                -1
            };
            c.last_stable_offset = a.last_stable_offset;
            c.log_start_offset = a.log_start_offset;
            if respond {
                session.rotate(key);
            }
            keep.push(respond);
        }
        Filter::Keep(keep)
    }

    /// Close session `id`, if cached.
    pub fn remove(&mut self, id: i32) -> bool {
        match self.sessions.remove(&id) {
            Some(s) => {
                self.partitions = self.partitions.saturating_sub(s.parts.len());
                true
            }
            None => false,
        }
    }

    /// Make room for a session of `size` partitions (Kafka's `tryEvict`).
    fn try_evict(&mut self, privileged: bool, size: usize, now_ms: u64) -> bool {
        let stale = self
            .sessions
            .iter()
            .min_by_key(|(id, s)| (s.last_used_ms, **id))
            .filter(|(_, s)| now_ms.saturating_sub(s.last_used_ms) > self.eviction_ms)
            .map(|(id, _)| *id);
        let victim = stale.or_else(|| {
            let old = |s: &Session| now_ms.saturating_sub(s.created_ms) > self.eviction_ms;
            self.sessions
                .iter()
                .filter(|(_, s)| old(s) || (privileged && !s.privileged))
                .map(|(id, s)| ((s.privileged, s.parts.len(), *id), *id))
                .min()
                .filter(|((p, n, _), _)| (privileged, size) > (*p, *n))
                .map(|(_, id)| id)
        });
        match victim {
            Some(id) => {
                self.remove(id);
                self.evictions += 1;
                true
            }
            None => false,
        }
    }
}

fn session_touch(session: &mut Session, now_ms: u64) {
    session.last_used_ms = session.last_used_ms.max(now_ms);
}

#[cfg(test)]
#[path = "fetch_session_tests.rs"]
mod tests;
