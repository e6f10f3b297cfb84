// admin_configs: kafkajs admin describeConfigs (topic and broker), alterConfigs,
// createPartitions and deleteTopicRecords against an existing topic holding records in
// partition 0; prints a JSON summary for test_admin.py to check.
//
// Usage: node admin_configs.js HOST:PORT TOPIC
// Exit 0 on success, 1 with the error on stderr.
'use strict';
const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs');

function entries(described) {
  const out = {};
  for (const e of described.resources[0].configEntries) {
    out[e.configName] = { value: e.configValue, source: e.configSource,
                          readOnly: e.readOnly, isDefault: e.isDefault };
  }
  return out;
}

async function main() {
  const [broker, topic] = process.argv.slice(2);
  const kafka = new Kafka({
    clientId: 'sluice-admin-configs', brokers: [broker], logLevel: logLevel.NOTHING,
    connectionTimeout: 3000, requestTimeout: 10000, retry: { retries: 3 },
  });
  const admin = kafka.admin();
  await admin.connect();
  const before = entries(await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] }));
  await admin.alterConfigs({ validateOnly: false, resources: [{
    type: ConfigResourceTypes.TOPIC, name: topic,
    configEntries: [{ name: 'retention.ms', value: '123456789' }] }] });
  const after = entries(await admin.describeConfigs({
    includeSynonyms: true,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic,
                  configNames: ['retention.ms'] }] }));
  const brokerCfg = entries(await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.BROKER, name: '1',
                  configNames: ['num.partitions', 'log.retention.hours'] }] }));
  await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '3' }] });
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  console.log(JSON.stringify({
    before: before['retention.ms'], after: after['retention.ms'], broker: brokerCfg,
    partitions: meta.topics[0].partitions.length,
    offsets: offsets.map((o) => ({ p: o.partition, high: o.high, low: o.low })),
  }));
}

main().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
