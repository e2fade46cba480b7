"""kafka-python group consumer against brook: subscribe, consume, commit,
close; a second consumer of the same group resumes after the commit.
Run by tests/tests/groups.rs."""

import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from common import BOOTSTRAP, ensure, run_checks, wait_until

TOPIC = f"groups-kp-{uuid.uuid4().hex[:8]}"
GROUP = f"g-kp-{uuid.uuid4().hex[:8]}"
N = 20


def consumer():
    return KafkaConsumer(
        TOPIC,
        bootstrap_servers=BOOTSTRAP,
        group_id=GROUP,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


def consume(c, n, timeout=30.0):
    got = []

    def more():
        for records in c.poll(timeout_ms=200, max_records=n - len(got)).values():
            got.extend(records)
        return len(got) >= n

    wait_until(f"{n} records", more, timeout=timeout)
    return got


def setup():
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
    admin.close()
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    for i in range(N):
        p.send(TOPIC, key=str(i).encode(), value=f"v{i}".encode())
    p.flush(30)
    p.close()


def subscribe_consume_commit_close():
    c = consumer()
    got = consume(c, N // 2)
    c.commit()
    total = sum(c.committed(TopicPartition(TOPIC, p)) or 0 for p in range(3))
    ensure(total == len(got), f"committed offsets sum to {total}, consumed {len(got)}")
    c.close()


def second_consumer_resumes():
    c = consumer()
    got = consume(c, N - N // 2)
    extra = sum(len(r) for r in c.poll(timeout_ms=1000).values())
    ensure(extra == 0, f"{extra} records delivered twice")
    ensure(len(got) == N - N // 2, f"got {len(got)}")
    c.commit()
    c.close()


if __name__ == "__main__":
    run_checks([setup, subscribe_consume_commit_close, second_consumer_resumes])
