//! Prometheus metrics (DESIGN.md section 11), through the `metrics` facade.
//!
//! # Layout
//! - this file: the one registry of every metric ([`METRICS`]: name, type,
//!   labels, meaning; [`all`] adds the `brook-views` metrics) — it drives `# HELP` lines, the README table and its
//!   drift test — plus the recording functions used on request paths.
//! - `probe`: per-topic counter handles registered once, so hot paths only
//!   bump an atomic (no label formatting per request).
//! - `collect`: scrape-time gauges (partition offsets and sizes, process stats),
//!   computed when `/metrics` is read rather than on every write.
//! - `groups`: consumer-group members and lag, for the gauges and the admin API.
//!
//! Recording allocates nothing: API labels are `&'static str`. Without an
//! installed recorder (unit tests) every call is a no-op.

pub mod collect;
pub mod groups;
pub mod probe;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use brook_protocol::api::ApiKey;
use brook_protocol::error::ErrorCode;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

pub use probe::TopicProbe;

/// Kind of a metric, as Prometheus sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One row of the registry.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric brook exports.
pub const METRICS: &[MetricDef] = &[
    m("brook_requests_total", Counter, &["api"], "Kafka requests served, by API."),
    m("brook_request_errors_total", Counter, &["api", "error"], "Error codes returned (per partition or resource) and requests refused, by API and Kafka error name."),
    m("brook_request_latency_seconds", Histogram, &["api"], "Time from a request's arrival to its response being ready, by API (a long-poll fetch or acks=all produce: until the connection's writer takes its response, which it does in request order)."),
    m("brook_topic_bytes_in_total", Counter, &["topic"], "Record-batch bytes appended by producers, by topic."),
    m("brook_topic_records_in_total", Counter, &["topic"], "Records appended by producers, by topic."),
    m("brook_topic_bytes_out_total", Counter, &["topic"], "Record-batch bytes returned to consumers (follower replicas not counted), by topic."),
    m("brook_topic_records_out_total", Counter, &["topic"], "Records returned to consumers (follower replicas not counted; from the fetch offset to the end of the last whole batch sent), by topic."),
    m("brook_fetch_sendfile_bytes_total", Counter, &[], "Record bytes sent to clients with sendfile (zero-copy); fetch responses of up to 64 KiB whose records are cached go out as one write instead and are not counted."),
    m("brook_fetch_sessions", Gauge, &[], "Incremental fetch sessions (KIP-227) cached, consumers' and followers' (at most max.incremental.fetch.session.cache.slots)."),
    m("brook_fetch_session_partitions", Gauge, &[], "Partitions held by all cached fetch sessions."),
    m("brook_fetch_sessions_created_total", Counter, &[], "Fetch sessions created (full fetches with epoch 0 that got a session id)."),
    m("brook_fetch_session_evictions_total", Counter, &[], "Fetch sessions evicted to make room for another, or closed for growing past the per-session partition cap."),
    m("brook_partition_log_end_offset", Gauge, &["topic", "partition"], "Log end offset (LEO) of each partition."),
    m("brook_partition_high_watermark", Gauge, &["topic", "partition"], "High-water mark of each partition: what consumers may read."),
    m("brook_partition_log_start_offset", Gauge, &["topic", "partition"], "Log start offset of each partition."),
    m("brook_partition_size_bytes", Gauge, &["topic", "partition"], "Bytes on disk of each partition's segments."),
    m("brook_partition_series_dropped", Gauge, &[], "Partitions left out of per-partition series by metrics.max.partition.series or metrics.per.partition.enable=false."),
    m("brook_partitions", Gauge, &[], "Partitions hosted by this broker."),
    m("brook_under_replicated_partitions", Gauge, &[], "Partitions led by this broker whose ISR is smaller than their replica set."),
    m("brook_offline_partitions", Gauge, &[], "Partitions whose log is offline after a storage failure."),
    m("brook_isr_shrinks_total", Counter, &[], "Replicas removed from the ISR of partitions this broker leads."),
    m("brook_isr_expands_total", Counter, &[], "Replicas added to the ISR of partitions this broker leads."),
    m("brook_fsync_latency_seconds", Histogram, &[], "Duration of group-committed log fsyncs (the _count is the number of fsync waits)."),
    m("brook_segment_rolls_total", Counter, &[], "Log segments rolled (a new active segment started)."),
    m("brook_retention_deleted_segments_total", Counter, &[], "Log segments deleted by retention."),
    m("brook_retention_deleted_bytes_total", Counter, &[], "Bytes of log segments deleted by retention."),
    m("brook_cleaner_bytes_read_total", Counter, &[], "Bytes of log the cleaner read (offset-map and rewrite passes)."),
    m("brook_cleaner_bytes_written_total", Counter, &[], "Bytes of cleaned segments the cleaner wrote."),
    m("brook_cleaner_cleans_total", Counter, &[], "Log cleans finished."),
    m("brook_cleaner_clean_seconds", Histogram, &[], "Duration of one log clean."),
    m("brook_cleaner_seconds_since_last_clean", Gauge, &[], "Seconds since the cleaner last finished a clean (absent before the first)."),
    m("brook_partition_dirty_ratio", Gauge, &["topic", "partition"], "Dirty fraction of each compacted partition's cleanable log (what min.cleanable.dirty.ratio is compared with)."),
    m("brook_partition_cleaned_offset", Gauge, &["topic", "partition"], "Cleaner checkpoint of each compacted partition: offsets below it hold only each key's latest record."),
    m("brook_view_restoring", Gauge, &["view"], "1 while a materialized view is applying its topic's history (restoring), 0 once it has caught up (live)."),
    m("brook_log_dir_offline", Gauge, &[], "How many of `log.dirs` are offline after a write, fsync or ENOSPC failure (0 when all serve). An offline directory's partitions answer KAFKA_STORAGE_ERROR until restart."),
    m("brook_connections_active", Gauge, &[], "Open client connections."),
    m("brook_connections_total", Counter, &[], "Client connections accepted."),
    m("brook_connection_errors_total", Counter, &[], "Connections refused or closed for a protocol error, an oversized frame or the connection limit."),
    m("brook_request_bytes_queued", Gauge, &[], "Request bytes being read or handled, taken from the queued.max.request.bytes budget (a connection that finds it spent stops reading)."),
    m("brook_group_members", Gauge, &["group"], "Members of each consumer group."),
    m("brook_group_lag_records", Gauge, &["group", "topic", "partition"], "Consumer group lag: log end offset consumers see (the high-water mark) minus the committed offset."),
    m("brook_controller_active", Gauge, &[], "1 when this node is the active controller (the controller quorum's Raft leader), else 0."),
    m("brook_controller_epoch", Gauge, &[], "Epoch (Raft term) of the active controller as this node knows it; 0 while none is known."),
    m("brook_fenced_brokers", Gauge, &[], "Registered brokers that are fenced, in this node's metadata image."),
    m("brook_metadata_applied_offset", Gauge, &[], "Offset of the last metadata log entry this node has applied to its image."),
    m("brook_metadata_lag", Gauge, &[], "Metadata log entries this node holds but has not yet applied (log end minus applied)."),
    m("brook_client_quota_rate", Gauge, &["client_id", "quota"], "Measured rate per client id over the quota window: bytes/s for quota=produce and quota=fetch, percent of one request thread for quota=request. The 20 busiest client ids by name, the rest summed under client_id=\"other\"."),
    m("brook_client_quota_throttle_time_ms", Gauge, &["client_id", "quota"], "Average throttle delay (ms) of a client id's throttled responses over the quota window, by quota; same client ids as brook_client_quota_rate (\"other\": the largest of the rest)."),
    m("brook_process_resident_memory_bytes", Gauge, &[], "Resident set size of the brook process."),
    m("brook_process_cpu_seconds_total", Counter, &[], "User plus system CPU time of the brook process."),
    m("brook_process_open_fds", Gauge, &[], "Open file descriptors of the brook process."),
];

