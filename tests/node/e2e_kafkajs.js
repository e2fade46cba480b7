// kafkajs end to end against brook (run by tests/tests/clients_node.rs, whose
// broker cleans every 100 ms): the admin API, an idempotent producer with gzip
// and headers, a consumer group of two members that splits the partitions and
// commits, the group's offsets as the admin API sees them, offsets set by the
// admin API while the group is empty, a compacted topic read back while the
// cleaner rewrites it, and topic deletion. Exits non-zero on the first failure.
const { Kafka, logLevel, CompressionTypes } = require('kafkajs')

const BOOTSTRAP = process.env.BROOK_BOOTSTRAP
const TOPIC = 'js-e2e'
const COMPACTED = 'js-compacted'
const GROUP = 'js-e2e-group'
const COUNT = 2000
const DEADLINE_MS = 90000

function ensure (cond, msg) {
  if (!cond) throw new Error(msg)
}

// Resolve when `cond()` is true, checking every `everyMs`; reject after
// DEADLINE_MS naming `what`.
async function waitFor (what, cond, everyMs = 100) {
  const end = Date.now() + DEADLINE_MS
  for (;;) {
    if (await cond()) return
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

function record (i) {
  return {
    key: `key-${i % 97}`,
    value: `value-${i}-${'v'.repeat(i % 50)}`,
    headers: { index: String(i), kind: i % 2 === 0 ? 'even' : 'odd' },
  }
}

async function admin (kafka) {
  const a = kafka.admin()
  await a.connect()
  await a.createTopics({
    waitForLeaders: true,
    topics: [
      { topic: TOPIC, numPartitions: 3, replicationFactor: 1 },
      {
        topic: COMPACTED,
        numPartitions: 1,
        replicationFactor: 1,
        configEntries: [
          { name: 'cleanup.policy', value: 'compact' },
          { name: 'segment.bytes', value: '16384' },
          { name: 'min.cleanable.dirty.ratio', value: '0.01' },
        ],
      },
    ],
  })
  const topics = await a.listTopics()
  ensure(topics.includes(TOPIC) && topics.includes(COMPACTED), `listTopics: ${topics}`)
  await a.createPartitions({ topicPartitions: [{ topic: TOPIC, count: 4 }] })
  await waitFor('4 partitions with leaders', async () => {
    const md = await a.fetchTopicMetadata({ topics: [TOPIC] })
    const parts = md.topics[0].partitions
    return parts.length === 4 && parts.every((p) => p.leader >= 0)
  })
  const configs = await a.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: 2, name: COMPACTED, configNames: ['cleanup.policy', 'segment.bytes'] }],
  })
  const entries = Object.fromEntries(configs.resources[0].configEntries.map((e) => [e.configName, e.configValue]))
  ensure(entries['cleanup.policy'] === 'compact' && entries['segment.bytes'] === '16384',
    `describeConfigs: ${JSON.stringify(entries)}`)
  console.log('PASS admin: create, list, create partitions, metadata, describe configs')
  return a
}

async function produce (kafka) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const acked = []
  for (let i = 0; i < COUNT; i += 100) {
    const messages = []
    for (let j = i; j < i + 100; j++) messages.push(record(j))
    const compression = (i / 100) % 2 === 0 ? CompressionTypes.GZIP : CompressionTypes.None
    const meta = await producer.send({ topic: TOPIC, acks: -1, compression, messages })
    acked.push(...meta)
  }
  await producer.disconnect()
  ensure(acked.every((m) => m.errorCode === 0), `produce errors: ${JSON.stringify(acked.filter((m) => m.errorCode !== 0))}`)
  console.log(`PASS producer: ${COUNT} records, idempotent, gzip and uncompressed batches`)
}

// Two members of one group split the partitions, read everything once between
// them (what is written after both joined reaches both), and commit.
async function consumeGroup (kafka, a) {
  const seen = new Map()
  let failure = null
  const members = [kafka.consumer({ groupId: GROUP }), kafka.consumer({ groupId: GROUP })]
  const assignment = [[], []]
  const readBy = [0, 0]
  const take = (n, partition, message) => {
    const i = Number(message.headers.index.toString())
    const want = record(i)
    if (message.key.toString() !== want.key || message.value.toString() !== want.value ||
        message.headers.kind.toString() !== want.headers.kind) {
      failure = failure || `record ${i} at ${partition}/${message.offset} read back wrong`
    }
    const at = `${partition}/${message.offset}`
    if (seen.has(i) && seen.get(i) !== at) failure = failure || `record ${i} at ${at} and ${seen.get(i)}`
    seen.set(i, at)
    if (i >= COUNT) readBy[n] += 1
  }
  for (const [n, c] of members.entries()) {
    c.on(c.events.GROUP_JOIN, (e) => { assignment[n] = e.payload.memberAssignment[TOPIC] || [] })
    await c.connect()
    await c.subscribe({ topic: TOPIC, fromBeginning: true })
    await c.run({ eachMessage: async ({ partition, message }) => take(n, partition, message) })
  }
  await waitFor('both members to share the 4 partitions', async () => {
    const [x, y] = assignment
    const g = (await a.describeGroups([GROUP])).groups[0]
    return x.length > 0 && y.length > 0 && x.length + y.length === 4 &&
      new Set([...x, ...y]).size === 4 && g.state === 'Stable' && g.members.length === 2
  })
  await waitFor(`${COUNT} records read by the group`, () => seen.size === COUNT || failure !== null)
  ensure(failure === null, failure)
  // Written now, one record per partition and more: both members read some.
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const extra = []
  for (let i = COUNT; i < COUNT + 200; i++) extra.push({ ...record(i), partition: i % 4 })
  await producer.send({ topic: TOPIC, acks: -1, messages: extra })
  await producer.disconnect()
  await waitFor(`${COUNT + 200} records read by the group`, () => seen.size === COUNT + 200 || failure !== null)
  ensure(failure === null, failure)
  ensure(readBy[0] > 0 && readBy[1] > 0, `records written after the join, read by each member: ${readBy}`)
  for (const c of members) await c.disconnect()
  // kafkajs commits on disconnect: the group's offsets are the topic's ends.
  const ends = await a.fetchTopicOffsets(TOPIC)
  const committed = await a.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
  for (const e of ends) {
    const c = committed[0].partitions.find((p) => p.partition === e.partition)
    ensure(c && c.offset === e.high, `partition ${e.partition}: committed ${c && c.offset}, end ${e.high}`)
  }
  const listed = await a.listGroups()
  ensure(listed.groups.some((x) => x.groupId === GROUP), `listGroups: ${JSON.stringify(listed.groups)}`)
  const empty = (await a.describeGroups([GROUP])).groups[0]
  ensure(empty.state === 'Empty', `group after both left: ${empty.state}`)
  console.log(`PASS consumer group: 2 members split 4 partitions, ${COUNT + 200} records once each, offsets committed to the ends`)
}

