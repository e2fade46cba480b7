"""A confluent-kafka group member in its own process, for tests/tests/groups.rs.
Usage: groups_member.py TOPIC GROUP [INSTANCE_ID]. Prints one line per
assignment change, `ASSIGNED <p,p,...>` (partition numbers, sorted), then polls
until killed."""

import sys

from confluent_kafka import Consumer

from common import BOOTSTRAP

topic, group = sys.argv[1], sys.argv[2]
conf = {
    "bootstrap.servers": BOOTSTRAP,
    "group.id": group,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
}
if len(sys.argv) > 3:
    conf["group.instance.id"] = sys.argv[3]
c = Consumer(conf)
owned = set()


def on_assign(consumer, parts):
    owned.clear()
    owned.update(p.partition for p in parts)
    print("ASSIGNED " + ",".join(str(p) for p in sorted(owned)), flush=True)


def on_revoke(consumer, parts):
    owned.clear()
    print("ASSIGNED ", flush=True)


c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
while True:
    c.poll(0.2)
