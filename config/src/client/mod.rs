//! Client configuration: [`ProducerConfig`] and [`ConsumerConfig`], with the
//! Java client's property names and defaults (`acks`, `linger.ms`,
//! `auto.offset.reset`, …).
//!
//! Client keys live in their own tables ([`PRODUCER_KEYS`], [`CONSUMER_KEYS`]),
//! not in [`crate::registry::all`]: they are not broker or topic settings, so the
//! broker file, DescribeConfigs and the README reference never see them. Values
//! are validated by the same parser as the broker config, so errors read the same
//! ("invalid value "x" for `acks`: expected one of [all, -1, 0, 1]").
//!
//! ```
//! use brook_config::client::ProducerConfig;
//!
//! let cfg = ProducerConfig::from_map([("acks", "1"), ("linger.ms", "20")])?;
//! assert_eq!(cfg.acks(), 1);
//! assert_eq!(cfg.linger_ms, 20);
//! assert!(!cfg.idempotence(), "acks=1 turns the default idempotence off");
//! assert!(ProducerConfig::from_map([("acks", "2")]).is_err());
//! # Ok::<(), brook_config::ConfigError>(())
//! ```
//!
//! # Layout
//! - `keys`: the two key tables (type, range, default, doc).
//! - `producer`: [`ProducerConfig`] and its cross-key rules.
//! - `consumer`: [`ConsumerConfig`] and its cross-key rules.

/// `from_map`, `set` and key application, shared by the client configs: each
/// type names its key table and kind and provides `set_value`, `explicit` and
/// `validate`.
macro_rules! client_config_api {
    ($ty:ident, $keys:expr, $kind:literal) => {
        impl $ty {
            /// Builds a config from `key → value` strings (Java property names),
            /// on top of the defaults, and validates it.
            ///
            /// # Errors
            /// Unknown keys (with a "did you mean"), bad values, out-of-range
            /// values, or inconsistent combinations (see `validate`).
            pub fn from_map<I, K, V>(entries: I) -> Result<Self, ConfigError>
            where
                I: IntoIterator<Item = (K, V)>,
                K: AsRef<str>,
                V: AsRef<str>,
            {
                let mut cfg = Self::default();
                for (name, value) in $crate::client::defaults($keys)? {
                    cfg.set_value(name, &value)?;
                }
                for (k, v) in entries {
                    cfg.apply(k.as_ref(), v.as_ref())?;
                }
                cfg.validate()?;
                Ok(cfg)
            }

            /// Sets one key from its string form and re-validates; on error
            /// `self` is unchanged.
            ///
            /// # Errors
            /// As for `from_map`.
            pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
                let mut next = self.clone();
                next.apply(key, value)?;
                next.validate()?;
                *self = next;
                Ok(())
            }

            fn apply(&mut self, key: &str, raw: &str) -> Result<(), ConfigError> {
                let (def, value) = $crate::client::parse_client($keys, $kind, key, raw)?;
                self.set_value(def.name, &value)?;
                self.explicit.0.insert(def.name);
                Ok(())
            }
        }
    };
}

mod consumer;
mod keys;
mod producer;

use std::collections::BTreeSet;

pub use consumer::{AutoOffsetReset, ConsumerConfig};
pub use keys::{CONSUMER_KEYS, PRODUCER_KEYS};
pub use producer::ProducerConfig;

use crate::error::{ConfigError, Origin};
use crate::parse::{parse_value, Raw};
use crate::registry::KeyDef;
use crate::suggest;
use crate::value::Value;

/// Looks `key` up in `table` and validates `raw` for it.
fn parse_client(
    table: &'static [KeyDef],
    scope: &'static str,
    key: &str,
    raw: &str,
) -> Result<(&'static KeyDef, Value), ConfigError> {
    let def = table
        .iter()
        .find(|d| d.name == key)
        .ok_or_else(|| ConfigError::UnknownKey {
            key: key.to_owned(),
            scope,
            origin: Origin::Override,
            hint: hint(key, table),
        })?;
    let value = parse_value(def, Raw::Text(raw), &Origin::Override)?;
    Ok((def, value))
}

/// "; did you mean `x`?" for a close key of `table`, else empty.
fn hint(key: &str, table: &'static [KeyDef]) -> String {
    let limit = (key.len() / 4).max(2);
    table
        .iter()
        .map(|d| (suggest::edit_distance(key, d.name), d.name))
        .filter(|(dist, _)| *dist <= limit)
        .min()
        .map(|(_, name)| format!("; did you mean `{name}`?"))
        .unwrap_or_default()
}

