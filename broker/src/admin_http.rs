//! The admin HTTP listener (`admin.listener`, default 127.0.0.1:9644):
//! `GET /metrics` (Prometheus text) and `GET /v1/health`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

#[derive(Clone)]
struct AppState {
    broker: Arc<Broker>,
    metrics: Option<PrometheusHandle>,
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
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/v1/health", get(health))
        .with_state(AppState { broker, metrics });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}

async fn metrics_text(State(s): State<AppState>) -> (StatusCode, String) {
    match &s.metrics {
        Some(h) => (StatusCode::OK, crate::metrics::render(h)),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n".into(),
        ),
    }
}

async fn health(State(s): State<AppState>) -> (StatusCode, String) {
    if s.broker.is_offline() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"ready\":false,\"live\":true,\"reason\":\"log directory offline\"}\n".into(),
        )
    } else {
        (StatusCode::OK, "{\"ready\":true,\"live\":true}\n".into())
    }
}
