//! The materialized-view routes of the admin HTTP listener.
//!
//! | Route | What |
//! |---|---|
//! | `GET /v1/views` | every view: definition, state (restoring, live, failing), lag |
//! | `PUT /v1/views/{name}` | create: body `{"topic":…, "kind":…, "field":…, "key_format":…, "value_format":…}` |
//! | `GET /v1/views/{name}` | one view with per-partition offsets, lag and store stats |
//! | `DELETE /v1/views/{name}` | drop the view and its data |
//! | `GET /v1/views/{name}/keys/{key}` | point read; 404 when absent, with `deleted_at` (the tombstone's offset) when it was deleted |
//! | `GET /v1/views/{name}/scan` | `from`, `to`, `prefix`, `limit`, `reverse`, `cursor` |
//!
//! Reads take `min_offset=PARTITION:OFFSET,…` (wait until the view has applied
//! those offsets, e.g. the offset a producer got back: read-your-writes) and
//! `timeout_ms` (default 5000, at most 60000; 504 when it passes). Every read
//! answers the per-partition offsets it reflects (`offsets`: next offset to apply).
//! Keys and values are shown by the view's formats: JSON as JSON, UTF-8 and valid
//! UTF-8 bytes as strings, other bytes as `key_base64` / `value_base64`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use brook_views::{
    AppliedOffsets, ErrorClass, Format, ScanRequest, View, ViewDef, ViewError, ViewKind,
};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::Hosted;
use crate::broker::Broker;

const DEFAULT_TIMEOUT_MS: u64 = 5_000;
const MAX_TIMEOUT_MS: u64 = 60_000;

/// The view routes, with their own state.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/v1/views", get(list))
        .route(
            "/v1/views/{name}",
            get(describe).put(create).delete(drop_view),
        )
        .route("/v1/views/{name}/keys/{key}", get(get_key))
        .route("/v1/views/{name}/scan", get(scan))
        .with_state(broker)
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

fn view_error(e: &ViewError) -> Response {
    let status = match e.status_class() {
        ErrorClass::BadRequest => StatusCode::BAD_REQUEST,
        ErrorClass::Gone => StatusCode::GONE,
        ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

fn offsets_json(o: &AppliedOffsets) -> Value {
    Value::Object(o.iter().map(|(p, n)| (p.to_string(), json!(n))).collect())
}

/// Render stored bytes of a key or value under `format` into `obj[name]`.
fn render(obj: &mut Map<String, Value>, name: &str, format: Format, bytes: &[u8]) {
    let as_json = || serde_json::from_slice::<Value>(bytes).ok();
    let value = match format {
        Format::Json => as_json(),
        Format::Utf8 | Format::Bytes => std::str::from_utf8(bytes).ok().map(|s| json!(s)),
    };
    match value {
        Some(v) => {
            obj.insert(name.to_owned(), v);
        }
        None => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            obj.insert(format!("{name}_base64"), json!(b64));
        }
    }
}

/// The format a view's stored values are in: aggregates store JSON text.
fn value_format(def: &ViewDef) -> Format {
    match def.kind {
        ViewKind::Table if def.field.is_none() => def.value_format,
        _ => Format::Json,
    }
}

fn entry(def: &ViewDef, key: &[u8], value: Option<&[u8]>) -> Value {
    let mut obj = Map::new();
    render(&mut obj, "key", def.key_format, key);
    if let Some(v) = value {
        render(&mut obj, "value", value_format(def), v);
    }
    Value::Object(obj)
}

fn describe_hosted(h: &Hosted, with_stats: bool) -> Value {
    let def = h.view.def();
    let (state, progress) = h.status();
    let mut v = json!({
        "name": def.name,
        "definition": def,
        "state": state.name(),
        "offsets": offsets_json(&h.view.published().offsets),
    });
    if let super::ViewState::Failing(msg) = &state {
        v["error"] = json!(msg);
    }
    if let Some(p) = progress {
        v["lag"] = json!(p.lag());
        v["partitions"] = Value::Array(
            p.partitions
                .iter()
                .map(|x| {
                    json!({"partition": x.partition, "next_offset": x.next_offset,
                           "high_watermark": x.high_watermark, "lag": x.lag})
                })
                .collect(),
        );
    }
    if with_stats {
        let s = h.view.stats();
        v["stats"] = json!({
            "approximate_rows": s.approximate_rows, "disk_bytes": s.disk_bytes,
            "l0_runs": s.l0_runs, "tables": s.tables, "memtable_bytes": s.memtable_bytes,
        });
    }
    v
}

async fn list(State(b): State<Arc<Broker>>) -> Json<Value> {
    Json(Value::Array(
        b.views()
            .list()
            .iter()
            .map(|h| describe_hosted(h, false))
            .collect(),
    ))
}

async fn describe(State(b): State<Arc<Broker>>, Path(name): Path<String>) -> Response {
    let Some(h) = b.views().get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("unknown view {name}"));
    };
    match tokio::task::spawn_blocking(move || describe_hosted(&h, true)).await {
        Ok(v) => Json(v).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "describe failed"),
    }
}

