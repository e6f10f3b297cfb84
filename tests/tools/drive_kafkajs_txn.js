// drive_kafkajs_txn: kafkajs as a transactional producer and as a consumer, for
// tests/integration/test_txn_visibility.py.
//
//   node drive_kafkajs_txn.js HOST:PORT produce TOPIC TXN_ID PREFIX
//     one transaction aborted (values PREFIX-aborted-<i>), then one committed
//     (PREFIX-committed-<i>), 10 records each over partitions 0 and 1; prints
//     {"aborted": n, "committed": n}.
//   node drive_kafkajs_txn.js HOST:PORT consume TOPIC GROUP committed|uncommitted WANT
//     a group consumer from the beginning (kafkajs's default is read_committed;
//     "uncommitted" sets readUncommitted: true); it stops when it holds WANT
//     records and nothing more came for 2 s, or after 30 s; prints
//     {"values": [...]} (every value received, duplicates kept).
//
// kafkajs is resolved from tests/integration/js/node_modules (npm ci there).
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const path = require('path');
const { Kafka, logLevel } = require(
  path.join(__dirname, '..', 'integration', 'js', 'node_modules', 'kafkajs'));

const RECORDS_PER_TXN = 10;
const CONSUME_DEADLINE_MS = 30000;
const IDLE_AFTER_WANT_MS = 2000;

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function produce(kafka, topic, txnId, prefix) {
  const producer = kafka.producer({ transactionalId: txnId, idempotent: true,
                                    maxInFlightRequests: 1 });
  await producer.connect();
  const messages = (kind) => Array.from({ length: RECORDS_PER_TXN }, (_, i) => (
    { partition: i % 2, key: `k${i}`, value: `${prefix}-${kind}-${i}` }));
  let txn = await producer.transaction();
  await txn.send({ topic, messages: messages('aborted') });
  await txn.abort();
  txn = await producer.transaction();
  await txn.send({ topic, messages: messages('committed') });
  await txn.commit();
  await producer.disconnect();
  return { aborted: RECORDS_PER_TXN, committed: RECORDS_PER_TXN };
}

async function consume(kafka, topic, groupId, isolation, want) {
  const consumer = kafka.consumer({ groupId, readUncommitted: isolation === 'uncommitted',
                                    maxWaitTimeInMs: 200, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const values = [];
  let lastAt = Date.now();
  await consumer.run({ eachMessage: async ({ message }) => {
    values.push(message.value.toString());
    lastAt = Date.now();
  } });
  const deadline = Date.now() + CONSUME_DEADLINE_MS;
  while (Date.now() < deadline &&
         !(values.length >= want && Date.now() - lastAt >= IDLE_AFTER_WANT_MS)) {
    await sleep(100);
  }
  await consumer.disconnect();
  return { values };
}

async function main() {
  const [broker, mode, topic, a, b, c] = process.argv.slice(2);
  // The producer keeps kafkajs's default retries (limiting them would weaken its EoS).
  const retry = mode === 'consume' ? { retries: 5 } : undefined;
  const kafka = new Kafka({ clientId: 'kafkajs-txn', brokers: [broker],
                            logLevel: logLevel.WARN, retry });
  let out;
  if (mode === 'produce') {
    out = await produce(kafka, topic, a, b);
  } else if (mode === 'consume') {
    out = await consume(kafka, topic, a, b, parseInt(c, 10));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
