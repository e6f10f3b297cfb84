#!/usr/bin/python3
"""confluent-kafka-python and kafka-python against a 2-shard broker.

confluent-kafka (librdkafka): AdminClient create_topics (configs, validate_only, the
-1 defaults, a duplicate name, an invalid config), delete_topics, list_topics; a
Producer with acks=all (idempotence off) whose delivery reports give the offsets;
a Consumer with assign() at OFFSET_BEGINNING, seek() and offsets_for_times() (no group:
only assign). kafka-python: a producer pinned to api_version=(0, 10, 1) (Produce v2,
message format v1: the broker converts it to v2) and a consumer with assign().
Then restart (SIGTERM) keeps messages, offsets and topic configs (a LogAppendTime topic
still stamps the broker's time), and SIGKILL after acks=all loses no acknowledged
message.
"""
import sys
import time

from harness import Broker

from confluent_kafka import Consumer, Producer, TopicPartition, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def produce_confluent(bootstrap, topic, count, prefix, partition=None):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                  "enable.idempotence": False, "linger.ms": 5})
    delivered = []

    def report(err, msg):
        if err is None:
            delivered.append((msg.partition(), msg.offset(), msg.key(), msg.value(),
                              msg.timestamp()))

    for i in range(count):
        kw = {} if partition is None else {"partition": partition}
        p.produce(topic, key=b"k%d" % (i % 50), value=b"%s-%d" % (prefix, i),
                  on_delivery=report, **kw)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(30)
    return delivered, left


def consume_all(bootstrap, topic, partitions, expect):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "none",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, -2) for p in partitions])  # OFFSET_BEGINNING
    got, eof, deadline = [], set(), time.time() + 60
    while (len(eof) < len(partitions) or len(got) < expect) and time.time() < deadline:
        for m in c.consume(500, 1.0):
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            eof.discard(m.partition())
            got.append((m.partition(), m.offset(), m.key(), m.value(), m.timestamp()))
    c.close()
    return got


def admin_checks(bootstrap):
    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.create_topics([NewTopic("py-a", 3, 1, config={"retention.ms": "3600000"}),
                          NewTopic("py-lat", 2, 1,
                                   config={"message.timestamp.type": "LogAppendTime"}),
                          NewTopic("py-small", 1, 1, config={"max.message.bytes": "2000"}),
                          NewTopic("py-default", -1, -1)])
    for t, f in fs.items():
        f.result()
    check(True, "AdminClient.create_topics: 4 topics (configs, -1 defaults)")
    md = a.list_topics(timeout=10)
    check({"py-a": 3, "py-lat": 2, "py-small": 1, "py-default": 2}.items() <=
          {t: len(m.partitions) for t, m in md.topics.items()}.items(),
          "list_topics: partition counts (num.partitions=2 for the -1 default)")
    fs = a.create_topics([NewTopic("py-a", 3, 1)])
    try:
        fs["py-a"].result()
        check(False, "creating an existing topic fails")
    except KafkaException as e:
        check(e.args[0].code() == 36, "existing topic: TOPIC_ALREADY_EXISTS (%s)" % e)
    fs = a.create_topics([NewTopic("py-bad", 1, 1, config={"cleanup.policy": "bogus"})])
    try:
        fs["py-bad"].result()
        check(False, "invalid config fails")
    except KafkaException as e:
        check(e.args[0].code() == 40, "invalid config: INVALID_CONFIG (%s)" % e)
    fs = a.create_topics([NewTopic("py-validate", 5, 1)], validate_only=True)
    fs["py-validate"].result()
    md = a.list_topics(timeout=10)
    check("py-validate" not in md.topics, "validate_only creates nothing")
    fs = a.create_topics([NewTopic("py-gone", 2, 1)])
    fs["py-gone"].result()
    fs = a.delete_topics(["py-gone"])
    fs["py-gone"].result()
    time.sleep(0.2)
    md = a.list_topics(timeout=10)
    check("py-gone" not in md.topics, "delete_topics removes the topic")
    fs = a.delete_topics(["py-never"])
    try:
        fs["py-never"].result()
        check(False, "deleting an unknown topic fails")
    except KafkaException as e:
        check(e.args[0].code() == 3, "unknown topic delete: UNKNOWN_TOPIC_OR_PARTITION")


