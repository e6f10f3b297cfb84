#!/usr/bin/python3
"""Broker keys that set topic defaults, as Kafka's server.properties does.

The broker starts with log.message.timestamp.type=LogAppendTime, log.retention.minutes=90,
compression.type=gzip, min.insync.replicas=1 and log.segment.bytes set. confluent-kafka's
AdminClient describe_configs on a topic created without overrides reports each value with
source STATIC_BROKER_CONFIG and the broker key as its synonym; a topic override still wins
(DYNAMIC_TOPIC_CONFIG). A record produced with a CreateTime of 1970 comes back stamped with
the broker's append time. A bad broker value (log.message.timestamp.type=Foo) or
log.cleanup.policy=compact stops the broker at boot with a message naming the key.
"""
import sys
import time

from harness import Broker, run

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


BROKER = {"log.message.timestamp.type": "LogAppendTime", "log.retention.minutes": "90",
          "compression.type": "gzip", "min.insync.replicas": "1",
          "log.segment.bytes": "8388608"}


def describe(admin, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res])[res].result()


def main(sluice):
    with Broker(sluice, config=BROKER) as b:
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        fs = a.create_topics([NewTopic("bd-plain", 1, 1),
                              NewTopic("bd-over", 1, 1,
                                       config={"message.timestamp.type": "CreateTime"})])
        for f in fs.values():
            f.result()
        cfg = describe(a, "bd-plain")
        expect = {"message.timestamp.type": ("LogAppendTime", "log.message.timestamp.type"),
                  "retention.ms": ("5400000", "log.retention.minutes"),
                  "compression.type": ("gzip", "compression.type"),
                  "min.insync.replicas": ("1", "min.insync.replicas"),
                  "segment.bytes": ("8388608", "log.segment.bytes")}
        for key, (value, synonym) in expect.items():
            e = cfg[key]
            syn = [s.name for s in e.synonyms.values()] if e.synonyms else []
            check(e.value == value and e.source == ConfigSource.STATIC_BROKER_CONFIG.value
                  and synonym in syn,
                  "%s = %s from the broker key %s (got %s, source %s, synonyms %s)"
                  % (key, value, synonym, e.value, e.source, syn))
        e = describe(a, "bd-over")["message.timestamp.type"]
        check(e.value == "CreateTime" and e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
              "a topic override beats the broker default")
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
        before = int(time.time() * 1000)
        p.produce("bd-plain", value=b"old", timestamp=1000)
        p.produce("bd-over", value=b"old", timestamp=1000)
        check(p.flush(10) == 0, "produced to both topics")
        after = int(time.time() * 1000)
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "none",
                      "enable.auto.commit": False})
        c.assign([TopicPartition("bd-plain", 0, 0), TopicPartition("bd-over", 0, 0)])
        got = {}
        deadline = time.time() + 10
        while len(got) < 2 and time.time() < deadline:
            for m in c.consume(2, 1.0):
                if not m.error():
                    got[m.topic()] = m.timestamp()
        c.close()
        check(got.get("bd-plain", (0, 0))[0] == 2 and before <= got["bd-plain"][1] <= after,
              "broker LogAppendTime default: the record is stamped by the broker %s"
              % (got.get("bd-plain"),))
        check(got.get("bd-over") == (1, 1000), "the CreateTime override keeps 1000")
    for key, value in (("log.message.timestamp.type", "Foo"), ("log.cleanup.policy", "compact")):
        b = Broker(sluice, config={key: value})
        try:
            rc, out, err = run(b.command(), timeout_s=10)
        finally:
            b.cleanup()
        check(rc != 0 and key in err, "%s=%s stops the broker at boot naming the key" % (key, value))
    print("PASS test_broker_defaults")


if __name__ == "__main__":
    main(sys.argv[1])
