//! View definitions: what a view materializes and how it reads its records.
//!
//! A [`ViewDef`] is plain data (JSON or TOML through serde) as it arrives from
//! config, the admin API or the CLI. [`ViewDef::validate`] checks it and says
//! exactly what is wrong; a store is only ever opened from a validated def.
//!
//! ```json
//! {"name": "order_totals", "topic": "orders", "kind": "sum",
//!  "field": "order.total", "key_format": "utf8", "value_format": "json"}
//! ```
//!
//! Kinds (`kind`, default `table`):
//! - `table`: latest value per key; a tombstone deletes the key. With
//!   `value_format = json` an optional `field` projects the stored value.
//! - `count`: number of records per key since its last tombstone (a tombstone
//!   deletes the count).
//! - `sum`: sum of the numeric JSON `field` of the values per key; records whose
//!   field is missing or not a number are skipped (and counted in a metric).
//! - `latest`: latest value of the JSON `field` per key (same skipping rule).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest view name accepted (Kafka's topic-name limit).
pub const MAX_NAME_LEN: usize = 249;

/// Why a definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DefError {
    /// The JSON did not parse into a definition (includes unknown kinds/formats).
    #[error("cannot parse view definition: {0}")]
    Parse(String),
    /// Name empty, too long, `.`/`..`, or with a character outside `[A-Za-z0-9._-]`.
    #[error("bad {what} `{value}`: {reason}")]
    BadName {
        /// `name` or `topic`.
        what: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Unknown kind string.
    #[error("unknown view kind `{0}` (expected table, count, sum or latest)")]
    UnknownKind(String),
    /// Unknown format string.
    #[error("unknown format `{0}` (expected bytes, utf8 or json)")]
    UnknownFormat(String),
    /// A JSON field path that cannot be used.
    #[error("bad field path `{path}`: {reason}")]
    BadFieldPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A combination of kind, field and formats that makes no sense.
    #[error("{0}")]
    Inconsistent(String),
}

/// What a view computes per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ViewKind {
    /// Latest value per key.
    #[default]
    Table,
    /// Count of records per key.
    Count,
    /// Sum of a numeric JSON field per key.
    Sum,
    /// Latest value of a JSON field per key.
    Latest,
}

impl ViewKind {
    /// The name used in definitions.
    pub fn name(self) -> &'static str {
        match self {
            ViewKind::Table => "table",
            ViewKind::Count => "count",
            ViewKind::Sum => "sum",
            ViewKind::Latest => "latest",
        }
    }

    /// Whether the stored state depends on earlier records (so it must be
    /// exactly-once rather than merely idempotent).
    pub fn is_aggregate(self) -> bool {
        matches!(self, ViewKind::Count | ViewKind::Sum)
    }
}

impl FromStr for ViewKind {
    type Err = DefError;
    fn from_str(s: &str) -> Result<Self, DefError> {
        match s {
            "table" => Ok(ViewKind::Table),
            "count" => Ok(ViewKind::Count),
            "sum" => Ok(ViewKind::Sum),
            "latest" => Ok(ViewKind::Latest),
            other => Err(DefError::UnknownKind(other.to_owned())),
        }
    }
}

impl TryFrom<String> for ViewKind {
    type Error = DefError;
    fn try_from(s: String) -> Result<Self, DefError> {
        s.parse()
    }
}

impl From<ViewKind> for String {
    fn from(k: ViewKind) -> String {
        k.name().to_owned()
    }
}

impl fmt::Display for ViewKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How record keys or values are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Format {
    /// Opaque bytes, stored as is.
    #[default]
    Bytes,
    /// UTF-8 text; invalid records are skipped.
    Utf8,
    /// JSON; stored in canonical form (object keys sorted, no whitespace) so
    /// equal documents are equal keys.
    Json,
}

impl Format {
    /// The name used in definitions.
    pub fn name(self) -> &'static str {
        match self {
            Format::Bytes => "bytes",
            Format::Utf8 => "utf8",
            Format::Json => "json",
        }
    }
}

