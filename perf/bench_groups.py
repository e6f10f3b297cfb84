#!/usr/bin/python3
"""bench_groups: consumer group figures against a fresh sluice broker.

1. Rebalance time: 10 confluent-kafka consumers subscribe at once to a 100-partition
   topic; the time from the first subscribe() until every partition is assigned (sum of
   the consumers' assignments = 100, each consumer holding some). Run with
   group.initial.rebalance.delay.ms=0 (the delay is a deliberate wait, 3 s by default).
2. OffsetCommit requests/s on one connection: a raw client (tests/tools codec) commits
   one partition per request, synchronously, N times; each commit is answered only after
   its record is durable in __consumer_offsets (an fdatasync on the owner shard).

Usage: perf/bench_groups.py build/sluice [--commits N] [--rounds R]
"""
import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Broker, KafkaConn  # noqa: E402

from confluent_kafka import Consumer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def rebalance_once(bootstrap, topic, group, consumers):
    assigned = [0] * consumers
    done = threading.Event()
    lock = threading.Lock()
    start = [0.0]

    def run(i):
        def on_assign(c, parts):
            with lock:
                assigned[i] = len(parts)
                if sum(assigned) == 100 and all(assigned):
                    done.set()

        def on_revoke(c, parts):
            with lock:
                assigned[i] = 0
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
        c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        while not done.is_set():
            c.poll(0.05)
        for _ in range(4):
            c.poll(0.05)
        c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(consumers)]
    start[0] = time.time()
    for t in threads:
        t.start()
    ok = done.wait(60)
    elapsed = time.time() - start[0]
    for t in threads:
        t.join(30)
    return elapsed if ok else None


def commits_per_second(bootstrap, topic, count):
    with KafkaConn(bootstrap) as c:
        body = {"GroupId": "bench-commit", "GenerationIdOrMemberEpoch": -1, "MemberId": "",
                "GroupInstanceId": None, "Topics": [{"Name": topic, "Partitions": [
                    {"PartitionIndex": 0, "CommittedOffset": 0, "CommittedLeaderEpoch": -1,
                     "CommittedMetadata": ""}]}]}
        c.request("OffsetCommit", 8, body)  # creates __consumer_offsets
        t0 = time.time()
        for i in range(count):
            body["Topics"][0]["Partitions"][0]["CommittedOffset"] = i
            r = c.request("OffsetCommit", 8, body)
            assert r["Topics"][0]["Partitions"][0]["ErrorCode"] == 0
        return count / (time.time() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sluice")
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cfg = {"group.initial.rebalance.delay.ms": 0, "offsets.topic.num.partitions": 50}
    with Broker(args.sluice, config=cfg, cores="2") as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic("bench-100", 100, 1)])["bench-100"].result()
        times = []
        for r in range(args.rounds):
            t = rebalance_once(b.bootstrap, "bench-100", "bench-g%d" % r, 10)
            times.append(t)
            print("rebalance round %d: 10 consumers, 100 partitions assigned in %s s"
                  % (r, "%.3f" % t if t is not None else "TIMEOUT"), flush=True)
        rates = [commits_per_second(b.bootstrap, "bench-100", args.commits)
                 for _ in range(args.rounds)]
        for r in rates:
            print("OffsetCommit: %.0f requests/s on one connection (%d sequential, durable)"
                  % (r, args.commits), flush=True)
        ok = [t for t in times if t is not None]
        print("best rebalance %.3f s, best commit rate %.0f/s" % (min(ok) if ok else -1, max(rates)))


if __name__ == "__main__":
    main()
