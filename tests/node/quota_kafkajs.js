// kafkajs against brook's client quotas (run by tests/tests/quotas.rs, which
// first sets producer_byte_rate and consumer_byte_rate of client id
// `js-throttled` to 500 KB/s): the producer and the consumer must see
// throttle_time_ms in their responses (kafkajs logs them; it also throttles
// itself, KIP-219) and nothing may be lost. Exits non-zero on failure.
const { Kafka, logLevel } = require('kafkajs')

const BOOTSTRAP = process.env.BROOK_BOOTSTRAP
const TOPIC = 'js-quota'
const COUNT = 300 // 3 MB: six times what a 500 KB/s quota allows at once
const RECORD = Buffer.alloc(10240, 'j')

// kafkajs reports throttle_time_ms in two ways: for versions before KIP-219
// (Produce < 6, Fetch < 8) in the logged response data, for later ones as the
// "Client side throttling in effect for N ms" it then applies itself. The
// phase says whose response it was: the producer runs first, then the consumer.
const throttles = { Produce: [], Fetch: [] }
let phase = 'Produce'
const logCreator = () => ({ log }) => {
  const message = log.message || ''
  const m = /^Response (Produce|Fetch)\(/.exec(message)
  if (m && log.data && log.data.throttleTime > 0) throttles[m[1]].push(log.data.throttleTime)
  const c = /^Client side throttling in effect for (\d+)ms/.exec(message)
  if (c && Number(c[1]) > 0) throttles[phase].push(Number(c[1]))
}

function ensure (cond, msg) {
  if (!cond) throw new Error(msg)
}

async function main () {
  ensure(BOOTSTRAP, 'BROOK_BOOTSTRAP is not set')
  const kafka = new Kafka({
    clientId: 'js-throttled',
    brokers: [BOOTSTRAP],
    logLevel: logLevel.DEBUG,
    logCreator,
  })
  const producer = kafka.producer({ allowAutoTopicCreation: true })
  await producer.connect()
  for (let i = 0; i < COUNT; i += 10) {
    const messages = Array.from({ length: 10 }, (_, j) => ({ value: RECORD, key: String(i + j) }))
    await producer.send({ topic: TOPIC, acks: -1, messages })
  }
  await producer.disconnect()
  ensure(throttles.Produce.length > 0, 'kafkajs saw no produce throttle')
  console.log(`PASS kafkajs producer: ${throttles.Produce.length} throttled responses, max ${Math.max(...throttles.Produce)} ms`)

  phase = 'Fetch'
  const consumer = kafka.consumer({ groupId: 'js-quota', maxBytesPerPartition: 1048576 })
  await consumer.connect()
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true })
  let next = 0
  let failure = null
  const done = new Promise((resolve) => {
    consumer.run({
      eachMessage: async ({ message }) => {
        if (Number(message.offset) !== next || message.value.length !== RECORD.length) {
          failure = failure || `offset ${message.offset} (expected ${next}), ${message.value.length} bytes`
        }
        next += 1
        if (next === COUNT) resolve()
      },
    })
  })
  const timeout = new Promise((resolve, reject) => setTimeout(() => reject(new Error(`read ${next} of ${COUNT} records in 90 s`)), 90000))
  await Promise.race([done, timeout])
  await consumer.disconnect()
  ensure(failure === null, failure)
  ensure(throttles.Fetch.length > 0, 'kafkajs saw no fetch throttle')
  console.log(`PASS kafkajs consumer: read ${next} records, ${throttles.Fetch.length} throttled responses, max ${Math.max(...throttles.Fetch)} ms`)
}

main().then(() => process.exit(0), (e) => {
  console.error(`FAIL ${e.stack || e}`)
  process.exit(1)
})
