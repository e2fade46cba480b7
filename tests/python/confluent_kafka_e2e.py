"""confluent-kafka (librdkafka) against brook: admin create/describe/delete, the
idempotent producer with acks=all and lz4, assign-based consume, offsets_for_times.

confluent-kafka refuses to create a Consumer without group.id; it is set, but only
assign() is used and nothing is committed, so no group APIs are needed for data.
"""

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic

from common import BOOTSTRAP, ensure, run_checks, wait_until


def admin():
    return AdminClient({"bootstrap.servers": BOOTSTRAP})


def consumer():
    return Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "brook-e2e-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    })


def topics(a):
    return a.list_topics(timeout=10).topics


def check_admin_create_describe_delete():
    a = admin()
    fs = a.create_topics([NewTopic("ck-admin", num_partitions=2, replication_factor=1,
                                   config={"retention.ms": "3600000"})], operation_timeout=10)
    fs["ck-admin"].result(timeout=15)
    try:
        a.create_topics([NewTopic("ck-admin", num_partitions=2, replication_factor=1)])["ck-admin"].result(timeout=15)
        raise AssertionError("creating ck-admin twice succeeded")
    except KafkaException as e:
        ensure(e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, f"duplicate create: {e}")
    ensure("ck-admin" in topics(a), "ck-admin not listed")
    ensure(len(topics(a)["ck-admin"].partitions) == 2, "ck-admin does not have 2 partitions")

    fs = a.describe_configs([ConfigResource("topic", "ck-admin")])
    for _, f in fs.items():
        configs = f.result(timeout=15)
        r = configs.get("retention.ms")
        ensure(r is not None and r.value == "3600000", f"retention.ms = {r}")
        ensure(r.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, f"retention.ms source = {r.source}")
        cp = configs.get("cleanup.policy")
        ensure(cp is not None and cp.value == "delete", f"default cleanup.policy = {cp}")

    a.delete_topics(["ck-admin"], operation_timeout=10)["ck-admin"].result(timeout=15)
    wait_until("ck-admin to disappear", lambda: "ck-admin" not in topics(a))


def produce(topic, records, conf):
    """records: list of (partition, key, value, headers, timestamp or None).
    Returns {index: (partition, offset)}; raises on any delivery error."""
    p = Producer({"bootstrap.servers": BOOTSTRAP, **conf})
    delivered, errors = {}, []

    def report(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                delivered[i] = (msg.partition(), msg.offset())
        return cb

    for i, (part, key, value, headers, ts) in enumerate(records):
        kw = {"timestamp": ts} if ts is not None else {}
        while True:
            try:
                p.produce(topic, value=value, key=key, headers=headers, partition=part,
                          on_delivery=report(i), **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(60)
    ensure(remaining == 0, f"{remaining} records not delivered after 60s")
    ensure(not errors, f"{len(errors)} delivery errors, first: {errors[:3]}")
    ensure(len(delivered) == len(records), f"{len(delivered)} of {len(records)} delivered")
    return delivered


def create_topic(name, partitions):
    a = admin()
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(timeout=15)


def check_idempotent_produce_consume_assign():
    n = 5000
    create_topic("ck-data", 2)
    records = [(i % 2, b"k%d" % i, b"v%d" % i, [("idx", str(i).encode())], None) for i in range(n)]
    delivered = produce("ck-data", records, {
        "enable.idempotence": True, "acks": "all", "compression.type": "lz4", "linger.ms": 5,
    })
    by_pos = {pos: i for i, pos in delivered.items()}
    for part in (0, 1):
        offs = sorted(o for (p_, o) in by_pos if p_ == part)
        ensure(offs == list(range(len(offs))), f"partition {part}: offsets not contiguous from 0")

    c = consumer()
    c.assign([TopicPartition("ck-data", part, OFFSET_BEGINNING) for part in (0, 1)])
    seen = {}
    deadline = time.monotonic() + 60
    while len(seen) < n:
        ensure(time.monotonic() < deadline, f"read {len(seen)} of {n} before the deadline")
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            # Group-coordinator lookups may fail (no group APIs yet); data errors may not.
            ensure(not m.error().fatal(), f"fatal consumer error {m.error()}")
            print(f"note: consumer error {m.error()}")
            continue
        seen[(m.partition(), m.offset())] = m
    c.close()
    for (part, off), i in by_pos.items():
        m = seen.get((part, off))
        ensure(m is not None, f"record {i} at {part}/{off} not consumed")
        ensure(m.key() == b"k%d" % i and m.value() == b"v%d" % i, f"{part}/{off}: {m.key()!r} {m.value()!r}")
        ensure(m.headers() == [("idx", str(i).encode())], f"{part}/{off}: headers {m.headers()!r}")


def check_offsets_for_times():
    base = 1_700_000_000_000
    records = [(0, None, b"t%d" % i, None, base + i * 1000) for i in range(100)]
    produce("ck-times", records, {"acks": "all", "linger.ms": 50})
    c = consumer()
    lo, hi = c.get_watermark_offsets(TopicPartition("ck-times", 0), timeout=10)
    ensure((lo, hi) == (0, 100), f"watermarks ({lo}, {hi}), want (0, 100)")
    for target, want in ((base, 0), (base + 50_000, 50), (base + 49_001, 50), (base + 99_000, 99),
                         (base + 1_000_000, -1)):
        [tp] = c.offsets_for_times([TopicPartition("ck-times", 0, target)], timeout=10)
        ensure(tp.error is None, f"offsets_for_times({target}): {tp.error}")
        ensure(tp.offset == want, f"offsets_for_times({target}) = {tp.offset}, want {want}")
    c.close()


if __name__ == "__main__":
    run_checks([check_admin_create_describe_delete, check_idempotent_produce_consume_assign,
                check_offsets_for_times])
