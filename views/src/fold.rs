//! Turning one changelog record into the new state of its key: the formats
//! (`bytes`, `utf8`, `json`) and the per-kind fold (`table`, `count`, `sum`,
//! `latest`). Pure functions, no I/O: the apply path reads the current state,
//! calls [`Compiled::fold`] and writes the outcome under the batch's seqno.
//!
//! Stored values are already in their answer form, so reads never re-encode:
//! - `table`: the value bytes (`json`: canonical JSON, projected by `field`);
//! - `count`: the count as ASCII decimal (`42`);
//! - `sum`: a JSON number (`12`, `12.5`); integer while every addend is an
//!   integer and the sum fits `i64`, floating point from then on;
//! - `latest`: the field's canonical JSON.
//!
//! Records that cannot be read are skipped with a [`SkipReason`] (counted in a
//! metric); they still advance the partition's offset.

use serde_json::{Number, Value};

use crate::def::{FieldPath, Format, ViewDef, ViewKind};
use crate::error::{Result, ViewError};

/// Why a record was skipped rather than applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The record has no key.
    NullKey,
    /// The key is not valid for the key format.
    BadKey,
    /// The value is not valid for the value format.
    BadValue,
    /// The JSON field is missing.
    MissingField,
    /// The JSON field of a `sum` is not a number.
    NotNumeric,
    /// The sum left the range of a JSON number.
    Overflow,
}

impl SkipReason {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::NullKey => "null_key",
            SkipReason::BadKey => "bad_key",
            SkipReason::BadValue => "bad_value",
            SkipReason::MissingField => "missing_field",
            SkipReason::NotNumeric => "not_numeric",
            SkipReason::Overflow => "overflow",
        }
    }
}

/// What applying one record does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Store this value.
    Put(Vec<u8>),
    /// Delete the key.
    Delete,
    /// Leave the key alone.
    Skip(SkipReason),
}

/// A validated definition, ready to fold records.
#[derive(Debug, Clone)]
pub struct Compiled {
    kind: ViewKind,
    field: Option<FieldPath>,
    key_format: Format,
    value_format: Format,
}

impl Compiled {
    /// Validate and compile a definition.
    ///
    /// # Errors
    /// [`ViewError::Def`] when the definition is invalid.
    pub fn new(def: &ViewDef) -> Result<Self> {
        let field = def.validate()?;
        Ok(Compiled {
            kind: def.kind,
            field,
            key_format: def.key_format,
            value_format: def.value_format,
        })
    }

    /// The stored form of a record key, or why it cannot be stored.
    ///
    /// # Errors
    /// [`SkipReason::BadKey`] when the key does not match the key format.
    pub fn key(&self, raw: &[u8]) -> Result<Vec<u8>, SkipReason> {
        encode(self.key_format, raw).ok_or(SkipReason::BadKey)
    }

    /// Fold a record value (`None` = tombstone) into the key's current state.
    ///
    /// # Errors
    /// [`ViewError::Corrupt`] when the current state of an aggregate is not in
    /// the form this module writes.
    pub fn fold(&self, current: Option<&[u8]>, value: Option<&[u8]>) -> Result<Outcome> {
        let Some(value) = value else {
            return Ok(Outcome::Delete);
        };
        Ok(match self.kind {
            ViewKind::Table => match &self.field {
                None => match encode(self.value_format, value) {
                    Some(v) => Outcome::Put(v),
                    None => Outcome::Skip(SkipReason::BadValue),
                },
                Some(path) => match project(path, value) {
                    Ok(v) => Outcome::Put(canonical(&v)),
                    Err(reason) => Outcome::Skip(reason),
                },
            },
            ViewKind::Count => {
                let n = match current {
                    None => 0,
                    Some(c) => parse_count(c)?,
                };
                Outcome::Put(n.saturating_add(1).to_string().into_bytes())
            }
            ViewKind::Sum => {
                let Some(path) = &self.field else {
                    return Ok(Outcome::Skip(SkipReason::MissingField));
                };
                let addend = match project(path, value) {
                    Ok(Value::Number(n)) => n,
                    Ok(_) => return Ok(Outcome::Skip(SkipReason::NotNumeric)),
                    Err(reason) => return Ok(Outcome::Skip(reason)),
                };
                let total = match current {
                    None => Some(addend),
                    Some(c) => add(&parse_number(c)?, &addend),
                };
                match total {
                    Some(t) => Outcome::Put(t.to_string().into_bytes()),
                    None => Outcome::Skip(SkipReason::Overflow),
                }
            }
            ViewKind::Latest => {
                let Some(path) = &self.field else {
                    return Ok(Outcome::Skip(SkipReason::MissingField));
                };
                match project(path, value) {
                    Ok(v) => Outcome::Put(canonical(&v)),
                    Err(reason) => Outcome::Skip(reason),
                }
            }
        })
    }

