//! Broker-scope keys (and the keys that share one name at broker and topic level).

use super::{both, broker, int, long, syn, KeyDef, Kind, StrRule, I16MAX, I32MAX};

const POLICIES: &[&str] = &["compact", "delete"];
const COMPRESSION: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const ROLES: &[&str] = &["broker", "controller"];
const LONG_MAX: Option<&str> = Some("9223372036854775807");

pub(super) const KEYS: &[KeyDef] = &[
    // --- identity and listeners ---
    broker("node.id", int(0), Some("1"), "This node's id, unique in the cluster. Kafka's default is -1 (must be set); brook defaults to 1 so that `brook serve` with no config runs a single-node cluster."),
    broker("process.roles", Kind::List { item: StrRule::OneOf(ROLES), min_len: 1 }, Some("broker,controller"), "Roles of this node, each at most once: `broker` (serves clients), `controller` (votes in the Raft controller quorum) or both. Kafka has no default (KRaft mode requires it); brook defaults to `broker,controller`, a single combined node, so that `brook serve` with no config runs a one-node cluster. A broker-only node needs `controller.quorum.voters`; a controller-only node needs a controller listener in `listeners`."),
    broker("cluster.id", Kind::Str(StrRule::Any), None, "Cluster id. Unset: generated on first start and stored in `meta.properties`; set: must match `meta.properties` of every log dir."),
    broker("broker.rack", Kind::Str(StrRule::Any), None, "Rack of this broker, used for rack-aware replica placement. Unset: no rack."),
    broker("log.dirs", Kind::List { item: StrRule::Any, min_len: 1 }, Some("./data"), "Directories holding partition logs; partitions are spread over them."),
    broker("listeners", Kind::List { item: StrRule::Listener, min_len: 1 }, Some("127.0.0.1:9092"), "Kafka-protocol listeners, each `host:port` or `NAME://host:port` (Kafka's form, e.g. `PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093`). `host:port` and `PLAINTEXT://host:port` are the same listener, PLAINTEXT; other names are upper-case (`[A-Z][A-Z0-9_]*`). Listeners named in `controller.listener.names` carry controller-quorum traffic, the others serve clients. Every listener speaks plaintext: `SSL`, `SASL_PLAINTEXT` and `SASL_SSL` are refused. No two listeners may share a name or a port (port 0, any free port, excepted)."),
    broker("advertised.listeners", Kind::List { item: StrRule::Listener, min_len: 1 }, None, "Addresses given to clients in Metadata responses, in the form of `listeners`; each names a listener of `listeners` (at most once), and controller listeners (`controller.listener.names`) may not be advertised. Unset: the client (non-controller) listeners of `listeners`."),
    broker("controller.listener.names", Kind::List { item: StrRule::ListenerName, min_len: 1 }, Some("CONTROLLER"), "Names of the listeners that carry controller-quorum traffic (Raft between controllers, broker registration and heartbeats); listeners with other names serve clients. This node's controller listener is the first of these names present in `listeners`. Kafka requires it in KRaft mode and has no default; brook's default is `CONTROLLER`."),
    broker("admin.listener", Kind::Str(StrRule::HostPort), Some("127.0.0.1:9644"), "brook only: HTTP admin listener (Prometheus `/metrics`, views, health)."),
    // --- topics ---
    broker("num.partitions", int(1), Some("1"), "Partitions of auto-created topics and of CreateTopics requests that ask for the default (-1)."),
    broker("default.replication.factor", int(1), Some("1"), "Replication factor of auto-created topics and of CreateTopics requests that ask for the default (-1)."),
    broker("auto.create.topics.enable", Kind::Bool, Some("true"), "Create a topic when a client asks for metadata of, or produces to, a topic that does not exist."),
    broker("delete.topic.enable", Kind::Bool, Some("true"), "Allow DeleteTopics; when false it fails with TOPIC_DELETION_DISABLED."),
    // --- network limits ---
    broker("socket.request.max.bytes", int(1), Some("104857600"), "Largest request frame accepted; a larger size prefix closes the connection before anything is allocated."),
    broker("max.connections", int(1), Some("10000"), "Most client connections accepted at once; more are closed on accept. Kafka's default is 2147483647 (unbounded); brook bounds it so a connection storm cannot exhaust file descriptors."),
    broker("connections.max.idle.ms", long(1), Some("600000"), "Close connections idle for longer than this."),
    broker("max.inflight.requests.per.connection", int(1), Some("100"), "brook only: requests read from one connection but not yet answered; reading pauses at the cap (back-pressure on pipelining clients)."),
    broker("queued.max.requests", int(1), Some("500"), "Accepted for compatibility and not used: brook has no handler queue (each connection's task runs its requests). What bounds queued work is `max.inflight.requests.per.connection` (requests per connection) and `queued.max.request.bytes` (request bytes across all connections)."),
    broker("queued.max.request.bytes", long(-1), Some("-1"), "Request bytes being read or handled across all connections. A connection takes its next request's announced size from this budget as soon as the size prefix arrives (at most the whole budget, so no frame waits forever) and returns it once the request is handled; while the budget is spent it stops reading (TCP pushes back on the client), as Kafka's memory pool does. Bounds read-buffer memory to this plus a small read-ahead per connection, but a client that announces a large frame and sends it slowly holds that much of the budget (until it completes or idles out) and can stall others' large requests. -1 or 0: unbounded, as Kafka's default; read buffers are then bounded per connection by `socket.request.max.bytes`."),
    broker("message.max.bytes", int(0), Some("1048588"), "Largest record batch (after compression) the broker accepts. Broker-wide default of topic `max.message.bytes`."),
    broker("fetch.max.bytes", int(1024), Some("57671680"), "Largest Fetch response the broker builds, whatever `max_bytes` the client asks for (at least one batch is still returned)."),
    // --- client quotas ---
    broker("quota.window.num", int(2), Some("11"), "Samples a client's byte and request rates are measured over (Kafka's sliding quota window); the window spans `quota.window.num` × `quota.window.size.seconds`."),
    broker("quota.window.size.seconds", int(1), Some("1"), "Length of one quota sample, in seconds."),
    // --- log: retention, segments, indexes ---
    broker("log.retention.hours", Kind::Int { min: -1, max: I32MAX }, Some("168"), "Retention time in hours; used when neither `log.retention.ms` nor `log.retention.minutes` is set. -1: unlimited."),
    broker("log.retention.minutes", Kind::Int { min: -1, max: I32MAX }, None, "Retention time in minutes; used when `log.retention.ms` is not set, overrides `log.retention.hours`. -1: unlimited."),
    broker("log.retention.ms", long(-1), None, "Retention time in milliseconds; overrides `log.retention.minutes` and `log.retention.hours`. -1: unlimited. Default of topic `retention.ms`."),
    broker("log.retention.bytes", long(-1), Some("-1"), "Largest size of a partition's log before old segments are deleted. -1: unlimited. Default of topic `retention.bytes`."),
    broker("log.retention.check.interval.ms", long(1), Some("300000"), "How often the retention task looks for segments to delete."),
    broker("log.segment.bytes", int(14), Some("1073741824"), "Segment file size at which the log rolls. Default of topic `segment.bytes`. The minimum is Kafka 3.x's 14 bytes (Kafka 4 raised it to 1 MiB); brook keeps the small minimum so tests can roll segments cheaply."),
    broker("log.roll.hours", int(1), Some("168"), "Roll a segment this many hours after its first record; used when `log.roll.ms` is not set."),
    broker("log.roll.ms", long(1), None, "Roll a segment this many milliseconds after its first record; overrides `log.roll.hours`. Default of topic `segment.ms`."),
    broker("log.roll.jitter.hours", int(0), Some("0"), "Maximum random jitter subtracted from the roll time, in hours; used when `log.roll.jitter.ms` is not set."),
    broker("log.roll.jitter.ms", long(0), None, "Maximum random jitter subtracted from the roll time; overrides `log.roll.jitter.hours`. Default of topic `segment.jitter.ms`."),
    broker("log.index.size.max.bytes", int(4), Some("10485760"), "Preallocated size of each offset/time index file; a full index rolls the segment. Default of topic `segment.index.bytes`."),
    broker("log.index.interval.bytes", int(0), Some("4096"), "Bytes of log between two offset-index entries. Default of topic `index.interval.bytes`."),
    broker("log.flush.interval.messages", long(1), LONG_MAX, "Default of topic `flush.messages`. Left unset, brook fsyncs before acknowledging acks=all; setting it (or `log.flush.interval.ms`) switches every topic without its own flush override to periodic flushing."),
    broker("log.flush.interval.ms", long(0), LONG_MAX, "Default of topic `flush.ms`. Left unset, brook fsyncs before acknowledging acks=all; setting it (or `log.flush.interval.messages`) switches to periodic flushing."),
    broker("log.flush.offset.checkpoint.interval.ms", int(0), Some("60000"), "How often the recovery-point checkpoint file is rewritten."),
    broker("log.cleanup.policy", Kind::List { item: StrRule::OneOf(POLICIES), min_len: 1 }, Some("delete"), "Default of topic `cleanup.policy`."),
    broker("log.cleaner.delete.retention.ms", long(0), Some("86400000"), "Default of topic `delete.retention.ms`."),
    broker("log.cleaner.min.compaction.lag.ms", long(0), Some("0"), "Default of topic `min.compaction.lag.ms`."),
    broker("log.cleaner.max.compaction.lag.ms", long(1), LONG_MAX, "Default of topic `max.compaction.lag.ms`."),
    broker("log.cleaner.min.cleanable.ratio", Kind::Double { min: 0.0, max: 1.0 }, Some("0.5"), "Default of topic `min.cleanable.dirty.ratio`."),
    broker("log.cleaner.enable", Kind::Bool, Some("true"), "Run the log cleaner, which compacts topics with `cleanup.policy=compact`."),
    broker("log.cleaner.threads", int(1), Some("1"), "Logs cleaned at the same time, each on its own blocking thread."),
    broker("log.cleaner.dedupe.buffer.size", long(1_048_576), Some("134217728"), "Memory for the cleaners' key → offset maps, shared among `log.cleaner.threads`; a clean whose dirty keys do not fit cleans the part they cover."),
    broker("log.cleaner.io.max.bytes.per.second", Kind::Double { min: 1.0, max: f64::MAX }, Some("1.7976931348623157E308"), "Bytes per second the cleaners may read plus write, all threads together."),
    broker("log.cleaner.backoff.ms", long(0), Some("15000"), "How long the cleaner sleeps when no log needs cleaning."),
    broker("log.segment.delete.delay.ms", long(0), Some("60000"), "Default of topic `file.delete.delay.ms`."),
    broker("log.preallocate", Kind::Bool, Some("false"), "Default of topic `preallocate`."),
    broker("log.message.timestamp.type", Kind::Str(StrRule::OneOf(TIMESTAMP_TYPES)), Some("CreateTime"), "Default of topic `message.timestamp.type`."),
    broker("log.message.timestamp.before.max.ms", long(0), LONG_MAX, "Default of topic `message.timestamp.before.max.ms`."),
    broker("log.message.timestamp.after.max.ms", long(0), Some("3600000"), "Default of topic `message.timestamp.after.max.ms` (Kafka 4 default: one hour)."),
    broker("log.message.downconversion.enable", Kind::Bool, Some("true"), "Default of topic `message.downconversion.enable` (Kafka 3.x; accepted and ignored: brook never down-converts)."),
    broker("log.local.retention.ms", long(-2), Some("-2"), "Default of topic `local.retention.ms` (tiered storage; accepted, not implemented)."),
    broker("log.local.retention.bytes", long(-2), Some("-2"), "Default of topic `local.retention.bytes` (tiered storage; accepted, not implemented)."),
    // --- shared broker/topic names ---
    both("compression.type", Kind::Str(StrRule::OneOf(COMPRESSION)), Some("producer"), &[syn("compression.type", 1)], "Final compression of stored batches. `producer` keeps what the producer sent; any other value makes the broker recompress."),
    both("compression.gzip.level", Kind::Int { min: -1, max: 9 }, Some("-1"), &[syn("compression.gzip.level", 1)], "gzip level when the broker compresses with gzip; -1: library default."),
    both("compression.lz4.level", Kind::Int { min: 1, max: 17 }, Some("9"), &[syn("compression.lz4.level", 1)], "lz4 level when the broker compresses with lz4."),
    both("compression.zstd.level", Kind::Int { min: -131072, max: 22 }, Some("3"), &[syn("compression.zstd.level", 1)], "zstd level when the broker compresses with zstd."),
    both("min.insync.replicas", int(1), Some("1"), &[syn("min.insync.replicas", 1)], "With acks=all, produce fails with NOT_ENOUGH_REPLICAS when fewer in-sync replicas than this exist, and the high-water mark advances only while at least this many are in sync."),
    both("unclean.leader.election.enable", Kind::Bool, Some("false"), &[syn("unclean.leader.election.enable", 1)], "Allow a replica outside the ISR to become leader as a last resort, losing acknowledged records."),
    // --- replication and controller ---
    broker("replica.lag.time.max.ms", long(1), Some("30000"), "A follower that has not caught up to the leader's log end for this long leaves the ISR."),
    broker("num.replica.fetchers", int(1), Some("1"), "Fetcher tasks (connections) per source broker that a follower pulls its partitions with."),
    broker("replica.selector.class", Kind::Str(StrRule::Any), Some(""), "Empty: consumers read from partition leaders only. `org.apache.kafka.common.replica.RackAwareReplicaSelector`: a consumer that sets `client.rack` is sent to an in-sync replica in its rack and reads there up to that replica's high-water mark (KIP-392)."),
    broker("leader.replication.throttled.rate", long(1), LONG_MAX, "Bytes per second a leader sends, in all, to out-of-sync followers of the replicas its topics list in `leader.replication.throttled.replicas` (catch-up after a restart or a reassignment). In-sync followers are never throttled. Measured over the `quota.window.*` window."),
    broker("follower.replication.throttled.rate", long(1), LONG_MAX, "Bytes per second a follower fetches, in all, for its out-of-sync replicas that their topics list in `follower.replication.throttled.replicas`. In-sync replicas are never throttled."),
    broker("replica.fetch.max.bytes", int(1), Some("1048576"), "Bytes a follower asks for per partition in one fetch (at least one whole batch is always returned)."),
    broker("replica.fetch.response.max.bytes", int(1), Some("10485760"), "Bytes a follower asks for in one whole fetch response: bounds catch-up traffic and a fetcher's memory."),
    broker("replica.fetch.wait.max.ms", int(0), Some("500"), "How long the leader holds a follower's fetch when it has no new data; must be less than `replica.lag.time.max.ms`."),
    broker("max.incremental.fetch.session.cache.slots", int(0), Some("1000"), "Most incremental fetch sessions (KIP-227) the broker keeps, for consumers and followers together. A full fetch asking for a session gets none when the cache is full and nothing may be evicted: a follower's session may replace a consumer's, a bigger session one created over 2 minutes ago, and any session one unused for 2 minutes. 0 disables fetch sessions: every fetch is answered in full."),
    broker("replica.fetch.backoff.ms", int(0), Some("1000"), "How long a fetcher waits after a failed fetch before it tries again."),
    broker("controller.quorum.voters", Kind::List { item: StrRule::QuorumVoter, min_len: 0 }, Some(""), "The controller quorum, as `id@host:port` entries (Kafka's form, e.g. `1@127.0.0.1:19093,2@host2:19093`): each voter's `node.id` (unique, 0 or more) and the address of its controller listener. Empty (brook's default): this node alone is the quorum, a single voter with id `node.id` at its controller listener. When set on a node whose `process.roles` include `controller`, it must list `node.id`, and `listeners` must have a controller listener on that entry's port (the host may differ, e.g. 0.0.0.0)."),
    broker("broker.heartbeat.interval.ms", int(1), Some("2000"), "How often a broker heartbeats to the active controller; must be less than `broker.session.timeout.ms`."),
    broker("broker.session.timeout.ms", int(1), Some("9000"), "A broker that has not heartbeated to the controller for this long is fenced."),
    // --- consumer groups and producers ---
    broker("offsets.topic.num.partitions", int(1), Some("50"), "Partitions of `__consumer_offsets` (fixed once the topic exists)."),
    broker("offsets.topic.segment.bytes", int(14), Some("104857600"), "`segment.bytes` of `__consumer_offsets`: smaller than other topics' so the cleaner can compact it (only whole, rolled segments are cleaned)."),
    broker("offsets.topic.replication.factor", Kind::Short { min: 1, max: I16MAX }, Some("1"), "Replication factor of `__consumer_offsets`. Kafka's default is 3; brook's is 1 so a single node works out of the box."),
    broker("offsets.retention.minutes", int(1), Some("10080"), "Committed offsets of a group that has been empty this long are deleted."),
    broker("group.initial.rebalance.delay.ms", int(0), Some("3000"), "Wait this long for more members before the first rebalance of an empty group."),
    broker("group.min.session.timeout.ms", int(0), Some("6000"), "Smallest session timeout a member may ask for."),
    broker("group.max.session.timeout.ms", int(0), Some("1800000"), "Largest session timeout a member may ask for."),
    broker("group.max.size", int(1), Some("2147483647"), "Most members in one consumer group."),
    broker("transactional.id.expiration.ms", int(1), Some("604800000"), "Transactional ids unused for this long expire."),
    broker("producer.id.expiration.ms", int(1), Some("86400000"), "Idempotent producer state for producer ids unused for this long is dropped."),
    // --- materialized views (brook only; the views themselves are `[views.NAME]` tables) ---
    broker("view.block.cache.bytes", long(0), Some("67108864"), "brook only: block cache shared by all materialized views."),
    broker("view.memtable.max.bytes", long(65_536), Some("16777216"), "brook only: a view flushes its memtable when it grows past this."),
    broker("view.flush.interval.ms", long(100), Some("30000"), "brook only: a view flushes at least this often while it applies records (bounds replay after a crash)."),
    broker("view.flush.max.offsets", long(1), Some("100000"), "brook only: a view flushes after applying this many offsets since its last flush."),
    broker("view.max.open.files", int(16), Some("512"), "brook only: table files kept open by all views together."),
    // --- observability ---
    broker("metrics.per.partition.enable", Kind::Bool, Some("true"), "brook only: export per-topic/partition metric series."),
    broker("metrics.max.partition.series", int(0), Some("10000"), "brook only: cardinality cap on per-partition metric series; partitions beyond it are aggregated."),
];
