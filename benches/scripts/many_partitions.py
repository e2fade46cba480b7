# Run by benches/scripts/cluster_produce.sh (see there).
"""Many single-partition RF=3 topics on a 3-node dev-cluster: CPU of the
brook processes while an acks=all producer writes at a fixed rate across all
of them, and the producer's ack latency."""
import os, sys, time, statistics, subprocess
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, ntopics, rate, seconds, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
pids = [int(p) for p in sys.argv[6].split(",")]
admin = AdminClient({"bootstrap.servers": bootstrap})
names = [f"t{i:05d}" for i in range(ntopics)]
t0 = time.monotonic()
for i in range(0, ntopics, 100):
    fs = admin.create_topics([NewTopic(n, 1, 3) for n in names[i:i+100]], operation_timeout=60, request_timeout=120)
    for f in fs.values():
        f.result()
created = time.monotonic() - t0

def ticks():
    tot = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tot += int(fields[11]) + int(fields[12])
    return tot

p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 0})
lat = []
def cb(err, msg, sent):
    assert err is None, err
    lat.append((time.monotonic() - sent) * 1000)
# warm: one record per topic (every partition has data and every follower fetched it)
for n in names:
    p.produce(n, b"w")
p.flush(120)
# let the cluster go idle (followers in their long-polls)
time.sleep(2)
idle0 = ticks(); time.sleep(5); idle = ticks() - idle0
lat.clear()
start = ticks(); t = time.monotonic(); n = 0
while time.monotonic() - t < seconds:
    due = t + n / rate
    # Wait by polling, so delivery reports are taken as they come (a sleep
    # would hold them until the next send: latency quantized to 1/rate).
    while (now := time.monotonic()) < due:
        p.poll(due - now)
    s = time.monotonic()
    p.produce(names[n % ntopics], b"x" * 100, on_delivery=lambda e, m, s=s: cb(e, m, s))
    p.poll(0)
    n += 1
p.flush(60)
busy = ticks() - start
lat.sort()
q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))]
print(f"{tag}: topics {ntopics} created in {created:.1f}s; idle CPU ticks/5s {idle}; "
      f"load: {n} records in {seconds}s, CPU ticks {busy} ({busy/seconds:.1f}/s); ack ms p50 {q(0.5):.2f} p99 {q(0.99):.2f}")
