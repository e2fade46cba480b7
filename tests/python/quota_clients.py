"""Client quotas seen by the Python clients (run by tests/tests/quotas.rs, which
sets the quotas first with `brook quota set`):

- client id `py-throttled`: producer_byte_rate and consumer_byte_rate 500 KB/s;
- client id `py-kp`: producer_byte_rate 500 KB/s.

confluent-kafka (librdkafka) must report the throttle through `throttle_cb`,
kafka-python through its `throttle-time-max` metric, nothing may be lost,
and kafka-python's DescribeClientQuotas v0 (its own codec) must read brook's answer.
"""

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from common import BOOTSTRAP, ensure, run_checks

RECORD = b"p" * 10240
COUNT = 300  # 3 MB: six times the burst a 500 KB/s quota allows


def check_confluent_producer_is_throttled_and_loses_nothing():
    throttles = []
    errors = []
    p = Producer({
        "bootstrap.servers": BOOTSTRAP,
        "client.id": "py-throttled",
        "linger.ms": 5,
        "throttle_cb": lambda ev: throttles.append(ev.throttle_time),
    })

    def delivered(err, _msg):
        if err is not None:
            errors.append(err)

    for _ in range(COUNT):
        while True:
            try:
                p.produce("py-quota", RECORD, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    ensure(p.flush(60) == 0, "records left unflushed")
    p.poll(0.5)
    ensure(not errors, f"delivery errors: {errors[:3]}")
    ensure(throttles and max(throttles) > 0, f"no throttle reported: {throttles}")
    print(f"  confluent producer: {len(throttles)} throttle events, max {max(throttles) * 1000:.0f} ms")


def check_confluent_consumer_is_throttled_and_reads_everything():
    throttles = []
    c = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "client.id": "py-throttled",
        "group.id": "py-quota",
        "enable.auto.commit": False,
        "throttle_cb": lambda ev: throttles.append(ev.throttle_time),
    })
    c.assign([TopicPartition("py-quota", 0, OFFSET_BEGINNING)])
    got = 0
    deadline = time.monotonic() + 60
    while got < COUNT and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        ensure(m.error() is None, f"consumer error: {m.error()}")
        ensure(m.offset() == got, f"expected offset {got}, got {m.offset()}")
        ensure(m.value() == RECORD, "record changed")
        got += 1
    c.poll(0.5)  # serve the last throttle callbacks
    c.close()
    ensure(got == COUNT, f"read {got} of {COUNT} records")
    ensure(throttles and max(throttles) > 0, f"no fetch throttle reported: {throttles}")
    print(f"  confluent consumer: {len(throttles)} throttle events, max {max(throttles) * 1000:.0f} ms")


def check_kafka_python_producer_sees_the_throttle():
    from kafka import KafkaProducer

    from kafka.errors import KafkaTimeoutError

    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, client_id="py-kp", linger_ms=5)
    futures = [p.send("py-quota-kp", RECORD) for _ in range(COUNT)]
    # kafka-python 2.3 throttles the connection itself (KIP-219) and then, with
    # nothing new to send, sleeps without a timeout ("Node not ready; delaying
    # produce of accumulated batch (inf ms)") until something wakes its sender;
    # flush() does, so flush in short steps until every record is acknowledged.
    deadline = time.monotonic() + 60
    while not all(f.is_done for f in futures) and time.monotonic() < deadline:
        try:
            p.flush(0.5)
        except KafkaTimeoutError:
            pass
    for f in futures:
        f.get(timeout=1)
    m = p.metrics()["producer-metrics"]
    throttle = m.get("throttle-time-max", 0.0)
    p.close()
    ensure(throttle > 0, f"kafka-python saw no produce throttle: {m.get('throttle-time-max')}")
    print(f"  kafka-python producer: throttle-time-max {throttle:.0f} ms")


def check_kafka_python_describes_client_quotas():
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.admin import DescribeClientQuotasRequest

    a = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        req = DescribeClientQuotasRequest[0](
            components=[("client-id", 0, "py-throttled")], strict=False)
        node = a._client.least_loaded_node()
        f = a._send_request_to_node(node, req)
        a._wait_for_futures([f])
        resp = f.value
    finally:
        a.close()
    ensure(resp.error_code == 0, f"error {resp.error_code}: {resp.error_message}")
    entries = {tuple(tuple(e) for e in entity): dict(values) for entity, values in resp.entries}
    want = {(("client-id", "py-throttled"),): {"consumer_byte_rate": 500000.0,
                                              "producer_byte_rate": 500000.0}}
    ensure(entries == want, f"DescribeClientQuotas answered {entries}")


if __name__ == "__main__":
    run_checks([
        check_confluent_producer_is_throttled_and_loses_nothing,
        check_confluent_consumer_is_throttled_and_reads_everything,
        check_kafka_python_producer_sees_the_throttle,
        check_kafka_python_describes_client_quotas,
    ])
