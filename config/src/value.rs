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

/// The listener name of a `host:port` (or `PLAINTEXT://host:port`) listener.
pub const PLAINTEXT_LISTENER: &str = "PLAINTEXT";

/// Security protocols that are also Kafka's default listener names. brook
/// speaks plaintext only, so listeners with these names are refused rather
/// than silently served without TLS or SASL.
const SECURE_PROTOCOLS: &[&str] = &["SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// A listener address: `host:port`, optionally with a Kafka listener name
/// (`CONTROLLER://127.0.0.1:9093`).
///
/// Canonical form: `PLAINTEXT://h:p` and `h:p` are both the PLAINTEXT listener
/// and are stored with `name: None` and displayed as `h:p`; any other name is
/// kept and displayed as `NAME://h:p`. Names are `[A-Z][A-Z0-9_]*`; `SSL`,
/// `SASL_PLAINTEXT` and `SASL_SSL` are refused (brook speaks plaintext only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP; IPv6 keeps its brackets (`[::1]`) so that
    /// [`HostPort::address`] can be passed to `ToSocketAddrs`.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Listener name; `None` is the PLAINTEXT listener (see
    /// [`HostPort::listener_name`]). Never `Some("PLAINTEXT")` when parsed.
    pub name: Option<String>,
}

impl HostPort {
    /// Creates an address of the PLAINTEXT listener (`name: None`).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostPort {
            host: host.into(),
            port,
            name: None,
        }
    }

    /// Creates an address of the listener `name`; `"PLAINTEXT"` is stored as
    /// `None` (the canonical form). The name is not checked here.
    pub fn named(name: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        let name = name.into();
        HostPort {
            host: host.into(),
            port,
            name: (name != PLAINTEXT_LISTENER).then_some(name),
        }
    }

    /// The listener name: `name`, or `"PLAINTEXT"` when it is `None`.
    pub fn listener_name(&self) -> &str {
        self.name.as_deref().unwrap_or(PLAINTEXT_LISTENER)
    }

    /// `host:port` without the listener name, for `ToSocketAddrs`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for HostPort {
    /// `host:port` for the PLAINTEXT listener, `NAME://host:port` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name}://{}:{}", self.host, self.port),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl FromStr for HostPort {
    type Err = String;

    /// Parses `host:port` or `NAME://host:port`; `PLAINTEXT://` (any case, as
    /// brook always accepted) gives `name: None`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (name, rest) = match s.split_once("://") {
            Some((scheme, _)) if scheme.eq_ignore_ascii_case(PLAINTEXT_LISTENER) => {
                (None, &s[scheme.len() + 3..])
            }
            Some((scheme, _))
                if SECURE_PROTOCOLS
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(scheme)) =>
            {
                return Err(format!(
                    "security protocol {scheme} is not supported; use PLAINTEXT, another listener name or host:port (brook speaks plaintext only)"
                ))
            }
            Some((scheme, rest)) => {
                check_listener_name(scheme)?;
                (Some(scheme.to_owned()), rest)
            }
            None => (None, s),
        };
        let (host, port) = parse_host_port(rest)?;
        Ok(HostPort { host, port, name })
    }
}

