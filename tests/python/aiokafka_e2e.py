"""aiokafka against brook: admin create and describe, an idempotent producer with
gzip, keys and headers, a consumer group of two members that splits the partitions,
commits, and hands everything to the member that stays when the other leaves, and
the offset queries (beginning, end, by time)."""

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from common import BOOTSTRAP, CheckFailed, ensure, run_checks

TOPIC = "aio-e2e"
GROUP = "aio-e2e-group"
PARTITIONS = 4
COUNT = 2000
DEADLINE = 60.0


def record(i):
    return (
        f"key-{i % 89}".encode(),
        f"value-{i}-{'a' * (i % 40)}".encode(),
        [("index", str(i).encode()), ("kind", b"even" if i % 2 == 0 else b"odd")],
    )


async def wait_for(what, cond, interval=0.05):
    deadline = time.monotonic() + DEADLINE
    while not await cond():
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {DEADLINE}s waiting for {what}")
        await asyncio.sleep(interval)


async def admin_create_describe():
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
        topics = await admin.list_topics()
        ensure(TOPIC in topics, f"{TOPIC} not listed: {topics}")
        described = await admin.describe_topics([TOPIC])
        parts = described[0]["partitions"]
        ensure(len(parts) == PARTITIONS and all(p["leader"] >= 0 for p in parts),
               f"describe_topics: {described}")
    finally:
        await admin.close()


async def idempotent_produce():
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True,
                                acks="all", compression_type="gzip", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for i in range(COUNT):
            key, value, headers = record(i)
            futures.append(await producer.send(TOPIC, value=value, key=key, headers=headers))
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    seen = {(m.partition, m.offset) for m in metas}
    ensure(len(seen) == COUNT, f"{COUNT} sends got {len(seen)} distinct offsets")
    ensure({m.partition for m in metas} == set(range(PARTITIONS)), "keys did not reach every partition")


async def group_of_two():
    members = [AIOKafkaConsumer(TOPIC, bootstrap_servers=BOOTSTRAP, group_id=GROUP,
                                auto_offset_reset="earliest", enable_auto_commit=False)
               for _ in range(2)]
    seen = {}

    def take(n, batch):
        for tp, msgs in batch.items():
            for m in msgs:
                i = int(dict(m.headers)["index"])
                key, value, headers = record(i)
                ensure(m.key == key and m.value == value and list(m.headers) == headers,
                       f"record {i} at {tp.partition}/{m.offset} read back wrong")
                at = (tp.partition, m.offset)
                ensure(seen.get(i, at) == at, f"record {i} at {at} and {seen.get(i)}")
                seen[i] = at

    await members[0].start()
    await members[1].start()
    try:
        async def both_assigned():
            for n, c in enumerate(members):
                take(n, await c.getmany(timeout_ms=100))
            a, b = members[0].assignment(), members[1].assignment()
            return len(a) > 0 and len(b) > 0 and len(a) + len(b) == PARTITIONS and not (a & b)

        await wait_for("both members to share the partitions", both_assigned)

        async def all_read():
            for n, c in enumerate(members):
                take(n, await c.getmany(timeout_ms=100))
            return len(seen) == COUNT

        await wait_for(f"{COUNT} records read by the group", all_read)
        for c in members:
            await c.commit()
        ends = await members[0].end_offsets([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
        for tp, end in ends.items():
            committed = await members[0].committed(tp)
            ensure(committed == end, f"{tp}: committed {committed}, end {end}")
    finally:
        await members[1].stop()

    # The member that stays takes every partition and reads what is written next,
    # from the committed offsets: nothing twice.
    survivor = members[0]
    try:
        await wait_for("the survivor to own every partition",
                       lambda: _owns_all(survivor))
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True)
        await producer.start()
        try:
            for i in range(COUNT, COUNT + 200):
                key, value, headers = record(i)
                await producer.send_and_wait(TOPIC, value=value, key=key, headers=headers)
        finally:
            await producer.stop()

        async def rest_read():
            take(0, await survivor.getmany(timeout_ms=100))
            return len(seen) == COUNT + 200

        await wait_for("the records written after the rebalance", rest_read)
    finally:
        await survivor.stop()


async def _owns_all(consumer):
    await consumer.getmany(timeout_ms=100)
    return len(consumer.assignment()) == PARTITIONS


async def offset_queries():
    c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        begins = await c.beginning_offsets(tps)
        ends = await c.end_offsets(tps)
        ensure(all(v == 0 for v in begins.values()), f"beginning offsets {begins}")
        ensure(sum(ends.values()) == COUNT + 200, f"end offsets {ends}")
        hour_ago = int(time.time() * 1000) - 3_600_000
        by_time = await c.offsets_for_times({tp: hour_ago for tp in tps})
        ensure(all(v is not None and v.offset == 0 for v in by_time.values()), f"offsets an hour ago {by_time}")
        future = await c.offsets_for_times({tp: int(time.time() * 1000) + 3_600_000 for tp in tps})
        ensure(all(v is None for v in future.values()), f"offsets an hour ahead {future}")
    finally:
        await c.stop()


def sync(coro_fn):
    def check():
        asyncio.run(coro_fn())
    check.__name__ = coro_fn.__name__
    return check


if __name__ == "__main__":
    run_checks([sync(admin_create_describe), sync(idempotent_produce), sync(group_of_two),
                sync(offset_queries)])
