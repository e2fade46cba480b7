//! Topic-scope keys: every topic config of Kafka 3.x/4.x, with Kafka's defaults
//! and the broker keys that provide their broker-wide default.
//!
//! brook's one deliberate difference is durability: `flush.messages` and
//! `flush.ms` keep Kafka's names and defaults, but when neither is set (at topic
//! or broker level) brook fsyncs before acknowledging acks=all.

use super::{int, long, syn, topic, KeyDef, Kind, StrRule};

const POLICIES: &[&str] = &["compact", "delete"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const LONG_MAX: Option<&str> = Some("9223372036854775807");
const THROTTLED: Kind = Kind::List {
    item: StrRule::ThrottledReplica,
    min_len: 0,
};

pub(super) const KEYS: &[KeyDef] = &[
    topic("cleanup.policy", Kind::List { item: StrRule::OneOf(POLICIES), min_len: 1 }, Some("delete"), &[syn("log.cleanup.policy", 1)], "`delete` removes whole old segments past `retention.ms`/`retention.bytes`; `compact` keeps the latest record per key; both may be given."),
    topic("delete.retention.ms", long(0), Some("86400000"), &[syn("log.cleaner.delete.retention.ms", 1)], "How long tombstones stay in a compacted topic."),
    topic("file.delete.delay.ms", long(0), Some("60000"), &[syn("log.segment.delete.delay.ms", 1)], "Delay between unlinking a segment from the log and deleting its files."),
    topic("flush.messages", long(1), LONG_MAX, &[syn("log.flush.interval.messages", 1)], "Fsync after this many messages. brook: while neither this nor `flush.ms` is set (here or at broker level) the log is fsynced before acks=all is acknowledged; setting either one explicitly, even to the default, switches to Kafka's periodic flushing."),
    topic("flush.ms", long(0), LONG_MAX, &[syn("log.flush.interval.ms", 1)], "Fsync when the oldest unflushed message is this old. brook: see `flush.messages`; setting either one explicitly relaxes the default fsync-before-ack durability to periodic flushing."),
    topic("follower.replication.throttled.replicas", THROTTLED, Some(""), &[], "Replicas throttled on the follower side during reassignment: `*` or partitionId:brokerId entries."),
    topic("leader.replication.throttled.replicas", THROTTLED, Some(""), &[], "Replicas throttled on the leader side during reassignment: `*` or partitionId:brokerId entries."),
    topic("index.interval.bytes", int(0), Some("4096"), &[syn("log.index.interval.bytes", 1)], "Bytes of log between two offset-index entries."),
    topic("local.retention.bytes", long(-2), Some("-2"), &[syn("log.local.retention.bytes", 1)], "Tiered storage: local size limit; -2: use `retention.bytes`. Accepted, not implemented."),
    topic("local.retention.ms", long(-2), Some("-2"), &[syn("log.local.retention.ms", 1)], "Tiered storage: local time limit; -2: use `retention.ms`. Accepted, not implemented."),
    topic("max.compaction.lag.ms", long(1), LONG_MAX, &[syn("log.cleaner.max.compaction.lag.ms", 1)], "Longest a record may stay uncompacted."),
    topic("max.message.bytes", int(0), Some("1048588"), &[syn("message.max.bytes", 1)], "Largest record batch (after compression) accepted for this topic."),
    topic("message.downconversion.enable", Kind::Bool, Some("true"), &[syn("log.message.downconversion.enable", 1)], "Kafka 3.x; accepted and ignored: brook never down-converts."),
    topic("message.timestamp.after.max.ms", long(0), Some("3600000"), &[syn("log.message.timestamp.after.max.ms", 1)], "With CreateTime, reject batches whose timestamp is further than this in the future."),
    topic("message.timestamp.before.max.ms", long(0), LONG_MAX, &[syn("log.message.timestamp.before.max.ms", 1)], "With CreateTime, reject batches whose timestamp is further than this in the past."),
    topic("message.timestamp.type", Kind::Str(StrRule::OneOf(TIMESTAMP_TYPES)), Some("CreateTime"), &[syn("log.message.timestamp.type", 1)], "Whether record timestamps are the producer's (`CreateTime`) or the broker's append time (`LogAppendTime`)."),
    topic("min.cleanable.dirty.ratio", Kind::Double { min: 0.0, max: 1.0 }, Some("0.5"), &[syn("log.cleaner.min.cleanable.ratio", 1)], "Compact when the dirty part is at least this fraction of the log."),
    topic("min.compaction.lag.ms", long(0), Some("0"), &[syn("log.cleaner.min.compaction.lag.ms", 1)], "Shortest time a record stays uncompacted."),
    topic("preallocate", Kind::Bool, Some("false"), &[syn("log.preallocate", 1)], "Accepted, and needs no setting: the active segment's file is always kept 64 KiB (sparsely, no disk blocks) ahead of its data, so a small append's fsync leaves the inode alone; trimmed on roll and close."),
    topic("remote.storage.enable", Kind::Bool, Some("false"), &[], "Tiered storage; accepted, not implemented (must stay false)."),
    topic("remote.log.copy.disable", Kind::Bool, Some("false"), &[], "Tiered storage (Kafka 3.9+); accepted, not implemented."),
    topic("remote.log.delete.on.disable", Kind::Bool, Some("false"), &[], "Tiered storage (Kafka 3.9+); accepted, not implemented."),
    topic("retention.bytes", long(-1), Some("-1"), &[syn("log.retention.bytes", 1)], "Delete old segments while the partition is larger than this. -1: unlimited."),
    topic("retention.ms", long(-1), Some("604800000"), &[syn("log.retention.ms", 1), syn("log.retention.minutes", 60_000), syn("log.retention.hours", 3_600_000)], "Delete segments whose newest record is older than this. -1: unlimited."),
    topic("segment.bytes", int(14), Some("1073741824"), &[syn("log.segment.bytes", 1)], "Segment file size at which the log rolls."),
    topic("segment.index.bytes", int(4), Some("10485760"), &[syn("log.index.size.max.bytes", 1)], "Preallocated size of each index file."),
    topic("segment.jitter.ms", long(0), Some("0"), &[syn("log.roll.jitter.ms", 1), syn("log.roll.jitter.hours", 3_600_000)], "Random jitter subtracted from `segment.ms` so segments of many partitions do not roll at once."),
    topic("segment.ms", long(1), Some("604800000"), &[syn("log.roll.ms", 1), syn("log.roll.hours", 3_600_000)], "Roll the active segment this long after its first record, even if not full."),
];