/// Checks a Kafka listener name: `[A-Z][A-Z0-9_]*`, and not one of the
/// security protocols brook does not speak.
///
/// # Errors
/// A sentence saying what is wrong and how to write it.
pub(crate) fn check_listener_name(name: &str) -> Result<(), String> {
    let valid = |n: &str| {
        let mut chars = n.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    if name.is_empty() {
        return Err("empty listener name before `://`".to_owned());
    }
    if valid(name) {
        if SECURE_PROTOCOLS.contains(&name) {
            return Err(format!(
                "security protocol {name} is not supported (brook speaks plaintext only); name the listener otherwise"
            ));
        }
        return Ok(());
    }
    let upper = name.to_ascii_uppercase();
    if valid(&upper) {
        return Err(format!(
            "listener name `{name}` must be upper-case: write `{upper}`"
        ));
    }
    Err(format!(
        "listener name `{name}` is malformed: expected an upper-case letter followed by upper-case letters, digits or `_` ([A-Z][A-Z0-9_]*, e.g. CONTROLLER)"
    ))
}

/// Parses `host:port` (no scheme).
fn parse_host_port(rest: &str) -> Result<(String, u16), String> {
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
    Ok((host.to_owned(), port))
}

/// One entry of `controller.quorum.voters`: `id@host:port` (Kafka's form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuorumVoter {
    /// The voter's `node.id` (0 or more).
    pub id: i32,
    /// Host of the voter's controller listener; IPv6 keeps its brackets.
    pub host: String,
    /// Port of the voter's controller listener.
    pub port: u16,
}

impl QuorumVoter {
    /// Creates a voter entry.
    pub fn new(id: i32, host: impl Into<String>, port: u16) -> Self {
        QuorumVoter {
            id,
            host: host.into(),
            port,
        }
    }

    /// `host:port` without the id, for `ToSocketAddrs`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for QuorumVoter {
    /// `id@host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.id, self.host, self.port)
    }
}

impl FromStr for QuorumVoter {
    type Err = String;

    /// Parses `id@host:port`; errors quote the entry.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (id, addr) = s.split_once('@').ok_or_else(|| {
            format!("{s:?} lacks a node id (expected id@host:port, e.g. 1@127.0.0.1:19093)")
        })?;
        let id = id.trim();
        let id: i64 = id
            .parse()
            .map_err(|_| format!("{s:?}: node id `{id}` is not a number"))?;
        if id < 0 {
            return Err(format!(
                "{s:?}: node id {id} is negative (node ids are 0 or more)"
            ));
        }
        let id = i32::try_from(id)
            .map_err(|_| format!("{s:?}: node id {id} is larger than 2147483647"))?;
        let addr = addr.trim();
        if addr.is_empty() || addr.ends_with(']') || !addr.contains(':') {
            return Err(format!(
                "{s:?} lacks a port (expected id@host:port, e.g. {id}@127.0.0.1:19093)"
            ));
        }
        let (host, port) = parse_host_port(addr).map_err(|why| format!("{s:?}: {why}"))?;
        Ok(QuorumVoter { id, host, port })
    }
}

/// One role of `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessRole {
    /// `broker`: serves clients (produce, fetch, groups, …).
    Broker,
    /// `controller`: votes in the Raft controller quorum.
    Controller,
}

impl ProcessRole {
    /// Kafka's config name (`broker`, `controller`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessRole::Broker => "broker",
            ProcessRole::Controller => "controller",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "broker" => Some(ProcessRole::Broker),
            "controller" => Some(ProcessRole::Controller),
            _ => None,
        }
    }
}

impl fmt::Display for ProcessRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

impl ListItem for QuorumVoter {
    fn from_item(s: &str) -> Option<Self> {
        s.parse().ok()
    }
    fn to_item(&self) -> String {
        self.to_string()
    }
}

impl ListItem for ProcessRole {
    fn from_item(s: &str) -> Option<Self> {
        ProcessRole::parse(s)
    }
    fn to_item(&self) -> String {
        self.as_str().to_owned()
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
    fn named_listeners_parse_and_display_canonically() {
        let named = "CONTROLLER://127.0.0.1:19093".parse::<HostPort>();
        assert_eq!(named, Ok(HostPort::named("CONTROLLER", "127.0.0.1", 19093)));
        let named = named.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(named.name.as_deref(), Some("CONTROLLER"));
        assert_eq!(named.listener_name(), "CONTROLLER");
        assert_eq!(named.to_string(), "CONTROLLER://127.0.0.1:19093");
        assert_eq!(named.address(), "127.0.0.1:19093");
        for plain in ["PLAINTEXT://h:1", "plaintext://h:1", "h:1", " h:1 "] {
            let hp = plain.parse::<HostPort>();
            assert_eq!(hp, Ok(HostPort::new("h", 1)), "{plain}");
            let hp = hp.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (hp.listener_name(), hp.to_string()),
                ("PLAINTEXT", "h:1".to_owned())
            );
        }
        assert_eq!(HostPort::named("PLAINTEXT", "h", 1), HostPort::new("h", 1));
        assert_eq!(
            "REPLICATION_2://[::1]:9094"
                .parse::<HostPort>()
                .map(|h| h.to_string()),
            Ok("REPLICATION_2://[::1]:9094".to_owned())
        );
    }

