// drive_platformatic: run a @platformatic/kafka producer and group consumer.
//
// Used by capture_all.sh against capture_broker.py. @platformatic/kafka is
// a pure-JS client for Kafka 3.5+ that uses the newest, flexible versions
// (Metadata v12, Produce v9, Fetch v13 with topic ids, JoinGroup v9, ...),
// which the other installed clients never send. The package is resolved from
// tests/integration/js/node_modules (npm ci there).
// Usage: node drive_platformatic.mjs HOST:PORT [txn]
// With "txn": only a transactional producer (InitProducerId with a
// transactional id, AddPartitionsToTxn v3, Produce, EndTxn).
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const entry = path.join(here, '..', 'integration', 'js', 'node_modules',
                        '@platformatic', 'kafka', 'dist', 'index.js');
const { Producer, Consumer, stringSerializers, stringDeserializers } =
  await import(pathToFileURL(entry).href);

const broker = process.argv[2];
const common = { clientId: 'platformatic', bootstrapBrokers: [broker] };

if (process.argv[3] === 'txn') {
  const producer = new Producer({ ...common, serializers: stringSerializers,
                                  autocreateTopics: false, idempotent: true,
                                  transactionalId: 'golden-txn' });
  const txn = await producer.beginTransaction();
  await txn.send({ messages: [{ topic: 'golden', key: 'k',
                                value: 'in a transaction' }] });
  await txn.commit();
  await producer.close();
  console.log('platformatic transaction committed');
  process.exit(0);
}

const producer = new Producer({ ...common, serializers: stringSerializers,
                                autocreateTopics: false });
await producer.send({ messages: [0, 1, 2].map((i) => ({
  topic: 'golden', key: `k${i}`, value: `value ${i} ` + 'abc'.repeat(20),
  headers: { source: 'golden' } })) });
await producer.close();

const consumer = new Consumer({ ...common, groupId: 'golden-group',
                                deserializers: stringDeserializers,
                                maxWaitTime: 200 });
const stream = await consumer.consume({ autocommit: false, topics: ['golden'],
                                        mode: 'earliest', sessionTimeout: 10000,
                                        heartbeatInterval: 500 });
let failed = null;
stream.on('error', (e) => { failed = e; });
stream.on('data', () => {}); // a stream only fetches while it is read
await new Promise((r) => setTimeout(r, 2500)); // fetches and heartbeats
await stream.close();
await consumer.close();
if (failed) {
  console.error(failed);
  process.exit(1);
}
console.log('platformatic consumer ran');
