//! The one error type of this crate, and where a rejected setting came from.
//!
//! Every variant that concerns a setting names the key, the value as the user
//! wrote it, what would have been accepted, and the [`Origin`] (file, TOML text,
//! environment variable or topic override), so an operator can fix the input
//! without reading code.

use std::fmt;
use std::path::PathBuf;

/// Where a setting came from; shown in every error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A TOML config file at this path.
    File(PathBuf),
    /// TOML text given directly (e.g. [`crate::BrokerConfig::from_toml_str`]).
    TomlText,
    /// An environment variable with this name (e.g. `BROOK_LOG_DIRS`).
    Env(String),
    /// A per-topic override (CreateTopics / AlterConfigs / `brook topic`).
    TopicOverride,
    /// A programmatic override through [`crate::BrokerConfig::set`].
    Override,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::TomlText => f.write_str("TOML config"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::TopicOverride => f.write_str("topic config override"),
            Origin::Override => f.write_str("config override"),
        }
    }
}

/// Everything that can go wrong while loading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The key is not a config key of this scope.
    #[error("{origin}: unknown {scope} config key `{key}`{hint}")]
    UnknownKey {
        /// The key as given (dotted form).
        key: String,
        /// `"broker"` or `"topic"`.
        scope: &'static str,
        /// Where it came from.
        origin: Origin,
        /// Empty, or a sentence starting with `"; "` (a "did you mean" or a
        /// broker/topic mix-up explanation).
        hint: String,
    },
    /// The value has the wrong type or is not one of the allowed choices.
    #[error("{origin}: invalid value {value} for `{key}`: expected {expected}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value as written by the user.
        value: String,
        /// What would have been accepted.
        expected: String,
        /// Where it came from.
        origin: Origin,
    },
    /// The value has the right type but lies outside the allowed range.
    #[error("{origin}: value {value} for `{key}` is out of range; allowed: {allowed}")]
    OutOfRange {
        /// The key.
        key: String,
        /// The value as written by the user.
        value: String,
        /// The allowed range, in Kafka's notation (`[1,...]`).
        allowed: String,
        /// Where it came from.
        origin: Origin,
    },
    /// The same key was given twice in one source, e.g. both as
    /// `log.dirs = …` and `"log.dirs" = …`.
    #[error("{origin}: `{key}` is set more than once (dotted, quoted and table forms name the same key)")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Where it came from.
        origin: Origin,
    },
    /// A `[views.NAME]` table has a name that is not allowed.
    #[error("{origin}: invalid view name `{name}` in `[views.…]`: {reason}; allowed: 1 to {max} characters from [a-zA-Z0-9._-], not `.` or `..` (quote names with dots: `[views.\"a.b\"]`)", max = crate::views::VIEW_NAME_MAX_LEN)]
    BadViewName {
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: String,
        /// Where it came from.
        origin: Origin,
    },
    /// A view table has a field that views do not have.
    #[error("{origin}: view `{view}`: unknown field `{field}`; allowed fields: {allowed}{hint}", allowed = crate::views::VIEW_FIELDS.join(", "))]
    UnknownViewField {
        /// The view's name.
        view: String,
        /// The field as written (dotted form).
        field: String,
        /// Empty, or a sentence starting with `"; "` (a "did you mean").
        hint: String,
        /// Where it came from.
        origin: Origin,
    },
    /// A view field has the wrong type or is not one of the allowed choices.
    #[error("{origin}: view `{view}`: invalid value {value} for `{field}`: expected {expected}")]
    InvalidViewField {
        /// The view's name.
        view: String,
        /// The field (canonical dotted form, e.g. `key.format`).
        field: &'static str,
        /// The value as written by the user.
        value: String,
        /// What would have been accepted.
        expected: String,
        /// Where it came from.
        origin: Origin,
    },
    /// A required view field is absent.
    #[error(
        "{origin}: view `{view}`: missing required field `{field}` (e.g. `{field} = \"orders\"`)"
    )]
    MissingViewField {
        /// The view's name.
        view: String,
        /// The missing field.
        field: &'static str,
        /// Where it came from.
        origin: Origin,
    },
    /// One view field is given in two spellings (e.g. `key.format` and `key_format`).
    #[error("{origin}: view `{view}`: `{field}` is set more than once (`key.format`, `key_format` and `[views.NAME.key]` `format` name the same field)")]
    DuplicateViewField {
        /// The view's name.
        view: String,
        /// The field (canonical dotted form).
        field: &'static str,
        /// Where it came from.
        origin: Origin,
    },
    /// A view setting given other than as a `[views.NAME]` table: an environment
    /// variable (`BROOK_VIEWS_…`), [`crate::BrokerConfig::set`], or one quoted
    /// TOML key such as `"views.orders.topic"`.
    #[error("{origin}: `{key}` looks like a materialized-view setting, but views can only be declared in the config file as `[views.NAME]` tables (e.g. `[views.orders_by_id]` with `topic = \"orders\"`); there is no environment-variable or single-key form")]
    ViewOutsideTable {
        /// The key as given (dotted form).
        key: String,
        /// Where it came from.
        origin: Origin,
    },
    /// Each value is valid alone but the combination is not.
    #[error("inconsistent configuration: {message}")]
    Inconsistent {
        /// Names the keys and values involved and what is required.
        message: String,
    },
    /// The TOML text does not parse.
    #[error("{origin}: TOML syntax error: {message}")]
    Syntax {
        /// Where it came from.
        origin: Origin,
        /// The TOML parser's message, including the position.
        message: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The key registry and a typed field disagree about a key's type. This is
    /// a bug in brook-config (the test suite checks every key), never a user error.
    #[error("internal error: registry entry for `{key}` does not match its typed field")]
    Internal {
        /// The key.
        key: String,
    },
}
