//! The sender task: takes ready batches from the accumulator, sends them to
//! partition leaders as pipelined Produce requests, and completes, retries or
//! fails them from the responses.
//!
//! One task owns all send state ([`PartState`] per partition, the producer
//! id/epoch, requests in flight), so none of it is locked. Responses arrive on
//! one channel, per connection in request order. When the idempotent state can
//! no longer be trusted (a batch failed for good or expired after it may have
//! been written), the sender stops sending, waits until nothing is in flight,
//! asks for a new producer id and renumbers every pending batch from sequence 0
//! — the Java client's "epoch bump" — so later batches are neither lost nor
//! rejected.
//!
//! Metadata refreshes and connects to new leaders never run on the send path
//! (see `background`): a slow Metadata answer or an unreachable broker does not
//! delay batches for partitions whose leaders are known and connected.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::api::ApiKey;
use brook_protocol::codec::Records;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use brook_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use brook_protocol::messages::produce_response::ProduceResponse;
use brook_protocol::records::Compression;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

mod background;

use background::{Background, Event};

use crate::accumulator::{Accumulator, TopicPartition};
use crate::client::{Client, Connection, Reply, ReplyTo};
use crate::error::{Error, Result};
use crate::partition_state::{InBatch, PartState, State};

/// Sender settings, from [`brook_config::client::ProducerConfig`].
#[derive(Debug, Clone)]
pub(crate) struct SenderConfig {
    pub acks: i16,
    pub idempotence: bool,
    pub compression: Compression,
    pub max_in_flight: usize,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub delivery_timeout: Duration,
    pub request_timeout: Duration,
    pub max_request_size: usize,
    pub metadata_max_age: Duration,
}

/// Commands from the producer handle.
#[derive(Debug)]
pub(crate) enum Command {
    /// Fail what is left and stop.
    Close(oneshot::Sender<()>),
}

struct InFlightReq {
    conn: Arc<Connection>,
    version: i16,
    batches: Vec<(TopicPartition, u64)>,
}

pub(crate) struct Sender {
    client: Client,
    acc: Arc<Accumulator>,
    memory: Arc<Semaphore>,
    cfg: SenderConfig,
    parts: HashMap<TopicPartition, PartState>,
    requests: HashMap<u64, InFlightReq>,
    replies_tx: mpsc::UnboundedSender<(u64, Reply)>,
    replies_rx: mpsc::UnboundedReceiver<(u64, Reply)>,
    background: Background,
    cmds: mpsc::UnboundedReceiver<Command>,
    next_id: u64,
    producer_id: i64,
    producer_epoch: i16,
    need_reset: bool,
    need_metadata: bool,
    next_metadata: Instant,
    next_pid_attempt: Instant,
}

