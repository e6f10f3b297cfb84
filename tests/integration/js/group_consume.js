// group_consume: a kafkajs consumer in a group reads COUNT messages of TOPIC with
// eachMessage, committing each offset (autoCommit off, commitOffsets after each
// message), then prints {"count": n, "partitions": [...]} as JSON and exits.
//
// Usage: node group_consume.js HOST:PORT TOPIC GROUP COUNT
// Exit status 0 on success; 1 (with the error on stderr) on failure or timeout (30 s).
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [broker, topic, groupId, countArg] = process.argv.slice(2);
  if (!broker || !topic || !groupId || !countArg) {
    console.error('usage: node group_consume.js HOST:PORT TOPIC GROUP COUNT');
    process.exit(2);
  }
  const want = parseInt(countArg, 10);
  const kafka = new Kafka({ clientId: 'sluice-group-consume', brokers: [broker],
                            logLevel: logLevel.NOTHING, retry: { retries: 5 } });
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let count = 0;
  const partitions = new Set();
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout after ${count} messages`)), 30000);
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic: t, partition, message }) => {
        count += 1;
        partitions.add(partition);
        const next = (BigInt(message.offset) + 1n).toString();
        await consumer.commitOffsets([{ topic: t, partition, offset: next }]);
        if (count >= want) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  try {
    await done;
    console.log(JSON.stringify({ count, partitions: [...partitions].sort() }));
  } finally {
    await consumer.disconnect();
  }
}

main().then(() => process.exit(0)).catch((e) => {
  console.error(`group_consume: ${e.name}: ${e.message}`);
  process.exit(1);
});
