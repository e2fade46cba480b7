//! `[views.NAME]` declarations and the `view.*` store settings: every accepted
//! spelling, the content of each error message, refusal of non-file forms, and
//! the defaults.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};
use brook_config::{BrokerConfig, ConfigError, ViewDecl, VIEW_FORMATS, VIEW_KINDS};

fn err_text(r: Result<BrokerConfig, ConfigError>) -> Result<String> {
    match r {
        Ok(cfg) => bail!("expected an error, got {cfg:?}"),
        Err(e) => Ok(e.to_string()),
    }
}

fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<Vec<_>>()
        .into_iter()
}

fn full_decl() -> ViewDecl {
    ViewDecl {
        topic: "orders".to_owned(),
        kind: Some("sum".to_owned()),
        field: Some("order.amount".to_owned()),
        key_format: Some("utf8".to_owned()),
        value_format: Some("json".to_owned()),
    }
}

#[test]
fn every_spelling_of_a_declaration_parses_the_same() -> Result<()> {
    let forms = [
        // Dotted keys inside the view table.
        "[views.orders_by_id]\ntopic = \"orders\"\nkind = \"sum\"\nfield = \"order.amount\"\n\
         key.format = \"utf8\"\nvalue.format = \"json\"\n",
        // Underscore spellings.
        "[views.orders_by_id]\ntopic = \"orders\"\nkind = \"sum\"\nfield = \"order.amount\"\n\
         key_format = \"utf8\"\nvalue_format = \"json\"\n",
        // Quoted dotted keys.
        "[views.orders_by_id]\ntopic = \"orders\"\nkind = \"sum\"\nfield = \"order.amount\"\n\
         \"key.format\" = \"utf8\"\n\"value.format\" = \"json\"\n",
        // Sub-tables.
        "[views.orders_by_id]\ntopic = \"orders\"\nkind = \"sum\"\nfield = \"order.amount\"\n\
         [views.orders_by_id.key]\nformat = \"utf8\"\n[views.orders_by_id.value]\nformat = \"json\"\n",
        // Inline table, mixed spellings, among ordinary keys.
        "num.partitions = 3\nviews.orders_by_id = { topic = \"orders\", kind = \"sum\", \
         field = \"order.amount\", key = { format = \"utf8\" }, value_format = \"json\" }\n",
    ];
    for text in forms {
        let c = BrokerConfig::from_toml_str(text).with_context(|| format!("form {text:?}"))?;
        ensure!(c.views.len() == 1, "form {text:?}: {:?}", c.views);
        ensure!(
            c.views.get("orders_by_id") == Some(&full_decl()),
            "form {text:?}: {:?}",
            c.views
        );
    }
    Ok(())
}

#[test]
fn minimal_declarations_leave_optional_fields_unset() -> Result<()> {
    let c = BrokerConfig::from_toml_str(
        "log.dirs = [\"/d\"]\n[views.a]\ntopic = \"t1\"\n[views.\"b.v2\"]\ntopic = \"t2\"\nkind = \"count\"\n\
         [views.c-1_X]\ntopic = \"t3\"\n",
    )?;
    let names: Vec<&str> = c.views.keys().map(String::as_str).collect();
    ensure!(names == ["a", "b.v2", "c-1_X"], "{names:?}");
    ensure!(
        c.views.get("a")
            == Some(&ViewDecl {
                topic: "t1".to_owned(),
                ..ViewDecl::default()
            })
    );
    ensure!(c.views.get("b.v2").and_then(|v| v.kind.as_deref()) == Some("count"));
    // Views are not registry keys: nothing about them is "explicit".
    ensure!(c.explicit_keys().collect::<Vec<_>>() == ["log.dirs"]);
    Ok(())
}

#[test]
fn every_kind_and_format_is_accepted() -> Result<()> {
    for kind in VIEW_KINDS {
        for format in VIEW_FORMATS {
            let text = format!(
                "[views.v]\ntopic = \"t\"\nkind = \"{kind}\"\nfield = \"x\"\n\
                 key.format = \"{format}\"\nvalue.format = \"{format}\"\n"
            );
            let c = BrokerConfig::from_toml_str(&text)?;
            let v = c.views.get("v").context("view v")?;
            ensure!(v.kind.as_deref() == Some(*kind));
            ensure!(v.key_format.as_deref() == Some(*format));
            ensure!(v.value_format.as_deref() == Some(*format));
        }
    }
    Ok(())
}

