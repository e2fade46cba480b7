"""A producer that keeps sending while the test kills a partition leader.

Run by tests/tests/replication.rs (not on its own). Usage:
    failover_producer.py <kafka-python|confluent-kafka>
with BROOK_BOOTSTRAP, BROOK_TOPIC and BROOK_RECORDS set. Sends BROOK_RECORDS
records (key "key-<i % 97>", value "value-<i:08>") with acks=all and
idempotence, prints "HALF" once a third are acknowledged (the test kills the
leader then), and finally prints one JSON line: {"ok": [[index, partition,
offset], ...], "failed": [[index, error], ...]}.
"""

import json
import os
import sys
import threading
import time

BOOTSTRAP = os.environ["BROOK_BOOTSTRAP"]
TOPIC = os.environ["BROOK_TOPIC"]
N = int(os.environ["BROOK_RECORDS"])
DEADLINE = time.monotonic() + 240

ok = []
failed = []
lock = threading.Lock()


def record(i):
    return f"key-{i % 97}".encode(), f"value-{i:08}".encode()


def acked():
    with lock:
        return len(ok)


def half_signal(sent_half):
    # Deadline-bounded poll: the callbacks run on the client's own thread.
    while acked() < N // 3:
        if time.monotonic() > DEADLINE:
            raise SystemExit("a third of the records were never acknowledged")
        sent_half()
    print("HALF", flush=True)


def kafka_python():
    from kafka import KafkaProducer

    p = KafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=5000,
        delivery_timeout_ms=120000,
        retry_backoff_ms=100,
    )

    def on_ok(i):
        def cb(md):
            with lock:
                ok.append([i, md.partition, md.offset])

        return cb

    def on_err(i):
        def cb(e):
            with lock:
                failed.append([i, repr(e)])

        return cb

    def send(i):
        k, v = record(i)
        f = p.send(TOPIC, key=k, value=v)
        f.add_callback(on_ok(i))
        f.add_errback(on_err(i))

    for i in range(N // 2):
        send(i)
    half_signal(lambda: time.sleep(0.01))
    for i in range(N // 2, N):
        send(i)
    p.flush(timeout=180)
    p.close(timeout=10)


def confluent():
    from confluent_kafka import Producer

    p = Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "request.timeout.ms": 5000,
            "message.timeout.ms": 120000,
        }
    )

    def report(i):
        def cb(err, msg):
            with lock:
                if err is None:
                    ok.append([i, msg.partition(), msg.offset()])
                else:
                    failed.append([i, str(err)])

        return cb

    def send(i):
        k, v = record(i)
        while True:
            try:
                p.produce(TOPIC, key=k, value=v, on_delivery=report(i))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)

    for i in range(N // 2):
        send(i)
    half_signal(lambda: p.poll(0.01))
    for i in range(N // 2, N):
        send(i)
    left = p.flush(180)
    if left:
        raise SystemExit(f"{left} records still queued after flush")


if __name__ == "__main__":
    {"kafka-python": kafka_python, "confluent-kafka": confluent}[sys.argv[1]]()
    with lock:
        print(json.dumps({"ok": ok, "failed": failed}), flush=True)
