//! The README's config reference must be exactly what the registry renders.
//! Regenerate with `cargo run -p brook-config --example gen_reference` and
//! paste between the markers.

use anyhow::{bail, ensure, Context, Result};

const START: &str = "<!-- config-reference:start -->";
const END: &str = "<!-- config-reference:end -->";

#[test]
fn readme_reference_matches_registry() -> Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).with_context(|| {
        format!("{path} is missing; the README must embed the config reference between {START} and {END}")
    })?;
    let (Some(start), Some(end)) = (readme.find(START), readme.find(END)) else {
        bail!(
            "README.md has no config reference markers; add a line `{START}` and a line `{END}` and paste the \
             output of `cargo run -p brook-config --example gen_reference` between them"
        );
    };
    ensure!(start < end, "{END} comes before {START} in README.md");
    let embedded = readme[start + START.len()..end].trim();
    let generated = brook_config::reference_markdown();
    ensure!(
        embedded == generated.trim(),
        "README.md config reference is stale; regenerate it with `cargo run -p brook-config --example gen_reference`"
    );
    Ok(())
}

#[test]
fn reference_lists_every_key_once_per_scope() {
    let md = brook_config::reference_markdown();
    for def in brook_config::registry::all() {
        let row = format!("| `{}` |", def.name);
        let expected = usize::from(def.scope.is_broker()) + usize::from(def.scope.is_topic());
        assert_eq!(md.matches(&row).count(), expected, "{} rows", def.name);
    }
    assert!(md.contains("| `retention.ms` | long | `604800000` | [-1,...] |"));
    assert!(md.contains(
        "Broker default: `log.retention.ms`, `log.retention.minutes`, `log.retention.hours`."
    ));
}