def confluent_checks(bootstrap):
    t0_ms = int(time.time() * 1000)
    delivered, left = produce_confluent(bootstrap, "py-a", 5000, b"v")
    check(left == 0 and len(delivered) == 5000,
          "confluent Producer acks=all: 5000 delivered (%d left)" % left)
    got = consume_all(bootstrap, "py-a", [0, 1, 2], 5000)
    check(sorted(x[:4] for x in got) == sorted(x[:4] for x in delivered),
          "Consumer.assign from the beginning: the 5000 delivered (partition, offset, key, "
          "value) exactly")
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "none",
                  "enable.auto.commit": False})
    res = c.offsets_for_times([TopicPartition("py-a", p, t0_ms - 5000) for p in range(3)],
                              timeout=10)
    check(all(r.offset == 0 and r.error is None for r in res),
          "offsets_for_times before the produce: offset 0 everywhere")
    lo, hi = c.get_watermark_offsets(TopicPartition("py-a", 0), timeout=10)
    n0 = sum(1 for x in delivered if x[0] == 0)
    check(lo == 0 and hi == n0, "watermarks of partition 0: (0, %d) == (%d, %d)" % (n0, lo, hi))
    c.assign([TopicPartition("py-a", 0, 0)])
    c.consume(1, 5.0)
    c.seek(TopicPartition("py-a", 0, n0 - 3))
    msgs = []
    deadline = time.time() + 10
    while len(msgs) < 3 and time.time() < deadline:
        msgs += [m for m in c.consume(10, 1.0) if not m.error()]
    check([m.offset() for m in msgs[:3]] == [n0 - 3, n0 - 2, n0 - 1],
          "seek to n-3 reads the last three offsets")
    c.close()
    # LogAppendTime: the broker stamps the batch; the consumer sees type 2 (log append).
    before = int(time.time() * 1000)
    delivered, left = produce_confluent(bootstrap, "py-lat", 100, b"lat")
    after = int(time.time() * 1000)
    got = consume_all(bootstrap, "py-lat", [0, 1], 100)
    check(len(got) == 100 and all(x[4][0] == 2 and before <= x[4][1] <= after for x in got),
          "LogAppendTime topic: every record carries the broker's append time")
    # max.message.bytes=2000: a batch over it is refused, MESSAGE_TOO_LARGE.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                  "message.max.bytes": 100000, "batch.size": 50000})
    errors = []
    p.produce("py-small", value=b"z" * 5000, on_delivery=lambda e, m: errors.append(e))
    p.flush(20)
    check(len(errors) == 1 and errors[0] is not None and errors[0].code() == 10,
          "a 5000-byte batch to max.message.bytes=2000: MESSAGE_TOO_LARGE (%s)" % errors)
    return delivered


def kafka_python_checks(bootstrap):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP
    prod = KafkaProducer(bootstrap_servers=bootstrap, api_version=(0, 10, 1), acks=1,
                         compression_type="gzip")
    futures = [prod.send("py-a", key=b"old", value=b"legacy-%d" % i, partition=1)
               for i in range(200)]
    prod.flush(30)
    metas = [f.get(timeout=10) for f in futures]
    offsets = [m.offset for m in metas]
    check(offsets == list(range(offsets[0], offsets[0] + 200)),
          "kafka-python api_version=(0,10,1) (Produce v2, message format v1, gzip): "
          "200 acks with consecutive offsets")
    prod.close()
    cons = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         consumer_timeout_ms=5000)
    tp = KTP("py-a", 1)
    cons.assign([tp])
    cons.seek(tp, offsets[0])
    vals = []
    for m in cons:
        vals.append((m.offset, m.key, m.value))
        if len(vals) == 200:
            break
    cons.close()
    check(vals == [(offsets[0] + i, b"old", b"legacy-%d" % i) for i in range(200)],
          "kafka-python consumer (assign + seek) reads the converted messages back")


def restart_checks(b):
    bootstrap = b.bootstrap
    before = consume_all(bootstrap, "py-a", [0, 1, 2], 5200)
    check(b.stop() == 0, "SIGTERM: exit 0")
    b.start()
    after = consume_all(b.bootstrap, "py-a", [0, 1, 2], len(before))
    check(sorted(after) == sorted(before),
          "after restart: all %d messages of py-a, same offsets" % len(before))
    delivered, left = produce_confluent(b.bootstrap, "py-a", 300, b"again", partition=2)
    n2 = sum(1 for x in before if x[0] == 2)
    check(sorted(x[1] for x in delivered) == list(range(n2, n2 + 300)),
          "offsets continue after restart (partition 2 from %d)" % n2)
    t0 = int(time.time() * 1000)
    produce_confluent(b.bootstrap, "py-lat", 10, b"lat2")
    got = consume_all(b.bootstrap, "py-lat", [0, 1], 110)
    check(sum(1 for x in got if x[4][0] == 2 and x[4][1] >= t0) == 10,
          "topic config kept across restart (LogAppendTime still stamped)")


def kill_checks(b):
    delivered, left = produce_confluent(b.bootstrap, "py-default", 3000, b"durable")
    check(left == 0 and len(delivered) == 3000, "3000 acks=all deliveries before SIGKILL")
    b.kill()
    b.start()
    got = consume_all(b.bootstrap, "py-default", [0, 1], 3000)
    have = {(x[0], x[1]): x[3] for x in got}
    missing = [x for x in delivered if have.get((x[0], x[1])) != x[3]]
    check(not missing, "SIGKILL + restart: every acknowledged message is there (%d missing)"
          % len(missing))


def main():
    config = {"num.partitions": 2}
    with Broker(sys.argv[1], cores="2", config=config) as b:
        admin_checks(b.bootstrap)
        confluent_checks(b.bootstrap)
        kafka_python_checks(b.bootstrap)
        restart_checks(b)
        kill_checks(b)
        check("level=error" not in b.stderr_tail(), "no errors logged")


if __name__ == "__main__":
    main()
