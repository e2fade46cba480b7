# Run by benches/scripts/cluster_produce.sh (see there).
"""First acks=all produce to a freshly created RF=3 topic on a 3-node brook
dev-cluster: time from CreateTopics' answer to the last delivery report."""
import sys, time, statistics
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, rounds, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
admin = AdminClient({"bootstrap.servers": bootstrap})

def create(name):
    fs = admin.create_topics([NewTopic(name, 3, 3)], operation_timeout=30)
    for f in fs.values():
        f.result()

p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
              "linger.ms": 0})
def produce_each(topic):
    done = []
    for part in range(3):
        p.produce(topic, b"v", partition=part, on_delivery=lambda e, m: done.append(e))
    p.flush(30)
    assert len(done) == 3 and all(e is None for e in done), done

# Followers busy long-polling on a warm topic.
create(f"warm-{tag}")
produce_each(f"warm-{tag}")
first, later = [], []
for i in range(rounds):
    name = f"fresh-{tag}-{i}"
    create(name)
    t = time.monotonic(); produce_each(name); first.append((time.monotonic() - t) * 1000)
    time.sleep(1)  # spacing between rounds, not a wait for a condition
    t = time.monotonic(); produce_each(name); later.append((time.monotonic() - t) * 1000)
print(f"{tag}: first produce ms: {[round(x,1) for x in first]} median {statistics.median(first):.1f}")
print(f"{tag}: same topic 1 s later ms: {[round(x,1) for x in later]} median {statistics.median(later):.1f}")
