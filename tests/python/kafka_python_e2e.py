"""kafka-python against brook: admin create/describe/delete, produce/consume with
keys, headers and gzip (assign-based, no group), offsets_for_times, and a
consumer of many partitions through incremental fetch sessions (KIP-227)."""

import os
import time
import urllib.request

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from common import BOOTSTRAP, ensure, run_checks, wait_until


def admin():
    return KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="brook-e2e-kp", request_timeout_ms=15000)


def consumer():
    return KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=30000,
    )


def check_admin_create_describe_delete():
    a = admin()
    try:
        a.create_topics([NewTopic("kp-admin", num_partitions=2, replication_factor=1,
                                  topic_configs={"retention.ms": "3600000"})])
        try:
            a.create_topics([NewTopic("kp-admin", num_partitions=2, replication_factor=1)])
            raise AssertionError("creating kp-admin twice succeeded")
        except TopicAlreadyExistsError:
            pass
        ensure("kp-admin" in a.list_topics(), f"kp-admin not listed: {a.list_topics()}")

        responses = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-admin")])
        entries = {}
        for resp in responses:
            for resource in resp.resources:
                ensure(resource[0] == 0, f"DescribeConfigs error {resource}")
                for entry in resource[4]:
                    entries[entry[0]] = entry[1]
        ensure(entries.get("retention.ms") == "3600000", f"retention.ms = {entries.get('retention.ms')!r}")
        ensure(entries.get("cleanup.policy") == "delete",
               f"defaults missing: cleanup.policy = {entries.get('cleanup.policy')!r}")

        a.delete_topics(["kp-admin"])
        wait_until("kp-admin to disappear", lambda: "kp-admin" not in a.list_topics())
    finally:
        a.close()