/// Install the global Prometheus recorder and describe every metric.
///
/// # Errors
/// A recorder was already installed.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ])?
        // Scrape-time gauges of deleted topics or departed groups disappear
        // once nobody refreshes them.
        .idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_secs(300)))
        .install_recorder()?;
    for def in all() {
        match def.kind {
            Counter => describe_counter!(def.name, def.help),
            Gauge => describe_gauge!(def.name, def.help),
            Histogram => {
                if def.name.ends_with("_seconds") {
                    describe_histogram!(def.name, Unit::Seconds, def.help);
                } else {
                    describe_histogram!(def.name, def.help);
                }
            }
        }
    }
    // Series that exist from the start, so dashboards see zeros, not gaps.
    counter!("brook_isr_shrinks_total").absolute(0);
    counter!("brook_isr_expands_total").absolute(0);
    counter!("brook_segment_rolls_total").increment(0);
    counter!("brook_retention_deleted_segments_total").increment(0);
    counter!("brook_retention_deleted_bytes_total").increment(0);
    counter!("brook_connections_total").increment(0);
    counter!("brook_connection_errors_total").increment(0);
    counter!("brook_cleaner_bytes_read_total").increment(0);
    counter!("brook_cleaner_bytes_written_total").increment(0);
    counter!("brook_cleaner_cleans_total").increment(0);
    gauge!("brook_connections_active").increment(0.0);
    gauge!("brook_request_bytes_queued").increment(0.0);
    Ok(handle)
}

