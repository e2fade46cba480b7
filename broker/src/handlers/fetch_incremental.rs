//! Fetch sessions at the Fetch handler's edge: which partitions a request
//! reads (its own, or its session's) and how the built response is finished
//! (a new session offered, an incremental answer pruned to what changed).
//! The session state machine is `crate::fetch_session`; this file only
//! translates between it and the wire types.
//!
//! A sessionless fetch (epoch -1 and no id, what librdkafka sends) takes none
//! of the cache's lock and allocates nothing beyond what it did before.

use std::sync::Arc;

use brook_protocol::codec::Uuid;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::fetch_response::{FetchResponse, PartitionData};
use brook_protocol::messages::FetchRequest;

use super::fetch::{Wanted, WantedPartition};
use super::Ctx;
use crate::fetch_session::{
    Answer, ChangeJournal, FetchParams, Filter, PartKey, Plan, Prior, TopicKey, FINAL_EPOCH,
    INITIAL_EPOCH, INVALID_SESSION_ID,
};
use crate::log::FileRegion;
use crate::partition::FollowerWakes;

/// How a fetch relates to a session, carried to the response.
pub(super) enum Mode {
    /// Answer in full, session id 0.
    Sessionless,
    /// Answer in full and offer a new session (epoch 0); a follower's
    /// session reads its journal from `journal_seq` on.
    Full {
        privileged: bool,
        journal_seq: Option<u64>,
    },
    /// Answer only what changed, on session `id`; a follower's session
    /// has read its journal up to `journal_upto`.
    Incremental {
        id: i32,
        epoch: i32,
        journal_upto: Option<u64>,
    },
}

/// A follower's journal of partitions with news (`partition::FollowerWakes`),
/// as the session cache reads it.
struct Journal<'a> {
    wakes: &'a FollowerWakes,
    follower: i32,
}

impl ChangeJournal for Journal<'_> {
    fn head(&self) -> u64 {
        self.wakes.head(self.follower)
    }

    fn since(&self, from: u64) -> (u64, Option<Vec<(Uuid, i32)>>) {
        let c = self.wakes.since(self.follower, from);
        (c.upto, c.parts)
    }
}

/// The partitions to read and how to answer, or the response refusing the
/// request (a session error: top-level code, session id 0, no partitions).
pub(super) fn plan(
    ctx: &Ctx,
    req: &FetchRequest,
    replica: Option<i32>,
) -> Result<(Vec<Wanted>, Mode), FetchResponse> {
    let privileged = replica.is_some();
    let (id, epoch) = (req.session_id, req.session_epoch);
    if ctx.version < 7 || (id == INVALID_SESSION_ID && epoch == FINAL_EPOCH) {
        return Ok((from_request(ctx, req), Mode::Sessionless));
    }
    let uses_ids = ctx.version >= 13;
    let now = crate::partition::monotonic_ms();
    let full = epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH;
    let (updates, forgotten) = if full {
        (Vec::new(), Vec::new())
    } else {
        changes(req, uses_ids)
    };
    // A follower's session (by topic id) reads only what its journal lists.
    let journal = replica.filter(|_| uses_ids).map(|follower| Journal {
        wakes: ctx.broker.follower_wakes(),
        follower,
    });
    let plan = ctx.broker.fetch_sessions().plan_with(
        now,
        ctx.version,
        id,
        epoch,
        updates,
        forgotten,
        journal.as_ref().map(|j| j as &dyn ChangeJournal),
    );
    match plan {
        Plan::Sessionless => Ok((from_request(ctx, req), Mode::Sessionless)),
        Plan::Full => {
            // Read before the partitions are: what changes after is in the
            // journal from here on.
            let journal_seq = journal.as_ref().map(ChangeJournal::head);
            Ok((
                from_request(ctx, req),
                Mode::Full {
                    privileged,
                    journal_seq,
                },
            ))
        }
        Plan::Incremental {
            id,
            epoch,
            partitions,
            journal_upto,
        } => Ok((
            from_session(ctx, &partitions),
            Mode::Incremental {
                id,
                epoch,
                journal_upto,
            },
        )),
        Plan::Error(code) => {
            crate::metrics::api_error(brook_protocol::api::ApiKey::Fetch, code.code());
            Err(FetchResponse {
                error_code: code.code(),
                session_id: INVALID_SESSION_ID,
                ..Default::default()
            })
        }
    }
}

