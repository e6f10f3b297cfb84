#!/usr/bin/python3
"""ListOffsets by time and by max timestamp, at the record, not the batch.

confluent-kafka produces records with explicit CreateTime timestamps, lingering so that
many share a batch (uncompressed and gzip, so the lookup walks decompressed records too).
offsets_for_times (librdkafka's ListOffsets) must name the exact record: a target equal to
record i's timestamp answers i, a target between i and i+1 answers i+1, a target past the
last record answers the end (-1). A raw ListOffsets v7 with timestamp -3 (KIP-734) answers
the record holding the largest timestamp and that timestamp, and v1 by time answers the
record's timestamp. kcat -Q (offsets for times) agrees. After a restart the same answers
come from the disk instead of the batch cache.
"""
import sys

from harness import Broker, KafkaConn, kcat

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BASE_MS = 1_700_000_000_000
COUNT = 400
SPIKE_INDEX = 150            # partition 1 holds one record far in the future
SPIKE_MS = BASE_MS + 10_000_000


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def ts_of(i):
    return BASE_MS + 10 * i


def produce(bootstrap, topic, compression):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50,
                  "compression.type": compression, "enable.idempotence": False})
    for i in range(COUNT):
        p.produce(topic, value=b"v%d" % i, partition=0, timestamp=ts_of(i))
        ts = SPIKE_MS if i == SPIKE_INDEX else ts_of(i)
        p.produce(topic, value=b"w%d" % i, partition=1, timestamp=ts)
    check(p.flush(30) == 0, "%s: %d records per partition delivered" % (compression, COUNT))


def offsets_for(bootstrap, topic, partition, targets):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "none", "enable.auto.commit": False})
    # One target per call: librdkafka keeps one entry per partition in a request.
    got = [c.offsets_for_times([TopicPartition(topic, partition, t)], timeout=10)[0].offset
           for t in targets]
    c.close()
    return got


def list_offsets_raw(bootstrap, version, topic, partition, timestamp):
    with KafkaConn(bootstrap) as c:
        body = {"ReplicaId": -1, "IsolationLevel": 0, "Topics": [{"Name": topic, "Partitions": [
            {"PartitionIndex": partition, "CurrentLeaderEpoch": -1, "Timestamp": timestamp,
             "MaxNumOffsets": 1}]}]}
        r = c.request("ListOffsets", version, body)
        p = r["Topics"][0]["Partitions"][0]
        return p["ErrorCode"], p["Offset"], p["Timestamp"]


def batches_share_records(bootstrap, topic):
    """True when partition 0's records came in multi-record batches (the point of the test)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "none", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < COUNT:
        got += [m for m in c.consume(COUNT - len(got), 5.0) if not m.error()]
    c.close()
    return [m.timestamp()[1] for m in got] == [ts_of(i) for i in range(COUNT)]


def lookups(bootstrap, topic, when):
    targets = [ts_of(0), ts_of(137), ts_of(137) + 5, ts_of(COUNT - 1), ts_of(COUNT - 1) + 1,
               BASE_MS - 1]
    got = offsets_for(bootstrap, topic, 0, targets)
    check(got == [0, 137, 138, COUNT - 1, -1, 0],
          "%s %s: offsets_for_times at record i, between records, past the end: %s"
          % (topic, when, got))
    err, off, ts = list_offsets_raw(bootstrap, 1, topic, 0, ts_of(251) - 3)
    check((err, off, ts) == (0, 251, ts_of(251)),
          "%s %s: ListOffsets v1 by time answers record 251 and its timestamp" % (topic, when))
    err, off, ts = list_offsets_raw(bootstrap, 7, topic, 1, -3)
    check((err, off, ts) == (0, SPIKE_INDEX, SPIKE_MS),
          "%s %s: ListOffsets v7 max timestamp (-3) names the spike record %d"
          % (topic, when, SPIKE_INDEX))
    err, off, ts = list_offsets_raw(bootstrap, 7, topic, 0, -3)
    check((err, off, ts) == (0, COUNT - 1, ts_of(COUNT - 1)),
          "%s %s: max timestamp of a time-ordered partition is its last record" % (topic, when))
    rc, out, err = kcat(bootstrap, "-Q", "-t", "%s:0:%d" % (topic, ts_of(42)))
    check(rc == 0 and " offset 42" in out,
          "%s %s: kcat -Q names offset 42: %r %r" % (topic, when, out.strip(), err.strip()))


def main(sluice):
    with Broker(sluice, cores="2") as b:
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        fs = a.create_topics([NewTopic("lo-plain", 2, 1), NewTopic("lo-gzip", 2, 1),
                              NewTopic("lo-empty", 1, 1)])
        for f in fs.values():
            f.result()
        produce(b.bootstrap, "lo-plain", "none")
        produce(b.bootstrap, "lo-gzip", "gzip")
        check(batches_share_records(b.bootstrap, "lo-plain"), "records keep their CreateTime")
        for topic in ("lo-plain", "lo-gzip"):
            lookups(b.bootstrap, topic, "(cache)")
        err, off, ts = list_offsets_raw(b.bootstrap, 7, "lo-empty", 0, -3)
        check((err, off, ts) == (0, -1, -1), "max timestamp of an empty partition: -1, -1")
        b.restart()
        for topic in ("lo-plain", "lo-gzip"):
            lookups(b.bootstrap, topic, "(after restart)")
    print("PASS test_list_offsets")


if __name__ == "__main__":
    main(sys.argv[1])
