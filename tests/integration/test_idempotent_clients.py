#!/usr/bin/python3
"""Idempotent producers with real clients.

- confluent-kafka-python (librdkafka), enable.idempotence=true, acks=all: 100,000
  keyed messages over a 3-partition topic on a 2-shard broker (the topic's partitions
  are spread over both shards); every delivery report is a success; reading every
  partition back finds each message exactly once, at the offset its report named, in
  the order produced per partition.
- Two idempotent producers at once on the same partitions (two producer ids
  interleaving in each partition's state): both complete, nothing lost or doubled.
- kcat -X enable.idempotence=true: 1,000 lines produced and consumed back.
"""
import sys
import time

from harness import Broker, kcat_path, run

PARTITIONS = 3
MESSAGES = 100000


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what, flush=True)


def produce(bootstrap, topic, prefix, n, acked, errors):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "max.in.flight.requests.per.connection": 5})

    def on_delivery(err, msg):
        if err:
            errors.append(str(err))
        else:
            acked[msg.value()] = (msg.partition(), msg.offset())

    for i in range(n):
        while True:
            try:
                p.produce(topic, key=b"k%d" % (i % 97), value=b"%s-%d" % (prefix, i),
                          on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 5000 == 0:
            p.poll(0)
    return p


def consume_all(bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "idem-verify",
                  "enable.auto.commit": False})
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in range(PARTITIONS)}
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    logs = {p: [] for p in range(PARTITIONS)}
    done = {p for p in range(PARTITIONS) if ends[p] == 0}
    deadline = time.time() + 60
    while len(done) < PARTITIONS and time.time() < deadline:
        for m in c.consume(10000, 1.0):
            if m.error():
                continue
            logs[m.partition()].append((m.offset(), m.value()))
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
    c.close()
    return ends, logs


def verify(bootstrap, topic, acked_sets, what):
    ends, logs = consume_all(bootstrap, topic)
    check(all(len(logs[p]) == ends[p] for p in range(PARTITIONS)), what + ": read to the end")
    where = {}
    dups = 0
    for p in range(PARTITIONS):
        for off, val in logs[p]:
            dups += val in where
            where[val] = (p, off)
    check(dups == 0, what + ": no message stored twice")
    total = 0
    for acked in acked_sets:
        total += len(acked)
        check(all(where.get(v) == loc for v, loc in acked.items()),
              what + ": every acknowledged message at its acknowledged offset")
    check(sum(ends.values()) == total, what + ": the log holds exactly the %d messages" % total)
    return logs


def main():
    sluice = sys.argv[1]
    with Broker(sluice, cores="2", config={"num.partitions": PARTITIONS}) as b:
        acked, errors = {}, []
        t0 = time.time()
        p = produce(b.bootstrap, "idem-a", b"a", MESSAGES, acked, errors)
        left = p.flush(60)
        dt = time.time() - t0
        check(left == 0 and not errors, "100k idempotent acks=all messages delivered "
              "(%.1f s, errors %s)" % (dt, errors[:3]))
        check(len(acked) == MESSAGES, "a delivery report for each")
        logs = verify(b.bootstrap, "idem-a", [acked], "one producer")
        for part in range(PARTITIONS):
            seq = [int(v.split(b"-")[1]) for _, v in logs[part]]
            check(seq == sorted(seq), "partition %d in produce order" % part)

        acked1, acked2, errors = {}, {}, []
        p1 = produce(b.bootstrap, "idem-b", b"x", 20000, acked1, errors)
        p2 = produce(b.bootstrap, "idem-b", b"y", 20000, acked2, errors)
        check(p1.flush(60) == 0 and p2.flush(60) == 0 and not errors,
              "two idempotent producers on the same partitions delivered")
        verify(b.bootstrap, "idem-b", [acked1, acked2], "two producers")

        lines = "".join("line-%d\n" % i for i in range(1000))
        rc, out, err = run([kcat_path(), "-b", b.bootstrap, "-P", "-t", "idem-kcat",
                            "-X", "enable.idempotence=true", "-X", "acks=all"],
                           input=lines, timeout=60)
        check(rc == 0, "kcat idempotent produce exit 0 (%s)" % err[-300:])
        rc, out, err = run([kcat_path(), "-b", b.bootstrap, "-C", "-t", "idem-kcat",
                            "-o", "beginning", "-e", "-q"], timeout=60)
        got = sorted(out.split())
        check(rc == 0 and got == sorted(lines.split()), "kcat consumed the 1,000 lines once each")
        tail = b.stderr_tail(1 << 20)
        check(tail.count("event=init_producer_id ") >= 4, "each producer got its own id")
    print("PASS")


if __name__ == "__main__":
    main()
