//! The key registry: one static table of every config key brook knows.
//!
//! The table drives everything else: TOML/env parsing looks keys up here and
//! validates values against [`Kind`]; topic configs find their broker-wide
//! default through [`KeyDef::synonyms`]; DescribeConfigs takes type and
//! documentation from here; [`crate::reference_markdown`] renders it for the
//! README. Names are Kafka's own wherever Kafka has the setting; brook-only keys
//! say so in their doc string. No key contains `_` or an upper-case letter, which
//! keeps the `BROOK_<KEY>` environment mapping reversible (tested).

mod broker_keys;
mod topic_keys;

use crate::value::ConfigType;

/// Which resource a key configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only in the broker config file.
    Broker,
    /// Only as a per-topic override; its broker-wide default comes from
    /// [`KeyDef::synonyms`] or, if it has none, from [`KeyDef::default`].
    Topic,
    /// Same name in the broker file (as the default) and as a topic override.
    Both,
}

impl Scope {
    /// Whether the key may appear in the broker config.
    pub fn is_broker(self) -> bool {
        matches!(self, Scope::Broker | Scope::Both)
    }

    /// Whether the key may be a topic override.
    pub fn is_topic(self) -> bool {
        matches!(self, Scope::Topic | Scope::Both)
    }
}

/// How a string value (or list item) is validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StrRule {
    /// Any string.
    Any,
    /// Exactly one of these (case-sensitive, as in Kafka).
    OneOf(&'static [&'static str]),
    /// `host:port`, optionally prefixed `PLAINTEXT://` (brook speaks plaintext only).
    HostPort,
    /// A listener: `host:port` or `NAME://host:port` with a Kafka listener
    /// name `[A-Z][A-Z0-9_]*` (`PLAINTEXT` being the unnamed default).
    Listener,
    /// A listener name alone, `[A-Z][A-Z0-9_]*` (e.g. `CONTROLLER`).
    ListenerName,
    /// A controller quorum voter, `id@host:port` (e.g. `1@127.0.0.1:19093`).
    QuorumVoter,
    /// A replication-throttle entry: `*` or `partition:broker`.
    ThrottledReplica,
}

