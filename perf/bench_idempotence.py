#!/usr/bin/python3
"""Produce throughput with and without idempotence, in the same run.

Starts sluice (tests/integration/harness.Broker: fresh data dir, 1 shard), creates one
topic per round, and produces N messages of S bytes with confluent-kafka (librdkafka)
acks=all, linger.ms=5, for R rounds of three modes in turn: plain at librdkafka's default
max.in.flight (1000000), plain at max.in.flight 5, idempotent (which caps in-flight at
5). Plain-5 vs idempotent isolates the broker's idempotence work from the client's
in-flight cap. Prints messages/s and MB/s per round and the best of each mode.

    /usr/bin/python3 perf/bench_idempotence.py build/sluice [N] [S] [R]
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Broker  # noqa: E402


def one_round(bootstrap, topic, n, size, idempotent, in_flight):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": idempotent, "queue.buffering.max.messages": 500000,
                  "max.in.flight.requests.per.connection": in_flight})
    p.produce(topic, b"warm-up")
    p.flush(30)
    value = b"x" * size
    errors = []

    def cb(err, msg):
        if err:
            errors.append(err)
    t0 = time.perf_counter()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
    left = p.flush(120)
    dt = time.perf_counter() - t0
    assert left == 0 and not errors, (left, errors[:3])
    return n / dt, n * size / dt / 1e6


def main():
    sluice = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500000
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    modes = [(False, 1000000), (False, 5), (True, 5)]  # librdkafka's default in-flight, and
    best = {m: (0, 0) for m in modes}               # the 5 idempotence imposes
    with Broker(sluice, cores="1", config={"num.partitions": 1}) as b:
        for r in range(rounds):
            for idem, in_flight in modes:
                topic = "bench-%d-%s-%d" % (r, "idem" if idem else "plain", in_flight)
                mps, mbs = one_round(b.bootstrap, topic, n, size, idem, in_flight)
                print("round %d idempotence=%-5s in_flight=%-7d %9.0f msg/s %7.1f MB/s" %
                      (r, idem, in_flight, mps, mbs), flush=True)
                if mps > best[(idem, in_flight)][0]:
                    best[(idem, in_flight)] = (mps, mbs)
    for m in modes:
        print("best idempotence=%-5s in_flight=%-7d %9.0f msg/s %7.1f MB/s" % (*m, *best[m]))
    print("idempotent / plain (same in-flight 5): %.3f" %
          (best[(True, 5)][0] / best[(False, 5)][0]))


if __name__ == "__main__":
    main()