impl Sender {
    pub fn new(
        client: Client,
        acc: Arc<Accumulator>,
        memory: Arc<Semaphore>,
        cfg: SenderConfig,
        cmds: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        let (replies_tx, replies_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        Self {
            background: Background::new(cfg.retry_backoff),
            client,
            acc,
            memory,
            cfg,
            parts: HashMap::new(),
            requests: HashMap::new(),
            replies_tx,
            replies_rx,
            cmds,
            next_id: 0,
            producer_id: -1,
            producer_epoch: -1,
            need_reset: false,
            need_metadata: false,
            next_metadata: now,
            next_pid_attempt: now,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub async fn run(mut self) {
        let mut closing: Option<oneshot::Sender<()>> = None;
        loop {
            let now = Instant::now();
            let (batches, next_linger) = self.acc.drain(now);
            for b in batches {
                let id = self.id();
                let deadline = b.created + self.cfg.delivery_timeout;
                self.parts
                    .entry(b.tp.clone())
                    .or_default()
                    .push(id, b, deadline);
            }
            self.expire(now);
            self.maintain(now).await;
            self.send_ready(Instant::now()).await;
            if let Some(done) = closing.take() {
                self.shutdown();
                let _ = done.send(());
                return;
            }
            let wake = self.next_wake(next_linger);
            tokio::select! {
                r = self.replies_rx.recv() => {
                    if let Some((tag, reply)) = r {
                        self.handle_reply(tag, reply);
                    }
                }
                () = self.acc.wake.notified() => {}
                () = sleep_until_opt(wake) => {}
                event = self.background.next() => self.background_ended(&event),
                cmd = self.cmds.recv() => match cmd {
                    Some(Command::Close(done)) => closing = Some(done),
                    None => { self.shutdown(); return; }
                },
            }
            while let Ok((tag, reply)) = self.replies_rx.try_recv() {
                self.handle_reply(tag, reply);
            }
        }
    }

    fn next_wake(&self, linger: Option<Instant>) -> Option<Instant> {
        let mut wake = linger;
        let mut consider = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for p in self.parts.values() {
            if let Some(t) = p.retry_at {
                consider(t);
            }
            if let Some(b) = p
                .queue
                .iter()
                .filter(|b| b.state == State::Queued)
                .map(|b| b.deadline)
                .min()
            {
                consider(b);
            }
        }
        let pending = self.parts.values().any(|p| !p.queue.is_empty());
        if let Some(t) = self.background.next_attempt().filter(|_| pending) {
            consider(t);
        }
        if pending
            && ((self.need_metadata && !self.background.refreshing())
                || self.need_reset
                || (self.cfg.idempotence && self.producer_id < 0))
        {
            consider(
                self.next_metadata
                    .min(self.next_pid_attempt)
                    .max(Instant::now() + Duration::from_millis(1)),
            );
        }
        wake
    }

    /// Metadata refresh, producer id (re)initialisation.
    async fn maintain(&mut self, now: Instant) {
        let pending = self.parts.values().any(|p| !p.queue.is_empty());
        let stale = self.client.cluster().updated.elapsed() >= self.cfg.metadata_max_age;
        let due = (self.need_metadata || stale) && now >= self.next_metadata;
        if due && !self.background.refreshing() {
            let mut topics: Vec<String> =
                self.parts.keys().map(|tp| tp.topic.to_string()).collect();
            topics.sort_unstable();
            topics.dedup();
            self.next_metadata = now + self.cfg.retry_backoff;
            self.background.refresh(&self.client, topics);
        }
        let want_pid = self.cfg.idempotence && (self.producer_id < 0 || self.need_reset);
        let idle = self.requests.is_empty();
        if pending && want_pid && idle && now >= self.next_pid_attempt {
            self.next_pid_attempt = now + self.cfg.retry_backoff;
            match self.init_producer_id().await {
                Ok((pid, epoch)) => {
                    tracing::debug!(pid, epoch, reset = self.need_reset, "producer id");
                    self.producer_id = pid;
                    self.producer_epoch = epoch;
                    if self.need_reset {
                        for p in self.parts.values_mut() {
                            p.renumber();
                        }
                        self.need_reset = false;
                    }
                }
                Err(e) => tracing::debug!("InitProducerId failed: {e}"),
            }
        }
    }

    async fn init_producer_id(&self) -> Result<(i64, i16)> {
        let conn = self.client.any_connection().await?;
        let req = InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        };
        let resp = conn.request(&req).await?;
        let code = ErrorCode::from_i16(resp.error_code);
        if !code.is_ok() {
            return Err(Error::broker(code, "InitProducerId"));
        }
        Ok((resp.producer_id, resp.producer_epoch))
    }

    /// Fails queued batches whose `delivery.timeout.ms` passed.
    fn expire(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for p in self.parts.values_mut() {
            let ids: Vec<u64> = p
                .queue
                .iter()
                .filter(|b| b.state == State::Queued && b.deadline <= now)
                .map(|b| b.id)
                .collect();
            for id in ids {
                if let Some(b) = p.remove(id) {
                    expired.push(b);
                }
            }
        }
        for b in expired {
            if self.cfg.idempotence {
                self.need_reset = true;
            }
            let err = Error::Timeout(format!(
                "batch for {}-{} not acknowledged within delivery.timeout.ms ({:?})",
                b.batch.tp.topic, b.batch.tp.partition, self.cfg.delivery_timeout
            ));
            self.finish(b, Err(err));
        }
    }

    /// A background refresh or connect ended.
    fn background_ended(&mut self, event: &Event) {
        self.background.ended(event);
        match *event {
            Event::Metadata(true) => self.need_metadata = false,
            Event::Connected { ok: false, .. } => self.need_metadata = true,
            Event::Metadata(false) | Event::Connected { ok: true, .. } => {}
        }
    }

    /// Completes a batch: wakes its records' futures and returns its memory.
    fn finish(&self, b: InBatch, result: Result<(i64, i64)>) {
        // Memory first: a flush woken by `complete` may check the buffer.
        self.memory.add_permits(b.batch.reserved);
        self.acc.completed(b.batch.id);
        b.batch.shared.complete(result);
    }

    async fn send_ready(&mut self, now: Instant) {
        if self.cfg.idempotence && (self.producer_id < 0 || self.need_reset) {
            return;
        }
        let cluster = self.client.cluster();
        let mut conns: HashMap<i32, Option<Arc<Connection>>> = HashMap::new();
        loop {
            let mut per_node: HashMap<i32, Vec<(TopicPartition, u64)>> = HashMap::new();
            let mut sizes: HashMap<i32, usize> = HashMap::new();
            let tps: Vec<TopicPartition> = self.parts.keys().cloned().collect();
            for tp in tps {
                let Some(leader) = cluster.leader(&tp.topic, tp.partition).map(|p| p.leader) else {
                    if self.parts.get(&tp).is_some_and(|p| !p.queue.is_empty()) {
                        self.need_metadata = true;
                    }
                    continue;
                };
                let conn = match conns.get(&leader) {
                    Some(c) => c.clone(),
                    None => {
                        let c = self.client.live_connection(leader);
                        if c.is_none() {
                            // Its partitions wait for the Connected event.
                            self.background.connect(&self.client, leader, now);
                        }
                        conns.insert(leader, c.clone());
                        c
                    }
                };
                if conn.is_none() {
                    continue;
                }
                let (pid, epoch, idem, codec) = (
                    self.producer_id,
                    self.producer_epoch,
                    self.cfg.idempotence,
                    self.cfg.compression,
                );
                let Some(part) = self.parts.get_mut(&tp) else {
                    continue;
                };
                let Some(b) = part.next_sendable(now, self.cfg.max_in_flight) else {
                    continue;
                };
                if b.bytes.is_none() {
                    if idem {
                        b.batch.builder.set_producer(pid, epoch, b.base_seq);
                    }
                    match b.batch.builder.build(codec) {
                        Ok(bytes) => b.bytes = Some(bytes),
                        Err(e) => {
                            let id = b.id;
                            if let Some(b) = part.remove(id) {
                                self.finish(b, Err(Error::Encode(e.to_string())));
                                self.need_reset |= idem;
                            }
                            continue;
                        }
                    }
                }
                let len = b.bytes.as_ref().map_or(0, bytes::Bytes::len);
                let used = sizes.entry(leader).or_insert(0);
                if *used > 0 && *used + len > self.cfg.max_request_size {
                    // Full request: this batch goes in the next round's.
                    continue;
                }
                *used += len;
                b.state = State::InFlight;
                b.sent = true;
                per_node.entry(leader).or_default().push((tp.clone(), b.id));
            }
            if per_node.is_empty() {
                return;
            }
            for (node, batches) in per_node {
                if let Some(Some(conn)) = conns.get(&node) {
                    self.send_request(conn.clone(), batches).await;
                }
            }
        }
    }

    async fn send_request(&mut self, conn: Arc<Connection>, batches: Vec<(TopicPartition, u64)>) {
        let version = match conn.version(ApiKey::Produce) {
            Ok(v) => v,
            Err(e) => {
                for (tp, id) in batches {
                    self.fail_or_retry(&tp, id, e.clone(), false);
                }
                return;
            }
        };
        let mut topics: Vec<TopicProduceData> = Vec::new();
        for (tp, id) in &batches {
            let bytes = self
                .parts
                .get(tp)
                .and_then(|p| p.queue.iter().find(|b| b.id == *id))
                .and_then(|b| b.bytes.clone())
                .unwrap_or_default();
            let data = PartitionProduceData {
                index: tp.partition,
                records: Some(Records::Bytes(bytes)),
                ..Default::default()
            };
            match topics.iter_mut().find(|t| *t.name == *tp.topic) {
                Some(t) => t.partition_data.push(data),
                None => topics.push(TopicProduceData {
                    name: tp.topic.to_string(),
                    partition_data: vec![data],
                    ..Default::default()
                }),
            }
        }
        let timeout_ms = i32::try_from(self.cfg.request_timeout.as_millis()).unwrap_or(i32::MAX);
        let req = ProduceRequest {
            transactional_id: None,
            acks: self.cfg.acks,
            timeout_ms,
            topic_data: topics,
            ..Default::default()
        };
        let tag = self.id();
        let reply = ReplyTo::Tagged(self.replies_tx.clone(), tag);
        match conn.send(&req, version, self.cfg.acks != 0, reply).await {
            Ok(()) => {
                self.requests.insert(
                    tag,
                    InFlightReq {
                        conn,
                        version,
                        batches,
                    },
                );
            }
            Err(e) => {
                for (tp, id) in batches {
                    self.fail_or_retry(&tp, id, e.clone(), false);
                }
            }
        }
    }

    fn handle_reply(&mut self, tag: u64, reply: Reply) {
        let Some(req) = self.requests.remove(&tag) else {
            return;
        };
        let frame = match reply {
            Ok(f) => f,
            Err(e) => {
                self.need_metadata = true;
                for (tp, id) in req.batches {
                    self.fail_or_retry(&tp, id, e.clone(), false);
                }
                return;
            }
        };
        if self.cfg.acks == 0 {
            for (tp, id) in req.batches {
                self.succeed(&tp, id, -1, -1);
            }
            return;
        }
        let resp: ProduceResponse = match req.conn.decode::<ProduceRequest>(frame, req.version) {
            Ok(r) => r,
            Err(e) => {
                req.conn.close("undecodable produce response");
                for (tp, id) in req.batches {
                    self.fail_or_retry(&tp, id, e.clone(), false);
                }
                return;
            }
        };
        for (tp, id) in req.batches {
            let pr = resp
                .responses
                .iter()
                .filter(|t| *t.name == *tp.topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == tp.partition);
            let Some(pr) = pr else {
                let e = Error::Protocol {
                    addr: req.conn.addr().to_owned(),
                    reason: format!("no produce result for {}-{}", tp.topic, tp.partition),
                };
                self.fail_or_retry(&tp, id, e, false);
                continue;
            };
            let code = ErrorCode::from_i16(pr.error_code);
            let context = format!("{}-{}", tp.topic, tp.partition);
            if code.is_ok() || code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER {
                self.succeed(&tp, id, pr.base_offset, pr.log_append_time_ms);
            } else if code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER {
                // Explained by an earlier batch that failed (it will be resent
                // first) or by a pending renumbering; otherwise the broker lost
                // our sequence state and only a new producer id helps.
                let explained =
                    self.need_reset || self.parts.get(&tp).is_some_and(|p| p.has_earlier(id));
                if !explained {
                    self.need_reset = true;
                }
                self.fail_or_retry(&tp, id, Error::broker(code, context), true);
            } else if code == ErrorCode::UNKNOWN_PRODUCER_ID
                || code == ErrorCode::INVALID_PRODUCER_EPOCH
            {
                self.need_reset = true;
                self.fail_or_retry(&tp, id, Error::broker(code, context), true);
            } else {
                if matches!(
                    code,
                    ErrorCode::NOT_LEADER_OR_FOLLOWER
                        | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                        | ErrorCode::LEADER_NOT_AVAILABLE
                        | ErrorCode::FENCED_LEADER_EPOCH
                        | ErrorCode::UNKNOWN_LEADER_EPOCH
                ) {
                    self.need_metadata = true;
                }
                self.fail_or_retry(&tp, id, Error::broker(code, context), false);
            }
        }
    }

    fn succeed(&mut self, tp: &TopicPartition, id: u64, base_offset: i64, append_time: i64) {
        if let Some(b) = self.parts.get_mut(tp).and_then(|p| p.remove(id)) {
            self.finish(b, Ok((base_offset, append_time)));
        }
    }

    /// Retries the batch if the error allows and attempts and time remain;
    /// otherwise fails it. `force_retry` retries sequence errors that the
    /// caller decided are recoverable.
    fn fail_or_retry(&mut self, tp: &TopicPartition, id: u64, err: Error, force_retry: bool) {
        let now = Instant::now();
        let Some(part) = self.parts.get_mut(tp) else {
            return;
        };
        let Some(b) = part.queue.iter().find(|b| b.id == id) else {
            return;
        };
        let retriable = force_retry || err.is_retriable();
        if retriable && b.attempts < self.cfg.retries && now < b.deadline {
            tracing::debug!("retrying batch for {}-{}: {err}", tp.topic, tp.partition);
            part.retry(id, now + self.cfg.retry_backoff);
            return;
        }
        if let Some(b) = part.remove(id) {
            if self.cfg.idempotence && b.sent {
                self.need_reset = true;
            }
            let err = if now >= b.deadline {
                Error::Timeout(format!("delivery.timeout.ms passed; last error: {err}"))
            } else {
                err
            };
            self.finish(b, Err(err));
        }
    }

    /// Fails everything left (after a close).
    fn shutdown(&mut self) {
        let parts = std::mem::take(&mut self.parts);
        for (_, p) in parts {
            for b in p.queue {
                self.finish(b, Err(Error::Closed));
            }
        }
        for b in self.acc.abort(&Error::Closed) {
            self.memory.add_permits(b.reserved);
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
