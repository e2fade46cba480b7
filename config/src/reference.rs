//! Markdown reference of every config key, generated from the registry. The
//! README embeds it between `<!-- config-reference:start -->` and
//! `<!-- config-reference:end -->`; `config/tests/reference.rs` fails when the
//! two drift, and `cargo run -p brook-config --example gen_reference` prints it.

use std::fmt::Write as _;

use crate::registry::{self, KeyDef};

/// Renders one markdown table per scope (broker, topic): key, type, default,
/// allowed values and description, rows sorted by key; after the broker table,
/// a paragraph on the `[views.NAME]` tables.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    out.push_str("### Broker configuration\n\n");
    out.push_str(
        "Set in the TOML file (`log.dirs = [\"/data\"]`, `\"log.dirs\" = …` or `[log]` tables) \
         or as `BROOK_<KEY>` environment variables (`BROOK_LOG_DIRS=/data`), which win over the file.\n\n",
    );
    table(&mut out, |d| d.scope.is_broker(), false);
    out.push_str("\n#### Materialized views\n\n");
    crate::views::reference_markdown(&mut out);
    out.push_str("\n### Topic configuration\n\n");
    out.push_str(
        "Per-topic overrides (CreateTopics, AlterConfigs, `brook topic`). \
         Unset keys take the broker-wide default from the listed broker key.\n\n",
    );
    table(&mut out, |d| d.scope.is_topic(), true);
    out
}

fn table(out: &mut String, filter: impl Fn(&KeyDef) -> bool, topic: bool) {
    out.push_str("| Key | Type | Default | Allowed | Description |\n");
    out.push_str("|---|---|---|---|---|\n");
    let mut keys: Vec<&KeyDef> = registry::all().filter(|d| filter(d)).collect();
    keys.sort_by_key(|d| d.name);
    for def in keys {
        let default = match def.default {
            None => "(unset)".to_owned(),
            Some("") => "(empty)".to_owned(),
            Some(d) => format!("`{d}`"),
        };
        let mut doc = def.doc.to_owned();
        if topic && !def.synonyms.is_empty() {
            let names: Vec<String> = def
                .synonyms
                .iter()
                .map(|s| format!("`{}`", s.key))
                .collect();
            // Writing to a String cannot fail.
            let _ = write!(doc, " Broker default: {}.", names.join(", "));
        }
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            def.name,
            def.kind.config_type().name(),
            escape(&default),
            escape(&def.kind.allowed()),
            escape(&doc),
        );
    }
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}
