"""kafka-python against a compacted topic while brook's cleaner rewrites it.

Run by tests/tests/compaction.rs with BROOK_BOOTSTRAP and BROOK_ADMIN (the admin
HTTP base URL). Checks, in order:
- a keyless record is refused with INVALID_RECORD (error 87), keyed ones pass;
- reads from the beginning, repeated while the cleaner runs, see at every offset the
  record written there, offsets increasing;
- once a clean finished, a read gives every key's latest value and far fewer records.
"""

import json
import os
import time
import urllib.request

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from common import BOOTSTRAP, ensure, run_checks, wait_until

ADMIN = os.environ.get("BROOK_ADMIN", "")
TOPIC = "py-compacted"
N = 20000
KEYS = 200
written = {}  # offset -> (key, value)
latest = {}  # key -> value


def cleaned_offset():
    with urllib.request.urlopen(f"{ADMIN}/v1/topics/{TOPIC}", timeout=10) as r:
        body = json.loads(r.read())
    return body["partitions"][0]["compaction"]["cleaned_offset"]


def create_topic():
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics(
        [
            NewTopic(
                TOPIC,
                1,
                1,
                topic_configs={
                    "cleanup.policy": "compact",
                    "segment.bytes": "32768",
                    "min.cleanable.dirty.ratio": "0.01",
                },
            )
        ]
    )
    admin.close()


def keyless_refused():
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", retries=0)
    try:
        p.send(TOPIC, value=b"no key").get(timeout=30)
        raise AssertionError("a keyless record was accepted by a compacted topic")
    except KafkaError as e:
        ensure(getattr(e, "errno", None) == 87, f"expected INVALID_RECORD (87), got {e!r}")
    p.close()


def produce():
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    futures = []
    for i in range(N):
        k = f"k{i % KEYS:03}".encode()
        v = f"v{i:06}-{'y' * 40}".encode()
        futures.append((k, v, p.send(TOPIC, key=k, value=v, partition=0)))
    p.flush()
    for k, v, f in futures:
        md = f.get(timeout=60)
        written[md.offset] = (k, v)
    for off in sorted(written):
        k, v = written[off]
        latest[k] = v
    p.close()


def read_all():
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    tp = TopicPartition(TOPIC, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    seen = []
    deadline = time.monotonic() + 120
    while c.position(tp) < end:
        ensure(time.monotonic() < deadline, f"read stalled at {c.position(tp)} of {end}")
        for recs in c.poll(timeout_ms=500).values():
            for r in recs:
                seen.append(r)
    c.close()
    last = -1
    view = {}
    for r in seen:
        ensure(r.offset > last, f"offset {r.offset} after {last}")
        last = r.offset
        ensure(written.get(r.offset) == (r.key, r.value), f"offset {r.offset} changed meaning")
        view[r.key] = r.value
    return seen, view


def reads_during_cleaning():
    passes = 0
    while True:
        read_all()
        passes += 1
        if cleaned_offset() > 0 and passes >= 2:
            break
        ensure(passes < 500, "the cleaner never cleaned the topic")


def latest_values_after_clean():
    wait_until("a clean", lambda: cleaned_offset() > 0, timeout=120)
    seen, view = read_all()
    ensure(view == latest, "a key does not read its latest value")
    ensure(len(seen) < N // 4, f"compaction kept {len(seen)} of {N} records")


run_checks(
    [create_topic, keyless_refused, produce, reads_during_cleaning, latest_values_after_clean]
)
