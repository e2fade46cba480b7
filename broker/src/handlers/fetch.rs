//! Fetch (key 1, v4–16): read record batches up to the high-water mark and send
//! them as file regions (sendfile), long-polling until `min_bytes` are available
//! or `max_wait_ms` passes. Woken by HW changes, never by sleeping; a long-poll
//! whose client disconnects ends at once (`Ctx::closed`).
//!
//! A fetch from a follower (replica id ≥ 0; from v15 the tagged
//! `ReplicaState`, whose broker epoch must match the follower's current
//! registration) reads up to the log end instead of the HW, records the
//! follower's progress in the partition's state machine (which may move the
//! HW), and long-polls on one wake-up for every partition it replicates from
//! here (`crate::partition::FollowerWakes`), and on the partitions it must
//! replicate but does not fetch yet (`crate::replication::unfetched`). When
//! consumers may read from followers, its incremental session's long-poll
//! also ends when a partition's HW moves past what it was last told
//! (KIP-1166), so a follower's HW trails the leader's by one round trip, not
//! by the next append or a whole long-poll.
//!
//! Follower fetching (KIP-392): with `replica.selector.class` set to the
//! rack-aware selector, a leader tells a consumer that sent `rack_id` (v11+)
//! to read from an in-sync replica in its rack (`preferred_read_replica`,
//! no records), and a follower serves such consumers up to its own HW.
//!
//! Rules clients depend on: an empty partition carries an empty (not null)
//! record set; a fetch that starts inside a batch gets the whole batch; the
//! first partition with data returns at least one whole batch even when it is
//! larger than `max_bytes`.
//!
//! Fetch sessions (KIP-227, v7+): `fetch_incremental` decides from the
//! request's session id and epoch which partitions to read (the request's, or
//! every partition of the session) and, once the response is built, offers a
//! session or drops the partitions with nothing new. An incremental read
//! leaves out at once each partition whose answer is what the session last
//! sent (`fetch_session::Prior`). The cache itself is `crate::fetch_session`.
//!
// Hot path: no copies of record data; regions go straight to sendfile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_protocol::codec::{Records, Uuid};
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use brook_protocol::messages::FetchRequest;
use tokio::sync::watch;

use super::fetch_incremental as incremental;
use super::Ctx;
use crate::broker::Topic;
use crate::error::BrokerError;
use crate::fetch_session::{FetchParams, Prior};
use crate::log::FileRegion;
use crate::partition::Partition;
use crate::replication::unfetched::BACKLOG_POLL;
use crate::server::connection::Reply;
use crate::server::writer::Frame;

/// Longest wait brook honours, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

/// One topic to read, as the request (or its session) names it.
pub(super) struct Wanted {
    pub(super) topic: Option<Arc<Topic>>,
    /// The topic's name (the request's when the topic is unknown).
    pub(super) name: Arc<str>,
    /// The id the request used (v13+), or zero.
    pub(super) id: Uuid,
    pub(super) partitions: Vec<WantedPartition>,
}

pub(super) struct WantedPartition {
    pub(super) index: i32,
    pub(super) partition: Option<Arc<Partition>>,
    pub(super) params: FetchParams,
    /// In an incremental session: what it last answered. The partition is
    /// left out of the response when nothing changed since.
    pub(super) prior: Option<Prior>,
}