/// Finish a built response: offer a session after a full fetch with epoch
/// 0, or keep only the partitions an incremental response must carry. On a
/// session error found now (the session was evicted, or a duplicate request
/// moved its epoch) the response becomes that error and `regions` is emptied.
pub(super) fn conclude(
    ctx: &Ctx,
    mode: &Mode,
    wanted: &[Wanted],
    resp: &mut FetchResponse,
    regions: &mut Vec<FileRegion>,
    unread: bool,
) {
    let uses_ids = ctx.version >= 13;
    let now = crate::partition::monotonic_ms();
    match *mode {
        Mode::Sessionless => {}
        Mode::Full {
            privileged,
            journal_seq,
        } => {
            let mut parts = Vec::new();
            for (w, t) in wanted.iter().zip(&resp.responses) {
                let topic = topic_key(w, uses_ids);
                for (wp, pd) in w.partitions.iter().zip(&t.partitions) {
                    let key = PartKey {
                        topic: topic.clone(),
                        partition: wp.index,
                    };
                    parts.push((key, wp.params, answer(pd)));
                }
            }
            resp.session_id = ctx.broker.fetch_sessions().create_at(
                now,
                privileged,
                uses_ids,
                parts,
                journal_seq.unwrap_or(0),
                unread,
            );
        }
        Mode::Incremental {
            id,
            epoch,
            journal_upto,
        } => {
            // The partitions `build` did not leave out as unchanged, in the
            // response's order (one topic entry per wanted entry).
            let mut answers = Vec::new();
            for (w, t) in wanted.iter().zip(&resp.responses) {
                let topic = topic_key(w, uses_ids);
                answers.extend(t.partitions.iter().map(|pd| {
                    let key = PartKey {
                        topic: topic.clone(),
                        partition: pd.partition_index,
                    };
                    (key, answer(pd))
                }));
            }
            let filter = ctx.broker.fetch_sessions().answer_round(
                id,
                epoch,
                answers.iter().map(|(k, a)| (k, *a)),
                journal_upto,
                unread,
            );
            match filter {
                Filter::Keep(keep) => {
                    let mut keep = keep.into_iter();
                    for t in &mut resp.responses {
                        t.partitions.retain(|_| keep.next().unwrap_or(true));
                    }
                    resp.responses.retain(|t| !t.partitions.is_empty());
                    resp.session_id = id;
                }
                Filter::Error(code) => {
                    crate::metrics::api_error(brook_protocol::api::ApiKey::Fetch, code.code());
                    // Kafka names the session when its epoch moved on.
                    let session_id = if code == ErrorCode::INVALID_FETCH_SESSION_EPOCH {
                        id
                    } else {
                        INVALID_SESSION_ID
                    };
                    *resp = FetchResponse {
                        error_code: code.code(),
                        session_id,
                        ..Default::default()
                    };
                    regions.clear();
                }
            }
        }
    }
}

fn topic_key(w: &Wanted, uses_ids: bool) -> TopicKey {
    if uses_ids {
        TopicKey::Id(w.id)
    } else {
        TopicKey::Name(w.name.clone())
    }
}

pub(super) fn answer(pd: &PartitionData) -> Answer {
    let has_records = match &pd.records {
        Some(brook_protocol::codec::Records::Region { len, .. }) => *len > 0,
        Some(brook_protocol::codec::Records::Bytes(b)) => !b.is_empty(),
        _ => false,
    };
    Answer {
        error_code: pd.error_code,
        has_records,
        high_watermark: pd.high_watermark,
        last_stable_offset: pd.last_stable_offset,
        log_start_offset: pd.log_start_offset,
        preferred_read_replica: pd.preferred_read_replica,
    }
}

fn params(p: &brook_protocol::messages::fetch_request::FetchPartition) -> FetchParams {
    FetchParams {
        fetch_offset: p.fetch_offset,
        max_bytes: p.partition_max_bytes,
        current_leader_epoch: p.current_leader_epoch,
        last_fetched_epoch: p.last_fetched_epoch,
        log_start_offset: p.log_start_offset,
    }
}

