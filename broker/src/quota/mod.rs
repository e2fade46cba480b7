//! Client quotas (DESIGN.md section 5; Kafka's `ClientQuotaManager`): byte rates
//! for Produce and Fetch and a share of request-handling time, per client id,
//! enforced by delaying responses rather than refusing them.
//!
//! For every request the dispatch layer records what the client used — the
//! Produce request's size, the Fetch response's size, the time its handler
//! ran — into the client's sliding-window rates ([`rate`]). When a rate is
//! over the client's limit ([`entity::resolve`]) the response carries
//! `throttle_time_ms` = Kafka's `(rate - limit) / limit × window`, is written
//! only after that delay, and the connection reads no further request until
//! the delay ends ([`Mute`]), as Kafka mutes the channel. A throttled Fetch
//! answers with no records (its bytes are taken back from the rate), and a
//! Fetch never asks for more than one sample's worth of the quota. Fetches from replicas
//! (`replica_id >= 0`) are never recorded or throttled.
//!
//! The limits are metadata records (`ClientQuota`), applied on every broker
//! when it publishes an image ([`QuotaManager::set_table`]). brook has no SASL,
//! so only client-id entities are enforced (see [`entity`]).
//!
//! # Layout
//! - `rate`: the sliding-window rate (pure, time passed in).
//! - `entity`: precedence, AlterClientQuotas validation, DescribeClientQuotas
//!   filters (pure).
//! - this file: per-client state, the throttle decision, the connection mute,
//!   metrics and the admin view.
//!
//! Per request: one lookup in a sharded map (a short lock on one of 16
//! shards) and one lock of the client's own state; nothing is allocated once
//! the client is known.

pub mod entity;
pub mod rate;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use entity::{Limits, QuotaTable};
pub use rate::{SampledRate, Window};

/// The three quotas, in the order of [`ClientState`]'s rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Produce = 0,
    Fetch = 1,
    Request = 2,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Produce, Kind::Fetch, Kind::Request];

    /// The quota key (`producer_byte_rate`, …).
    pub fn key(self) -> &'static str {
        match self {
            Kind::Produce => entity::PRODUCER_BYTE_RATE,
            Kind::Fetch => entity::CONSUMER_BYTE_RATE,
            Kind::Request => entity::REQUEST_PERCENTAGE,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Produce => "produce",
            Kind::Fetch => "fetch",
            Kind::Request => "request",
        }
    }

    fn limit(self, l: &Limits) -> Option<f64> {
        match self {
            Kind::Produce => l.produce,
            Kind::Fetch => l.fetch,
            Kind::Request => l.request,
        }
    }
}

/// Clients whose series are exported one by one; the rest share `other`.
pub const METRICS_TOP_CLIENTS: usize = 20;

/// Clients idle this long are forgotten (Kafka expires quota sensors after an
/// hour of inactivity).
const IDLE_EXPIRY_MS: u64 = 3_600_000;

const SHARDS: usize = 16;

/// One client id's measured rates and throttle times.
#[derive(Debug)]
pub struct ClientState {
    pub client_id: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The table generation `limits` was resolved from.
    generation: u64,
    limits: Limits,
    used: [SampledRate; 3],
    throttle: [SampledRate; 3],
    last_ms: u64,
}

/// Per-broker quota state.
#[derive(Debug)]
pub struct QuotaManager {
    window: Window,
    epoch: Instant,
    table: RwLock<Arc<QuotaTable>>,
    /// Bumped by every [`QuotaManager::set_table`]; starts at 1 so a new
    /// client resolves its limits on first use.
    generation: AtomicU64,
    shards: Vec<Mutex<HashMap<String, Arc<ClientState>>>>,
}

