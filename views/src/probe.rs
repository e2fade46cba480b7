//! Metrics of one view, registered once so the apply path only bumps handles.
//!
//! [`METRICS`] lists every metric this crate records, for the broker's registry
//! (`# HELP` lines). Without an installed recorder every call is a no-op.

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::fold::SkipReason;

/// One metric this crate records: name, type, labels, meaning.
#[derive(Debug, Clone, Copy)]
pub struct ViewMetricDef {
    /// Metric name.
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram` (seconds).
    pub kind: &'static str,
    /// Label names.
    pub labels: &'static [&'static str],
    /// Help text.
    pub help: &'static str,
}

/// Every metric recorded by `brook-views`.
pub const METRICS: &[ViewMetricDef] = &[
    ViewMetricDef {
        name: "brook_view_records_applied_total",
        kind: "counter",
        labels: &["view"],
        help: "Changelog records applied to a view.",
    },
    ViewMetricDef {
        name: "brook_view_records_skipped_total",
        kind: "counter",
        labels: &["view", "reason"],
        help: "Changelog records skipped (null key, bad format, missing or non-numeric field).",
    },
    ViewMetricDef {
        name: "brook_view_lag",
        kind: "gauge",
        labels: &["view", "partition"],
        help: "High-water mark minus the next offset the view will apply.",
    },
    ViewMetricDef {
        name: "brook_view_flush_seconds",
        kind: "histogram",
        labels: &["view"],
        help: "Time to rotate and flush a view's memtable.",
    },
    ViewMetricDef {
        name: "brook_view_compaction_seconds",
        kind: "histogram",
        labels: &["view"],
        help: "Time of one compaction call on a view.",
    },
    ViewMetricDef {
        name: "brook_view_disk_bytes",
        kind: "gauge",
        labels: &["view"],
        help: "Bytes of a view's table files.",
    },
    ViewMetricDef {
        name: "brook_view_l0_runs",
        kind: "gauge",
        labels: &["view"],
        help: "Sorted runs in level 0 of a view's tree.",
    },
    ViewMetricDef {
        name: "brook_view_items",
        kind: "gauge",
        labels: &["view"],
        help: "Approximate rows in a view (including META rows and tombstones).",
    },
];

const REASONS: [SkipReason; 6] = [
    SkipReason::NullKey,
    SkipReason::BadKey,
    SkipReason::BadValue,
    SkipReason::MissingField,
    SkipReason::NotNumeric,
    SkipReason::Overflow,
];

/// Registered handles of one view.
#[derive(Debug, Clone)]
pub struct Probe {
    pub applied: Counter,
    skipped: [Counter; 6],
    pub flush_seconds: Histogram,
    pub compaction_seconds: Histogram,
    pub disk_bytes: Gauge,
    pub l0_runs: Gauge,
    pub items: Gauge,
}

impl Probe {
    pub fn new(view: &str) -> Self {
        let v = view.to_owned();
        Probe {
            applied: counter!("brook_view_records_applied_total", "view" => v.clone()),
            skipped: REASONS.map(|r| {
                counter!("brook_view_records_skipped_total", "view" => v.clone(), "reason" => r.label())
            }),
            flush_seconds: histogram!("brook_view_flush_seconds", "view" => v.clone()),
            compaction_seconds: histogram!("brook_view_compaction_seconds", "view" => v.clone()),
            disk_bytes: gauge!("brook_view_disk_bytes", "view" => v.clone()),
            l0_runs: gauge!("brook_view_l0_runs", "view" => v.clone()),
            items: gauge!("brook_view_items", "view" => v),
        }
    }

    pub fn skipped(&self, reason: SkipReason) {
        let i = REASONS.iter().position(|&r| r == reason).unwrap_or(0);
        if let Some(c) = self.skipped.get(i) {
            c.increment(1);
        }
    }

    /// The lag gauge of one source partition.
    pub fn lag(view: &str, partition: i32) -> Gauge {
        gauge!("brook_view_lag", "view" => view.to_owned(), "partition" => partition.to_string())
    }
}
