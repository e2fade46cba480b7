//! [`Consumer`]: assignment, positions, the fetch pipeline and `poll`.
//!
//! Fetch pipelining: at most one Fetch is in flight per broker, covering every
//! assigned partition led by it whose buffer is empty. `poll` returns buffered
//! records and, before returning, sends the next fetches, so the broker is
//! already working on the next response while the application processes the
//! current one. Each partition carries an epoch bumped by `seek`/`assign`, and
//! responses for an older epoch are dropped, so a seek never sees stale data.
//!
//! The consumer is a single-owner object (`&mut self`); it spawns no tasks
//! except for `commit_async` and, once subscribed, the group membership task
//! whose events `poll` applies (see `consumer/group`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use brook_config::client::{AutoOffsetReset, ConsumerConfig};
use brook_producer::client::{Client, ClientOptions, Connection, Reply, ReplyTo};
use brook_producer::TopicPartition;
use brook_protocol::api::ApiKey;
use brook_protocol::codec::Records;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::fetcher;
use crate::offsets::{self, EARLIEST, LATEST};
use crate::record::ConsumerRecord;

mod commit;
mod group;

pub use group::GroupMetadata;

#[derive(Debug, Default)]
struct PartFetch {
    /// Offset of the next record `poll` returns; `None` until resolved.
    position: Option<i64>,
    /// Offset of the next fetch (ahead of `position` by what is buffered).
    fetch_offset: i64,
    /// Pending `seek_to_beginning`/`seek_to_end` (EARLIEST/LATEST).
    reset: Option<i64>,
    paused: bool,
    buffer: VecDeque<ConsumerRecord>,
    epoch: u64,
    in_flight: bool,
}

#[derive(Debug)]
struct InFlightFetch {
    conn: Arc<Connection>,
    node: i32,
    version: i16,
    parts: Vec<(TopicPartition, u64, i64)>,
}

/// An async consumer. See the crate docs for an example.
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    cfg: ConsumerConfig,
    parts: BTreeMap<TopicPartition, PartFetch>,
    inflight: HashMap<u64, InFlightFetch>,
    busy_nodes: HashSet<i32>,
    replies_tx: mpsc::UnboundedSender<(u64, Reply)>,
    replies_rx: mpsc::UnboundedReceiver<(u64, Reply)>,
    next_tag: u64,
    pending_error: Option<Error>,
    need_metadata: bool,
    last_commit: Instant,
    rr: usize,
    auto_commit: Option<tokio::task::JoinHandle<Result<()>>>,
    group: Option<group::GroupState>,
    listener: Option<Listener>,
}

/// A rebalance listener (a newtype only for `Debug`).
#[derive(Clone)]
struct Listener(Arc<dyn crate::group::RebalanceListener>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RebalanceListener")
    }
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

impl Consumer {
    /// A consumer; nothing is connected until the first call that needs it.
    pub fn new(config: ConsumerConfig) -> Self {
        let client = Client::new(ClientOptions {
            bootstrap: config.bootstrap(),
            client_id: config.client_id.clone(),
            request_timeout: ms(i64::from(config.request_timeout_ms)),
            connect_timeout: Duration::from_secs(10),
            allow_auto_topic_creation: false,
        });
        let (replies_tx, replies_rx) = mpsc::unbounded_channel();
        Self {
            client,
            cfg: config,
            parts: BTreeMap::new(),
            inflight: HashMap::new(),
            busy_nodes: HashSet::new(),
            replies_tx,
            replies_rx,
            next_tag: 0,
            pending_error: None,
            need_metadata: false,
            last_commit: Instant::now(),
            rr: 0,
            auto_commit: None,
            group: None,
            listener: None,
        }
    }