impl FromStr for Format {
    type Err = DefError;
    fn from_str(s: &str) -> Result<Self, DefError> {
        match s {
            "bytes" => Ok(Format::Bytes),
            "utf8" => Ok(Format::Utf8),
            "json" => Ok(Format::Json),
            other => Err(DefError::UnknownFormat(other.to_owned())),
        }
    }
}

impl TryFrom<String> for Format {
    type Error = DefError;
    fn try_from(s: String) -> Result<Self, DefError> {
        s.parse()
    }
}

impl From<Format> for String {
    fn from(f: Format) -> String {
        f.name().to_owned()
    }
}

/// A view declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewDef {
    /// View name: `[A-Za-z0-9._-]{1,249}`, not `.` or `..`; also its directory name.
    pub name: String,
    /// Source (changelog) topic.
    pub topic: String,
    /// What is computed per key.
    #[serde(default)]
    pub kind: ViewKind,
    /// JSON field path (`amount`, `order.total`, `items.0.sku`) for `sum` and
    /// `latest` (required) and `table` (optional projection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// How record keys are read.
    #[serde(default)]
    pub key_format: Format,
    /// How record values are read.
    #[serde(default)]
    pub value_format: Format,
}

impl ViewDef {
    /// A `table` view of `topic` with byte keys and values.
    pub fn table(name: impl Into<String>, topic: impl Into<String>) -> Self {
        ViewDef {
            name: name.into(),
            topic: topic.into(),
            kind: ViewKind::Table,
            field: None,
            key_format: Format::Bytes,
            value_format: Format::Bytes,
        }
    }

    /// Parse and validate a JSON definition.
    ///
    /// # Errors
    /// [`DefError::Parse`] for malformed JSON, unknown kinds/formats or fields,
    /// otherwise whatever [`ViewDef::validate`] reports.
    pub fn from_json(json: &str) -> Result<Self, DefError> {
        let def: ViewDef =
            serde_json::from_str(json).map_err(|e| DefError::Parse(e.to_string()))?;
        def.validate()?;
        Ok(def)
    }

    /// Check the definition and return the parsed field path, if any.
    ///
    /// # Errors
    /// The first problem found, saying what is wrong.
    pub fn validate(&self) -> Result<Option<FieldPath>, DefError> {
        validate_name("name", &self.name)?;
        validate_name("topic", &self.topic)?;
        let field = self.field.as_deref().map(FieldPath::parse).transpose()?;
        match (self.kind, &field) {
            (ViewKind::Sum | ViewKind::Latest, None) => {
                return Err(DefError::Inconsistent(format!(
                    "kind `{}` needs a `field` (a JSON field path such as `amount`)",
                    self.kind
                )));
            }
            (ViewKind::Count, Some(_)) => {
                return Err(DefError::Inconsistent(
                    "kind `count` takes no `field`".to_owned(),
                ));
            }
            _ => {}
        }
        if field.is_some() && self.value_format != Format::Json {
            return Err(DefError::Inconsistent(format!(
                "`field` needs value_format `json`, not `{}`",
                self.value_format.name()
            )));
        }
        Ok(field)
    }
}

fn validate_name(what: &'static str, value: &str) -> Result<(), DefError> {
    let bad = |reason: String| DefError::BadName {
        what,
        value: value.chars().take(64).collect(),
        reason,
    };
    if value.is_empty() {
        return Err(bad("must not be empty".to_owned()));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(bad(format!("longer than {MAX_NAME_LEN} bytes")));
    }
    if value == "." || value == ".." {
        return Err(bad("`.` and `..` are reserved".to_owned()));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(format!(
            "character {c:?} not allowed (use A-Z, a-z, 0-9, `.`, `_`, `-`)"
        )));
    }
    Ok(())
}

/// A parsed JSON field path: dot-separated segments; a segment that is a
/// number also indexes arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(Vec<String>);