    /// Whether folding needs the key's current state.
    pub fn reads_state(&self) -> bool {
        self.kind.is_aggregate()
    }
}

/// The stored form of `raw` under `format`; `None` when it does not conform.
pub fn encode(format: Format, raw: &[u8]) -> Option<Vec<u8>> {
    match format {
        Format::Bytes => Some(raw.to_vec()),
        Format::Utf8 => std::str::from_utf8(raw).ok().map(|s| s.as_bytes().to_vec()),
        Format::Json => serde_json::from_slice::<Value>(raw)
            .ok()
            .map(|v| canonical(&v)),
    }
}

fn project(path: &FieldPath, raw: &[u8]) -> Result<Value, SkipReason> {
    let doc: Value = serde_json::from_slice(raw).map_err(|_| SkipReason::BadValue)?;
    path.lookup(&doc).cloned().ok_or(SkipReason::MissingField)
}

/// serde_json without `preserve_order` sorts object keys, so this is canonical.
fn canonical(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn parse_count(c: &[u8]) -> Result<i64> {
    std::str::from_utf8(c)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ViewError::Corrupt(format!("count state {:?}", String::from_utf8_lossy(c))))
}

fn parse_number(c: &[u8]) -> Result<Number> {
    serde_json::from_slice::<Number>(c)
        .map_err(|_| ViewError::Corrupt(format!("sum state {:?}", String::from_utf8_lossy(c))))
}