/// The registry default of every key in `table`, parsed.
fn defaults(table: &'static [KeyDef]) -> Result<Vec<(&'static str, Value)>, ConfigError> {
    table
        .iter()
        .filter_map(|d| d.default.map(|text| (d, text)))
        .map(|(d, text)| Ok((d.name, parse_value(d, Raw::Text(text), &Origin::Override)?)))
        .collect()
}

/// Keys set explicitly through `from_map`/`set`, so rules like "idempotence is
/// on unless it conflicts with an explicit setting" can tell defaults apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExplicitClientKeys(BTreeSet<&'static str>);

impl ExplicitClientKeys {
    /// Whether `key` was set explicitly.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_defaults_equal_table_defaults() {
        let empty: [(&str, &str); 0] = [];
        assert_eq!(
            ProducerConfig::from_map(empty).unwrap(),
            ProducerConfig::default()
        );
        assert_eq!(
            ConsumerConfig::from_map(empty).unwrap(),
            ConsumerConfig::default()
        );
        for def in PRODUCER_KEYS {
            let text = def.default.unwrap();
            let parsed = parse_value(def, Raw::Text(text), &Origin::Override).unwrap();
            assert_eq!(
                ProducerConfig::default().value(def.name),
                Some(parsed),
                "{}",
                def.name
            );
        }
        for def in CONSUMER_KEYS {
            let text = def.default.unwrap();
            let parsed = parse_value(def, Raw::Text(text), &Origin::Override).unwrap();
            assert_eq!(
                ConsumerConfig::default().value(def.name),
                Some(parsed),
                "{}",
                def.name
            );
        }
        assert_eq!(ProducerConfig::FIELD_KEYS.len(), PRODUCER_KEYS.len());
        assert_eq!(ConsumerConfig::FIELD_KEYS.len(), CONSUMER_KEYS.len());
    }

    #[test]
    fn errors_name_key_value_and_choices() {
        let e = ProducerConfig::from_map([("acks", "2")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`acks`") && e.contains("\"2\"") && e.contains("all, -1, 0, 1"),
            "{e}"
        );
        let e = ProducerConfig::from_map([("linger.msec", "2")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown producer config key `linger.msec`"),
            "{e}"
        );
        assert!(e.contains("did you mean `linger.ms`"), "{e}");
        let e = ConsumerConfig::from_map([("fetch.min.bytes", "-1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = ConsumerConfig::from_map([("auto.offset.reset", "smallest")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("earliest, latest, none"), "{e}");
    }

    #[test]
    fn idempotence_follows_the_java_rules() {
        let c = ProducerConfig::default();
        assert!(c.idempotence());
        assert_eq!(c.acks(), -1);
        let c = ProducerConfig::from_map([("acks", "1")]).unwrap();
        assert!(!c.idempotence());
        let e =
            ProducerConfig::from_map([("acks", "1"), ("enable.idempotence", "true")]).unwrap_err();
        assert!(e.to_string().contains("requires acks=all"), "{e}");
        let e = ProducerConfig::from_map([
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "6"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("<= 5"), "{e}");
        let e = ProducerConfig::from_map([("delivery.timeout.ms", "1000")]).unwrap_err();
        assert!(e.to_string().contains("delivery.timeout.ms"), "{e}");
    }

    #[test]
    fn consumer_accessors_and_set() {
        let mut c = ConsumerConfig::from_map([
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
        ])
        .unwrap();
        assert_eq!(c.auto_offset_reset(), AutoOffsetReset::Earliest);
        assert_eq!(c.isolation_level(), 1);
        assert_eq!(c.group(), None);
        c.set("group.id", "g1").unwrap();
        assert_eq!(c.group(), Some("g1"));
        assert!(c.set("heartbeat.interval.ms", "50000").is_err());
        assert_eq!(
            c.heartbeat_interval_ms, 3000,
            "a failed set leaves the config unchanged"
        );
        let c = ConsumerConfig::from_map([("bootstrap.servers", "a:1,b:2")]).unwrap();
        assert_eq!(c.bootstrap(), vec!["a:1".to_owned(), "b:2".to_owned()]);
    }
}
