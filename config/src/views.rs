//! Materialized-view declarations: the `[views.NAME]` tables of the broker
//! config file, parsed into [`ViewDecl`]s.
//!
//! ```toml
//! [views.orders_by_id]
//! topic = "orders"
//! kind = "table"          # table (default), count, sum, latest
//! field = "amount"        # a JSON field path (sum and latest need one)
//! key.format = "utf8"     # bytes (default), utf8, json; also key_format
//! value.format = "json"   # bytes (default), utf8, json; also value_format
//! ```
//!
//! This module checks what it can without knowing how views work: the name,
//! that `topic` is a non-empty string, that no unknown field is present, and
//! that `kind` and the formats are among the listed values. Field paths and
//! kind/field combinations are checked by the broker with the views crate,
//! which this crate does not depend on. Views are file-only: there is no
//! `BROOK_*` environment form (such variables are refused, see
//! [`crate::ConfigError::ViewOutsideTable`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::error::{ConfigError, Origin};
use crate::suggest;

/// The TOML table holding the view declarations.
pub(crate) const VIEWS_TABLE: &str = "views";

/// Longest view name accepted (Kafka's topic-name limit).
pub const VIEW_NAME_MAX_LEN: usize = 249;

/// Accepted values of a view's `kind` (the first is the default).
pub const VIEW_KINDS: &[&str] = &["table", "count", "sum", "latest"];

/// Accepted values of a view's `key.format` and `value.format` (the first is
/// the default).
pub const VIEW_FORMATS: &[&str] = &["bytes", "utf8", "json"];

/// Field names of a view table, in their canonical spelling.
pub(crate) const VIEW_FIELDS: &[&str] = &["topic", "kind", "field", "key.format", "value.format"];

/// One `[views.NAME]` declaration, as written (the name is the key of
/// [`crate::BrokerConfig::views`]).
///
/// Only the checks listed in the module doc have been made; the broker turns
/// this into the views crate's definition, which validates the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewDecl {
    /// The topic the view reads; never empty once parsed.
    pub topic: String,
    /// One of [`VIEW_KINDS`]; `None` means `table`.
    pub kind: Option<String>,
    /// A JSON field path (required by the views crate for `sum` and `latest`).
    pub field: Option<String>,
    /// One of [`VIEW_FORMATS`]; `None` means `bytes`.
    pub key_format: Option<String>,
    /// One of [`VIEW_FORMATS`]; `None` means `bytes`.
    pub value_format: Option<String>,
}

/// The fields of a view table, whatever their spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Topic,
    Kind,
    Path,
    KeyFormat,
    ValueFormat,
}

impl Field {
    fn from_key(key: &str) -> Option<Self> {
        match key {
            "topic" => Some(Field::Topic),
            "kind" => Some(Field::Kind),
            "field" => Some(Field::Path),
            "key.format" | "key_format" => Some(Field::KeyFormat),
            "value.format" | "value_format" => Some(Field::ValueFormat),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Topic => "topic",
            Field::Kind => "kind",
            Field::Path => "field",
            Field::KeyFormat => "key.format",
            Field::ValueFormat => "value.format",
        }
    }

    fn choices(self) -> Option<&'static [&'static str]> {
        match self {
            Field::Kind => Some(VIEW_KINDS),
            Field::KeyFormat | Field::ValueFormat => Some(VIEW_FORMATS),
            Field::Topic | Field::Path => None,
        }
    }
}

