#!/usr/bin/python3
"""Fetch fan-out: 4 confluent-kafka consumers tail one topic while a producer writes.

A 2-shard broker, a topic of 4 partitions (so each consumer's connection reads some
partitions its own shard owns -- served zero-copy from the batch cache -- and some
owned by the other shard -- copied once). Four consumers (assign() at the beginning, no
group; two with fetch.min.bytes 1, two with 64 KiB, so their fetches park and re-read
as data arrives) start first and tail the topic while one producer writes 200,000 messages whose
values are their sequence numbers. Every consumer must get every message exactly once,
each partition's messages in the order they were produced, at consecutive offsets.

Run twice: with the default batch cache, and with a 2 MiB cache
(sluice.batch.cache.bytes), so the consumers that fall behind read from disk.
"""
import sys
import threading
import time

from harness import Broker

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

MESSAGES = 200_000
PARTITIONS = 4
CONSUMERS = 4
TOPIC = "fanout"
DEADLINE_S = 150.0


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what, flush=True)


def create_topic(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS,
                                       replication_factor=1)])
    fs[TOPIC].result(timeout=30)


class Tail(threading.Thread):
    """One consumer: every partition from the beginning until it has every message."""

    def __init__(self, bootstrap, index):
        super().__init__(daemon=True)
        self.index = index
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": "unused-%d" % index,
            "enable.auto.commit": False, "fetch.wait.max.ms": 100,
            # two consumers take what there is, two wait for 64 KiB (long-poll re-reads)
            "fetch.min.bytes": 1 if index < 2 else 65536,
            "client.id": "tail-%d" % index})
        self.consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        self.values = [[] for _ in range(PARTITIONS)]
        self.offsets = [[] for _ in range(PARTITIONS)]
        self.count = 0
        self.errors = []

    def run(self):
        end = time.monotonic() + DEADLINE_S
        try:
            while self.count < MESSAGES and time.monotonic() < end:
                for m in self.consumer.consume(num_messages=5000, timeout=0.5):
                    if m.error():
                        self.errors.append(str(m.error()))
                        continue
                    p = m.partition()
                    self.values[p].append(int(m.value()[:10]))
                    self.offsets[p].append(m.offset())
                    self.count += 1
            # a little longer: a duplicate after the last message would show here
            for m in self.consumer.consume(num_messages=1000, timeout=1.0):
                if not m.error():
                    self.values[m.partition()].append(int(m.value()[:10]))
                    self.count += 1
        finally:
            self.consumer.close()


def produce(bootstrap):
    """Returns each partition's values in the order they were produced."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                  "enable.idempotence": False, "linger.ms": 5,
                  "max.in.flight.requests.per.connection": 1,
                  "queue.buffering.max.messages": 500_000})
    sent = [[] for _ in range(PARTITIONS)]
    failures = []

    def report(err, msg):
        if err is not None:
            failures.append(str(err))

    for i in range(MESSAGES):
        part = i % PARTITIONS
        value = b"%010d" % i + b"." * (i % 200)  # 11..210 bytes: batches of many sizes
        while True:
            try:
                p.produce(TOPIC, value=value, partition=part, on_delivery=report)
                break
            except BufferError:
                p.poll(0.05)
        sent[part].append(i)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    check(left == 0 and not failures, "producer: %d messages acknowledged" % MESSAGES)
    return sent


def run_case(sluice, label, config):
    with Broker(sluice, cores="2", config=config) as b:
        create_topic(b.bootstrap)
        tails = [Tail(b.bootstrap, i) for i in range(CONSUMERS)]
        for t in tails:
            t.start()
        time.sleep(1.0)  # the consumers are tailing (fetching at the log end) first
        start = time.monotonic()
        sent = produce(b.bootstrap)
        for t in tails:
            t.join(DEADLINE_S + 10)
        took = time.monotonic() - start
        for t in tails:
            check(not t.errors, "%s: consumer %d: no errors %s" % (label, t.index, t.errors[:3]))
            check(t.count == MESSAGES, "%s: consumer %d got %d of %d messages"
                  % (label, t.index, t.count, MESSAGES))
            for part in range(PARTITIONS):
                if t.values[part] != sent[part]:
                    got, want = t.values[part], sent[part]
                    first = next((k for k in range(min(len(got), len(want)))
                                  if got[k] != want[k]), min(len(got), len(want)))
                    raise AssertionError(
                        "%s: consumer %d partition %d: %d values, want %d; first difference"
                        " at #%d" % (label, t.index, part, len(got), len(want), first))
                offs = t.offsets[part]
                if offs != list(range(len(offs))):
                    raise AssertionError("%s: consumer %d partition %d: offsets not 0.. "
                                         "consecutive" % (label, t.index, part))
            check(True, "%s: consumer %d: every message exactly once, in order, offsets "
                  "consecutive" % (label, t.index))
        print("%s: %d consumers x %d messages in %.1f s" % (label, CONSUMERS, MESSAGES, took),
              flush=True)
        check(b.stop() == 0, "%s: SIGTERM exits 0" % label)
        stats = {}
        for word in b.stderr_tail(1 << 20).split():
            k, _, v = word.partition("=")
            if k in ("local_peers", "sends_zc") and v.isdigit():
                stats[k] = stats.get(k, 0) + int(v)
        # every client here is on this host: their fetches went out with SENDMSG, not
        # SENDMSG_ZC, which loopback delivery would copy anyway (sluice.net.zc.local.peers)
        check(stats.get("local_peers", 0) >= CONSUMERS and stats.get("sends_zc", -1) == 0,
              "%s: local clients are sent to without zero copy %s" % (label, stats))


def main():
    sluice = sys.argv[1]
    run_case(sluice, "default cache", {})
    run_case(sluice, "2 MiB cache", {"sluice.batch.cache.bytes": 2 * 1024 * 1024})
    print("PASS")


if __name__ == "__main__":
    main()
