#!/usr/bin/python3
"""A Fetch that finds no data waits its whole MaxWaitMs, also on an idle broker.

The shard timed a fetch's wait from the clock of its last tick. An idle shard sleeps
in io_uring between ticks, so a fetch arriving after a quiet spell took a clock up to
one idle wait old and was answered that much early: MaxWaitMs 300 took 216-299 ms.
The loop now hands every iteration's clock to the router before the CQEs
(router_begin). Here: a fresh topic, then fetches at the end of its empty partition
after 0.2-0.6 s of silence each; every one must take at least MaxWaitMs (measured by
the client, which can only see it longer) and not much more. A clean-clone CI run
then caught one fetch at 299.9 ms: the clock is whole milliseconds, so the deadline
now counts from the next one.
"""
import random
import sys
import time

from harness import Broker, KafkaConn

MAX_WAIT_MS = 300
FETCHES = 10


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def topic_id(c, name):
    body = {"Topics": [{"Name": name, "TopicId": bytes(16)}],
            "AllowAutoTopicCreation": True, "IncludeTopicAuthorizedOperations": False}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        t = c.request("Metadata", 12, body)["Topics"][0]
        if t["ErrorCode"] == 0 and t["Partitions"]:
            return t["TopicId"]
        time.sleep(0.1)
    raise AssertionError("topic %s was not created" % name)


def main():
    with Broker(sys.argv[1]) as b:
        c = KafkaConn(b.bootstrap)
        tid = topic_id(c, "fw")
        waited = []
        for _ in range(FETCHES):
            time.sleep(random.uniform(0.2, 0.6))  # the shard goes idle
            body = {"ReplicaId": -1, "MaxWaitMs": MAX_WAIT_MS, "MinBytes": 1,
                    "MaxBytes": 1 << 20, "IsolationLevel": 0, "SessionId": 0,
                    "SessionEpoch": -1, "ForgottenTopicsData": [], "RackId": "",
                    "Topics": [{"Topic": "fw", "TopicId": tid, "Partitions": [
                        {"Partition": 0, "CurrentLeaderEpoch": -1, "FetchOffset": 0,
                         "LogStartOffset": -1, "PartitionMaxBytes": 1 << 20}]}]}
            t0 = time.monotonic()
            p = c.request("Fetch", 12, body)["Responses"][0]["Partitions"][0]
            waited.append((time.monotonic() - t0) * 1e3)
            check(p["ErrorCode"] == 0 and not p["Records"],
                  "fetch at the end of an empty partition: no error, no records")
        print("waited ms:", [round(w) for w in waited])
        check(min(waited) >= MAX_WAIT_MS,
              "every fetch waited its MaxWaitMs %d (shortest %.1f ms)"
              % (MAX_WAIT_MS, min(waited)))
        check(max(waited) < MAX_WAIT_MS + 500,
              "and was answered soon after it (longest %.1f ms)" % max(waited))
    print("PASS")


if __name__ == "__main__":
    main()
