//! Property test: for every key, any valid value — written as a TOML native
//! value, as a string, or as an environment variable — parses and reads back
//! unchanged from the typed field; topic overrides likewise.

use std::collections::BTreeMap;

use brook_config::registry::{self, KeyDef, Kind, StrRule};
use brook_config::{key_to_env, BrokerConfig, ConfigError, TopicConfig, Value};
use proptest::prelude::*;

/// A valid value for `def` chosen by `seed`, and its TOML and text spellings.
fn valid_value(def: &KeyDef, seed: u64) -> (Value, String, String) {
    let pick = |min: i64, max: i64| -> i64 {
        let span = (i128::from(max) - i128::from(min) + 1) as u128;
        (i128::from(min) + (u128::from(seed) % span) as i128) as i64
    };
    let item = |rule: StrRule, salt: u64| -> String {
        let s = seed.wrapping_add(salt);
        match rule {
            StrRule::Any => format!("/data/d{}", s % 1000),
            StrRule::OneOf(choices) => choices[(s % choices.len() as u64) as usize].to_owned(),
            StrRule::HostPort => format!("host{}.example:{}", s % 100, s % 65_535 + 1),
            // The first listener is PLAINTEXT (unnamed); later ones get
            // distinct names, so that a list has no repeated name.
            StrRule::Listener if salt == 0 => format!("host{}.example:{}", s % 100, s % 65_535 + 1),
            StrRule::Listener => format!("L{salt}://host{}.example:{}", s % 100, s % 65_535 + 1),
            StrRule::ListenerName => format!("N{salt}"),
            StrRule::QuorumVoter => {
                format!("{}@host{}.example:{}", s % 1000, s % 100, s % 65_535 + 1)
            }
            StrRule::ThrottledReplica => format!("{}:{}", s % 64, s % 7),
        }
    };
    match def.kind {
        Kind::Bool => {
            let b = seed.is_multiple_of(2);
            (Value::Bool(b), b.to_string(), b.to_string())
        }
        Kind::Short { min, max } => {
            let n = pick(min, max);
            (Value::Short(n as i16), n.to_string(), n.to_string())
        }
        Kind::Int { min, max } => {
            let n = pick(min, max);
            (Value::Int(n as i32), n.to_string(), n.to_string())
        }
        Kind::Long { min, max } => {
            let n = pick(min, max);
            (Value::Long(n), n.to_string(), n.to_string())
        }
        Kind::Double { min, max } => {
            let x = min + (max - min) * ((seed % 1001) as f64 / 1000.0);
            (Value::Double(x), format!("{x:?}"), format!("{x:?}"))
        }
        Kind::Str(rule) => {
            let s = item(rule, 0);
            (Value::Str(s.clone()), format!("{s:?}"), s)
        }
        Kind::List {
            item: rule,
            min_len,
        } => {
            let n = min_len.max((seed % 3) as usize);
            // OneOf lists must not repeat a choice for the typed set to round-trip.
            let mut items: Vec<String> = (0..n as u64).map(|i| item(rule, i * 7919)).collect();
            if let StrRule::OneOf(_) = rule {
                items.sort();
                items.dedup();
                // The typed cleanup policy renders compact before delete.
                items.sort_by_key(|s| s != "compact");
            }
            let toml = format!(
                "[{}]",
                items
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let text = items.join(",");
            (Value::List(items), toml, text)
        }
    }
}

fn broker_keys() -> Vec<&'static KeyDef> {
    registry::all().filter(|d| d.scope.is_broker()).collect()
}

fn topic_keys() -> Vec<&'static KeyDef> {
    registry::all().filter(|d| d.scope.is_topic()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn broker_values_round_trip(index in 0usize..1000, seed in any::<u64>(), form in 0u8..3) {
        let keys = broker_keys();
        let def = keys[index % keys.len()];
        let (expected, toml_text, text) = valid_value(def, seed);
        let result = match form {
            0 => BrokerConfig::from_toml_str(&format!("{:?} = {toml_text}\n", def.name)),
            1 => BrokerConfig::from_toml_str(&format!("{:?} = {text:?}\n", def.name)),
            _ => {
                let mut cfg = BrokerConfig::default();
                cfg.apply_env(std::iter::once((key_to_env(def.name), text.clone()))).map(|()| cfg)
            }
        };
        match result {
            Ok(cfg) => {
                prop_assert_eq!(cfg.value(def.name), Some(expected), "key {}", def.name);
                prop_assert!(cfg.is_explicit(def.name));
            }
            // A random value may break a cross-key rule with the defaults.
            Err(ConfigError::Inconsistent { .. }) => {}
            Err(e) => prop_assert!(false, "key {} value {}: {}", def.name, toml_text, e),
        }
    }

    #[test]
    fn topic_overrides_round_trip(index in 0usize..1000, seed in any::<u64>()) {
        let keys = topic_keys();
        let def = keys[index % keys.len()];
        let (expected, _, text) = valid_value(def, seed);
        if def.name == "remote.storage.enable" && expected == Value::Bool(true) {
            return Ok(()); // accepted by type, refused by policy (tested elsewhere)
        }
        let overrides = BTreeMap::from([(def.name.to_owned(), text.clone())]);
        match TopicConfig::resolve(&BrokerConfig::default(), &overrides) {
            Ok(topic) => prop_assert_eq!(topic.value(def.name), Some(expected), "key {}", def.name),
            Err(ConfigError::Inconsistent { .. }) => {}
            Err(e) => prop_assert!(false, "key {} value {}: {}", def.name, text, e),
        }
    }
}