impl QuotaManager {
    pub fn new(window: Window) -> Self {
        Self {
            window,
            epoch: Instant::now(),
            table: RwLock::new(Arc::new(QuotaTable::new())),
            generation: AtomicU64::new(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    pub fn window(&self) -> Window {
        self.window
    }

    /// Milliseconds on the quota clock (monotonic, from broker start).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The quota clock's instant for `ms`.
    pub fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Replace the configured quotas (from a newly published image). Every
    /// client picks up its new limits with its next request.
    pub fn set_table(&self, table: QuotaTable) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The configured quotas.
    pub fn table(&self) -> Arc<QuotaTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn shard(&self, client_id: &str) -> &Mutex<HashMap<String, Arc<ClientState>>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        client_id.hash(&mut h);
        &self.shards[h.finish() as usize % SHARDS]
    }

    /// The state of `client_id`, created on first use.
    pub fn client(&self, client_id: &str) -> Arc<ClientState> {
        let mut shard = self
            .shard(client_id)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = shard.get(client_id) {
            return c.clone();
        }
        // A new client: forget the long-idle ones of this shard first.
        let now = self.now_ms();
        shard.retain(|_, c| {
            Arc::strong_count(c) > 1 || now.saturating_sub(c.lock().last_ms) < IDLE_EXPIRY_MS
        });
        let c = Arc::new(ClientState {
            client_id: client_id.to_owned(),
            inner: Mutex::new(Inner::default()),
        });
        shard.insert(client_id.to_owned(), c.clone());
        c
    }

    fn refresh(&self, c: &ClientState, inner: &mut Inner) {
        let generation = self.generation.load(Ordering::Acquire);
        if inner.generation != generation {
            inner.limits = entity::resolve(&self.table(), &c.client_id);
            inner.generation = generation;
        }
    }

    /// The limits that apply to `c` now.
    pub fn limits(&self, c: &ClientState) -> Limits {
        let mut inner = c.lock();
        self.refresh(c, &mut inner);
        inner.limits
    }

    /// Record `value` (bytes, or percent of a thread's second) of `kind` for
    /// `c` at `now_ms` and return the throttle it earns: 0 within the limit.
    pub fn record(&self, c: &ClientState, kind: Kind, value: f64, now_ms: u64) -> u64 {
        let w = self.window;
        let mut inner = c.lock();
        self.refresh(c, &mut inner);
        inner.last_ms = now_ms;
        inner.used[kind as usize].record(w, value, now_ms);
        match kind.limit(&inner.limits) {
            Some(limit) => {
                let t = inner.used[kind as usize].throttle_ms(w, limit, now_ms);
                if kind == Kind::Request {
                    // Kafka bounds request-time throttles by one sample.
                    t.min(w.sample_ms)
                } else {
                    t
                }
            }
            None => 0,
        }
    }

    /// Take back a value recorded by [`QuotaManager::record`] (a throttled
    /// Fetch sends no records after all).
    pub fn unrecord(&self, c: &ClientState, kind: Kind, value: f64, now_ms: u64) {
        c.lock().used[kind as usize].record(self.window, -value, now_ms);
    }

    /// Note a throttle applied to `c` (for the metrics).
    pub fn record_throttle(&self, c: &ClientState, kind: Kind, ms: u64, now_ms: u64) {
        c.lock().throttle[kind as usize].record(self.window, ms as f64, now_ms);
    }

    /// Most bytes of `kind` one response may carry for `c`: one sample's
    /// worth of its limit (Kafka allows `samples - 1` samples' worth, matching
    /// its longer minimum window; see [`rate`]), `None` without a limit. A
    /// Fetch asks for no more, so one response cannot blow through the quota.
    pub fn max_in_window(&self, c: &ClientState, kind: Kind) -> Option<f64> {
        let w = self.window;
        kind.limit(&self.limits(c))
            .map(|l| l * (w.sample_ms as f64 / 1000.0))
    }

    /// Every known client's measured rates, limits and throttle times, busiest
    /// first.
    pub fn snapshot(&self) -> Vec<ClientStats> {
        let now = self.now_ms();
        let w = self.window;
        let mut out = Vec::new();
        for shard in &self.shards {
            let clients: Vec<Arc<ClientState>> = shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            for c in clients {
                let mut inner = c.lock();
                self.refresh(&c, &mut inner);
                let limits = inner.limits;
                let mut stats = ClientStats {
                    client_id: c.client_id.clone(),
                    ..ClientStats::default()
                };
                for k in Kind::ALL {
                    let i = k as usize;
                    let rate = inner.used[i].rate(w, now);
                    let throttle = inner.throttle[i].avg(w, now);
                    let s = QuotaStats {
                        limit: k.limit(&limits),
                        rate,
                        throttle_time_ms_avg: throttle,
                    };
                    match k {
                        Kind::Produce => stats.produce = s,
                        Kind::Fetch => stats.fetch = s,
                        Kind::Request => stats.request = s,
                    }
                }
                out.push(stats);
            }
        }
        out.sort_by(|a, b| {
            (b.produce.rate + b.fetch.rate)
                .total_cmp(&(a.produce.rate + a.fetch.rate))
                .then_with(|| a.client_id.cmp(&b.client_id))
        });
        out
    }

    /// Set the per-client gauges: the [`METRICS_TOP_CLIENTS`] busiest clients
    /// by name, the others summed (rates) or maxed (throttle) under `other`.
    pub fn export_metrics(&self) {
        let stats = self.snapshot();
        let mut other = ClientStats {
            client_id: "other".into(),
            ..ClientStats::default()
        };
        for (i, s) in stats.iter().enumerate() {
            if i < METRICS_TOP_CLIENTS {
                emit(&s.client_id, s);
            } else {
                for (o, q) in [
                    (&mut other.produce, &s.produce),
                    (&mut other.fetch, &s.fetch),
                    (&mut other.request, &s.request),
                ] {
                    o.rate += q.rate;
                    o.throttle_time_ms_avg = o.throttle_time_ms_avg.max(q.throttle_time_ms_avg);
                }
            }
        }
        if stats.len() > METRICS_TOP_CLIENTS {
            emit("other", &other);
        }
    }
}

fn emit(client: &str, s: &ClientStats) {
    for (k, q) in [
        (Kind::Produce, &s.produce),
        (Kind::Fetch, &s.fetch),
        (Kind::Request, &s.request),
    ] {
        let labels = [
            ("client_id", client.to_owned()),
            ("quota", k.label().to_owned()),
        ];
        metrics::gauge!("brook_client_quota_rate", &labels).set(q.rate);
        metrics::gauge!("brook_client_quota_throttle_time_ms", &labels).set(q.throttle_time_ms_avg);
    }
}

impl ClientState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One quota of one client, for metrics and `/v1/quotas`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuotaStats {
    /// The limit that applies (`null`: unlimited).
    pub limit: Option<f64>,
    /// Measured over the window: bytes/s, or percent of a thread.
    pub rate: f64,
    /// Average throttle of the throttled responses in the window.
    pub throttle_time_ms_avg: f64,
}

/// One client's quotas.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientStats {
    pub client_id: String,
    pub produce: QuotaStats,
    pub fetch: QuotaStats,
    pub request: QuotaStats,
}

/// A connection's mute: the quota-clock time before which it reads no
/// further request (Kafka mutes a throttled client's channel).
#[derive(Debug, Default)]
pub struct Mute(AtomicU64);

impl Mute {
    /// Mute until `until_ms` (never shortens an existing mute).
    pub fn until(&self, until_ms: u64) {
        self.0.fetch_max(until_ms, Ordering::AcqRel);
    }