pub(super) async fn handle(ctx: Ctx, req: FetchRequest) -> Reply {
    let (replica, replica_epoch) = if ctx.version >= 15 {
        (
            req.replica_state.replica_id,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id, -1)
    };
    let replica = (replica >= 0).then_some(replica);
    if let Some(id) = replica {
        // KIP-903: a fetch from a previous incarnation of the follower must
        // not count towards the ISR.
        let current = ctx.broker.image().brokers.get(&id).map(|b| b.epoch);
        if current.is_none() || (replica_epoch >= 0 && current != Some(replica_epoch)) {
            let resp = FetchResponse {
                error_code: ErrorCode::STALE_BROKER_EPOCH.code(),
                ..Default::default()
            };
            return ctx.reply(&resp);
        }
    }
    // A follower subscribes to its wake-up before its session is planned
    // (which reads its journal): nothing journaled after goes unnoticed.
    let long_poll = !max_wait_of(&req).is_zero() && req.min_bytes > 0;
    let mut receivers: Vec<watch::Receiver<_>> = match replica {
        Some(id) if long_poll => vec![ctx.broker.follower_wakes().subscribe(id)],
        _ => Vec::new(),
    };
    let (mut wanted, mut mode) = match incremental::plan(&ctx, &req, replica) {
        Ok(planned) => planned,
        Err(resp) => return ctx.reply(&resp),
    };
    let rack = (replica.is_none() && ctx.version >= 11 && ctx.broker.config().rack_aware_fetch())
        .then(|| req.rack_id.clone())
        .filter(|r| !r.is_empty());
    let who = Fetcher {
        replica,
        rack,
        follower_reads: replica.is_none() && ctx.version >= 11,
        hw_news: replica.is_some() && ctx.broker.follower_wakes().hw_wakes(),
    };
    let max_wait = max_wait_of(&req);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    // `fetch.max.bytes` caps what a client may ask for: it keeps every response
    // far below the i32 frame limit and bounds the memory of one fetch.
    let max_bytes = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .min(ctx.broker.config().fetch_max_bytes as usize);
    // A long-poll subscribes before the first read, so a change between that
    // read and the wait is not missed without reading everything a second
    // time: a follower to one wake-up for all the partitions it replicates
    // from here (`partition::FollowerWakes`, above), a consumer to each
    // partition's HW.
    if long_poll && replica.is_none() {
        receivers = wanted
            .iter()
            .flat_map(|w| w.partitions.iter().filter_map(|p| p.partition.as_ref()))
            .map(|part| part.subscribe_hw())
            .collect();
    }
    let built = build(&ctx, &wanted, max_bytes, &who);
    if built.answers_now(min_bytes.max(1), &who) || receivers.is_empty() {
        return match finish(&ctx, &mode, &wanted, built, &who) {
            Some(f) => Reply::Ready(f),
            None => Reply::Close,
        };
    }
    // Long-poll: wait for any of the partitions' HW (a follower: log end) to
    // move, then read again.
    let mut closed = ctx.closed.clone();
    let task = tokio::spawn(async move {
        let mut deadline = Instant::now() + max_wait;
        // A follower's long-poll also ends for partitions it must replicate
        // but does not fetch yet (`replication::unfetched`): they go last,
        // and any of them changing answers at once.
        let own = receivers.len();
        if let Some(r) = replica {
            let unfetched = ctx.broker.replica_manager().awaiting.unfetched(r);
            if unfetched.backlog {
                deadline = deadline.min(Instant::now() + BACKLOG_POLL);
            }
            receivers.push(unfetched.added);
            receivers.extend(unfetched.ends);
        }
        loop {
            let changed = async {
                let futs = receivers.iter_mut().map(|rx| Box::pin(rx.changed()));
                futures_select_all(futs).await
            };
            let woke = tokio::select! {
                // The client is gone: nobody would read the answer.
                () = closed.wait() => return None,
                woke = tokio::time::timeout_at(deadline.into(), changed) => woke,
            };
            // A follower's narrowed session also reads what was journaled
            // for it meanwhile; when the journal overflowed, answer now (the
            // next round reads everything).
            let mut overflowed = false;
            if let (Some(r), Ok(_)) = (replica, &woke) {
                match incremental::journaled_since(&ctx, &mut mode, r, &wanted) {
                    Some(more) => wanted.extend(more),
                    None => overflowed = true,
                }
            }
            let mut built = build(&ctx, &wanted, max_bytes, &who);
            built.unread |= overflowed;
            let done = match woke {
                Ok(i) => overflowed || i >= own || built.answers_now(min_bytes, &who),
                Err(_) => true,
            };
            if done || Instant::now() >= deadline {
                return finish(&ctx, &mode, &wanted, built, &who);
            }
        }
    });
    Reply::from_task(task)
}

fn max_wait_of(req: &FetchRequest) -> Duration {
    Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT_CAP)
}