// Offsets set by the admin API while the group is empty are where it resumes.
async function setOffsets (kafka, a) {
  const ends = await a.fetchTopicOffsets(TOPIC)
  const target = ends.map((e) => ({ partition: e.partition, offset: String(Math.max(0, Number(e.high) - 5)) }))
  await a.setOffsets({ groupId: GROUP, topic: TOPIC, partitions: target })
  const c = kafka.consumer({ groupId: GROUP })
  await c.connect()
  await c.subscribe({ topic: TOPIC, fromBeginning: true })
  let read = 0
  let failure = null
  await c.run({
    eachMessage: async ({ partition, message }) => {
      const want = target.find((t) => t.partition === partition)
      if (Number(message.offset) < Number(want.offset)) failure = failure || `read ${partition}/${message.offset} below the set offset ${want.offset}`
      read += 1
    },
  })
  const want = ends.reduce((n, e) => n + Math.min(5, Number(e.high)), 0)
  await waitFor(`${want} records after setOffsets`, () => read >= want || failure !== null)
  await c.disconnect()
  ensure(failure === null, failure)
  ensure(read === want, `read ${read} records after setOffsets, want ${want}`)
  const byTime = await a.fetchTopicOffsetsByTimestamp(TOPIC, Date.now() - 3600 * 1000)
  ensure(byTime.every((p) => p.offset === '0'), `offsets an hour ago: ${JSON.stringify(byTime)}`)
  console.log('PASS admin offsets: setOffsets honoured, offsets by timestamp')
}

// A compacted topic read back while the cleaner works: offsets increase, every
// key's last value is its latest write, and the cleaner removes old values.
async function compacted (kafka) {
  const producer = kafka.producer()
  await producer.connect()
  const total = 3000
  const latest = new Map()
  for (let i = 0; i < total; i += 100) {
    const messages = []
    for (let j = i; j < i + 100; j++) {
      const m = { key: `k-${j % 10}`, value: `v-${j}-${'c'.repeat(40)}` }
      latest.set(m.key, m.value)
      messages.push(m)
    }
    await producer.send({ topic: COMPACTED, acks: -1, messages })
  }
  await producer.disconnect()
  let reads = 0
  let lastCount = total
  // Read the whole topic with a fresh group until a read shows the clean.
  await waitFor('a read of the compacted topic shorter than what was written', async () => {
    reads += 1
    const c = kafka.consumer({ groupId: `js-compacted-${reads}` })
    await c.connect()
    await c.subscribe({ topic: COMPACTED, fromBeginning: true })
    const values = new Map()
    let prev = -1
    let count = 0
    let failure = null
    let end = null
    await c.run({
      eachMessage: async ({ message }) => {
        const offset = Number(message.offset)
        if (offset <= prev) failure = failure || `offset ${offset} after ${prev}`
        prev = offset
        count += 1
        values.set(message.key.toString(), message.value.toString())
      },
    })
    const a = kafka.admin()
    await a.connect()
    end = Number((await a.fetchTopicOffsets(COMPACTED))[0].high)
    await a.disconnect()
    await waitFor(`read ${COMPACTED} to its end ${end}`, () => prev + 1 >= end || failure !== null, 20)
    await c.disconnect()
    ensure(failure === null, failure)
    for (const [k, v] of latest) ensure(values.get(k) === v, `key ${k}: read ${values.get(k)}, latest ${v}`)
    lastCount = count
    return count < total / 2
  }, 200)
  console.log(`PASS compacted topic: ${reads} full reads, the last ${lastCount} of ${total} records, latest values intact`)
}

async function main () {
  ensure(BOOTSTRAP, 'BROOK_BOOTSTRAP is not set')
  const kafka = new Kafka({ clientId: 'js-e2e', brokers: [BOOTSTRAP], logLevel: logLevel.WARN })
  const a = await admin(kafka)
  await produce(kafka)
  await consumeGroup(kafka, a)
  await setOffsets(kafka, a)
  await compacted(kafka)
  await a.deleteTopics({ topics: [TOPIC] })
  await waitFor('the deleted topic to leave the list', async () => !(await a.listTopics()).includes(TOPIC))
  await a.disconnect()
  console.log('PASS admin: delete topic')
}

main().then(() => process.exit(0), (e) => {
  console.error(`FAIL ${e.stack || e}`)
  process.exit(1)
})