    /// Wait out the mute, if any.
    pub async fn wait(&self, quotas: &QuotaManager) {
        let until = self.0.load(Ordering::Acquire);
        if until > quotas.now_ms() {
            tokio::time::sleep_until(quotas.instant(until).into()).await;
        }
    }
}

/// The quota side of one request, from dispatch to response.
#[derive(Debug)]
pub struct RequestQuota {
    pub client: Arc<ClientState>,
    /// When the delay of a throttled response ends, on the quota clock.
    throttle: u64,
    kind: Option<Kind>,
}

impl RequestQuota {
    /// Start accounting a request of `client_id`.
    pub fn start(quotas: &QuotaManager, client_id: &str) -> Self {
        Self {
            client: quotas.client(client_id),
            throttle: 0,
            kind: None,
        }
    }

    /// Record `value` of `kind` and keep the longest throttle so far
    /// (Kafka throttles by the larger of the bandwidth and request-time
    /// throttles). Returns the throttle this record earned.
    pub fn record(&mut self, quotas: &QuotaManager, kind: Kind, value: f64, now_ms: u64) -> u64 {
        let t = quotas.record(&self.client, kind, value, now_ms);
        if t > self.throttle {
            self.throttle = t;
            self.kind = Some(kind);
        }
        t
    }

