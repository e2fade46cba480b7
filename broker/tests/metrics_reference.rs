//! The README's metrics table must be exactly what the code's registry renders,
//! and every registered name must follow the naming rules.

use anyhow::{ensure, Context, Result};
use brook_broker::metrics::{reference_markdown, Kind};

const START: &str = "<!-- metrics-reference:start -->";
const END: &str = "<!-- metrics-reference:end -->";

#[test]
fn readme_metrics_table_matches_registry() -> Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let start = readme
        .find(START)
        .context("README.md lacks the metrics-reference start marker")?;
    let end = readme
        .find(END)
        .context("README.md lacks the metrics-reference end marker")?;
    ensure!(start < end, "metrics markers out of order");
    let embedded = readme[start + START.len()..end].trim();
    ensure!(
        embedded == reference_markdown().trim(),
        "README.md metrics table is stale; paste the output of brook_broker::metrics::reference_markdown()"
    );
    Ok(())
}

#[test]
fn metric_names_follow_the_conventions() -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for m in brook_broker::metrics::all() {
        ensure!(
            m.name.starts_with("brook_"),
            "{} lacks the brook_ prefix",
            m.name
        );
        ensure!(seen.insert(m.name), "{} registered twice", m.name);
        match m.kind {
            Kind::Counter => ensure!(
                m.name.ends_with("_total"),
                "counter {} must end in _total",
                m.name
            ),
            Kind::Histogram => ensure!(
                m.name.ends_with("_seconds"),
                "histogram {} must carry its unit",
                m.name
            ),
            Kind::Gauge => ensure!(
                !m.name.ends_with("_total"),
                "gauge {} must not end in _total",
                m.name
            ),
        }
    }
    Ok(())
}