async fn create(
    State(b): State<Arc<Broker>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut v: Value = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => Value::Object(m),
        Ok(_) => return error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        }
    };
    match v.get("name") {
        Some(n) if *n != json!(name) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body names view {n} but the path names {name}"),
            )
        }
        _ => v["name"] = json!(name),
    }
    let def = match ViewDef::from_json(&v.to_string()) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match b.views().create(&b, def).await {
        Ok(true) => (StatusCode::CREATED, Json(json!({"created": name}))).into_response(),
        Ok(false) => (StatusCode::OK, Json(json!({"exists": name}))).into_response(),
        Err(e) => {
            let status = match e.error_code() {
                brook_protocol::error::ErrorCode::KAFKA_STORAGE_ERROR => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                _ => StatusCode::BAD_REQUEST,
            };
            error(status, e.to_string())
        }
    }
}

async fn drop_view(State(b): State<Arc<Broker>>, Path(name): Path<String>) -> Response {
    match b.views().drop_view(&b, &name).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("unknown view {name}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `min_offset` and `timeout_ms` of a read.
struct Wait {
    offsets: Vec<(i32, i64)>,
    timeout: Duration,
}

/// Why a read is refused before it runs: status and message.
type Refusal = (StatusCode, String);

fn refused((status, msg): Refusal) -> Response {
    error(status, msg)
}

fn parse_wait(q: &HashMap<String, String>) -> Result<Wait, Refusal> {
    let timeout_ms = match q.get("timeout_ms") {
        None => DEFAULT_TIMEOUT_MS,
        Some(t) => t.parse::<u64>().map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                format!("timeout_ms={t:?} is not a number of milliseconds"),
            )
        })?,
    };
    let mut offsets = Vec::new();
    if let Some(spec) = q.get("min_offset") {
        for part in spec.split(',').filter(|s| !s.is_empty()) {
            let parsed = part
                .split_once(':')
                .and_then(|(p, o)| Some((p.trim().parse().ok()?, o.trim().parse().ok()?)));
            match parsed {
                Some(po) => offsets.push(po),
                None => {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!("min_offset entry {part:?} is not PARTITION:OFFSET"),
                    ))
                }
            }
        }
    }
    Ok(Wait {
        offsets,
        timeout: Duration::from_millis(timeout_ms.min(MAX_TIMEOUT_MS)),
    })
}

/// Wait until the view applied every `min_offset`; a 504 response if it did not.
async fn wait(view: &View, w: &Wait) -> Result<(), Refusal> {
    let deadline = Instant::now() + w.timeout;
    for &(p, o) in &w.offsets {
        let left = deadline.saturating_duration_since(Instant::now());
        match view.wait_for(p, o, left).await {
            Ok(true) => {}
            Ok(false) => {
                return Err((
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "view {} has not applied offset {o} of partition {p} within {} ms",
                        view.def().name,
                        w.timeout.as_millis()
                    ),
                ))
            }
            Err(e) => return Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    }
    Ok(())
}

/// The view `name`, once it has applied the read's `min_offset`s.
async fn ready_view(
    b: &Broker,
    name: &str,
    q: &HashMap<String, String>,
) -> Result<Arc<Hosted>, Refusal> {
    let h = b
        .views()
        .get(name)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("unknown view {name}")))?;
    wait(&h.view, &parse_wait(q)?).await?;
    Ok(h)
}

async fn get_key(
    State(b): State<Arc<Broker>>,
    Path((name, key)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let h = match ready_view(&b, &name, &q).await {
        Ok(h) => h,
        Err(r) => return refused(r),
    };
    let view = h.view.clone();
    let k = key.clone();
    let r = tokio::task::spawn_blocking(move || view.get(k.as_bytes())).await;
    let lookup = match r {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return view_error(&e),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "read failed"),
    };
    let def = h.view.def();
    let mut body = entry(def, key.as_bytes(), lookup.value.as_deref());
    body["offsets"] = offsets_json(&lookup.offsets);
    if lookup.value.is_none() {
        body["error"] = json!("key not found");
        if let Some(offset) = lookup.deleted_at {
            // The tombstone that deleted it (kept for view.deleted_marker_retention).
            body["deleted_at"] = json!(offset);
        }
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    Json(body).into_response()
}

async fn scan(
    State(b): State<Arc<Broker>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 0,
        Some(Ok(l)) => l,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "limit must be a whole number"),
    };
    let reverse = match q.get("reverse").map(String::as_str) {
        None | Some("false" | "0") => false,
        Some("true" | "1" | "") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("reverse={other:?}: use true or false"),
            )
        }
    };
    let h = match ready_view(&b, &name, &q).await {
        Ok(h) => h,
        Err(r) => return refused(r),
    };
    let bytes = |k: &str| q.get(k).map(|s| Bytes::copy_from_slice(s.as_bytes()));
    let req = ScanRequest {
        from: bytes("from"),
        to: bytes("to"),
        prefix: bytes("prefix"),
        limit,
        reverse,
        cursor: q.get("cursor").cloned(),
    };
    let view = h.view.clone();
    let page = match tokio::task::spawn_blocking(move || view.scan(&req)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return view_error(&e),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "scan failed"),
    };
    let def = h.view.def();
    Json(json!({
        "entries": page.entries.iter().map(|e| entry(def, &e.key, Some(&e.value))).collect::<Vec<_>>(),
        "cursor": page.cursor,
        "offsets": offsets_json(&page.offsets),
    }))
    .into_response()
}
