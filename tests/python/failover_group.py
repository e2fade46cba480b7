"""A kafka-python consumer-group member that the test's coordinator fails under.

Run by tests/tests/replication.rs (not on its own), with BROOK_BOOTSTRAP,
BROOK_TOPIC, BROOK_GROUP and BROOK_RECORDS (records in the topic) set.
Consumes a third of the records, commits, prints "COMMITTED <json>" (the
committed offsets by partition) and then "HALF"; the test kills the group
coordinator and writes a line to stdin. The member then consumes another
third, commits again (retrying, through the coordinator change) and prints
"COMMITTED <json>" with the second commit before it exits.
"""

import json
import os
import sys
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

BOOTSTRAP = os.environ["BROOK_BOOTSTRAP"]
TOPIC = os.environ["BROOK_TOPIC"]
GROUP = os.environ["BROOK_GROUP"]
N = int(os.environ["BROOK_RECORDS"])
DEADLINE = time.monotonic() + 200

c = KafkaConsumer(
    TOPIC,
    bootstrap_servers=BOOTSTRAP,
    group_id=GROUP,
    enable_auto_commit=False,
    auto_offset_reset="earliest",
    session_timeout_ms=10000,
    heartbeat_interval_ms=1000,
    request_timeout_ms=15000,
)
positions = {}


def consume(count):
    got = 0
    while got < count:
        if time.monotonic() > DEADLINE:
            raise SystemExit(f"consumed {got} of {count} records before the deadline")
        for tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                positions[tp.partition] = m.offset + 1
                got += 1


def commit():
    offsets = {
        TopicPartition(TOPIC, p): OffsetAndMetadata(o, "", -1) for p, o in positions.items()
    }
    while True:
        try:
            c.commit(offsets)
            break
        except Exception as e:  # retriable through a coordinator change
            if time.monotonic() > DEADLINE:
                raise SystemExit(f"commit never succeeded: {e!r}")
            print(f"commit failed, retrying: {e!r}", file=sys.stderr, flush=True)
            time.sleep(0.2)
    print("COMMITTED " + json.dumps({str(p): o for p, o in positions.items()}), flush=True)


consume(N // 3)
commit()
print("HALF", flush=True)
sys.stdin.readline()
consume(N // 3)
commit()
c.close()
