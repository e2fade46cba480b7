//! One replica fetcher: pulls every partition this broker follows from one
//! leader broker, in one Fetch request per round.
//!
//! A round: (re)connect; reconcile every partition new to this leader epoch
//! (OffsetForLeaderEpoch, truncating where the logs diverge: KIP-101/279,
//! never blindly to the HW); send Fetch (v15, with this broker's replica id
//! and registration epoch, each partition's current leader epoch and the
//! epoch of its last batch); append what comes back unchanged; make it
//! durable per the topic's durability before the next fetch reports the new
//! log end to the leader; take the leader's HW (capped by the local log end).
//!
//! The leader long-polls (`replica.fetch.wait.max.ms`) when there is
//! nothing new, so an idle fetcher costs one request per wait. Failures back
//! off for `replica.fetch.backoff.ms` (or until the set of partitions changes).
//!
//! Fetches use an incremental fetch session (KIP-227, `super::session`) when
//! the leader grants one: a request then names only partitions whose fetch
//! offset, epochs or log start changed, and the response only partitions
//! with news. Any session error, failed request or reconnect drops the
//! session and the next request is full.

use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::{anyhow, Context};
use brook_config::Durability;
use brook_protocol::codec::{Records, Uuid};
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use brook_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use brook_protocol::messages::{FetchRequest, OffsetForLeaderEpochRequest};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use super::session::FetchSession;
use super::{Assigned, Followed};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::kafka_client::Client;
use crate::log::LogError;

/// Fetch version spoken between brokers: topic ids and the tagged
/// `ReplicaState` (KIP-903).
const FETCH_VERSION: i16 = 15;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// Largest response a fetcher accepts (a single batch may exceed the
/// configured response size, as Kafka allows).
const MAX_RESPONSE: usize = 256 << 20;
/// Reconciliation rounds before giving up until the next fetch round.
const MAX_RECONCILE_ROUNDS: usize = 64;

/// How a round went.
enum Round {
    /// Some partition made progress or the leader long-polled: go again.
    Progress,
    /// Nothing could be fetched (errors for every partition): back off.
    Stalled,
}

/// What a fetcher carries from one round to the next, so that a round of
/// an idle or lightly loaded fetcher costs work in proportion to what
/// changed, not to every partition it fetches.
#[derive(Debug, Default)]
struct Carried {
    /// Generation of `parts` ([`crate::replication::ReplicaManager::assigned`]);
    /// 0: not asked yet.
    generation: u64,
    /// Its partitions, in (topic id, partition) order.
    parts: Vec<Followed>,
    /// Partitions the last response named: only their fetch parameters can
    /// have moved since (appended, truncated, restarted at the leader's log
    /// start).
    answered: Vec<(Uuid, i32)>,
    /// When the last request was built from every partition (monotonic ms).
    full_at: u64,
    /// The next request is built from every partition.
    full_due: bool,
}

/// How often, at least, a fetcher builds its request from every partition
/// even when nothing it tracks changed: what it does not track (its own log
/// start moving by retention, a log turning offline) reaches the leader
/// within this long, or within one `replica.fetch.wait.max.ms` when that is
/// longer (an idle fetcher's rounds come no faster).
const FULL_BUILD_EVERY_MS: u64 = 1_000;

impl Carried {
    /// Whether this round's request is built from every partition, given
    /// the session, the throttle and the interval between full builds
    /// (`every_ms`). Otherwise only `answered` is rebuilt and the rest of
    /// the session stands as last sent.
    fn full(&self, session_open: bool, throttle_on: bool, now_ms: u64, every_ms: u64) -> bool {
        self.full_due
            || !session_open
            || throttle_on
            || now_ms.saturating_sub(self.full_at) >= every_ms
    }
}