    /// The throttle (ms) the request earned so far.
    pub fn throttle_ms(&self) -> u64 {
        self.throttle
    }

    /// Note the throttle in the metrics and mute `mute` until it ends; returns
    /// the deadline on the quota clock (`None`: not throttled).
    pub fn apply(&self, quotas: &QuotaManager, mute: &Mute, now_ms: u64) -> Option<u64> {
        let kind = self.kind?;
        quotas.record_throttle(&self.client, kind, self.throttle, now_ms);
        let until = now_ms + self.throttle;
        mute.until(until);
        Some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{QuotaEntity, QuotaValue};

    fn manager_with(client: Option<&str>, key: &str, value: f64) -> QuotaManager {
        let q = QuotaManager::new(Window::new(11, 1));
        let mut t = QuotaTable::new();
        t.entry(QuotaEntity(vec![(
            entity::CLIENT_ID.into(),
            client.map(str::to_owned),
        )]))
        .or_default()
        .insert(key.into(), QuotaValue(value));
        q.set_table(t);
        q
    }

    #[test]
    fn a_client_over_its_byte_rate_is_throttled_and_others_are_not() {
        let q = manager_with(Some("heavy"), entity::PRODUCER_BYTE_RATE, 1000.0);
        let heavy = q.client("heavy");
        let light = q.client("light");
        // 20 000 bytes at once: 20 000 B/s over the 1 s minimum window.
        assert_eq!(q.record(&heavy, Kind::Produce, 20_000.0, 0), 19_000);
        assert_eq!(q.record(&light, Kind::Produce, 20_000.0, 0), 0);
        assert_eq!(q.max_in_window(&heavy, Kind::Produce), Some(1000.0));
        assert_eq!(q.max_in_window(&light, Kind::Produce), None);
    }

    #[test]
    fn new_limits_apply_to_known_clients_at_their_next_request() {
        let q = manager_with(None, entity::PRODUCER_BYTE_RATE, 1e9);
        let c = q.client("c");
        assert_eq!(q.record(&c, Kind::Produce, 20_000.0, 0), 0);
        let mut t = QuotaTable::new();
        t.entry(QuotaEntity(vec![(entity::CLIENT_ID.into(), None)]))
            .or_default()
            .insert(entity::PRODUCER_BYTE_RATE.into(), QuotaValue(1000.0));
        q.set_table(t);
        assert!(q.record(&c, Kind::Produce, 1.0, 1) > 0);
        q.set_table(QuotaTable::new());
        assert_eq!(q.record(&c, Kind::Produce, 1.0, 2), 0);
    }

    #[test]
    fn request_time_throttles_are_bounded_by_one_sample() {
        let q = manager_with(Some("c"), entity::REQUEST_PERCENTAGE, 1.0);
        let c = q.client("c");
        assert_eq!(q.record(&c, Kind::Request, 100_000.0, 0), 1000);
    }

    #[test]
    fn a_request_keeps_its_longest_throttle_and_mutes_its_connection() {
        let q = manager_with(Some("c"), entity::PRODUCER_BYTE_RATE, 1000.0);
        let mut r = RequestQuota::start(&q, "c");
        let mute = Mute::default();
        assert_eq!(r.apply(&q, &mute, 0), None);
        r.record(&q, Kind::Request, 1.0, 0);
        r.record(&q, Kind::Produce, 20_000.0, 0);
        assert_eq!(r.throttle_ms(), 19_000);
        assert_eq!(r.apply(&q, &mute, 5), Some(19_005));
        assert_eq!(mute.0.load(Ordering::Acquire), 19_005);
        let stats = q.snapshot();
        assert_eq!(stats[0].client_id, "c");
        assert_eq!(stats[0].produce.throttle_time_ms_avg, 19_000.0);
        assert_eq!(stats[0].produce.limit, Some(1000.0));
    }
}