#[test]
fn bad_declarations_name_the_view_field_value_and_allowed() -> Result<()> {
    let long_name = "n".repeat(250);
    let long_case = format!("[views.{long_name}]\ntopic = \"t\"\n");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "[views.v]\ntopic = \"t\"\nkind = \"avg\"\n",
            vec![
                "view `v`",
                "`kind`",
                "\"avg\"",
                "table, count, sum, latest",
                "TOML config",
            ],
        ),
        (
            "[views.v]\ntopic = \"t\"\nkey.format = \"avro\"\n",
            vec!["view `v`", "`key.format`", "\"avro\"", "bytes, utf8, json"],
        ),
        (
            "[views.v]\ntopic = \"t\"\nvalue_format = \"xml\"\n",
            vec!["view `v`", "`value.format`", "\"xml\"", "bytes, utf8, json"],
        ),
        (
            "[views.v]\ntopic = \"t\"\nkind = 3\n",
            vec!["view `v`", "`kind`", "3", "table, count, sum, latest"],
        ),
        (
            "[views.v]\ntopic = \"\"\n",
            vec!["view `v`", "`topic`", "\"\"", "non-empty"],
        ),
        (
            "[views.v]\ntopic = 7\n",
            vec!["view `v`", "`topic`", "7", "non-empty topic name"],
        ),
        (
            "[views.v]\ntopic = \"t\"\nfield = [\"a\"]\n",
            vec!["view `v`", "`field`", "[\"a\"]", "a string"],
        ),
        (
            "[views.v]\nkind = \"count\"\n",
            vec!["view `v`", "missing required field `topic`"],
        ),
        (
            "[views.v]\ntopik = \"t\"\n",
            vec![
                "view `v`",
                "unknown field `topik`",
                "did you mean `topic`?",
                "topic, kind, field, key.format, value.format",
            ],
        ),
        (
            "[views.v]\ntopic = \"t\"\nkey.fromat = \"utf8\"\n",
            vec!["view `v`", "`key.fromat`", "did you mean `key.format`?"],
        ),
        (
            "[views.v]\ntopic = \"t\"\nkey = \"utf8\"\n",
            vec!["view `v`", "unknown field `key`", "key.format = "],
        ),
        (
            "[views.v]\ntopic = \"t\"\nretention.ms = 5\n",
            vec!["view `v`", "unknown field `retention.ms`"],
        ),
        (
            // An unquoted dotted name declares fields of view `a`.
            "[views.a.b]\ntopic = \"t\"\n",
            vec!["view `a`", "unknown field `b.topic`", "[views.\"a.b\"]"],
        ),
        (
            "[views.v]\ntopic = \"t\"\nkey.format = \"utf8\"\nkey_format = \"json\"\n",
            vec!["view `v`", "`key.format` is set more than once"],
        ),
        (
            "[views.\"bad name\"]\ntopic = \"t\"\n",
            vec!["invalid view name `bad name`", "' '", "[a-zA-Z0-9._-]"],
        ),
        (
            "[views.\"\"]\ntopic = \"t\"\n",
            vec!["invalid view name ``", "empty", "1 to 249"],
        ),
        (
            "[views.\"..\"]\ntopic = \"t\"\n",
            vec!["invalid view name `..`", "reserved"],
        ),
        (
            "[views.\"café\"]\ntopic = \"t\"\n",
            vec!["invalid view name `café`", "'é'"],
        ),
        (
            long_case.as_str(),
            vec!["invalid view name", "250 characters", "1 to 249"],
        ),
        ("views = 3\n", vec!["`views`", "3", "[views.NAME]"]),
        (
            "views.v = \"orders\"\n",
            vec!["`views.v`", "\"orders\"", "[views.v]"],
        ),
        (
            "\"views.v.topic\" = \"orders\"\n",
            vec![
                "`views.v.topic`",
                "[views.NAME]",
                "only be declared in the config file",
            ],
        ),
        (
            "[view.v]\ntopic = \"t\"\n",
            vec!["unknown broker config key `view.v.topic`", "[views.NAME]"],
        ),
    ];
    for (text, needles) in &cases {
        let msg = err_text(BrokerConfig::from_toml_str(text))?;
        for needle in needles {
            ensure!(
                msg.contains(needle),
                "error for {text:?} lacks {needle:?}: {msg}"
            );
        }
    }
    Ok(())
}