pub(super) async fn run(
    broker: Weak<Broker>,
    leader: i32,
    index: usize,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut client: Option<Client> = None;
    let mut session = FetchSession::default();
    let mut carried = Carried::default();
    let mut failing = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(b) = broker.upgrade() else { return };
        match b
            .replica_manager()
            .assigned(leader, index, carried.generation)
        {
            Assigned::Unchanged => {}
            Assigned::Now { generation, parts } => {
                carried.generation = generation;
                carried.parts = parts;
                carried.full_due = true;
            }
            Assigned::Gone => {
                debug!(
                    leader,
                    index, "replica fetcher has no partitions left; stopping"
                );
                return;
            }
        }
        let backoff = Duration::from_millis(
            u64::try_from(b.config().replica_fetch_backoff_ms).unwrap_or(1000),
        );
        let outcome = tokio::select! {
            r = round(&b, &mut client, &mut session, leader, &mut carried) => r,
            _ = stop.changed() => return,
        };
        drop(b);
        let pause = match outcome {
            Ok(Round::Progress) => {
                if failing {
                    info!(leader, "replica fetcher reached the leader again");
                    failing = false;
                }
                continue;
            }
            Ok(Round::Stalled) => backoff.min(Duration::from_millis(100)),
            Err(e) => {
                client = None;
                session.reset();
                if failing {
                    debug!(leader, error = %format!("{e:#}"), "replica fetch failed");
                } else {
                    warn!(leader, error = %format!("{e:#}"), "replica fetch failed; retrying");
                    failing = true;
                }
                backoff
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

async fn connect(b: &Broker, leader: i32) -> anyhow::Result<Client> {
    let (host, port, _) = b
        .broker_endpoint(leader)
        .ok_or_else(|| anyhow!("leader {leader} has no registered endpoint"))?;
    let wait = u64::try_from(b.config().replica_fetch_wait_max_ms).unwrap_or(500);
    Client::connect_as(
        &format!("{host}:{port}"),
        &format!("brook-replica-{}", b.node_id()),
        Duration::from_millis(wait) + Duration::from_secs(30),
        MAX_RESPONSE,
    )
    .await
}

async fn round(
    b: &Arc<Broker>,
    client: &mut Option<Client>,
    session: &mut FetchSession,
    leader: i32,
    carried: &mut Carried,
) -> anyhow::Result<Round> {
    if client.is_none() {
        session.reset();
        *client = Some(connect(b, leader).await?);
    }
    let Some(c) = client.as_mut() else {
        return Err(anyhow!("no connection"));
    };
    for f in carried.parts.iter_mut().filter(|f| !f.reconciled) {
        match reconcile(b, c, f).await {
            Ok(done) => {
                // The manager's generation moves with it: the next round
                // takes the assignment afresh (and builds a full request).
                b.replica_manager().reconciled(&f.part, f.epoch, done);
                f.reconciled = done;
                carried.full_due |= done;
            }
            Err(e) if e.downcast_ref::<PartitionRefused>().is_some() => {
                debug!(topic = %f.part.topic, partition = f.part.index, error = %e, "leader not ready to reconcile");
            }
            Err(e) => return Err(e),
        }
    }
    let r = fetch(b, c, session, carried).await;
    if r.is_err() {
        session.reset();
    }
    r
}

/// The leader refused a partition-level request (not leader yet, epoch
/// mismatch): the metadata will catch up; other partitions go on.
#[derive(Debug)]
struct PartitionRefused(ErrorCode);

impl std::fmt::Display for PartitionRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "leader answered {:?}", self.0)
    }
}

impl std::error::Error for PartitionRefused {}

