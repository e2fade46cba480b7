//! Prometheus metrics (DESIGN.md section 11), through the `metrics` facade.
//!
//! Labels are `&'static str` (API names), so recording allocates nothing; the
//! exporter is installed by `brook serve` and rendered by the admin listener.
//! Without an installed recorder every call here is a no-op (unit tests).

use std::sync::atomic::Ordering;
use std::time::Duration;

use brook_protocol::api::ApiKey;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Install the global Prometheus recorder.
///
/// # Errors
/// A recorder was already installed.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ])?
        .install_recorder()?;
    Ok(handle)
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

pub fn connection_error() {
    counter!("brook_connection_errors_total").increment(1);
}

pub fn request_error(key: Option<ApiKey>) {
    counter!("brook_request_errors_total", "api" => key.map_or("unknown", ApiKey::name))
        .increment(1);
}

pub fn request_done(key: ApiKey, elapsed: Duration) {
    counter!("brook_requests_total", "api" => key.name()).increment(1);
    histogram!("brook_request_latency_seconds", "api" => key.name()).record(elapsed.as_secs_f64());
}

pub fn bytes_in(_topic: &str, n: usize) {
    counter!("brook_produce_bytes_total").increment(n as u64);
}

pub fn bytes_out(n: usize) {
    counter!("brook_fetch_bytes_total").increment(n as u64);
}

pub fn fsync(elapsed: Duration) {
    histogram!("brook_fsync_latency_seconds").record(elapsed.as_secs_f64());
}