/// An incremental request's named partitions and forgotten ones, as keys.
fn changes(req: &FetchRequest, uses_ids: bool) -> (Vec<(PartKey, FetchParams)>, Vec<PartKey>) {
    let key = |name: &str, id| {
        if uses_ids {
            TopicKey::Id(id)
        } else {
            TopicKey::Name(Arc::from(name))
        }
    };
    let mut updates = Vec::new();
    for t in &req.topics {
        let topic = key(&t.topic, t.topic_id);
        updates.extend(t.partitions.iter().map(|p| {
            (
                PartKey {
                    topic: topic.clone(),
                    partition: p.partition,
                },
                params(p),
            )
        }));
    }
    let mut forgotten = Vec::new();
    for t in &req.forgotten_topics_data {
        let topic = key(&t.topic, t.topic_id);
        forgotten.extend(t.partitions.iter().map(|&partition| PartKey {
            topic: topic.clone(),
            partition,
        }));
    }
    (updates, forgotten)
}

/// The request's own partitions.
fn from_request(ctx: &Ctx, req: &FetchRequest) -> Vec<Wanted> {
    req.topics
        .iter()
        .map(|t| {
            let topic = if ctx.version >= 13 {
                ctx.broker.topic_by_id(&t.topic_id)
            } else {
                ctx.broker.topic(&t.topic)
            };
            Wanted {
                name: topic
                    .as_ref()
                    .map_or_else(|| Arc::from(t.topic.as_str()), |tp| tp.name.clone()),
                id: t.topic_id,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| WantedPartition {
                        index: p.partition,
                        partition: topic.as_ref().and_then(|tp| tp.partition(p.partition)),
                        params: params(p),
                        prior: None,
                    })
                    .collect(),
                topic,
            }
        })
        .collect()
}

/// While a follower's long-poll on session `mode` waits: the partitions
/// journaled since its last read, not in `wanted` yet, to read as well.
/// `None` when the journal dropped some (the long-poll should answer now;
/// the next round reads everything).
pub(super) fn journaled_since(
    ctx: &Ctx,
    mode: &mut Mode,
    follower: i32,
    wanted: &[Wanted],
) -> Option<Vec<Wanted>> {
    let Mode::Incremental {
        id,
        journal_upto: Some(upto),
        ..
    } = mode
    else {
        return Some(Vec::new());
    };
    let changes = ctx.broker.follower_wakes().since(follower, *upto);
    let parts = changes.parts?;
    *upto = changes.upto;
    let have: std::collections::HashSet<(Uuid, i32)> = wanted
        .iter()
        .flat_map(|w| w.partitions.iter().map(move |p| (w.id, p.index)))
        .collect();
    let keys = parts
        .into_iter()
        .filter(|k| !have.contains(k))
        .map(|(topic, partition)| PartKey {
            topic: TopicKey::Id(topic),
            partition,
        });
    let more = ctx.broker.fetch_sessions().select(*id, keys);
    Some(from_session(ctx, &more))
}

/// Every partition of a session, in its order; consecutive partitions of one
/// topic share an entry (a topic may appear more than once, as in Kafka).
fn from_session(ctx: &Ctx, parts: &[(PartKey, FetchParams, Prior)]) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = Vec::new();
    for (key, params, prior) in parts {
        let same = out.last().is_some_and(|w| match &key.topic {
            TopicKey::Id(id) => w.id == *id,
            TopicKey::Name(name) => w.name == *name,
        });
        if !same {
            let (topic, name, id) = match &key.topic {
                TopicKey::Id(id) => {
                    let topic = ctx.broker.topic_by_id(id);
                    let name = topic
                        .as_ref()
                        .map_or_else(|| Arc::from(""), |t| t.name.clone());
                    (topic, name, *id)
                }
                TopicKey::Name(name) => (ctx.broker.topic(name), name.clone(), Uuid::default()),
            };
            out.push(Wanted {
                topic,
                name,
                id,
                partitions: Vec::new(),
            });
        }
        if let Some(w) = out.last_mut() {
            let partition = w.topic.as_ref().and_then(|t| t.partition(key.partition));
            w.partitions.push(WantedPartition {
                index: key.partition,
                partition,
                params: *params,
                prior: Some(*prior),
            });
        }
    }
    out
}