/// Truncate `f`'s log where it diverges from the leader's (largest common
/// epoch). Returns whether reconciliation is complete.
async fn reconcile(b: &Broker, c: &mut Client, f: &Followed) -> anyhow::Result<bool> {
    let part = &f.part;
    for _ in 0..MAX_RECONCILE_ROUNDS {
        let log = part.log();
        let leo = part.log_end_offset();
        let Some(latest) = log.latest_epoch() else {
            // No epoch recorded: an empty log (or one from before epochs),
            // where Kafka falls back to the HW.
            let hw = part.high_watermark();
            if leo > hw {
                part.truncate_to(hw).await?;
            }
            return Ok(true);
        };
        let req = OffsetForLeaderEpochRequest {
            replica_id: b.node_id(),
            topics: vec![OffsetForLeaderTopic {
                topic: part.topic.to_string(),
                partitions: vec![OffsetForLeaderPartition {
                    partition: part.index,
                    current_leader_epoch: f.epoch,
                    leader_epoch: latest,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let resp = c
            .send(&req, OFFSET_FOR_LEADER_EPOCH_VERSION)
            .await
            .context("OffsetForLeaderEpoch")?;
        let r = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| anyhow!("OffsetForLeaderEpoch response without the partition"))?;
        if r.error_code != 0 {
            return Err(PartitionRefused(ErrorCode::from_i16(r.error_code)).into());
        }
        let (target, done) = if r.end_offset < 0 {
            (part.high_watermark().min(leo), true)
        } else if r.leader_epoch < 0 {
            (r.end_offset.min(leo), true)
        } else {
            let (own_epoch, own_end) = log.end_offset_for_epoch(r.leader_epoch);
            if own_end < 0 {
                (log.log_start_offset(), true)
            } else if own_epoch != r.leader_epoch {
                // This log does not know the leader's epoch: cut back to the
                // end of its own largest epoch below it and ask again.
                (own_end.min(leo), false)
            } else {
                (r.end_offset.min(own_end).min(leo), true)
            }
        };
        if target < leo {
            info!(topic = %part.topic, partition = part.index, from = leo, to = target, leader_epoch = r.leader_epoch, "truncating follower log to the leader's");
            part.truncate_to(target).await?;
        } else {
            // Nothing to cut: still drop an epoch this broker started at its
            // log end as leader and never appended in (see `truncate_to`).
            log.truncate_to(leo)?;
        }
        if done {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The request entry for `f`, or `None` when it is not fetched this round
/// (its log is offline).
fn entry(b: &Broker, f: &Followed, max_bytes: i32) -> Option<FetchPartition> {
    let part = &f.part;
    if b.partition_offline(part) {
        // A replica whose log directory failed cannot append: it does not
        // fetch either, so its stale log end never looks caught up to the
        // leader (which would put it back in the ISR).
        return None;
    }
    Some(FetchPartition {
        partition: part.index,
        current_leader_epoch: f.epoch,
        fetch_offset: part.log_end_offset(),
        last_fetched_epoch: part.log().latest_epoch().unwrap_or(-1),
        log_start_offset: part.log_start_offset(),
        partition_max_bytes: max_bytes,
        ..Default::default()
    })
}

/// Appends `p` (of partition `f`) to `topics`, which are built in (topic
/// id, partition) order: a topic's partitions are next to each other.
fn push_entry(topics: &mut Vec<FetchTopic>, f: &Followed, p: FetchPartition) {
    match topics.last_mut().filter(|t| t.topic_id == f.part.topic_id) {
        Some(t) => t.partitions.push(p),
        None => topics.push(FetchTopic {
            topic_id: f.part.topic_id,
            partitions: vec![p],
            ..Default::default()
        }),
    }
}

/// The index in `parts` (in (topic id, partition) order) of `key`.
fn find(parts: &[Followed], key: (Uuid, i32)) -> Option<usize> {
    parts
        .binary_search_by(|f| (f.part.topic_id, f.part.index).cmp(&key))
        .ok()
}

/// One Fetch round for the reconciled partitions of `carried`, which are in
/// (topic id, partition) order as
/// [`crate::replication::ReplicaManager::assigned`] lists them: building the
/// request and matching the response are linear in the partition count, and
/// a round that builds only what changed ([`Carried::full`]) is linear in
/// the partitions the last response named.
async fn fetch(
    b: &Arc<Broker>,
    c: &mut Client,
    session: &mut FetchSession,
    carried: &mut Carried,
) -> anyhow::Result<Round> {
    let parts = &carried.parts;
    debug_assert!(parts
        .windows(2)
        .all(|w| (w[0].part.topic_id, w[0].part.index) < (w[1].part.topic_id, w[1].part.index)));
    let config = b.config();
    let node = b.node_id();
    let throttle = &b.replica_manager().follower_throttle;
    let now = crate::partition::monotonic_ms();
    // Out-of-sync replicas their topics throttle: left out while the
    // follower throttle is at its rate.
    let throttled = |f: &Followed| {
        throttle.is_on()
            && !f.part.state().isr().contains(&node)
            && super::throttle::listed(
                &f.part.config().follower_replication_throttled_replicas,
                f.part.index,
                node,
            )
    };
    let open = throttle.allows(now);
    let max_bytes = config.replica_fetch_max_bytes;
    let every = u64::try_from(config.replica_fetch_wait_max_ms)
        .unwrap_or(0)
        .max(FULL_BUILD_EVERY_MS);
    let mut full = carried.full(session.is_open(), throttle.is_on(), now, every);
    let mut topics: Vec<FetchTopic> = Vec::new();
    if !full {
        carried.answered.sort_unstable();
        carried.answered.dedup();
        for key in &carried.answered {
            let Some(f) = find(parts, *key).map(|i| &parts[i]) else {
                continue;
            };
            if !f.reconciled {
                continue;
            }
            let Some(p) = entry(b, f, max_bytes) else {
                // Offline since: the full request leaves it out of the
                // session.
                full = true;
                break;
            };
            push_entry(&mut topics, f, p);
        }
    }
    if full {
        topics.clear();
        for f in parts.iter().filter(|f| f.reconciled) {
            if !open && throttled(f) {
                continue;
            }
            if let Some(p) = entry(b, f, max_bytes) {
                push_entry(&mut topics, f, p);
            }
        }
        if topics.is_empty() {
            return Ok(Round::Stalled);
        }
        carried.full_at = now;
        carried.full_due = false;
    }
    carried.answered.clear();
    let next = if full {
        session.request(topics)
    } else {
        session.request_changed(topics)
    };
    let req = FetchRequest {
        replica_state: ReplicaState {
            replica_id: b.node_id(),
            replica_epoch: b.membership().epoch(),
            ..Default::default()
        },
        replica_id: b.node_id(),
        max_wait_ms: config.replica_fetch_wait_max_ms,
        min_bytes: 1,
        max_bytes: config.replica_fetch_response_max_bytes,
        isolation_level: 0,
        session_id: next.session_id,
        session_epoch: next.epoch,
        topics: next.topics,
        forgotten_topics_data: next.forgotten,
        ..Default::default()
    };
    let resp = c.send(&req, FETCH_VERSION).await.context("Fetch")?;
    if let Err(code) = session.response(ErrorCode::from_i16(resp.error_code), resp.session_id) {
        debug!(error = ?code, "fetch session refused; next fetch is full");
        return Ok(Round::Progress);
    }
    if resp.error_code != 0 {
        return Err(anyhow!(
            "leader refused the fetch: {:?}",
            ErrorCode::from_i16(resp.error_code)
        ));
    }
    // An incremental response leaves out partitions with nothing new: one
    // without any partition is a quiet long-poll, not a stall.
    let mut progress = resp.responses.is_empty();
    let mut durable = Vec::new();
    // Records for one partition only: its fsync may run on this task's
    // worker (see `Partition::flush_inline`), saving the hand-off to the
    // flush loop and back before the next fetch. Several flush in parallel
    // on the flush pool.
    let appending = resp
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|pd| matches!(&pd.records, Some(Records::Bytes(b)) if !b.is_empty()))
        .count();
    let inline_flush = appending == 1 && config.log_flush_inline_enable;
    for t in &resp.responses {
        for pd in &t.partitions {
            let key = (t.topic_id, pd.partition_index);
            let Some(f) = find(parts, key).map(|i| &parts[i]) else {
                continue;
            };
            carried.answered.push(key);
            let part = &f.part;
            match ErrorCode::from_i16(pd.error_code) {
                ErrorCode::NONE => {
                    progress = true;
                    if let Some(Records::Bytes(bytes)) = &pd.records {
                        if throttled(f) {
                            throttle.record(bytes.len() as u64, now);
                        }
                        if !bytes.is_empty() {
                            match part.append_as_follower(bytes, f.epoch).await {
                                Ok(info) => {
                                    if part.config().durability == Durability::FsyncBeforeAck {
                                        if !inline_flush || !part.flush_inline() {
                                            part.request_flush();
                                        }
                                        durable.push((part.clone(), info.last_offset));
                                    }
                                }
                                Err(BrokerError::Log(LogError::UnexpectedAppendOffset {
                                    ..
                                })) => {
                                    b.replica_manager().reconciled(part, f.epoch, false);
                                    continue;
                                }
                                // Leadership moved while the fetch was out:
                                // the answer is stale, and the next round
                                // follows the new assignment.
                                Err(BrokerError::FencedLeaderEpoch) => continue,
                                Err(e) => {
                                    warn!(topic = %part.topic, partition = part.index, error = %e, "appending fetched records failed");
                                    if e.error_code() == ErrorCode::KAFKA_STORAGE_ERROR {
                                        b.set_offline(
                                            part,
                                            &format!("appending fetched records failed: {e}"),
                                        );
                                    }
                                    continue;
                                }
                            }
                        }
                    }
                    part.leader_hw(pd.high_watermark);
                }
                ErrorCode::OFFSET_OUT_OF_RANGE => {
                    progress = true;
                    if part.log_end_offset() < pd.log_start_offset {
                        info!(topic = %part.topic, partition = part.index, leader_log_start = pd.log_start_offset, "follower is behind the leader's log start; restarting its log there");
                        part.restart_at(pd.log_start_offset).await?;
                    } else {
                        b.replica_manager().reconciled(part, f.epoch, false);
                    }
                }
                code => {
                    debug!(topic = %part.topic, partition = part.index, error = ?code, "leader refused to serve the partition");
                }
            }
        }
    }
    // Durable before the next fetch reports the new log end to the leader.
    for (part, last) in durable {
        if let Err(e) = part.wait_durable(last).await {
            b.set_offline(&part, &format!("flush of fetched records failed: {e}"));
            return Err(e.into());
        }
    }
    Ok(if progress {
        Round::Progress
    } else {
        Round::Stalled
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_builds_every_partition_when_it_cannot_trust_what_it_tracked() {
        let mut c = Carried {
            full_at: 10_000,
            ..Default::default()
        };
        let every = FULL_BUILD_EVERY_MS;
        assert!(
            !c.full(true, false, 10_500, every),
            "within the interval, a session open"
        );
        assert!(
            c.full(false, false, 10_500, every),
            "no session: the request is full"
        );
        assert!(
            c.full(true, true, 10_500, every),
            "the follower throttle picks partitions per round"
        );
        assert!(c.full(true, false, 11_000, every), "the interval is up");
        assert!(
            !c.full(true, false, 11_000, 30_000),
            "a longer interval is not"
        );
        c.full_due = true;
        assert!(c.full(true, false, 10_001, every), "the assignment changed");
    }
}
