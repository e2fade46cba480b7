"""confluent-kafka (librdkafka) group consumer against brook: subscribe, consume,
commit, close; a second consumer of the same group resumes after the commit;
the group is visible to the admin API. Run by tests/tests/groups.rs."""

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import BOOTSTRAP, ensure, run_checks, wait_until

TOPIC = f"groups-ck-{uuid.uuid4().hex[:8]}"
GROUP = f"g-ck-{uuid.uuid4().hex[:8]}"
N = 20


def consumer():
    return Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": GROUP,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })


def consume(c, n, timeout=30.0):
    got = []
    wait_until(f"{n} records", lambda: got.extend(
        m for m in c.consume(num_messages=n - len(got), timeout=0.2) if m.error() is None) or len(got) >= n,
        timeout=timeout)
    return got


def setup():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[TOPIC].result(30)
    p = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(N):
        p.produce(TOPIC, key=str(i).encode(), value=f"v{i}".encode())
    ensure(p.flush(30) == 0, "producer did not flush")


def subscribe_consume_commit_close():
    c = consumer()
    c.subscribe([TOPIC])
    got = consume(c, N // 2)
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(TOPIC, p) for p in range(3)], timeout=10)
    total = sum(tp.offset for tp in committed if tp.offset >= 0)
    ensure(total == len(got), f"committed offsets sum to {total}, consumed {len(got)}")
    c.close()


def second_consumer_resumes():
    c = consumer()
    c.subscribe([TOPIC])
    # Everything not committed before, and nothing that was.
    got = consume(c, N - N // 2)
    extra = c.consume(num_messages=N, timeout=1.0)
    ensure(not [m for m in extra if m.error() is None], "records delivered twice")
    ensure(len(got) == N - N // 2, f"got {len(got)}")
    c.commit(asynchronous=False)
    c.close()


def admin_sees_group():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    groups = admin.list_consumer_groups().result(10)
    ids = [g.group_id for g in groups.valid]
    ensure(GROUP in ids, f"{GROUP} not in {ids}")
    desc = admin.describe_consumer_groups([GROUP])[GROUP].result(10)
    ensure(str(desc.state).endswith("EMPTY"), f"state {desc.state}")


if __name__ == "__main__":
    run_checks([setup, subscribe_consume_commit_close, second_consumer_resumes, admin_sees_group])
