//! Scrape-time gauges: computed when `/metrics` is read, so the write paths
//! pay nothing for them.
//!
//! Per-partition series are capped (`metrics.per.partition.enable`,
//! `metrics.max.partition.series`) so a broker with many thousands of
//! partitions does not overwhelm Prometheus; what is left out is counted in
//! `brook_partition_series_dropped`. The cap applies to each per-partition
//! family separately (partition offsets/sizes, group lag), user topics first.

use metrics::{counter, gauge};

use crate::broker::Broker;

/// Per-partition series allowed by the cardinality guard.
pub fn partition_budget(broker: &Broker) -> usize {
    let cfg = broker.config();
    if cfg.metrics_per_partition_enable {
        cfg.metrics_max_partition_series as usize
    } else {
        0
    }
}

/// Refresh every scrape-time gauge. `group_series_dropped` is what the group
/// lag gauges left out under the same guard.
pub fn collect(broker: &Broker, budget: usize, group_series_dropped: usize) {
    let mut emitted = 0usize;
    let mut dropped = 0usize;
    let mut total = 0usize;
    let mut offline = 0usize;
    // User topics spend the series budget before internal ones
    // (`__consumer_offsets` alone has 50 partitions).
    let mut topics = broker.topics();
    topics.sort_by_key(|t| t.is_internal());
    for t in &topics {
        for p in t.partitions() {
            total += 1;
            if broker.partition_offline(&p) {
                offline += 1;
            }
            if emitted >= budget {
                dropped += 1;
                continue;
            }
            emitted += 1;
            let labels = [
                ("topic", t.name.to_string()),
                ("partition", p.index.to_string()),
            ];
            gauge!("brook_partition_log_end_offset", &labels).set(p.log_end_offset() as f64);
            gauge!("brook_partition_high_watermark", &labels).set(p.high_watermark() as f64);
            gauge!("brook_partition_log_start_offset", &labels).set(p.log_start_offset() as f64);
            gauge!("brook_partition_size_bytes", &labels).set(p.log().size_in_bytes() as f64);
            if p.config().cleanup_policy.compact {
                let params = crate::cleaner::params_of(&p);
                let now = crate::handlers::now_ms();
                if let Ok(s) = p.log().dirty_section(p.high_watermark(), now, &params) {
                    gauge!("brook_partition_dirty_ratio", &labels).set(s.ratio());
                }
                gauge!("brook_partition_cleaned_offset", &labels)
                    .set(p.log().cleaned_offset() as f64);
            }
        }
    }
    gauge!("brook_partitions").set(total as f64);
    let sessions = broker.fetch_sessions().stats();
    gauge!("brook_fetch_sessions").set(sessions.sessions as f64);
    gauge!("brook_fetch_session_partitions").set(sessions.partitions as f64);
    counter!("brook_fetch_sessions_created_total").absolute(sessions.created);
    counter!("brook_fetch_session_evictions_total").absolute(sessions.evictions);
    gauge!("brook_partition_series_dropped").set((dropped + group_series_dropped) as f64);
    let under = topics
        .iter()
        .flat_map(|t| t.partitions())
        .filter(|p| p.under_replicated())
        .count();
    gauge!("brook_under_replicated_partitions").set(under as f64);
    gauge!("brook_offline_partitions").set(offline as f64);
    gauge!("brook_log_dir_offline").set(broker.log_dirs().offline().len() as f64);
    for h in broker.views().list() {
        let restoring = h.status().0 != crate::views::ViewState::Live;
        gauge!("brook_view_restoring", "view" => h.view.def().name.clone()).set(if restoring {
            1.0
        } else {
            0.0
        });
    }
    if let Some(ms) = broker.cleaner().last_clean_ms() {
        let age = (crate::handlers::now_ms() - ms).max(0) as f64 / 1000.0;
        gauge!("brook_cleaner_seconds_since_last_clean").set(age);
    }
    let c = broker.controller();
    gauge!("brook_controller_active").set(if c.is_active() { 1.0 } else { 0.0 });
    gauge!("brook_controller_epoch").set(c.active().map_or(0.0, |(_, e)| e as f64));
    let image = broker.image();
    gauge!("brook_fenced_brokers").set(image.brokers.values().filter(|b| b.fenced).count() as f64);
    let applied = c.applied().offset;
    let end = c.metrics().last_log_index.unwrap_or(0);
    gauge!("brook_metadata_applied_offset").set(applied as f64);
    gauge!("brook_metadata_lag").set(end.saturating_sub(applied) as f64);
    broker.quotas().export_metrics();
    process();
}

/// RSS, CPU time and open descriptors from /proc (Linux).
fn process() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        {
            gauge!("brook_process_resident_memory_bytes").set(kb * 1024.0);
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; utime and stime are the
        // 14th and 15th fields overall, in clock ticks.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // /proc reports clock ticks of USER_HZ, which Linux fixes at 100
            // for user space on every architecture brook targets.
            let ticks = 100.0;
            if let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) {
                if let (Ok(u), Ok(s)) = (u.parse::<f64>(), s.parse::<f64>()) {
                    metrics::counter!("brook_process_cpu_seconds_total")
                        .absolute(((u + s) / ticks) as u64);
                }
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        gauge!("brook_process_open_fds").set(dir.count() as f64);
    }
}