    /// The shared client layer.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Replaces the assignment. Partitions kept keep their position; new ones
    /// start from the committed offset (with `group.id`) or `auto.offset.reset`.
    /// With a subscription, the next rebalance replaces it again.
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let wanted: Vec<TopicPartition> = partitions.into_iter().collect();
        let mut next = BTreeMap::new();
        for tp in wanted {
            let state = self.parts.remove(&tp).unwrap_or_default();
            next.insert(tp, state);
        }
        self.parts = next;
        self.client
            .track_topics(self.parts.keys().map(|tp| &*tp.topic));
    }

    /// The current assignment.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.parts.keys().cloned().collect()
    }

    /// The partitions of `topic` (refreshing metadata).
    ///
    /// # Errors
    /// Connection errors; [`brook_producer::Error::UnknownTopic`] if it does not exist.
    pub async fn partitions_for(&self, topic: &str) -> Result<Vec<TopicPartition>> {
        let cluster = self.client.refresh_metadata(&[topic]).await?;
        let meta = cluster
            .topics
            .get(topic)
            .filter(|t| t.error.is_ok())
            .ok_or_else(|| brook_producer::Error::UnknownTopic(topic.to_owned()))?;
        let name: Arc<str> = Arc::from(topic);
        Ok(meta
            .partitions
            .iter()
            .map(|p| TopicPartition {
                topic: name.clone(),
                partition: p.partition,
            })
            .collect())
    }

    fn part_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartFetch> {
        self.parts
            .get_mut(tp)
            .ok_or_else(|| Error::NotAssigned(tp.clone()))
    }

    /// Moves the position of `tp` to `offset`; buffered and in-flight data is dropped.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let p = self.part_mut(tp)?;
        p.position = Some(offset);
        p.fetch_offset = offset;
        p.reset = None;
        p.buffer.clear();
        p.epoch += 1;
        p.in_flight = false;
        Ok(())
    }

    fn seek_reset(&mut self, tps: &[TopicPartition], to: i64) -> Result<()> {
        for tp in tps {
            let p = self.part_mut(tp)?;
            p.position = None;
            p.reset = Some(to);
            p.buffer.clear();
            p.epoch += 1;
            p.in_flight = false;
        }
        Ok(())
    }

    /// Seeks to the log start offset (resolved on the next `poll`/`position`).
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn seek_to_beginning(&mut self, tps: &[TopicPartition]) -> Result<()> {
        self.seek_reset(tps, EARLIEST)
    }

    /// Seeks to the log end offset (resolved on the next `poll`/`position`).
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn seek_to_end(&mut self, tps: &[TopicPartition]) -> Result<()> {
        self.seek_reset(tps, LATEST)
    }

    /// The offset of the next record `poll` will return for `tp`.
    ///
    /// # Errors
    /// [`Error::NotAssigned`], or errors resolving the position.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.part_mut(tp)?;
        self.resolve_positions().await?;
        self.part_mut(tp)?
            .position
            .ok_or_else(|| Error::NoOffset(tp.clone()))
    }

    /// Stops returning records of `tps` until [`Consumer::resume`].
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn pause(&mut self, tps: &[TopicPartition]) -> Result<()> {
        for tp in tps {
            self.part_mut(tp)?.paused = true;
        }
        Ok(())
    }

    /// Resumes paused partitions.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn resume(&mut self, tps: &[TopicPartition]) -> Result<()> {
        for tp in tps {
            self.part_mut(tp)?.paused = false;
        }
        Ok(())
    }

    /// Paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.parts
            .iter()
            .filter(|(_, p)| p.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Gives every partition without a position one: a pending seek-to, else
    /// the committed offset (with `group.id`), else `auto.offset.reset`.
    async fn resolve_positions(&mut self) -> Result<()> {
        let missing: Vec<TopicPartition> = self
            .parts
            .iter()
            .filter(|(_, p)| p.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut by_reset: HashMap<i64, Vec<TopicPartition>> = HashMap::new();
        let mut undecided = Vec::new();
        for tp in missing {
            match self.parts.get(&tp).and_then(|p| p.reset) {
                Some(ts) => by_reset.entry(ts).or_default().push(tp),
                None => undecided.push(tp),
            }
        }
        if !undecided.is_empty() {
            let committed = match self.cfg.group() {
                Some(group) => offsets::committed(&self.client, group, &undecided).await?,
                None => HashMap::new(),
            };
            for tp in undecided {
                if let Some(Some(offset)) = committed.get(&tp) {
                    self.set_position(&tp, *offset);
                    continue;
                }
                match self.cfg.auto_offset_reset() {
                    AutoOffsetReset::Earliest => by_reset.entry(EARLIEST).or_default().push(tp),
                    AutoOffsetReset::Latest => by_reset.entry(LATEST).or_default().push(tp),
                    AutoOffsetReset::None => return Err(Error::NoOffset(tp)),
                }
            }
        }
        for (ts, tps) in by_reset {
            let found =
                offsets::list_offsets(&self.client, &tps, ts, self.cfg.isolation_level()).await?;
            for (tp, offset) in found {
                self.set_position(&tp, offset);
            }
        }
        Ok(())
    }

    fn set_position(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(p) = self.parts.get_mut(tp) {
            p.position = Some(offset);
            p.fetch_offset = offset;
            p.reset = None;
            p.buffer.clear();
            p.epoch += 1;
            p.in_flight = false;
        }
    }

    /// Returns the next records (at most `max.poll.records`), waiting up to
    /// `timeout` for some to arrive. An empty vector means none arrived in time.
    ///
    /// # Errors
    /// Position resolution errors, [`Error::OffsetOutOfRange`] /
    /// [`Error::NoOffset`] with `auto.offset.reset=none`, [`Error::Corrupt`],
    /// and non-retriable broker errors.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
            self.group_poll().await?;
            self.maybe_auto_commit();
            self.resolve_positions().await?;
            let records = self.drain_buffers();
            if !records.is_empty() {
                self.send_fetches().await;
                return Ok(records);
            }
            self.send_fetches().await;
            let wait_until = if self.inflight.is_empty() {
                // Nothing could be sent (no leader, no connection): back off.
                self.need_metadata = true;
                (Instant::now() + ms(self.cfg.retry_backoff_ms)).min(deadline)
            } else {
                deadline
            };
            tokio::select! {
                r = self.replies_rx.recv() => {
                    if let Some((tag, reply)) = r {
                        self.handle_reply(tag, reply);
                    }
                }
                ev = Self::next_event(&mut self.group) => {
                    if let Some(ev) = ev {
                        self.apply_event(ev).await?;
                    }
                }
                () = tokio::time::sleep_until(wait_until) => {}
            }
            while let Ok((tag, reply)) = self.replies_rx.try_recv() {
                self.handle_reply(tag, reply);
            }
            if Instant::now() >= deadline
                && self.parts.values().all(|p| p.buffer.is_empty() || p.paused)
            {
                return match self.pending_error.take() {
                    Some(e) => Err(e),
                    None => Ok(Vec::new()),
                };
            }
        }
    }

    fn drain_buffers(&mut self) -> Vec<ConsumerRecord> {
        let max = usize::try_from(self.cfg.max_poll_records)
            .unwrap_or(500)
            .max(1);
        let mut out = Vec::new();
        let n = self.parts.len();
        if n == 0 {
            return out;
        }
        // Start at a rotating partition so one busy partition cannot starve others.
        let start = self.rr % n;
        self.rr = self.rr.wrapping_add(1);
        for p in self.parts.values_mut().skip(start) {
            take(p, &mut out, max);
        }
        for p in self.parts.values_mut().take(start) {
            take(p, &mut out, max);
        }
        out
    }

    async fn send_fetches(&mut self) {
        let stale = self.client.cluster().updated.elapsed() >= ms(self.cfg.metadata_max_age_ms);
        // Nothing assigned (e.g. waiting for a group assignment): nothing to refresh.
        if (self.need_metadata || stale) && !self.parts.is_empty() {
            self.need_metadata = false;
            let topics: Vec<Arc<str>> = self.parts.keys().map(|tp| tp.topic.clone()).collect();
            let names: Vec<&str> = topics.iter().map(|t| &**t).collect();
            if let Err(e) = self.client.refresh_metadata(&names).await {
                tracing::debug!("metadata refresh failed: {e}");
            }
        }
        let cluster = self.client.cluster();
        let mut per_node: BTreeMap<i32, Vec<(TopicPartition, u64, i64)>> = BTreeMap::new();
        for (tp, p) in &self.parts {
            if p.paused || p.in_flight || p.position.is_none() || !p.buffer.is_empty() {
                continue;
            }
            let Some(leader) = cluster.leader(&tp.topic, tp.partition).map(|l| l.leader) else {
                continue;
            };
            if self.busy_nodes.contains(&leader) {
                continue;
            }
            per_node
                .entry(leader)
                .or_default()
                .push((tp.clone(), p.epoch, p.fetch_offset));
        }
        for (node, parts) in per_node {
            let conn = match self.client.connection(node).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("cannot connect to node {node}: {e}");
                    self.need_metadata = true;
                    continue;
                }
            };
            let version = match conn.version(ApiKey::Fetch) {
                Ok(v) => v,
                Err(e) => {
                    self.pending_error = Some(e.into());
                    continue;
                }
            };
            let mut topics: Vec<FetchTopic> = Vec::new();
            for (tp, _, offset) in &parts {
                let fp = FetchPartition {
                    partition: tp.partition,
                    current_leader_epoch: -1,
                    fetch_offset: *offset,
                    last_fetched_epoch: -1,
                    log_start_offset: -1,
                    partition_max_bytes: self.cfg.max_partition_fetch_bytes,
                    ..Default::default()
                };
                match topics.iter_mut().find(|t| *t.topic == *tp.topic) {
                    Some(t) => t.partitions.push(fp),
                    None => topics.push(FetchTopic {
                        topic: tp.topic.to_string(),
                        partitions: vec![fp],
                        ..Default::default()
                    }),
                }
            }
            let req = FetchRequest {
                replica_id: -1,
                max_wait_ms: self.cfg.fetch_max_wait_ms,
                min_bytes: self.cfg.fetch_min_bytes,
                max_bytes: self.cfg.fetch_max_bytes,
                isolation_level: self.cfg.isolation_level(),
                session_id: 0,
                session_epoch: -1,
                topics,
                ..Default::default()
            };
            self.next_tag += 1;
            let tag = self.next_tag;
            if let Err(e) = conn
                .send(
                    &req,
                    version,
                    true,
                    ReplyTo::Tagged(self.replies_tx.clone(), tag),
                )
                .await
            {
                tracing::debug!("fetch to node {node} failed: {e}");
                self.need_metadata = true;
                continue;
            }
            for (tp, _, _) in &parts {
                if let Some(p) = self.parts.get_mut(tp) {
                    p.in_flight = true;
                }
            }
            self.busy_nodes.insert(node);
            self.inflight.insert(
                tag,
                InFlightFetch {
                    conn,
                    node,
                    version,
                    parts,
                },
            );
        }
    }

    fn handle_reply(&mut self, tag: u64, reply: Reply) {
        let Some(req) = self.inflight.remove(&tag) else {
            return;
        };
        self.busy_nodes.remove(&req.node);
        for (tp, epoch, _) in &req.parts {
            if let Some(p) = self.parts.get_mut(tp).filter(|p| p.epoch == *epoch) {
                p.in_flight = false;
            }
        }
        let resp = match reply.and_then(|frame| req.conn.decode::<FetchRequest>(frame, req.version))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("fetch failed: {e}");
                self.need_metadata = true;
                return;
            }
        };
        let top = ErrorCode::from_i16(resp.error_code);
        if !top.is_ok() {
            self.pending_error = Some(brook_producer::Error::broker(top, "Fetch").into());
            return;
        }
        for t in resp.responses {
            for pd in t.partitions {
                let Some((tp, epoch, offset)) = req
                    .parts
                    .iter()
                    .find(|(tp, _, _)| *tp.topic == *t.topic && tp.partition == pd.partition_index)
                else {
                    continue;
                };
                let Some(state) = self
                    .parts
                    .get_mut(tp)
                    .filter(|p| p.epoch == *epoch && p.fetch_offset == *offset)
                else {
                    continue;
                };
                let code = ErrorCode::from_i16(pd.error_code);
                if code.is_ok() {
                    let data = match &pd.records {
                        Some(Records::Bytes(b)) => b.clone(),
                        _ => bytes::Bytes::new(),
                    };
                    match fetcher::parse(tp, &data, *offset) {
                        Ok(parsed) => {
                            state.fetch_offset = parsed.next_offset;
                            state.buffer.extend(parsed.records);
                        }
                        Err(e) => self.pending_error = Some(e),
                    }
                } else if code == ErrorCode::OFFSET_OUT_OF_RANGE {
                    match self.cfg.auto_offset_reset() {
                        AutoOffsetReset::None => {
                            self.pending_error = Some(Error::OffsetOutOfRange {
                                tp: tp.clone(),
                                offset: *offset,
                            })
                        }
                        AutoOffsetReset::Earliest => reset_to(state, EARLIEST),
                        AutoOffsetReset::Latest => reset_to(state, LATEST),
                    }
                } else if code.is_retriable() {
                    self.need_metadata = true;
                } else {
                    self.pending_error = Some(
                        brook_producer::Error::broker(
                            code,
                            format!("Fetch {}-{}", tp.topic, tp.partition),
                        )
                        .into(),
                    );
                }
            }
        }
    }
}

fn take(p: &mut PartFetch, out: &mut Vec<ConsumerRecord>, max: usize) {
    if p.paused {
        return;
    }
    while out.len() < max {
        let Some(r) = p.buffer.pop_front() else { break };
        p.position = Some(r.offset + 1);
        out.push(r);
    }
}

fn reset_to(p: &mut PartFetch, to: i64) {
    p.position = None;
    p.reset = Some(to);
    p.buffer.clear();
    p.epoch += 1;
}