/// Every metric: [`METRICS`] plus those `brook-views` records
/// ([`brook_views::METRICS`]).
pub fn all() -> Vec<MetricDef> {
    let mut all = METRICS.to_vec();
    all.extend(brook_views::METRICS.iter().map(|v| MetricDef {
        name: v.name,
        kind: match v.kind {
            "counter" => Counter,
            "histogram" => Histogram,
            _ => Gauge,
        },
        labels: v.labels,
        help: v.help,
    }));
    all
}

/// The README's metrics table, rendered from [`all`].
pub fn reference_markdown() -> String {
    let mut s = String::from("| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n");
    for d in all() {
        let labels = if d.labels.is_empty() {
            "—".to_owned()
        } else {
            d.labels.join(", ")
        };
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            d.name,
            d.kind.name(),
            labels,
            d.help
        );
    }
    s
}

/// Render the text exposition, refreshing counters kept outside the facade.
pub fn render(handle: &PrometheusHandle) -> String {
    counter!("brook_fetch_sendfile_bytes_total")
        .absolute(crate::server::writer::SENDFILE_BYTES.load(Ordering::Relaxed));
    handle.render()
}

pub fn connection_opened() {
    gauge!("brook_connections_active").increment(1.0);
    counter!("brook_connections_total").increment(1);
}

pub fn connection_closed() {
    gauge!("brook_connections_active").decrement(1.0);
}

/// `bytes` of the request budget taken (positive) or given back (negative).
pub fn request_bytes_queued(bytes: f64) {
    gauge!("brook_request_bytes_queued").increment(bytes);
}

pub fn connection_error() {
    counter!("brook_connection_errors_total").increment(1);
}

/// A request refused before a handler ran (undecodable, unsupported version).
pub fn request_error(key: Option<ApiKey>) {
    counter!("brook_request_errors_total", "api" => key.map_or("unknown", ApiKey::name), "error" => "INVALID_REQUEST")
        .increment(1);
}

/// An error code a handler put in its response.
pub fn api_error(key: ApiKey, code: i16) {
    if code != 0 {
        counter!("brook_request_errors_total", "api" => key.name(), "error" => ErrorCode::from_i16(code).name()).increment(1);
    }
}

/// Per-API request handles (indexed by API key), registered on an API's first
/// request, so later requests bump them without a labelled registry look-up.
/// The recorder is installed before the broker serves, so a handle is never
/// bound to the no-op recorder in the broker process.
static REQUEST_PROBES: [std::sync::OnceLock<(metrics::Counter, metrics::Histogram)>; 128] =
    [const { std::sync::OnceLock::new() }; 128];

pub fn request_done(key: ApiKey, elapsed: Duration) {
    let register = || {
        (
            counter!("brook_requests_total", "api" => key.name()),
            histogram!("brook_request_latency_seconds", "api" => key.name()),
        )
    };
    match usize::try_from(key as i16)
        .ok()
        .and_then(|i| REQUEST_PROBES.get(i))
    {
        Some(slot) => {
            let (requests, latency) = slot.get_or_init(register);
            requests.increment(1);
            latency.record(elapsed.as_secs_f64());
        }
        None => {
            let (requests, latency) = register();
            requests.increment(1);
            latency.record(elapsed.as_secs_f64());
        }
    }
}

/// The ISR of a partition this broker leads lost `shrunk` and gained `grew` members.
pub fn isr_changed(shrunk: u64, grew: u64) {
    if shrunk > 0 {
        counter!("brook_isr_shrinks_total").increment(shrunk);
    }
    if grew > 0 {
        counter!("brook_isr_expands_total").increment(grew);
    }
}

pub fn fsync(elapsed: Duration) {
    histogram!("brook_fsync_latency_seconds").record(elapsed.as_secs_f64());
}

/// One finished log clean.
pub fn cleaner_ran(stats: &crate::log::cleaner::CleanStats, took: Duration) {
    counter!("brook_cleaner_bytes_read_total").increment(stats.bytes_read);
    counter!("brook_cleaner_bytes_written_total").increment(stats.bytes_written);
    counter!("brook_cleaner_cleans_total").increment(1);
    histogram!("brook_cleaner_clean_seconds").record(took.as_secs_f64());
}

pub fn retention_deleted(segments: usize, bytes: u64) {
    counter!("brook_retention_deleted_segments_total").increment(segments as u64);
    counter!("brook_retention_deleted_bytes_total").increment(bytes);
}
