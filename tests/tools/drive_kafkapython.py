#!/usr/bin/python3
"""drive_kafkapython: run kafka-python's producer and group consumer once.

Used by capture_all.sh against capture_broker.py to elicit kafka-python's
requests (ApiVersions, Metadata, Produce, FindCoordinator, JoinGroup,
SyncGroup, OffsetFetch, OffsetCommit, ListOffsets, Fetch, Heartbeat,
LeaveGroup).
Usage: drive_kafkapython.py HOST:PORT [API_VERSION]
API_VERSION like "0.10.1" pins the protocol (0.10.1 => Produce v2 carrying
message format v1); empty means kafka-python's own version probing.
"""

import sys
import time

import kafka


def main():
    bootstrap = sys.argv[1]
    pin = {}
    if len(sys.argv) > 2 and sys.argv[2]:
        pin["api_version"] = tuple(int(x) for x in sys.argv[2].split("."))
    print("kafka-python %s %s" % (kafka.__version__, pin or "auto"))

    # Uncompressed, then gzip (a v2 batch, or a v1 wrapper message).
    for codec in (None, "gzip"):
        producer = kafka.KafkaProducer(bootstrap_servers=bootstrap,
                                       client_id="kafka-python", acks=1,
                                       linger_ms=5, compression_type=codec,
                                       **pin)
        for i in range(3):
            producer.send("golden", key=b"k%d" % i,
                          value=b"value %d %s" % (i, b"abc" * 20))
        producer.flush(timeout=20)
        producer.close(timeout=5)

    consumer = kafka.KafkaConsumer("golden", bootstrap_servers=bootstrap,
                                   client_id="kafka-python",
                                   group_id="golden-group",
                                   auto_offset_reset="earliest",
                                   enable_auto_commit=False,
                                   heartbeat_interval_ms=500,
                                   consumer_timeout_ms=3000, **pin)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not consumer.assignment():
        consumer.poll(timeout_ms=500)
    print("assignment: %s" % sorted(consumer.assignment()))
    # An explicit commit, so OffsetCommit is captured too.
    consumer.commit({kafka.TopicPartition("golden", 0):
                     kafka.OffsetAndMetadata(0, "golden-meta")})
    for _ in range(4):  # a few fetch rounds and at least one heartbeat
        consumer.poll(timeout_ms=500)
    consumer.close()
    return 0 if consumer.assignment() is not None else 1


if __name__ == "__main__":
    sys.exit(main())