/// Whether a dotted broker key (from the environment, [`crate::BrokerConfig::set`]
/// or a quoted TOML key) is an attempt to declare a view outside a table.
pub(crate) fn is_view_key(key: &str) -> bool {
    key == VIEWS_TABLE
        || key
            .strip_prefix(VIEWS_TABLE)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Parses the value of the top-level `views` key.
///
/// # Errors
/// [`ConfigError::InvalidValue`] if `views` or one of its entries is not a
/// table, and the view errors of [`ConfigError`] for bad names and fields.
pub(crate) fn parse_views(
    value: &toml::Value,
    origin: &Origin,
) -> Result<BTreeMap<String, ViewDecl>, ConfigError> {
    let toml::Value::Table(table) = value else {
        return Err(ConfigError::InvalidValue {
            key: VIEWS_TABLE.to_owned(),
            value: value.to_string(),
            expected: "`[views.NAME]` tables, one per view (e.g. `[views.orders_by_id]` with `topic = \"orders\"`)".to_owned(),
            origin: origin.clone(),
        });
    };
    let mut out = BTreeMap::new();
    for (name, body) in table {
        check_name(name, origin)?;
        let toml::Value::Table(body) = body else {
            return Err(ConfigError::InvalidValue {
                key: format!("{VIEWS_TABLE}.{name}"),
                value: render(body),
                expected: format!(
                    "a table declaring view `{name}` (`[views.{name}]` with `topic = \"…\"`)"
                ),
                origin: origin.clone(),
            });
        };
        out.insert(name.clone(), parse_view(name, body, origin)?);
    }
    Ok(out)
}

fn check_name(name: &str, origin: &Origin) -> Result<(), ConfigError> {
    let bad = |reason: String| ConfigError::BadViewName {
        name: name.to_owned(),
        reason,
        origin: origin.clone(),
    };
    if name.is_empty() {
        return Err(bad("the name is empty".to_owned()));
    }
    let len = name.chars().count();
    if len > VIEW_NAME_MAX_LEN {
        return Err(bad(format!("the name is {len} characters long")));
    }
    if name == "." || name == ".." {
        return Err(bad(format!("`{name}` is reserved")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(format!("character {c:?} is not allowed")));
    }
    Ok(())
}

fn parse_view(name: &str, body: &toml::Table, origin: &Origin) -> Result<ViewDecl, ConfigError> {
    let mut fields = Vec::new();
    flatten(body, "", &mut fields);
    let mut decl = ViewDecl::default();
    let mut topic = None;
    let mut seen = Vec::new();
    for (key, value) in fields {
        let field = Field::from_key(&key).ok_or_else(|| ConfigError::UnknownViewField {
            view: name.to_owned(),
            hint: field_hint(name, &key),
            field: key.clone(),
            origin: origin.clone(),
        })?;
        if seen.contains(&field) {
            return Err(ConfigError::DuplicateViewField {
                view: name.to_owned(),
                field: field.name(),
                origin: origin.clone(),
            });
        }
        seen.push(field);
        let text = string_field(name, field, value, origin)?;
        match field {
            Field::Topic => topic = Some(text),
            Field::Kind => decl.kind = Some(text),
            Field::Path => decl.field = Some(text),
            Field::KeyFormat => decl.key_format = Some(text),
            Field::ValueFormat => decl.value_format = Some(text),
        }
    }
    decl.topic = topic.ok_or_else(|| ConfigError::MissingViewField {
        view: name.to_owned(),
        field: Field::Topic.name(),
        origin: origin.clone(),
    })?;
    Ok(decl)
}

/// The value of `field` as a string, checked against its choices.
fn string_field(
    view: &str,
    field: Field,
    value: &toml::Value,
    origin: &Origin,
) -> Result<String, ConfigError> {
    let invalid = |expected: String| ConfigError::InvalidViewField {
        view: view.to_owned(),
        field: field.name(),
        value: render(value),
        expected,
        origin: origin.clone(),
    };
    let expected = match field.choices() {
        Some(choices) => format!("one of [{}]", choices.join(", ")),
        None if field == Field::Topic => "a non-empty topic name".to_owned(),
        None => "a string".to_owned(),
    };
    let toml::Value::String(s) = value else {
        return Err(invalid(expected));
    };
    let ok = match field.choices() {
        Some(choices) => choices.contains(&s.as_str()),
        None => field != Field::Topic || !s.is_empty(),
    };
    if ok {
        Ok(s.clone())
    } else {
        Err(invalid(expected))
    }
}

/// "Did you mean" for an unknown field of view `view`, or why it is wrong.
fn field_hint(view: &str, key: &str) -> String {
    if let Some(side) = ["key", "value"].into_iter().find(|side| *side == key) {
        return format!("; write `{side}.format = \"…\"` (or `{side}_format`)");
    }
    if let Some((head, rest)) = key.split_once('.') {
        // `[views.a.b]` declares field `b` of view `a`, not a view `a.b`.
        if Field::from_key(rest).is_some() && Field::from_key(key).is_none() {
            return format!(
                "; a view name containing dots must be quoted: `[views.\"{view}.{head}\"]`"
            );
        }
    }
    let limit = (key.len() / 4).max(2);
    VIEW_FIELDS
        .iter()
        .chain(&["key_format", "value_format"])
        .map(|f| (suggest::edit_distance(key, f), *f))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, f)| format!("; did you mean `{f}`?"))
        .unwrap_or_default()
}

/// `key.format = …`, `"key.format" = …` and `[views.NAME.key] format = …` all
/// become `("key.format", …)`.
fn flatten<'a>(table: &'a toml::Table, prefix: &str, out: &mut Vec<(String, &'a toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => flatten(inner, &key, out),
            other => out.push((key, other)),
        }
    }
}

/// A value as the user wrote it, for error messages.
fn render(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// The markdown paragraph of the config reference describing view tables.
pub(crate) fn reference_markdown(out: &mut String) {
    out.push_str(
        "Materialized views are declared as `[views.NAME]` tables in the config file only \
         (there is no `BROOK_*` form; such variables are refused). ",
    );
    let _ = write!(
        out,
        "NAME is 1 to {VIEW_NAME_MAX_LEN} characters from `[a-zA-Z0-9._-]` (quote it if it contains dots). \
         Fields: `topic` (required), `kind` (one of {kinds}; default `{kind}`), \
         `field` (a JSON field path; required for `sum` and `latest`), \
         `key.format` and `value.format` (also `key_format`, `value_format`; one of {formats}; default `{format}`). \
         The `view.*` keys above tune the stores of all views.\n\n",
        kinds = code_list(VIEW_KINDS),
        kind = VIEW_KINDS[0],
        formats = code_list(VIEW_FORMATS),
        format = VIEW_FORMATS[0],
    );
    out.push_str(
        "```toml\n[views.orders_by_id]\ntopic = \"orders\"\nkind = \"table\"\n\
         key.format = \"utf8\"\nvalue.format = \"json\"\n```\n",
    );
}

fn code_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_keys_are_recognised() {
        assert!(is_view_key("views"));
        assert!(is_view_key("views.orders.topic"));
        assert!(!is_view_key("viewsx"));
        assert!(!is_view_key("view.block.cache.bytes"));
    }

    #[test]
    fn hints() {
        assert_eq!(field_hint("v", "topik"), "; did you mean `topic`?");
        assert!(field_hint("v", "key").contains("key.format"));
        assert!(field_hint("a", "b.topic").contains("[views.\"a.b\"]"));
        assert_eq!(field_hint("v", "completely.unrelated"), "");
    }
}