#[test]
fn view_errors_name_the_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("brook.toml");
    std::fs::write(&path, "[views.v]\ntopic = \"t\"\nkind = \"avg\"\n")?;
    let msg = err_text(BrokerConfig::from_file(&path))?;
    ensure!(
        msg.contains(&format!("config file {}", path.display())) && msg.contains("view `v`"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn views_cannot_come_from_env_or_set() -> Result<()> {
    let mut c = BrokerConfig::from_toml_str("[views.v]\ntopic = \"t\"\n")?;
    let before = c.clone();
    for var in ["BROOK_VIEWS_V_TOPIC", "BROOK_VIEWS"] {
        let Err(e) = c.apply_env(env(&[("BROOK_NUM_PARTITIONS", "4"), (var, "orders")])) else {
            bail!("{var} accepted");
        };
        let msg = e.to_string();
        ensure!(
            msg.contains(&format!("environment variable {var}"))
                && msg.contains("[views.NAME]")
                && msg.contains("no environment-variable"),
            "{msg}"
        );
        ensure!(c == before, "partial env applied");
    }
    let Err(e) = c.set("views.v.topic", "other") else {
        bail!("set of a view field accepted");
    };
    ensure!(e.to_string().contains("[views.NAME]"), "{e}");
    ensure!(c == before);
    // The view store settings are ordinary keys and do have an env form.
    c.apply_env(env(&[("BROOK_VIEW_MAX_OPEN_FILES", "64")]))?;
    ensure!(c.view_max_open_files == 64 && c.views == before.views);
    Ok(())
}

#[test]
fn views_default_empty_and_struct_update_syntax_works() {
    let c = BrokerConfig::default();
    assert!(c.views.is_empty());
    let with = BrokerConfig {
        views: BTreeMap::from([("v".to_owned(), full_decl())]),
        ..BrokerConfig::default()
    };
    assert_ne!(with, c);
    assert_eq!(with.clone(), with);
    assert_eq!(with.num_partitions, c.num_partitions);
}

#[test]
fn view_store_settings_defaults_and_ranges() -> Result<()> {
    let c = BrokerConfig::default();
    ensure!(c.view_block_cache_bytes == 67_108_864);
    ensure!(c.view_memtable_max_bytes == 16_777_216);
    ensure!(c.view_flush_interval_ms == 30_000);
    ensure!(c.view_flush_max_offsets == 100_000);
    ensure!(c.view_max_open_files == 512);

    let c = BrokerConfig::from_toml_str(
        "[view]\nblock.cache.bytes = 0\nmemtable.max.bytes = 65536\nflush.interval.ms = 100\n\
         flush.max.offsets = 1\nmax.open.files = 16\n",
    )?;
    ensure!(c.view_block_cache_bytes == 0 && c.view_memtable_max_bytes == 65_536);
    ensure!(c.view_flush_interval_ms == 100 && c.view_flush_max_offsets == 1);
    ensure!(c.view_max_open_files == 16 && c.is_explicit("view.max.open.files"));

    let cases = [
        ("view.block.cache.bytes = -1", "[0,...]"),
        ("view.memtable.max.bytes = 65535", "[65536,...]"),
        ("view.flush.interval.ms = 99", "[100,...]"),
        ("view.flush.max.offsets = 0", "[1,...]"),
        ("view.max.open.files = 15", "[16,...]"),
    ];
    for (text, allowed) in cases {
        let msg = err_text(BrokerConfig::from_toml_str(text))?;
        let key = text.split(' ').next().unwrap_or_default();
        ensure!(
            msg.contains(&format!("`{key}`")) && msg.contains(allowed),
            "{text}: {msg}"
        );
    }
    Ok(())
}
