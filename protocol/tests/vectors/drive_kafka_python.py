"""Drives kafka-python through its everyday requests against a capturing brook
broker; see README.md. The venv has no snappy/lz4/zstd modules for
kafka-python, so it produces uncompressed and gzip."""

import os
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

BOOTSTRAP = os.environ["BROOK_BOOTSTRAP"]


def main():
    a = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="brook-gv-kp")
    a.create_topics([NewTopic("gv", num_partitions=1, replication_factor=1,
                              topic_configs={"retention.ms": "3600000"})])
    a.list_topics()
    a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "gv")])
    a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "gv", configs={"retention.ms": "7200000"})])

    for codec in (None, "gzip"):
        p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", compression_type=codec,
                          enable_idempotence=True, linger_ms=5)
        for i in range(3):
            p.send("gv", key=b"k%d" % i, value=b"%s-%d-" % (str(codec).encode(), i) + b"x" * 200,
                   headers=[("h", b"v")], partition=0)
        p.flush(30)
        p.close()

    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest")
    tp = TopicPartition("gv", 0)
    c.assign([tp])
    got = 0
    for _ in range(20):
        got += sum(len(v) for v in c.poll(timeout_ms=1000).values())
        if got >= 6:
            break
    if got < 6:
        sys.exit(f"consumed only {got} of 6 records")
    c.end_offsets([tp])
    c.offsets_for_times({tp: 1_700_000_000_000})
    c.close()

    g = KafkaConsumer("gv", bootstrap_servers=BOOTSTRAP, group_id="gv-group-kp", enable_auto_commit=False,
                      auto_offset_reset="earliest")
    got = 0
    for _ in range(30):
        got += sum(len(v) for v in g.poll(timeout_ms=1000).values())
        if got >= 6:
            break
    if got < 6:
        sys.exit(f"group consumer read only {got} of 6 records")
    g.commit()
    g.committed(tp)
    g.close()
    a.list_consumer_groups()
    a.describe_consumer_groups(["gv-group-kp"])
    a.delete_consumer_groups(["gv-group-kp"])

    a.delete_topics(["gv"])
    a.close()


if __name__ == "__main__":
    main()
