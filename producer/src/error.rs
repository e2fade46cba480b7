//! [`Error`]: everything the client layer and the producer report.

use brook_protocol::error::ErrorCode;

/// Errors of the client layer and the producer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
    /// No bootstrap server could be reached.
    #[error("cannot reach any bootstrap server ({servers}): {last}")]
    NoBroker {
        /// The bootstrap list.
        servers: String,
        /// The last connection error.
        last: String,
    },
    /// Connecting to a broker failed.
    #[error("cannot connect to broker at {addr}: {reason}")]
    Connect {
        /// host:port.
        addr: String,
        /// The OS or timeout error.
        reason: String,
    },
    /// The connection broke while requests were in flight; whether they took
    /// effect is unknown.
    #[error("connection to {addr} lost: {reason}")]
    Disconnected {
        /// host:port.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The broker's bytes did not decode.
    #[error("malformed response from {addr}: {reason}")]
    Protocol {
        /// host:port.
        addr: String,
        /// Decode error.
        reason: String,
    },
    /// The broker supports no version of an API this client needs.
    #[error("broker at {addr} does not support {api}")]
    UnsupportedApi {
        /// host:port.
        addr: String,
        /// API name.
        api: &'static str,
    },
    /// A Kafka error code from the broker.
    #[error("broker error {} ({}){}", .code.name(), .code.code(), context_suffix(.context))]
    Broker {
        /// The code.
        code: ErrorCode,
        /// What was being done (topic-partition, API), may be empty.
        context: String,
    },
    /// The topic does not exist (and was not auto-created).
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// The partition does not exist (after waiting for metadata up to `max.block.ms`).
    #[error("topic {topic} has no partition {partition} ({count} partitions)")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Requested partition.
        partition: i32,
        /// Partitions the topic has.
        count: usize,
    },
    /// A deadline passed (`max.block.ms`, `delivery.timeout.ms`, `request.timeout.ms`).
    #[error("timed out: {0}")]
    Timeout(String),
    /// A record larger than `max.request.size` or `buffer.memory`.
    #[error("record of {size} bytes exceeds {limit} ({key})")]
    RecordTooLarge {
        /// Record size estimate.
        size: usize,
        /// The limit.
        limit: usize,
        /// The config key of the limit.
        key: &'static str,
    },
    /// Encoding a record or batch failed.
    #[error("cannot encode record: {0}")]
    Encode(String),
    /// The producer was closed.
    #[error("producer is closed")]
    Closed,
}

fn context_suffix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" for {context}")
    }
}

impl Error {
    /// A broker error code with context.
    pub fn broker(code: ErrorCode, context: impl Into<String>) -> Self {
        Error::Broker {
            code,
            context: context.into(),
        }
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Broker { code, .. } => code.is_retriable(),
            Error::Disconnected { .. } | Error::Connect { .. } | Error::NoBroker { .. } => true,
            Error::Timeout(_) => true,
            Error::Config(_)
            | Error::Protocol { .. }
            | Error::UnsupportedApi { .. }
            | Error::UnknownTopic(_)
            | Error::UnknownPartition { .. }
            | Error::RecordTooLarge { .. }
            | Error::Encode(_)
            | Error::Closed => false,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