/// Exact while both sides are `i64` and the sum fits; `f64` otherwise.
/// `None` when the result is not a finite number.
pub fn add(a: &Number, b: &Number) -> Option<Number> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        if let Some(s) = x.checked_add(y) {
            return Some(Number::from(s));
        }
    }
    Number::from_f64(a.as_f64()? + b.as_f64()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(kind: ViewKind, field: Option<&str>, key: Format, value: Format) -> Compiled {
        let def = ViewDef {
            name: "v".into(),
            topic: "t".into(),
            kind,
            field: field.map(str::to_owned),
            key_format: key,
            value_format: value,
        };
        Compiled::new(&def).expect("valid def")
    }

    fn put(s: &str) -> Outcome {
        Outcome::Put(s.as_bytes().to_vec())
    }

    #[test]
    fn key_formats() {
        let c = compiled(ViewKind::Table, None, Format::Json, Format::Bytes);
        assert_eq!(
            c.key(br#"{ "b": 1, "a": [1, 2] }"#),
            Ok(br#"{"a":[1,2],"b":1}"#.to_vec())
        );
        assert_eq!(c.key(b"{oops"), Err(SkipReason::BadKey));
        let c = compiled(ViewKind::Table, None, Format::Utf8, Format::Bytes);
        assert_eq!(c.key(b"caf\xc3\xa9"), Ok("café".as_bytes().to_vec()));
        assert_eq!(c.key(b"\xff"), Err(SkipReason::BadKey));
        let c = compiled(ViewKind::Table, None, Format::Bytes, Format::Bytes);
        assert_eq!(c.key(b"\xff\x00"), Ok(b"\xff\x00".to_vec()));
    }

    #[test]
    fn table_values() -> Result<()> {
        let c = compiled(ViewKind::Table, None, Format::Bytes, Format::Utf8);
        assert_eq!(c.fold(None, Some(b"hi"))?, put("hi"));
        assert_eq!(
            c.fold(None, Some(b"\xff"))?,
            Outcome::Skip(SkipReason::BadValue)
        );
        assert_eq!(c.fold(Some(b"hi"), None)?, Outcome::Delete);
        let c = compiled(ViewKind::Table, Some("a.b"), Format::Bytes, Format::Json);
        assert_eq!(
            c.fold(None, Some(br#"{"a":{"b":{"y":1,"x":2}}}"#))?,
            put(r#"{"x":2,"y":1}"#)
        );
        assert_eq!(
            c.fold(None, Some(br#"{"a":{}}"#))?,
            Outcome::Skip(SkipReason::MissingField)
        );
        assert_eq!(
            c.fold(None, Some(b"nope"))?,
            Outcome::Skip(SkipReason::BadValue)
        );
        Ok(())
    }

    #[test]
    fn count_folds_and_tombstone_resets() -> Result<()> {
        let c = compiled(ViewKind::Count, None, Format::Bytes, Format::Bytes);
        assert_eq!(c.fold(None, Some(b"x"))?, put("1"));
        assert_eq!(c.fold(Some(b"41"), Some(b""))?, put("42"));
        assert_eq!(c.fold(Some(b"41"), None)?, Outcome::Delete);
        assert!(matches!(
            c.fold(Some(b"x"), Some(b"")),
            Err(ViewError::Corrupt(_))
        ));
        Ok(())
    }

    #[test]
    fn sum_is_exact_for_integers_and_skips_junk() -> Result<()> {
        let c = compiled(
            ViewKind::Sum,
            Some("order.total"),
            Format::Bytes,
            Format::Json,
        );
        let v = |n: &str| format!(r#"{{"order":{{"total":{n}}}}}"#).into_bytes();
        assert_eq!(c.fold(None, Some(&v("5")))?, put("5"));
        assert_eq!(c.fold(Some(b"5"), Some(&v("-7")))?, put("-2"));
        assert_eq!(c.fold(Some(b"1"), Some(&v("0.5")))?, put("1.5"));
        assert_eq!(
            c.fold(Some(b"1"), Some(&v("\"3\"")))?,
            Outcome::Skip(SkipReason::NotNumeric)
        );
        assert_eq!(
            c.fold(Some(b"1"), Some(br#"{"order":{}}"#))?,
            Outcome::Skip(SkipReason::MissingField)
        );
        assert_eq!(
            c.fold(Some(b"1"), Some(b"]"))?,
            Outcome::Skip(SkipReason::BadValue)
        );
        let big = i64::MAX.to_string();
        let Outcome::Put(p) = c.fold(Some(big.as_bytes()), Some(&v("1")))? else {
            panic!("overflowing integer sum must fall back to floating point");
        };
        assert_eq!(
            serde_json::from_slice::<f64>(&p).ok(),
            Some(i64::MAX as f64 + 1.0)
        );
        assert_eq!(
            c.fold(Some(b"1e308"), Some(&v("1e308")))?,
            Outcome::Skip(SkipReason::Overflow)
        );
        Ok(())
    }

    #[test]
    fn latest_keeps_field() -> Result<()> {
        let c = compiled(
            ViewKind::Latest,
            Some("status"),
            Format::Bytes,
            Format::Json,
        );
        assert_eq!(
            c.fold(Some(b"\"old\""), Some(br#"{"status":"new"}"#))?,
            put("\"new\"")
        );
        assert_eq!(c.fold(None, Some(br#"{"status":null}"#))?, put("null"));
        assert_eq!(
            c.fold(None, Some(br#"{}"#))?,
            Outcome::Skip(SkipReason::MissingField)
        );
        Ok(())
    }
}
