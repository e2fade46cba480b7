//! Turning user input (TOML values, environment strings, topic override
//! strings) into validated [`Value`]s, checked against the key's
//! [`Kind`](crate::registry::Kind).
//!
//! Kafka habits are accepted: numbers and booleans may be strings
//! (`num.partitions = "3"`), lists may be comma-separated strings.

use crate::error::{ConfigError, Origin};
use crate::registry::{KeyDef, Kind, StrRule};
use crate::value::{check_listener_name, HostPort, QuorumVoter, Value};

/// A value before validation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw<'a> {
    /// From a TOML document.
    Toml(&'a toml::Value),
    /// From an environment variable, a topic override or the registry default.
    Text(&'a str),
}

impl Raw<'_> {
    /// The value as the user wrote it, for error messages.
    fn render(&self) -> String {
        match (self.as_text(), self) {
            (Some(s), _) => format!("{s:?}"),
            (None, Raw::Toml(v)) => v.to_string(),
            (None, Raw::Text(s)) => format!("{s:?}"),
        }
    }

    /// The value as text when it is a string (TOML string or plain text).
    fn as_text(&self) -> Option<&str> {
        match self {
            Raw::Toml(toml::Value::String(s)) => Some(s),
            Raw::Text(s) => Some(s),
            Raw::Toml(_) => None,
        }
    }
}

