//! The admin HTTP listener (`admin.listener`, default 127.0.0.1:9644).
//!
//! - `GET /metrics`: Prometheus text exposition.
//! - `GET /v1/health`: readiness and liveness with reasons (503 when not ready).
//! - `GET /v1/cluster`: cluster id, the controller quorum (voters, active
//!   controller and epoch, each voter's replicated offset on the active one),
//!   this node's applied metadata offset and image hash, brokers with their
//!   state (unfenced, fenced, shutting down), totals.
//! - `GET /v1/topics`, `GET /v1/topics/{name}`: partitions with leader, ISR,
//!   log end offset, high-water mark, log start offset and size on disk.
//! - `GET /v1/groups`, `GET /v1/groups/{id}`: state, members with their
//!   assignments, and per partition the committed offset, log end and lag.
//!
//! - `/v1/views…`: materialized views (see `crate::views::http`).
//!
//! Every answer is JSON except `/metrics`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::{Broker, Topic};

#[derive(Clone)]
struct AppState {
    broker: Arc<Broker>,
    metrics: Option<PrometheusHandle>,
}

/// The admin router (exposed for tests).
pub fn router(broker: Arc<Broker>, metrics: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/v1/health", get(health))
        .route("/v1/cluster", get(cluster))
        .route("/v1/topics", get(topics))
        .route("/v1/topics/{name}", get(topic))
        .route("/v1/groups", get(groups))
        .route("/v1/groups/{id}", get(group))
        .route("/v1/quotas", get(quotas))
        .with_state(AppState {
            broker: broker.clone(),
            metrics,
        })
        .merge(crate::views::http::router(broker))
}

/// Serve until `shutdown` turns true.
///
/// # Errors
/// The listener fails.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    metrics: Option<PrometheusHandle>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(broker, metrics))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    match &s.metrics {
        Some(h) => {
            let broker = s.broker.clone();
            let budget = crate::metrics::collect::partition_budget(&broker);
            let reports = crate::metrics::groups::all(&broker).await;
            let group_dropped = crate::metrics::groups::record(&reports, budget);
            // Partition sizes stat files; keep that off the async workers.
            let _ = tokio::task::spawn_blocking(move || {
                crate::metrics::collect::collect(&broker, budget, group_dropped);
            })
            .await;
            (
                StatusCode::OK,
                [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                crate::metrics::render(h),
            )
                .into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        )
            .into_response(),
    }
}

async fn health(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut reasons = Vec::new();
    for dir in s.broker.log_dirs().offline() {
        reasons.push(format!(
            "log directory {} offline after a storage failure",
            dir.display()
        ));
    }
    let offline: Vec<String> = s
        .broker
        .topics()
        .iter()
        .flat_map(|t| {
            t.partitions()
                .into_iter()
                .filter(|p| s.broker.partition_offline(p))
                .map(|p| format!("{}-{}", t.name, p.index))
                .collect::<Vec<_>>()
        })
        .collect();
    if !offline.is_empty() {
        reasons.push(format!("{} partitions offline", offline.len()));
    }
    let ready = reasons.is_empty();
    let body = json!({
        "live": true,
        "ready": ready,
        "reasons": reasons,
        "log_dirs_online": !s.broker.is_offline(),
        "log_dirs_offline": s.broker.log_dirs().offline().iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        // Single node: this broker is the controller.
        "controller_known": true,
        "controller_id": s.broker.node_id(),
    });
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

async fn cluster(State(s): State<AppState>) -> Json<Value> {
    Json(cluster_status(&s.broker))
}

/// `/v1/cluster`: the controller quorum as this node sees it, the brokers of
/// its image, and totals.
pub fn cluster_status(b: &Broker) -> Value {
    let image = b.image();
    let c = b.controller();
    let applied = c.applied();
    let m = c.metrics();
    let active = c.active();
    let brokers: Vec<Value> = image
        .brokers
        .values()
        .map(|r| {
            let state = if r.fenced {
                "fenced"
            } else if r.shutting_down {
                "shutting_down"
            } else {
                "unfenced"
            };
            let (host, port) = if r.id == b.node_id() {
                b.advertised()
            } else {
                r.endpoints
                    .first()
                    .map_or((String::new(), -1), |e| (e.host.clone(), i32::from(e.port)))
            };
            json!({"node_id": r.id, "host": host, "port": port, "rack": r.rack, "state": state, "epoch": r.epoch})
        })
        .collect();
    // Only the active controller knows how far each voter has replicated.
    let progress: serde_json::Map<String, Value> = m
        .replication
        .as_ref()
        .map(|r| {
            r.iter()
                .map(|(id, l)| (id.to_string(), json!(l.map_or(0, |l| l.index))))
                .collect()
        })
        .unwrap_or_default();
    let partitions: usize = image.topics.values().map(|t| t.partitions.len()).sum();
    let offline = image
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.leader < 0)
        .count();
    json!({
        "cluster_id": b.cluster_id(),
        "node_id": b.node_id(),
        "controller_id": active.map_or(-1, |(id, _)| id),
        "controller": {
            "active": active.map(|(id, _)| id),
            "epoch": active.map(|(_, e)| e),
            "this_node_active": c.is_active(),
            "voters": c.voters().iter().map(|(id, addr)| json!({"id": id, "address": addr})).collect::<Vec<_>>(),
            "voter_progress": progress,
        },
        "metadata": {
            "applied_offset": applied.offset,
            "applied_epoch": applied.epoch,
            "published_offset": b.image_offset(),
            "log_end_offset": m.last_log_index.unwrap_or(0),
            "image_hash": image.content_hash(),
        },
        "broker": {
            "epoch": b.membership().epoch(),
            "fenced": b.membership().is_fenced(),
            "shutting_down": b.membership().is_shutting_down(),
        },
        "brokers": brokers,
        "topics": image.topics.len(),
        "partitions": partitions,
        "under_replicated_partitions": b.topics().iter().flat_map(|t| t.partitions()).filter(|p| p.under_replicated()).count(),
        "offline_partitions": offline + b.topics().iter().flat_map(|t| t.partitions()).filter(|p| b.partition_offline(p)).count(),
        "log_dir_offline": b.is_offline(),
    })
}

