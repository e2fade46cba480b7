//! Typed config values: the dynamic [`Value`] the registry works with, the
//! domain types used in typed fields, and [`FieldValue`], the conversion between
//! the two.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Kafka's DescribeConfigs `ConfigType` (the numbers are wire values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// 0
    Unknown,
    /// 1
    Boolean,
    /// 2
    String,
    /// 3
    Int,
    /// 4
    Short,
    /// 5
    Long,
    /// 6
    Double,
    /// 7
    List,
    /// 8
    Class,
    /// 9
    Password,
}

impl ConfigType {
    /// The number DescribeConfigs puts on the wire.
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Unknown => 0,
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }

    /// Lower-case name, as in Kafka's docs (`long`, `list`, …).
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Unknown => "unknown",
            ConfigType::Boolean => "boolean",
            ConfigType::String => "string",
            ConfigType::Int => "int",
            ConfigType::Short => "short",
            ConfigType::Long => "long",
            ConfigType::Double => "double",
            ConfigType::List => "list",
            ConfigType::Class => "class",
            ConfigType::Password => "password",
        }
    }
}

/// A validated value of some key; its variant matches the key's
/// [`crate::registry::Kind`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Unset (a key whose default is null, e.g. `log.retention.ms`).
    Null,
    /// Boolean.
    Bool(bool),
    /// 16-bit integer.
    Short(i16),
    /// 32-bit integer.
    Int(i32),
    /// 64-bit integer.
    Long(i64),
    /// Float.
    Double(f64),
    /// String (also enums and host:port).
    Str(String),
    /// List of strings.
    List(Vec<String>),
}

impl Value {
    /// Kafka's string form (lists comma-joined), `None` for [`Value::Null`]; this
    /// is what DescribeConfigs returns.
    pub fn to_kafka_string(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Bool(b) => Some(b.to_string()),
            Value::Short(v) => Some(v.to_string()),
            Value::Int(v) => Some(v.to_string()),
            Value::Long(v) => Some(v.to_string()),
            Value::Double(v) => Some(v.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::List(items) => Some(items.join(",")),
        }
    }

    /// The value as an i64, for integers of any width.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Short(v) => Some(i64::from(*v)),
            Value::Int(v) => Some(i64::from(*v)),
            Value::Long(v) => Some(*v),
            _ => None,
        }
    }
}

/// A `host:port` listener address (without scheme).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP; IPv6 keeps its brackets (`[::1]`) so that
    /// `to_string()` can be passed to `ToSocketAddrs`.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl HostPort {
    /// Creates an address.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostPort {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl FromStr for HostPort {
    type Err = String;

    /// Parses `host:port`, accepting Kafka's `PLAINTEXT://host:port` form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("PLAINTEXT") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "security protocol {scheme} is not supported; use PLAINTEXT or host:port"
                ))
            }
            None => s,
        };
        let (host, port) = rest.rsplit_once(':').ok_or("missing `:port`")?;
        if host.is_empty() {
            return Err("empty host (use 0.0.0.0 to listen on all interfaces)".to_owned());
        }
        if host.chars().any(char::is_whitespace) {
            return Err("host contains whitespace".to_owned());
        }
        // An unbracketed IPv6 address would be ambiguous with the port separator.
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err("IPv6 hosts must be bracketed, e.g. [::1]:9092".to_owned());
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("port `{port}` is not a number in 0..=65535"))?;
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

/// `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionType {
    /// Store batches as the producer sent them.
    Producer,
    /// Store uncompressed.
    Uncompressed,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
}

impl CompressionType {
    /// Kafka's config name.
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "producer" => CompressionType::Producer,
            "uncompressed" => CompressionType::Uncompressed,
            "gzip" => CompressionType::Gzip,
            "snappy" => CompressionType::Snappy,
            "lz4" => CompressionType::Lz4,
            "zstd" => CompressionType::Zstd,
            _ => return None,
        })
    }
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// The producer's timestamp is kept.
    CreateTime,
    /// The broker stamps its append time.
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's config name.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

/// `cleanup.policy`: a set of delete and/or compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CleanupPolicy {
    /// Time/size-based deletion of old segments.
    pub delete: bool,
    /// Keep the latest record per key.
    pub compact: bool,
}

impl CleanupPolicy {
    /// `delete` only (Kafka's default).
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    /// `compact` only.
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };
}

/// Conversion between a typed field and the registry's [`Value`].
///
/// `from_value` returns `None` when the variant does not fit the field type;
/// since values are validated against the registry first, that only happens if
/// the registry and the field disagree, which the tests rule out for every key.
pub trait FieldValue: Sized {
    /// Converts a validated value into the field type.
    fn from_value(v: &Value) -> Option<Self>;
    /// Converts the field back (the inverse of `from_value` on valid values).
    fn to_value(&self) -> Value;
}

