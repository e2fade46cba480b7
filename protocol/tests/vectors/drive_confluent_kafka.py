"""Drives librdkafka (through confluent-kafka) through its everyday requests
against a capturing brook broker; see README.md. Tiny records only, so the
Produce frames stay a few hundred bytes."""

import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

BOOTSTRAP = os.environ["BROOK_BOOTSTRAP"]
# Compressible padding: librdkafka sends a batch uncompressed when compression
# would not make it smaller.
PAD = b"x" * 200


def main():
    a = AdminClient({"bootstrap.servers": BOOTSTRAP})
    a.create_topics([NewTopic("gv", num_partitions=1, replication_factor=1,
                              config={"retention.ms": "3600000"})])["gv"].result(timeout=15)
    a.list_topics(timeout=10)
    for _, f in a.describe_configs([ConfigResource("topic", "gv")]).items():
        f.result(timeout=15)
    res = ConfigResource("topic", "gv", set_config={"retention.ms": "7200000"})
    for _, f in a.alter_configs([res]).items():
        f.result(timeout=15)

    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "acks": "all",
                      "compression.type": codec, "linger.ms": 5})
        for i in range(3):
            p.produce("gv", key=b"k%d" % i, value=b"%s-%d-" % (codec.encode(), i) + PAD,
                      headers=[("h", b"v")], partition=0)
        if p.flush(30) != 0:
            sys.exit(f"{codec}: records not delivered")

    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "gv-assign",
                  "enable.auto.commit": False, "enable.auto.offset.store": False})
    c.assign([TopicPartition("gv", 0, OFFSET_BEGINNING)])
    got = 0
    while got < 15:
        m = c.poll(10)
        if m is None:
            sys.exit(f"consumed only {got} of 15 records")
        if not m.error():
            got += 1
    c.get_watermark_offsets(TopicPartition("gv", 0), timeout=10)
    c.offsets_for_times([TopicPartition("gv", 0, 1_700_000_000_000)], timeout=10)
    c.close()

    group_consume_commit(a)
    a.delete_topics(["gv"], operation_timeout=10)["gv"].result(timeout=15)


def group_consume_commit(a):
    """Subscribe-based consumer group: FindCoordinator, JoinGroup, SyncGroup,
    Heartbeat, OffsetFetch, OffsetCommit, LeaveGroup, then the group admin APIs."""
    g = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "gv-group", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "heartbeat.interval.ms": 500})
    g.subscribe(["gv"])
    got = 0
    deadline = time.monotonic() + 30
    while got < 15:
        if time.monotonic() > deadline:
            sys.exit(f"group consumer read only {got} of 15 records")
        m = g.poll(1)
        if m is not None and not m.error():
            got += 1
    g.commit(asynchronous=False)
    g.committed([TopicPartition("gv", 0)], timeout=10)
    g.close()
    a.list_consumer_groups().result(timeout=15)
    for _, f in a.describe_consumer_groups(["gv-group"]).items():
        f.result(timeout=15)
    for _, f in a.delete_consumer_groups(["gv-group"], request_timeout=15).items():
        f.result(timeout=15)


if __name__ == "__main__":
    main()