async fn topics(State(s): State<AppState>) -> Json<Value> {
    let b = s.broker.clone();
    let list = tokio::task::spawn_blocking(move || {
        b.topics()
            .iter()
            .map(|t| describe(&b, t, false))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    Json(Value::Array(list))
}

async fn topic(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(t) = s.broker.topic(&name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown topic {name}")})),
        )
            .into_response();
    };
    let b = s.broker.clone();
    match tokio::task::spawn_blocking(move || describe(&b, &t, true)).await {
        Ok(v) => Json(v).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Configured client quotas (from the metadata image) and every known
/// client's measured rates, limits and throttle times on this broker.
async fn quotas(State(s): State<AppState>) -> Json<Value> {
    let q = s.broker.quotas();
    let configured: Vec<Value> = q
        .table()
        .iter()
        .map(|(entity, values)| {
            let entity: serde_json::Map<String, Value> = entity
                .0
                .iter()
                .map(|(t, n)| (t.clone(), json!(n)))
                .collect();
            let values: serde_json::Map<String, Value> = values
                .iter()
                .map(|(k, v)| (k.clone(), json!(v.0)))
                .collect();
            json!({"entity": entity, "values": values})
        })
        .collect();
    let w = q.window();
    Json(json!({
        "window": {"samples": w.samples, "sample_ms": w.sample_ms},
        "configured": configured,
        "clients": q.snapshot(),
    }))
}

async fn groups(State(s): State<AppState>) -> Json<Value> {
    Json(json!(crate::metrics::groups::all(&s.broker).await))
}

async fn group(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match crate::metrics::groups::report(&s.broker, &id).await {
        Some(r) => Json(json!(r)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown group {id}")})),
        )
            .into_response(),
    }
}

/// A topic as this broker hosts it: the partitions of it that live here, with
/// their leader, epoch, replicas and ISR from the metadata image.
fn describe(b: &Broker, t: &Topic, with_partitions: bool) -> Value {
    let image = b.image();
    let parts = t.partitions();
    let mut size_total = 0u64;
    let partitions: Vec<Value> = parts
        .iter()
        .map(|p| {
            let size = p.log().size_in_bytes();
            size_total += size;
            let compaction = p.config().cleanup_policy.compact.then(|| {
                let params = crate::cleaner::params_of(p);
                let now = crate::handlers::now_ms();
                let ratio = p
                    .log()
                    .dirty_section(p.high_watermark(), now, &params)
                    .map_or(Value::Null, |s| json!(s.ratio()));
                json!({"dirty_ratio": ratio, "cleaned_offset": p.log().cleaned_offset()})
            });
            let rec = image.partition(&t.id, p.index);
            json!({
                "compaction": compaction,
                "partition": p.index,
                "leader": rec.map_or(-1, |r| r.leader),
                "leader_epoch": p.leader_epoch(),
                "replicas": rec.map(|r| r.replicas.clone()).unwrap_or_default(),
                "isr": rec.map(|r| r.isr.clone()).unwrap_or_default(),
                "log_end_offset": p.log_end_offset(),
                "high_watermark": p.high_watermark(),
                "log_start_offset": p.log_start_offset(),
                "size_bytes": size,
                "offline": b.partition_offline(p),
                "log_dir": p.log().dir().parent().map(|d| d.display().to_string()),
            })
        })
        .collect();
    let mut v = json!({
        "name": &*t.name,
        "topic_id": t.id.to_string(),
        "internal": t.is_internal(),
        "partitions": t.partition_count(),
        "hosted_partitions": parts.len(),
        "size_bytes": size_total,
        "configs": t.overrides(),
    });
    if with_partitions {
        v["partitions"] = Value::Array(partitions);
        v["partition_count"] = json!(t.partition_count());
    }
    v
}