impl FieldPath {
    /// Longest path accepted, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Parse `a.b.c`.
    ///
    /// # Errors
    /// [`DefError::BadFieldPath`] for an empty path or segment, whitespace or
    /// an over-long path.
    pub fn parse(path: &str) -> Result<Self, DefError> {
        let bad = |reason| DefError::BadFieldPath {
            path: path.chars().take(64).collect(),
            reason,
        };
        if path.is_empty() {
            return Err(bad("empty path"));
        }
        if path.len() > Self::MAX_LEN {
            return Err(bad("longer than 256 bytes"));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters"));
        }
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(bad("empty segment (leading, trailing or doubled `.`)"));
        }
        Ok(FieldPath(segments))
    }

    /// Follow the path into a JSON value.
    pub fn lookup<'a>(&self, mut value: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        for seg in &self.0 {
            value = match value {
                serde_json::Value::Object(map) => map.get(seg)?,
                serde_json::Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn parses_defaults() -> TestResult {
        let def = ViewDef::from_json(r#"{"name":"users","topic":"users-changelog"}"#)?;
        assert_eq!(def, ViewDef::table("users", "users-changelog"));
        Ok(())
    }

    #[test]
    fn round_trips_json() -> TestResult {
        let json = r#"{"name":"t","topic":"o","kind":"sum","field":"order.total","key_format":"utf8","value_format":"json"}"#;
        let def = ViewDef::from_json(json)?;
        assert_eq!(def.kind, ViewKind::Sum);
        assert_eq!(serde_json::to_string(&def)?, json);
        Ok(())
    }

    #[test]
    fn rejects_unknown_kind_naming_it() {
        let err = ViewDef::from_json(r#"{"name":"a","topic":"b","kind":"avg"}"#);
        let Err(DefError::Parse(msg)) = err else {
            panic!("expected parse error, got {err:?}");
        };
        assert!(msg.contains("unknown view kind `avg`"), "{msg}");
    }

    #[test]
    fn rejects_unknown_format_and_fields() {
        assert!(ViewDef::from_json(r#"{"name":"a","topic":"b","key_format":"xml"}"#).is_err());
        assert!(ViewDef::from_json(r#"{"name":"a","topic":"b","colour":"red"}"#).is_err());
    }

    #[test]
    fn rejects_bad_names() {
        for name in ["", ".", "..", "a b", "a/b", "é"] {
            let mut def = ViewDef::table(name, "t");
            let err = def.validate();
            assert!(
                matches!(err, Err(DefError::BadName { what: "name", .. })),
                "{name:?}: {err:?}"
            );
            def.name = "ok".into();
            def.topic = name.into();
            assert!(def.validate().is_err());
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert!(ViewDef::table(long, "t").validate().is_err());
        assert!(ViewDef::table("a.b_c-9", "t").validate().is_ok());
    }

    #[test]
    fn rejects_bad_field_paths() {
        for path in ["", ".a", "a.", "a..b", "a b", &"x".repeat(300)] {
            let err = FieldPath::parse(path);
            assert!(
                matches!(err, Err(DefError::BadFieldPath { .. })),
                "{path:?}: {err:?}"
            );
        }
    }

    #[test]
    fn checks_kind_field_combinations() {
        let mut def = ViewDef::table("v", "t");
        def.kind = ViewKind::Sum;
        assert!(matches!(def.validate(), Err(DefError::Inconsistent(_))));
        def.field = Some("amount".into());
        assert!(
            matches!(def.validate(), Err(DefError::Inconsistent(_))),
            "needs json values"
        );
        def.value_format = Format::Json;
        assert!(def.validate().is_ok());
        def.kind = ViewKind::Count;
        assert!(matches!(def.validate(), Err(DefError::Inconsistent(_))));
        def.kind = ViewKind::Table;
        assert!(def.validate().is_ok(), "table projection");
    }

    #[test]
    fn field_path_lookup() -> TestResult {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"order":{"total":5,"items":[{"sku":"x"}]}}"#)?;
        let get = |p: &str| FieldPath::parse(p).map(|fp| fp.lookup(&v).cloned());
        assert_eq!(get("order.total")?, Some(serde_json::json!(5)));
        assert_eq!(get("order.items.0.sku")?, Some(serde_json::json!("x")));
        assert_eq!(get("order.missing")?, None);
        assert_eq!(get("order.total.deeper")?, None);
        Ok(())
    }
}