def check_produce_consume_assign():
    a = admin()
    a.create_topics([NewTopic("kp-data", num_partitions=3, replication_factor=1)])
    a.close()
    n = 3000
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5, compression_type="gzip")
    futures = [
        p.send("kp-data", key=b"k%d" % i, value=b"value-%d" % i,
               headers=[("idx", str(i).encode())], partition=i % 3)
        for i in range(n)
    ]
    p.flush(timeout=60)
    expected = {}
    for i, f in enumerate(futures):
        md = f.get(timeout=30)
        ensure(md.partition == i % 3, f"record {i} went to partition {md.partition}")
        expected[(md.partition, md.offset)] = i
    p.close()
    ensure(len(expected) == n, f"{n - len(expected)} acknowledged offsets collide")

    c = consumer()
    tps = [TopicPartition("kp-data", i) for i in range(3)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    ends = c.end_offsets(tps)
    ensure(sum(ends.values()) == n, f"end offsets {ends} do not add up to {n}")
    seen = {}
    deadline = time.monotonic() + 60
    while len(seen) < n:
        ensure(time.monotonic() < deadline, f"read {len(seen)} of {n} records before the deadline")
        for tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                seen[(m.partition, m.offset)] = m
    c.close()
    for (part, off), i in expected.items():
        m = seen.get((part, off))
        ensure(m is not None, f"record {i} at {part}/{off} not consumed")
        ensure(m.key == b"k%d" % i and m.value == b"value-%d" % i,
               f"{part}/{off}: got key={m.key!r} value={m.value!r}, want record {i}")
        ensure(list(m.headers) == [("idx", str(i).encode())], f"{part}/{off}: headers {m.headers!r}")


def metric(name):
    """A metric from the broker's admin listener (BROOK_ADMIN_URL), or None."""
    with urllib.request.urlopen(os.environ["BROOK_ADMIN_URL"] + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def check_many_partitions_through_fetch_sessions():
    # kafka-python opens a fetch session per broker (enable_incremental_fetch_sessions
    # defaults to True); after its first full fetch it sends only what changed, and
    # brook answers only partitions with news. Every record must still arrive, in order.
    parts, per = 200, 5
    a = admin()
    a.create_topics([NewTopic("kp-many", num_partitions=parts, replication_factor=1)])
    a.close()
    created_before = metric("brook_fetch_sessions_created_total") or 0.0
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)

    def produce(rounds, partitions):
        sent = {}
        futures = [(part, b"r%d-p%d" % (r, part), p.send("kp-many", value=b"r%d-p%d" % (r, part), partition=part))
                   for r in rounds for part in partitions]
        p.flush(timeout=60)
        for part, value, f in futures:
            sent[(part, f.get(timeout=30).offset)] = value
        return sent

    expected = produce(range(per), range(parts))
    c = consumer()
    tps = [TopicPartition("kp-many", i) for i in range(parts)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    seen = {}

    def read_until(n):
        deadline = time.monotonic() + 60
        while len(seen) < n:
            ensure(time.monotonic() < deadline, f"read {len(seen)} of {n} records before the deadline")
            for tp, msgs in c.poll(timeout_ms=500).items():
                for m in msgs:
                    ensure((m.partition, m.offset) not in seen, f"{m.partition}/{m.offset} read twice")
                    seen[(m.partition, m.offset)] = m.value

    read_until(len(expected))
    # A few partitions get more while the session is open: incremental answers.
    expected.update(produce(range(per, per + 3), [3, 77, 150]))
    read_until(len(expected))
    c.close()
    p.close()
    ensure(seen == expected, "consumed records differ from the produced ones")
    for part in range(parts):
        offsets = sorted(o for (q, o) in seen if q == part)
        ensure(offsets == list(range(len(offsets))), f"partition {part}: offsets {offsets} have gaps")
    created = metric("brook_fetch_sessions_created_total") or 0.0
    ensure(created > created_before, f"no fetch session was created ({created_before} -> {created})")


def check_offsets_for_times():
    base = 1_700_000_000_000
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=50)
    for i in range(100):
        p.send("kp-times", value=b"t%d" % i, partition=0, timestamp_ms=base + i * 1000)
    p.flush(timeout=60)
    p.close()
    c = consumer()
    tp = TopicPartition("kp-times", 0)
    wait_until("kp-times to hold 100 records", lambda: c.end_offsets([tp])[tp] == 100)
    ensure(c.beginning_offsets([tp])[tp] == 0, "beginning offset is not 0")
    # The answer is the first record with timestamp >= target, even inside a batch.
    for target, want in ((base, 0), (base + 50_000, 50), (base + 49_001, 50), (base + 99_000, 99)):
        got = c.offsets_for_times({tp: target})[tp]
        ensure(got is not None and got.offset == want,
               f"offsets_for_times({target}) = {got}, want offset {want}")
        ensure(got.timestamp == base + want * 1000, f"timestamp for offset {want}: {got}")
    got = c.offsets_for_times({tp: base + 1_000_000})[tp]
    ensure(got is None, f"offsets_for_times past the last record = {got}, want None")
    c.close()


def check_empty_partition_next_to_data():
    """An empty partition's Fetch result must carry empty records, not null: kafka-python
    crashes on null (DESIGN.md section 3)."""
    a = admin()
    a.create_topics([NewTopic("kp-sparse", num_partitions=2, replication_factor=1)])
    a.close()
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    for i in range(10):
        p.send("kp-sparse", value=b"only-p0-%d" % i, partition=0)
    p.flush(timeout=60)
    p.close()
    c = consumer()
    tps = [TopicPartition("kp-sparse", 0), TopicPartition("kp-sparse", 1)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 10:
        ensure(time.monotonic() < deadline, f"read {len(got)} of 10 records")
        for tp, msgs in c.poll(timeout_ms=500).items():
            ensure(tp.partition == 0, f"records from empty partition {tp.partition}")
            got.extend(m.value for m in msgs)
    # Keep polling the empty partition a little: it must stay quiet and not crash.
    for _ in range(3):
        ensure(not c.poll(timeout_ms=200), "unexpected records after the 10 produced")
    c.close()
    ensure(got == [b"only-p0-%d" % i for i in range(10)], f"got {got}")


if __name__ == "__main__":
    run_checks([check_admin_create_describe_delete, check_produce_consume_assign, check_offsets_for_times,
                check_many_partitions_through_fetch_sessions,
                check_empty_partition_next_to_data])
