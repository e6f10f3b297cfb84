// describe_cluster: connect a kafkajs admin client to a broker and print
// admin.describeCluster() as JSON on stdout.
//
// Usage: node describe_cluster.js HOST:PORT
// Exit status 0 on success; 1 (with the error on stderr) on any failure,
// 2 on bad usage. Retries are kept low so a dead broker fails in seconds.
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const broker = process.argv[2];
  if (!broker) {
    console.error('usage: node describe_cluster.js HOST:PORT');
    process.exit(2);
  }
  const kafka = new Kafka({
    clientId: 'sluice-describe-cluster',
    brokers: [broker],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 5000,
    retry: { retries: 1, initialRetryTime: 200 },
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const cluster = await admin.describeCluster();
    console.log(JSON.stringify(cluster));
  } finally {
    await admin.disconnect();
  }
}

main().then(() => process.exit(0)).catch((e) => {
  console.error(`describe_cluster: ${e.name}: ${e.message}`);
  process.exit(1);
});
