//! The producer and consumer key tables: the Java client's names and defaults.
//!
//! brook-specific deviations say so in their doc: `bootstrap.servers` defaults
//! to brook's default listener instead of being required.

use crate::registry::{KeyDef, Kind, Scope, StrRule};

const I32MAX: i64 = i32::MAX as i64;
const I64MAX: i64 = i64::MAX;
const fn int(min: i64) -> Kind {
    Kind::Int { min, max: I32MAX }
}
const fn long(min: i64) -> Kind {
    Kind::Long { min, max: I64MAX }
}

/// A client key. `scope` is not meaningful for client keys (they never appear
/// in [`crate::registry::all`]); it is set to `Broker` only because [`KeyDef`]
/// requires one and the parser ignores it.
const fn client(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    doc: &'static str,
) -> KeyDef {
    KeyDef {
        name,
        kind,
        default: Some(default),
        scope: Scope::Broker,
        synonyms: &[],
        doc,
    }
}

const BOOTSTRAP: Kind = Kind::List {
    item: StrRule::HostPort,
    min_len: 1,
};
const ACKS: &[&str] = &["all", "-1", "0", "1"];
const CODECS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];
const RESETS: &[&str] = &["earliest", "latest", "none"];
const ISOLATION: &[&str] = &["read_uncommitted", "read_committed"];
const ASSIGNORS: &[&str] = &[
    "range",
    "roundrobin",
    "cooperative-sticky",
    "org.apache.kafka.clients.consumer.RangeAssignor",
    "org.apache.kafka.clients.consumer.RoundRobinAssignor",
    "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
];

/// Every producer key.
pub static PRODUCER_KEYS: &[KeyDef] = &[
    client("bootstrap.servers", BOOTSTRAP, "127.0.0.1:9092", "host:port pairs used to discover the cluster. brook: defaults to its default listener (Java has no default)."),
    client("client.id", Kind::Str(StrRule::Any), "", "Sent with every request, for broker logs and quotas."),
    client("acks", Kind::Str(StrRule::OneOf(ACKS)), "all", "Acknowledgements required: 0 (none), 1 (leader), all/-1 (all in-sync replicas)."),
    client("enable.idempotence", Kind::Bool, "true", "Retries never duplicate or reorder records. Requires acks=all, retries > 0 and max.in.flight.requests.per.connection <= 5; when not set explicitly it is turned off if those conflict."),
    client("retries", int(0), "2147483647", "How often a failed batch is retried (within delivery.timeout.ms)."),
    client("retry.backoff.ms", long(0), "100", "Wait before retrying a failed request."),
    client("delivery.timeout.ms", int(0), "120000", "Upper bound on the time between send() and the delivery report, retries included."),
    client("request.timeout.ms", int(0), "30000", "How long to wait for a response before the connection is considered dead."),
    client("linger.ms", long(0), "5", "How long a batch waits for more records before it is sent."),
    client("batch.size", int(0), "16384", "Target batch size in bytes, per partition."),
    client("buffer.memory", long(0), "33554432", "Bytes of records the producer buffers before send() waits."),
    client("max.block.ms", long(0), "60000", "How long send() may wait for metadata or buffer memory."),
    client("max.request.size", int(0), "1048576", "Largest record (and request) the producer sends."),
    client("compression.type", Kind::Str(StrRule::OneOf(CODECS)), "none", "Batch compression codec."),
    client("max.in.flight.requests.per.connection", int(1), "5", "Unacknowledged batches per partition in flight at once."),
    client("metadata.max.age.ms", long(0), "300000", "Metadata is refreshed at least this often, so added partitions are seen."),
    client("partitioner.ignore.keys", Kind::Bool, "false", "Use the sticky partitioner even for keyed records."),
];

/// Every consumer key.
pub static CONSUMER_KEYS: &[KeyDef] = &[
    client("bootstrap.servers", BOOTSTRAP, "127.0.0.1:9092", "host:port pairs used to discover the cluster. brook: defaults to its default listener (Java has no default)."),
    client("client.id", Kind::Str(StrRule::Any), "", "Sent with every request, for broker logs and quotas."),
    client("group.id", Kind::Str(StrRule::Any), "", "Consumer group for committed offsets and subscriptions; empty: none."),
    client("group.instance.id", Kind::Str(StrRule::Any), "", "Static membership: a restart within session.timeout.ms keeps the assignment without a rebalance; empty: dynamic member."),
    client("enable.auto.commit", Kind::Bool, "true", "Commit consumed positions every auto.commit.interval.ms (needs group.id)."),
    client("auto.commit.interval.ms", int(0), "5000", "Interval between automatic commits."),
    client("auto.offset.reset", Kind::Str(StrRule::OneOf(RESETS)), "latest", "Where to start without a committed offset, or when the position is out of range: earliest, latest, or none (error)."),
    client("fetch.min.bytes", int(0), "1", "The broker waits for this many bytes before answering a fetch."),
    client("fetch.max.bytes", int(0), "52428800", "Most bytes one fetch response may carry."),
    client("fetch.max.wait.ms", int(0), "500", "Longest the broker waits for fetch.min.bytes."),
    client("max.partition.fetch.bytes", int(1), "1048576", "Most bytes per partition in one fetch."),
    client("max.poll.records", int(1), "500", "Most records one poll() returns."),
    client("isolation.level", Kind::Str(StrRule::OneOf(ISOLATION)), "read_uncommitted", "read_committed hides records of open and aborted transactions."),
    client("request.timeout.ms", int(0), "30000", "How long to wait for a response before the connection is considered dead."),
    client("retry.backoff.ms", long(0), "100", "Wait before retrying a failed request."),
    client("metadata.max.age.ms", long(0), "300000", "Metadata is refreshed at least this often."),
    client("session.timeout.ms", int(1), "45000", "Group membership: the member is removed after this long without heartbeats."),
    client("heartbeat.interval.ms", int(1), "3000", "Group membership: heartbeat interval."),
    client("max.poll.interval.ms", int(1), "300000", "Group membership: longest time between polls before the member leaves the group."),
    client("partition.assignment.strategy", Kind::List { item: StrRule::OneOf(ASSIGNORS), min_len: 1 }, "range,cooperative-sticky", "Assignors offered to the group, in preference order."),
    client("check.crcs", Kind::Bool, "true", "Verify the CRC32C of fetched batches."),
];
