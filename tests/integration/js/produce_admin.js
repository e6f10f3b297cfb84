// produce_admin: kafkajs admin.createTopics + fetchTopicMetadata, a producer with
// acks=-1 (gzip and none), and admin.fetchTopicOffsets; prints a JSON summary.
//
// Usage: node produce_admin.js HOST:PORT TOPIC COUNT
// Exit 0 on success, 1 with the error on stderr.
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const { Kafka, logLevel, CompressionTypes } = require('kafkajs');

async function main() {
  const [broker, topic, countArg] = process.argv.slice(2);
  const count = parseInt(countArg, 10);
  const kafka = new Kafka({
    clientId: 'sluice-produce-admin', brokers: [broker], logLevel: logLevel.NOTHING,
    connectionTimeout: 3000, requestTimeout: 10000, retry: { retries: 3 },
  });
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: 3, replicationFactor: 1,
               configEntries: [{ name: 'retention.ms', value: '86400000' }] }],
    waitForLeaders: true,
  });
  const again = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  const producer = kafka.producer();
  await producer.connect();
  const half = Math.floor(count / 2);
  const msgs = (from, to) => Array.from({ length: to - from }, (_, i) => ({
    key: `k${(from + i) % 10}`, value: `js-${from + i}`,
    headers: { h: `v${from + i}` },
  }));
  const r1 = await producer.send({ topic, acks: -1, messages: msgs(0, half) });
  const r2 = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP,
                                   messages: msgs(half, count) });
  await producer.disconnect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  console.log(JSON.stringify({
    created, again,
    partitions: meta.topics[0].partitions.map((p) => ({
      id: p.partitionId, leader: p.leader, replicas: p.replicas, isr: p.isr })),
    acks: r1.concat(r2).map((r) => ({ p: r.partition, err: r.errorCode })),
    offsets: offsets.map((o) => ({ p: o.partition, high: o.high, low: o.low })),
  }));
}

main().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