impl FieldValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl FieldValue for i16 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Short(x) => Some(*x),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Short(*self)
    }
}

impl FieldValue for i32 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(x) => Some(*x),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}

impl FieldValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Long(x) => Some(*x),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Long(*self)
    }
}

/// For Kafka `int` keys whose range starts at 0 or above.
impl FieldValue for u32 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(x) => u32::try_from(*x).ok(),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        // Saturate: a u32 field set by hand above i32::MAX is out of Kafka's range anyway.
        Value::Int(i32::try_from(*self).unwrap_or(i32::MAX))
    }
}

/// For Kafka `int` sizes that brook handles as u64 (e.g. `segment.bytes`).
impl FieldValue for u64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(x) => u64::try_from(*x).ok(),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Int(i32::try_from(*self).unwrap_or(i32::MAX))
    }
}

impl FieldValue for f64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Double(x) => Some(*x),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Double(*self)
    }
}

impl FieldValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Str(self.clone())
    }
}

impl FieldValue for HostPort {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Str(s) => s.parse().ok(),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Str(self.to_string())
    }
}

impl FieldValue for CompressionType {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Str(s) => CompressionType::parse(s),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Str(self.as_str().to_owned())
    }
}

impl FieldValue for TimestampType {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Str(s) if s == "CreateTime" => Some(TimestampType::CreateTime),
            Value::Str(s) if s == "LogAppendTime" => Some(TimestampType::LogAppendTime),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Str(self.as_str().to_owned())
    }
}

impl FieldValue for CleanupPolicy {
    fn from_value(v: &Value) -> Option<Self> {
        let Value::List(items) = v else { return None };
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for item in items {
            match item.as_str() {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                _ => return None,
            }
        }
        Some(policy)
    }
    fn to_value(&self) -> Value {
        let mut items = Vec::new();
        if self.compact {
            items.push("compact".to_owned());
        }
        if self.delete {
            items.push("delete".to_owned());
        }
        Value::List(items)
    }
}

/// List items of typed list fields.
pub trait ListItem: Sized {
    /// Parses one validated item.
    fn from_item(s: &str) -> Option<Self>;
    /// Renders one item.
    fn to_item(&self) -> String;
}

impl ListItem for String {
    fn from_item(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
    fn to_item(&self) -> String {
        self.clone()
    }
}

impl ListItem for PathBuf {
    fn from_item(s: &str) -> Option<Self> {
        Some(PathBuf::from(s))
    }
    fn to_item(&self) -> String {
        self.to_string_lossy().into_owned()
    }
}

impl ListItem for HostPort {
    fn from_item(s: &str) -> Option<Self> {
        s.parse().ok()
    }
    fn to_item(&self) -> String {
        self.to_string()
    }
}

impl<T: ListItem> FieldValue for Vec<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::List(items) => items.iter().map(|s| T::from_item(s)).collect(),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(ListItem::to_item).collect())
    }
}

/// Optional fields: `None` is [`Value::Null`].
impl<T: FieldValue> FieldValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
    fn to_value(&self) -> Value {
        match self {
            None => Value::Null,
            Some(v) => v.to_value(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!("h:1".parse::<HostPort>(), Ok(HostPort::new("h", 1)));
        assert_eq!(
            "PLAINTEXT://0.0.0.0:9092".parse::<HostPort>(),
            Ok(HostPort::new("0.0.0.0", 9092))
        );
        assert_eq!(
            "[::1]:9092".parse::<HostPort>().map(|h| h.to_string()),
            Ok("[::1]:9092".to_owned())
        );
        assert!(
            "::1:9092".parse::<HostPort>().is_err(),
            "unbracketed IPv6 is ambiguous"
        );
        assert!(":9092".parse::<HostPort>().is_err());
        assert!("h:70000".parse::<HostPort>().is_err());
        assert!("SASL_SSL://h:1".parse::<HostPort>().is_err());
    }

    #[test]
    fn cleanup_policy_round_trips() {
        for p in [
            CleanupPolicy::DELETE,
            CleanupPolicy::COMPACT,
            CleanupPolicy {
                delete: true,
                compact: true,
            },
        ] {
            assert_eq!(CleanupPolicy::from_value(&p.to_value()), Some(p));
        }
        assert_eq!(
            CleanupPolicy::from_value(&Value::List(vec!["nope".to_owned()])),
            None
        );
    }

    #[test]
    fn kafka_strings() {
        assert_eq!(
            Value::List(vec!["a".into(), "b".into()])
                .to_kafka_string()
                .as_deref(),
            Some("a,b")
        );
        assert_eq!(Value::Double(0.5).to_kafka_string().as_deref(), Some("0.5"));
        assert_eq!(Value::Null.to_kafka_string(), None);
    }
}