/// Validates `raw` for the key `def`.
pub(crate) fn parse_value(
    def: &KeyDef,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Value, ConfigError> {
    let invalid = |expected: String| ConfigError::InvalidValue {
        key: def.name.to_owned(),
        value: raw.render(),
        expected,
        origin: origin.clone(),
    };
    let out_of_range = || ConfigError::OutOfRange {
        key: def.name.to_owned(),
        value: raw.render(),
        allowed: def.kind.allowed(),
        origin: origin.clone(),
    };
    match def.kind {
        Kind::Bool => {
            let b = match raw {
                Raw::Toml(toml::Value::Boolean(b)) => Some(*b),
                _ => raw
                    .as_text()
                    .and_then(|s| match s.trim().to_ascii_lowercase().as_str() {
                        "true" => Some(true),
                        "false" => Some(false),
                        _ => None,
                    }),
            };
            b.map(Value::Bool)
                .ok_or_else(|| invalid(def.kind.allowed()))
        }
        Kind::Short { min, max } | Kind::Int { min, max } | Kind::Long { min, max } => {
            let n = match raw {
                Raw::Toml(toml::Value::Integer(i)) => Some(*i),
                _ => raw.as_text().and_then(|s| s.trim().parse::<i64>().ok()),
            };
            let n = n.ok_or_else(|| invalid(format!("an integer in {}", def.kind.allowed())))?;
            if n < min || n > max {
                return Err(out_of_range());
            }
            // The registry's bounds never exceed the type's (tested), so these
            // conversions only fail if the registry is wrong; report that as range.
            Ok(match def.kind {
                Kind::Short { .. } => Value::Short(i16::try_from(n).map_err(|_| out_of_range())?),
                Kind::Int { .. } => Value::Int(i32::try_from(n).map_err(|_| out_of_range())?),
                _ => Value::Long(n),
            })
        }
        Kind::Double { min, max } => {
            let x = match raw {
                Raw::Toml(toml::Value::Float(f)) => Some(*f),
                // i64 → f64 may round for huge values; irrelevant for ratios.
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "config doubles are small ratios"
                )]
                Raw::Toml(toml::Value::Integer(i)) => Some(*i as f64),
                _ => raw.as_text().and_then(|s| s.trim().parse::<f64>().ok()),
            };
            let x = x
                .filter(|x| x.is_finite())
                .ok_or_else(|| invalid(format!("a number in {}", def.kind.allowed())))?;
            if x < min || x > max {
                return Err(out_of_range());
            }
            Ok(Value::Double(x))
        }
        Kind::Str(rule) => {
            let s = raw.as_text().ok_or_else(|| invalid(rule.allowed()))?;
            check_item(rule, s).map_err(|why| invalid(with_reason(rule, why)))?;
            Ok(Value::Str(canonical_item(rule, s)))
        }
        Kind::List { item, min_len } => {
            let items: Vec<String> = match raw {
                Raw::Toml(toml::Value::Array(arr)) => arr
                    .iter()
                    .map(|v| v.as_str().map(|s| s.trim().to_owned()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| invalid(def.kind.allowed()))?,
                _ => raw
                    .as_text()
                    .ok_or_else(|| invalid(def.kind.allowed()))?
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            if items.len() < min_len {
                return Err(invalid(def.kind.allowed()));
            }
            for s in &items {
                check_item(item, s).map_err(|why| {
                    invalid(format!(
                        "each item to be {}; item {s:?} is not",
                        with_reason(item, why)
                    ))
                })?;
            }
            Ok(Value::List(
                items.iter().map(|s| canonical_item(item, s)).collect(),
            ))
        }
    }
}

fn with_reason(rule: StrRule, why: Option<String>) -> String {
    match why {
        Some(why) => format!("{} ({why})", rule.allowed()),
        None => rule.allowed(),
    }
}

/// `Err(Some(reason))` adds detail beyond the rule's description.
fn check_item(rule: StrRule, s: &str) -> Result<(), Option<String>> {
    match rule {
        StrRule::Any => Ok(()),
        StrRule::OneOf(choices) => {
            if choices.contains(&s) {
                Ok(())
            } else {
                Err(None)
            }
        }
        StrRule::HostPort => match s.parse::<HostPort>().map_err(Some)?.name {
            None => Ok(()),
            Some(name) => Err(Some(format!(
                "listener name `{name}://` is only allowed in `listeners` and `advertised.listeners`"
            ))),
        },
        StrRule::Listener => s.parse::<HostPort>().map(|_| ()).map_err(Some),
        StrRule::ListenerName => check_listener_name(s).map_err(Some),
        StrRule::QuorumVoter => s.parse::<QuorumVoter>().map(|_| ()).map_err(Some),
        StrRule::ThrottledReplica => {
            if s == "*" {
                return Ok(());
            }
            let ok = s
                .split_once(':')
                .is_some_and(|(p, b)| p.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
            if ok {
                Ok(())
            } else {
                Err(None)
            }
        }
    }
}

/// Normalises accepted spellings (e.g. drops `PLAINTEXT://`), so that a value
/// reads back the same from the typed field and from the raw settings.
fn canonical_item(rule: StrRule, s: &str) -> String {
    match rule {
        StrRule::HostPort | StrRule::Listener => s
            .parse::<HostPort>()
            .map_or_else(|_| s.to_owned(), |hp| hp.to_string()),
        StrRule::QuorumVoter => s
            .parse::<QuorumVoter>()
            .map_or_else(|_| s.to_owned(), |v| v.to_string()),
        _ => s.to_owned(),
    }
}

/// Flattens a TOML document to `(dotted key, value)` pairs: `a.b = 1`,
/// `"a.b" = 1` and `[a] b = 1` all become `("a.b", 1)`.
///
/// # Errors
/// [`ConfigError::DuplicateKey`] when two forms name the same key.
pub(crate) fn flatten_toml<'a>(
    table: &'a toml::Table,
    origin: &Origin,
) -> Result<Vec<(String, &'a toml::Value)>, ConfigError> {
    let mut out = Vec::new();
    flatten_into(table, "", &mut out);
    let mut seen = std::collections::BTreeSet::new();
    for (key, _) in &out {
        if !seen.insert(key.as_str()) {
            return Err(ConfigError::DuplicateKey {
                key: key.clone(),
                origin: origin.clone(),
            });
        }
    }
    Ok(out)
}

fn flatten_into<'a>(
    table: &'a toml::Table,
    prefix: &str,
    out: &mut Vec<(String, &'a toml::Value)>,
) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => flatten_into(inner, &key, out),
            other => out.push((key, other)),
        }
    }
}

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "BROOK_";

/// `BROOK_*` variables that are not config keys and are skipped by
/// [`crate::BrokerConfig::apply_env`]: the config file path and the log filter
/// used by the `brook` binary, and the broker's request-capture switch for
/// golden test vectors.
pub const ENV_RESERVED: &[&str] = &["BROOK_CONFIG", "BROOK_LOG", "BROOK_CAPTURE_DIR"];

/// `BROOK_LOG_DIRS` → `log.dirs`; `None` for variables without the prefix.
pub(crate) fn env_to_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    Some(rest.to_ascii_lowercase().replace('_', "."))
}

/// `log.dirs` → `BROOK_LOG_DIRS`.
pub fn key_to_env(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase().replace('.', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_map_both_ways() {
        assert_eq!(env_to_key("BROOK_LOG_DIRS").as_deref(), Some("log.dirs"));
        assert_eq!(env_to_key("HOME"), None);
        assert_eq!(key_to_env("log.retention.ms"), "BROOK_LOG_RETENTION_MS");
    }
}