/// The final response: counted, settled with the fetch session, framed.
fn finish(
    ctx: &Ctx,
    mode: &incremental::Mode,
    wanted: &[Wanted],
    built: Built,
    who: &Fetcher,
) -> Option<Frame> {
    let Built {
        mut resp,
        mut regions,
        records,
        unread,
        ..
    } = built;
    record_fetch(ctx, &resp, wanted, &records, who.replica.is_none());
    incremental::conclude(ctx, mode, wanted, &mut resp, &mut regions, unread);
    ctx.frame(&resp, regions)
}

/// Who is fetching.
struct Fetcher {
    /// A follower broker's id.
    replica: Option<i32>,
    /// A consumer's rack, when rack-aware reading is on.
    rack: Option<String>,
    /// A consumer that may read from a follower (v11+).
    follower_reads: bool,
    /// A follower whose long-poll ends on any new answer, a HW move too
    /// (see [`Built::answers_now`]).
    hw_news: bool,
}

/// Resolve with the index of the first of `futs` to resolve (a tiny
/// select_all without a futures dependency).
async fn futures_select_all<F>(futs: impl Iterator<Item = F>) -> usize
where
    F: std::future::Future + Unpin,
{
    let mut futs: Vec<F> = futs.collect();
    if futs.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for (i, f) in futs.iter_mut().enumerate() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(i);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Count what a final fetch response carries, per topic (consumers only:
/// replication traffic is not "out" of the cluster), and its error codes.
fn record_fetch(
    ctx: &Ctx,
    resp: &FetchResponse,
    wanted: &[Wanted],
    records: &[u64],
    consumer: bool,
) {
    for ((t, w), &records) in resp.responses.iter().zip(wanted).zip(records) {
        let mut bytes = 0u64;
        for p in &t.partitions {
            crate::metrics::api_error(brook_protocol::api::ApiKey::Fetch, p.error_code);
            if let Some(Records::Region { len, .. }) = &p.records {
                bytes += u64::from(*len);
                tracing::trace!(target: "brook::path", stage = "fetch_respond",
                    part = %format_args!("{}-{}", w.name, p.partition_index),
                    hw = p.high_watermark, consumer, port = ctx.peer.port(),
                    corr = ctx.header.correlation_id, us = crate::path_trace::now_us());
            }
        }
        if let Some(topic) = w.topic.as_ref().filter(|_| consumer) {
            if bytes > 0 {
                topic.probe.fetched(bytes, records);
            }
        }
    }
}

fn any_error(resp: &FetchResponse) -> bool {
    resp.responses
        .iter()
        .any(|t| t.partitions.iter().any(|p| p.error_code != 0))
}

/// One assembled fetch response and what it carries.
struct Built {
    resp: FetchResponse,
    regions: Vec<FileRegion>,
    /// Record bytes in `regions`.
    total: usize,
    /// Records returned per wanted topic (from the fetch offset to the end of
    /// the last whole batch), for the per-topic counters.
    records: Vec<u64>,
    /// Some partition had records this response left unread (the byte
    /// budget or the replication throttle ran out).
    unread: bool,
    /// Some partition of an incremental session has a new answer (records,
    /// a HW, log start or error the session last answered otherwise).
    news: bool,
}

impl Built {
    /// Whether a long-poll answers now: `min_bytes` of records, an error,
    /// or, for a follower's incremental session while consumers may read
    /// from followers, any partition with a new answer. A follower's HW then
    /// moves as soon as the leader's does (KIP-1166), instead of at its next
    /// append or at the end of its long-poll: consumers that read from the
    /// follower (KIP-392) read up to its HW. Otherwise nobody reads at a
    /// follower's HW, and the extra round per HW move is not worth its CPU
    /// (`benches/results/replication.md`).
    fn answers_now(&self, min_bytes: usize, who: &Fetcher) -> bool {
        self.total >= min_bytes || any_error(&self.resp) || (who.hw_news && self.news)
    }
}

fn build(ctx: &Ctx, wanted: &[Wanted], max_bytes: usize, who: &Fetcher) -> Built {
    let mut out = Collected::default();
    let mut news = false;
    let mut responses = Vec::with_capacity(wanted.len());
    let mut records = Vec::with_capacity(wanted.len());
    for w in wanted {
        out.records = 0;
        let mut parts = Vec::with_capacity(w.partitions.len());
        for wp in &w.partitions {
            let pd = read_partition(ctx, w, wp, who, max_bytes, &mut out);
            // An incremental session leaves out what has not changed (most
            // partitions of a follower's session, every round).
            match wp.prior {
                Some(prior) if prior.unchanged(&incremental::answer(&pd)) => {}
                Some(_) => {
                    news = true;
                    parts.push(pd);
                }
                None => parts.push(pd),
            }
        }
        responses.push(FetchableTopicResponse {
            // Names go on the wire up to v12 only.
            topic: if ctx.version < 13 {
                w.name.to_string()
            } else {
                String::new()
            },
            topic_id: w.topic.as_ref().map_or(w.id, |t| t.id),
            partitions: parts,
            ..Default::default()
        });
        records.push(out.records);
    }
    Built {
        resp: FetchResponse {
            responses,
            ..Default::default()
        },
        regions: out.regions,
        total: out.total,
        records,
        unread: out.unread,
        news,
    }
}

/// The records a response carries so far.
#[derive(Default)]
struct Collected {
    regions: Vec<FileRegion>,
    /// Record bytes in `regions`.
    total: usize,
    /// Records returned for the topic being read.
    records: u64,
    /// Records were left unread (see [`Built::unread`]).
    unread: bool,
}

/// Read one partition for `build`: its answer, with any records added to
/// `out` (which also counts the bytes against the response's budget).
fn read_partition(
    ctx: &Ctx,
    w: &Wanted,
    wp: &WantedPartition,
    who: &Fetcher,
    max_bytes: usize,
    out: &mut Collected,
) -> PartitionData {
    let replica = who.replica;
    let (index, part, offset, partition_max, current_epoch) = (
        wp.index,
        &wp.partition,
        wp.params.fetch_offset,
        wp.params.max_bytes,
        wp.params.current_leader_epoch,
    );
    let mut pd = PartitionData {
        partition_index: index,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        preferred_read_replica: -1,
        records: Some(Records::Bytes(bytes::Bytes::new())),
        ..Default::default()
    };
    let Some(part) = part else {
        pd.error_code = match &w.topic {
            None if ctx.version >= 13 => ErrorCode::UNKNOWN_TOPIC_ID.code(),
            None => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(),
            Some(t) => t.absent_code(index),
        };
        return pd;
    };
    if let (Some(id), None) = (replica, epoch_check(part, current_epoch)) {
        // Progress counts only for an offset the leader's log has.
        if (part.log_start_offset()..=part.log_end_offset()).contains(&offset) {
            part.follower_fetched(id, offset);
        }
    }
    pd.high_watermark = part.high_watermark();
    pd.last_stable_offset = pd.high_watermark;
    pd.log_start_offset = part.log_start_offset();
    let check = if who.follower_reads && !part.is_leader() {
        follower_read_check(part, current_epoch)
    } else {
        epoch_check(part, current_epoch)
    };
    if let Some(code) = check {
        pd.error_code = code;
        let (leader_id, leader_epoch) = ctx.broker.leader_of(&part.topic_id, index);
        pd.current_leader = LeaderIdAndEpoch {
            leader_id,
            leader_epoch,
            ..Default::default()
        };
        return pd;
    }
    if let Some(rack) = &who.rack {
        if let Some(id) = preferred_read_replica(ctx, part, rack) {
            pd.preferred_read_replica = id;
            return pd;
        }
    }
    if replica.is_none() && offset > part.log_end_offset() && !part.is_leader() {
        // A follower that has not caught up to where the consumer
        // is: nothing yet, not out of range.
        return pd;
    }
    if ctx.broker.partition_offline(part) {
        pd.error_code = ErrorCode::KAFKA_STORAGE_ERROR.code();
        return pd;
    }
    // Nothing past the fetch offset (most partitions of a follower's
    // or a busy consumer's session, each round): no read.
    let limit = match replica {
        Some(_) => part.log_end_offset(),
        None => pd.high_watermark,
    };
    if offset == limit && offset >= pd.log_start_offset {
        return pd;
    }
    let budget = usize::try_from(partition_max)
        .unwrap_or(0)
        .min(max_bytes.saturating_sub(out.total));
    // The first partition that has data may exceed the budgets by one batch.
    let min_one = out.total == 0;
    if budget == 0 && !min_one {
        out.unread = true;
        return pd;
    }
    // Leader-side replication throttle: out-of-sync followers of
    // throttled replicas get nothing while it is at its rate.
    let throttled = replica.is_some_and(|id| {
        let t = &ctx.broker.replica_manager().leader_throttle;
        t.is_on()
            && !part.state().isr().contains(&id)
            && crate::replication::throttle::listed(
                &part.config().leader_replication_throttled_replicas,
                index,
                ctx.broker.node_id(),
            )
    });
    let now = crate::partition::monotonic_ms();
    if throttled && !ctx.broker.replica_manager().leader_throttle.allows(now) {
        out.unread = true;
        return pd;
    }
    let read = match replica {
        Some(_) => part.read_for_follower(offset, budget, min_one),
        None => part.read(offset, budget, min_one),
    };
    match read {
        Ok(read) => {
            if let Some(next) = read.next_offset {
                out.records += u64::try_from(next.saturating_sub(offset)).unwrap_or(0);
            }
            if let Some(region) = read.region {
                let len = region.len;
                if throttled {
                    ctx.broker
                        .replica_manager()
                        .leader_throttle
                        .record(len, now);
                }
                if len > 0 {
                    pd.records = Some(Records::Region {
                        id: out.regions.len() as u64,
                        len: len as u32,
                    });
                    out.regions.push(region);
                    out.total += len as usize;
                }
            }
        }
        Err(e) => {
            pd.error_code = e.code();
            if let BrokerError::OffsetOutOfRange { .. } = e {
                pd.high_watermark = part.high_watermark();
            }
        }
    }
    // Records below the limit and none returned (a batch larger than what
    // was left of the budget).
    out.unread |= pd.error_code == 0 && !matches!(pd.records, Some(Records::Region { .. }));
    pd
}

/// The leader-epoch and leadership fence every client request for a
/// partition's data goes through (Kafka's order: epoch, then leadership).
pub(crate) fn epoch_check(part: &Partition, requested: i32) -> Option<i16> {
    let current = part.leader_epoch();
    if requested >= 0 && requested < current {
        Some(ErrorCode::FENCED_LEADER_EPOCH.code())
    } else if requested > current {
        Some(ErrorCode::UNKNOWN_LEADER_EPOCH.code())
    } else if !part.is_leader() {
        Some(ErrorCode::NOT_LEADER_OR_FOLLOWER.code())
    } else {
        None
    }
}

/// The fence for a consumer reading from a follower: the leader epoch it
/// names must be the one this replica knows; the replica must follow.
fn follower_read_check(part: &Partition, requested: i32) -> Option<i16> {
    let current = part.leader_epoch();
    if requested >= 0 && requested < current {
        Some(ErrorCode::FENCED_LEADER_EPOCH.code())
    } else if requested > current {
        Some(ErrorCode::UNKNOWN_LEADER_EPOCH.code())
    } else if !matches!(part.role(), crate::partition::state::Role::Follower { .. }) {
        Some(ErrorCode::NOT_LEADER_OR_FOLLOWER.code())
    } else {
        None
    }
}

/// KIP-392's rack-aware selector, on the leader: an in-sync, live replica in
/// the consumer's rack other than this one, unless this one is in it.
fn preferred_read_replica(ctx: &Ctx, part: &Partition, rack: &str) -> Option<i32> {
    if !part.is_leader() {
        return None;
    }
    let image = ctx.broker.image();
    let in_rack = |id: &i32| {
        image
            .brokers
            .get(id)
            .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(rack))
    };
    let node = ctx.broker.node_id();
    if in_rack(&node) {
        return None;
    }
    let state = part.state();
    state
        .isr()
        .iter()
        .copied()
        .find(|r| *r != node && in_rack(r))
}