    #[test]
    fn bad_listener_names_say_why() {
        let err = |s: &str| match s.parse::<HostPort>() {
            Ok(hp) => panic!("{s} parsed as {hp:?}"),
            Err(e) => e,
        };
        let e = err("controller://h:1");
        assert!(
            e.contains("upper-case") && e.contains("`CONTROLLER`"),
            "{e}"
        );
        let e = err("MY-LISTENER://h:1");
        assert!(
            e.contains("malformed") && e.contains("[A-Z][A-Z0-9_]*"),
            "{e}"
        );
        assert!(err("1ST://h:1").contains("malformed"));
        assert!(err("_X://h:1").contains("malformed"));
        assert!(err("://h:1").contains("empty listener name"));
        for secure in ["SSL://h:1", "SASL_SSL://h:1", "sasl_plaintext://h:1"] {
            assert!(err(secure).contains("not supported"), "{secure}");
        }
        assert!(err("CONTROLLER://h").contains("missing `:port`"));
        assert_eq!(check_listener_name("CONTROLLER_2"), Ok(()));
        assert!(check_listener_name("SSL").is_err());
    }

    #[test]
    fn quorum_voters_parse_and_display() {
        assert_eq!(
            "1@127.0.0.1:19093".parse::<QuorumVoter>(),
            Ok(QuorumVoter::new(1, "127.0.0.1", 19093))
        );
        let v = " 2 @ [::1]:9093 ".parse::<QuorumVoter>();
        assert_eq!(v, Ok(QuorumVoter::new(2, "[::1]", 9093)));
        let v = v.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.to_string(), "2@[::1]:9093");
        assert_eq!(v.address(), "[::1]:9093");
        assert_eq!(
            "0@h:0".parse::<QuorumVoter>().map(|v| v.to_string()),
            Ok("0@h:0".to_owned())
        );
    }

    #[test]
    fn bad_quorum_voters_name_the_entry() {
        let err = |s: &str| match s.parse::<QuorumVoter>() {
            Ok(v) => panic!("{s} parsed as {v:?}"),
            Err(e) => e,
        };
        assert!(err("2@host").starts_with("\"2@host\" lacks a port"));
        assert!(err("2@[::1]").contains("lacks a port"));
        assert!(err("2@").contains("lacks a port"));
        let e = err("x@h:1");
        assert!(
            e.contains("\"x@h:1\"") && e.contains("`x` is not a number"),
            "{e}"
        );
        let e = err("-1@h:1");
        assert!(e.contains("\"-1@h:1\"") && e.contains("negative"), "{e}");
        assert!(err("9999999999@h:1").contains("larger than"));
        assert!(err("h:1").contains("lacks a node id"));
        assert!(err("1@h:70000").contains("not a number in 0..=65535"));
        assert!(err("1@::1:9093").contains("bracketed"));
    }

    #[test]
    fn process_roles_round_trip() {
        let roles = vec![ProcessRole::Controller, ProcessRole::Broker];
        let v = roles.to_value();
        assert_eq!(
            v,
            Value::List(vec!["controller".to_owned(), "broker".to_owned()])
        );
        assert_eq!(Vec::<ProcessRole>::from_value(&v), Some(roles));
        assert_eq!(ProcessRole::Broker.to_string(), "broker");
        assert_eq!(ProcessRole::from_item("Broker"), None);
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
