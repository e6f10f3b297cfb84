// drive_kafkajs: run a kafkajs producer and group consumer once.
//
// Used by capture_all.sh against capture_broker.py to elicit kafkajs's
// requests (ApiVersions, Metadata, Produce, FindCoordinator, JoinGroup,
// SyncGroup, OffsetFetch, OffsetCommit, ListOffsets, Fetch, Heartbeat,
// LeaveGroup).
// kafkajs is resolved from tests/integration/js/node_modules (npm ci there).
// Usage: node drive_kafkajs.js HOST:PORT
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const path = require('path');
const { Kafka, CompressionTypes, logLevel } = require(
  path.join(__dirname, '..', 'integration', 'js', 'node_modules', 'kafkajs'));

async function main() {
  const broker = process.argv[2];
  const kafka = new Kafka({ clientId: 'kafkajs', brokers: [broker],
                            logLevel: logLevel.WARN, retry: { retries: 2 } });
  const producer = kafka.producer();
  await producer.connect();
  const messages = [0, 1, 2].map((i) => ({ key: `k${i}`,
                                           value: `value ${i} ` + 'abc'.repeat(20) }));
  await producer.send({ topic: 'golden', acks: -1, messages });
  await producer.send({ topic: 'golden', acks: -1, messages,
                        compression: CompressionTypes.GZIP });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: 'golden-group', maxWaitTimeInMs: 200,
                                    heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic: 'golden', fromBeginning: true });
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => { joined = true; });
  await consumer.run({ eachMessage: async () => {} });
  const deadline = Date.now() + 10000;
  while (!joined && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  // An explicit commit, so OffsetCommit is captured too.
  await consumer.commitOffsets([{ topic: 'golden', partition: 0, offset: '0' }]);
  await new Promise((r) => setTimeout(r, 2000)); // fetches and a heartbeat
  await consumer.disconnect();
  console.log(`kafkajs joined=${joined}`);
  process.exit(joined ? 0 : 1);
}

main().catch((e) => { console.error(e); process.exit(1); });