/// A key's type and its valid range or choices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// `true` / `false`.
    Bool,
    /// 16-bit integer in `[min, max]`.
    Short {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// 32-bit integer in `[min, max]`.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// 64-bit integer in `[min, max]`.
    Long {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// Finite float in `[min, max]`.
    Double {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// A string checked by the rule.
    Str(StrRule),
    /// A list (TOML array or comma-separated string) of at least `min_len` items,
    /// each checked by `item`.
    List {
        /// Rule for each item.
        item: StrRule,
        /// Minimum number of items.
        min_len: usize,
    },
}

impl Kind {
    /// Kafka's DescribeConfigs type for this kind.
    pub fn config_type(self) -> ConfigType {
        match self {
            Kind::Bool => ConfigType::Boolean,
            Kind::Short { .. } => ConfigType::Short,
            Kind::Int { .. } => ConfigType::Int,
            Kind::Long { .. } => ConfigType::Long,
            Kind::Double { .. } => ConfigType::Double,
            Kind::Str(_) => ConfigType::String,
            Kind::List { .. } => ConfigType::List,
        }
    }

    /// Human description of the accepted values, used in errors and docs.
    pub fn allowed(self) -> String {
        match self {
            Kind::Bool => "true or false".to_owned(),
            Kind::Short { min, max } | Kind::Int { min, max } | Kind::Long { min, max } => {
                range_text(min, max, self.type_max())
            }
            Kind::Double { min, max } => format!("[{min},...,{max}]"),
            Kind::Str(rule) => rule.allowed(),
            Kind::List { item, min_len } => {
                let items = match item {
                    StrRule::Any => "strings".to_owned(),
                    other => other.allowed(),
                };
                if min_len > 0 {
                    format!("a non-empty list of {items}")
                } else {
                    format!("a list of {items}")
                }
            }
        }
    }

    fn type_max(self) -> i64 {
        match self {
            Kind::Short { .. } => i64::from(i16::MAX),
            Kind::Int { .. } => i64::from(i32::MAX),
            _ => i64::MAX,
        }
    }
}

fn range_text(min: i64, max: i64, type_max: i64) -> String {
    if max >= type_max {
        format!("[{min},...]")
    } else {
        format!("[{min},...,{max}]")
    }
}

impl StrRule {
    /// Human description of the accepted values.
    pub fn allowed(self) -> String {
        match self {
            StrRule::Any => "a string".to_owned(),
            StrRule::OneOf(choices) => format!("one of [{}]", choices.join(", ")),
            StrRule::HostPort => "host:port (e.g. 127.0.0.1:9092)".to_owned(),
            StrRule::Listener => {
                "host:port or NAME://host:port (e.g. 127.0.0.1:9092 or CONTROLLER://127.0.0.1:9093)"
                    .to_owned()
            }
            StrRule::ListenerName => {
                "upper-case listener names ([A-Z][A-Z0-9_]*, e.g. CONTROLLER)".to_owned()
            }
            StrRule::QuorumVoter => "id@host:port (e.g. 1@127.0.0.1:19093)".to_owned(),
            StrRule::ThrottledReplica => "`*` or partitionId:brokerId entries".to_owned(),
        }
    }
}

/// A broker key that supplies a topic key's broker-wide default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synonym {
    /// The broker key.
    pub key: &'static str,
    /// Multiply the broker value by this to get the topic value (e.g. 3600000
    /// for `log.retention.hours` → `retention.ms`). When it is not 1, a
    /// negative broker value means "unlimited" and maps to -1, as in Kafka.
    pub scale: i64,
}

/// One config key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyDef {
    /// Kafka's name (or brook's, for brook-only keys).
    pub name: &'static str,
    /// Type and valid range.
    pub kind: Kind,
    /// Default in Kafka's string form; `None` means unset (null).
    pub default: Option<&'static str>,
    /// Broker, topic or both.
    pub scope: Scope,
    /// For topic keys: broker keys that give the default, first set wins.
    pub synonyms: &'static [Synonym],
    /// One paragraph of documentation.
    pub doc: &'static str,
}

/// Every key, broker keys first. Order is documentation order only.
pub fn all() -> impl Iterator<Item = &'static KeyDef> {
    broker_keys::KEYS.iter().chain(topic_keys::KEYS.iter())
}

/// Looks a key up by its exact name.
pub fn lookup(name: &str) -> Option<&'static KeyDef> {
    all().find(|k| k.name == name)
}

/// Looks a broker-scope key up.
pub fn broker_key(name: &str) -> Option<&'static KeyDef> {
    lookup(name).filter(|k| k.scope.is_broker())
}

/// Looks a topic-scope key up.
pub fn topic_key(name: &str) -> Option<&'static KeyDef> {
    lookup(name).filter(|k| k.scope.is_topic())
}

pub(crate) const I16MAX: i64 = i16::MAX as i64;
pub(crate) const I32MAX: i64 = i32::MAX as i64;
pub(crate) const I64MAX: i64 = i64::MAX;

pub(crate) const fn int(min: i64) -> Kind {
    Kind::Int { min, max: I32MAX }
}

pub(crate) const fn long(min: i64) -> Kind {
    Kind::Long { min, max: I64MAX }
}

pub(crate) const fn syn(key: &'static str, scale: i64) -> Synonym {
    Synonym { key, scale }
}

pub(crate) const fn broker(
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    doc: &'static str,
) -> KeyDef {
    KeyDef {
        name,
        kind,
        default,
        scope: Scope::Broker,
        synonyms: &[],
        doc,
    }
}

pub(crate) const fn topic(
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    synonyms: &'static [Synonym],
    doc: &'static str,
) -> KeyDef {
    KeyDef {
        name,
        kind,
        default,
        scope: Scope::Topic,
        synonyms,
        doc,
    }
}

/// A key with the same name at both levels; `synonyms` must be the key itself.
pub(crate) const fn both(
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    synonyms: &'static [Synonym],
    doc: &'static str,
) -> KeyDef {
    KeyDef {
        name,
        kind,
        default,
        scope: Scope::Both,
        synonyms,
        doc,
    }
}
