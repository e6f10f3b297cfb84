#!/usr/bin/python3
"""`sluice loadgen` against a real sluice broker (issue 7's CI test).

Runs the load generator for 5 s at a small open-loop rate with 2 producers, 2
fan-out consumers and 4 partitions, then checks what it reports:
  - exit status 0, and in the JSON: zero lost, duplicated, out-of-order, CRC,
    produce, fetch and connection errors;
  - every acknowledged message was consumed by both consumers (fan-out);
  - histogram sanity: p50 <= p90 <= p99 <= p99.9 <= max, min <= p50, counts > 0
    and no more samples than messages acknowledged / consumed;
  - the measured rate is within 10 % of the requested one (open loop).
Then a fixed message count with zstd compression and keyed (zipf) messages, one with
1 MiB requests 32 deep (past the broker's per-connection pipeline), and a
catch-up read from the earliest offset with no producers. Then kcat reads the
topic back: the batches the load generator wrote are valid for librdkafka too. A
consumer cut off behind the producer (--drain 0) reports what it did not reach as
unread, not lost, and exits 3. A broker that stops answering (SIGSTOP) fails the
requests in flight after --request-timeout-ms, as Kafka's request.timeout.ms does:
loadgen ends instead of waiting for an answer that never comes."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, KafkaConn, kcat, run, wait_for  # noqa: E402

SLUICE = sys.argv[1]
RATE = 2000


def loadgen(bootstrap, json_path, *args, timeout_s=60, want_rc=0):
    cmd = [SLUICE, "loadgen", "--bootstrap", bootstrap, "--json", json_path,
           "--quiet", "true"] + list(args)
    rc, out, err = run(cmd, timeout_s=timeout_s)
    assert rc == want_rc, (rc, out, err)
    with open(json_path) as f:
        doc = json.load(f)
    return doc, out


def log_end(bootstrap, topic):
    """The end offset of topic's partition 0 (ListOffsets, latest), -1 if not known."""
    with KafkaConn(bootstrap) as c:
        body = {"ReplicaId": -1, "IsolationLevel": 0, "Topics": [
            {"Name": topic, "Partitions": [{"PartitionIndex": 0, "Timestamp": -1,
                                            "CurrentLeaderEpoch": -1}]}]}
        p = c.request("ListOffsets", 5, body)["Topics"][0]["Partitions"][0]
        return p["Offset"] if p["ErrorCode"] == 0 else -1


def check_clean(run_):
    for k in ("lost", "unread", "duplicated", "out_of_order", "crc_errors", "produce_errors",
              "fetch_errors", "connection_errors", "problem_partitions"):
        assert run_[k] == 0, (k, run_)
    assert run_["problems"] == [], run_  # the per-partition report is empty too


def check_hist(h, max_count):
    assert h["count"] > 0, h
    assert h["count"] <= max_count, (h, max_count)
    assert h["min"] <= h["p50"] <= h["p90"] <= h["p99"] <= h["p99_9"] <= h["p99_99"] \
        <= h["max"], h


with tempfile.TemporaryDirectory() as tmp, Broker(SLUICE, cores="1") as b:
    j = os.path.join(tmp, "run.json")

    # 1. open loop at a small rate, fan-out to two consumers
    doc, out = loadgen(b.bootstrap, j, "--topic", "lg-ci", "--partitions", "4",
                       "--producers", "2", "--consumers", "2", "--rate", str(RATE),
                       "--message-size", "200", "--warmup", "1", "--duration", "5")
    assert "check: lost 0 unread 0 duplicated 0" in out, out
    r = doc["runs"][0]
    check_clean(r)
    assert doc["workload"]["partitions"] == 4
    assert abs(r["produce_msgs_per_s"] - RATE) < 0.1 * RATE, r
    assert r["acked_bytes"] == 200 * r["acked_msgs"], r  # MB/s counts acknowledged values
    # both consumers read every partition: each acked message is consumed twice. The
    # window counts differ by what was in flight at its edges, and a consumer stalled on
    # a busy core at the window's end counts less (the drain's "unread 0" above shows
    # it read everything), so more than one consumer's worth is the test here.
    assert r["consumed_msgs"] >= 1.5 * r["acked_msgs"], r
    check_hist(r["produce_latency_us"], r["acked_msgs"] + 2 * RATE)
    check_hist(r["e2e_latency_us"], r["consumed_msgs"] + 4 * RATE)
    # histogram samples cover the measured window: about rate x duration messages
    assert abs(r["produce_latency_us"]["count"] - 5 * RATE) < 0.1 * 5 * RATE, r
    assert r["e2e_latency_us"]["count"] >= 1.5 * r["produce_latency_us"]["count"], r
    print("ok  open loop %d msg/s: %.0f acked/s, p99 produce %d us, p99 e2e %d us, 0 lost"
          % (RATE, r["produce_msgs_per_s"], r["produce_latency_us"]["p99"],
             r["e2e_latency_us"]["p99"]))

    # 2. a message count, compressed keyed batches, acks=all
    doc, out = loadgen(b.bootstrap, j, "--topic", "lg-ci-count", "--partitions", "3",
                       "--messages", "20000", "--compression", "zstd", "--acks", "all",
                       "--key-distribution", "zipf", "--keys", "50", "--warmup", "0",
                       "--message-size", "uniform:64-512")
    r = doc["runs"][0]
    check_clean(r)
    assert r["produced_msgs"] == 20000 and r["acked_msgs"] == 20000, r
    # consumed_msgs counts the measurement window, which ends with the last ack; what
    # the consumer reads in the drain after it is in the run's e2e histogram (every
    # message consumed; none lost, unread or duplicated per check_clean)
    assert r["e2e_latency_us"]["count"] == 20000, r
    check_hist(r["produce_latency_us"], 20000)
    print("ok  20000 zstd zipf-keyed messages, acks=all: all acked and consumed once")

    # 2b. a deeper pipeline than the broker keeps in progress per connection (16):
    #     1 MiB requests, 32 in flight, so the connection pauses with a big request
    #     waiting and more bytes behind it (set aside, handled on resume)
    doc, out = loadgen(b.bootstrap, j, "--topic", "lg-ci-deep", "--partitions", "1",
                       "--messages", "50000", "--message-size", "1024", "--acks", "all",
                       "--batch-size", "1MiB", "--max-in-flight", "32", "--warmup", "0",
                       "--drain", "60")  # ends once caught up; CI may run it on busy cores
    r = doc["runs"][0]
    check_clean(r)
    assert r["acked_msgs"] == 50000 and r["e2e_latency_us"]["count"] == 50000, r
    print("ok  50000 messages in 1 MiB requests, 32 in flight: all acked and consumed once")

    # 3. catch-up: no producers, read the topic from the start; every message of
    #    the earlier run is there (its sequence check is per run id: none is ours)
    doc, out = loadgen(b.bootstrap, j, "--topic", "lg-ci-count", "--create-topics", "false",
                       "--producers", "0", "--consumers", "1", "--consume-from", "earliest",
                       "--warmup", "0", "--drain", "10")
    r = doc["runs"][0]
    check_clean(r)
    assert r["consumed_msgs"] == 20000, r
    print("ok  catch-up read of 20000 messages from the earliest offset")

    # 4. librdkafka reads what the load generator wrote
    rc, out, err = kcat(b.bootstrap, "-C", "-t", "lg-ci-count", "-o", "beginning", "-e",
                        "-f", "%p %o\n", timeout_s=60)
    assert rc == 0, (rc, err)
    assert len(out.splitlines()) == 20000, len(out.splitlines())
    print("ok  kcat consumed the 20000 messages loadgen produced")

    # 4b. a consumer that is cut off behind the producer (no drain time): what it did
    #     not reach is reported unread, not lost, and the run still fails the check.
    #     It reads one ~1 KiB batch per fetch (~30,000 round trips) while the
    #     producer is done after ~300 batches of requests, so it is far behind.
    doc, out = loadgen(b.bootstrap, j, "--topic", "lg-ci-cut", "--partitions", "2",
                       "--messages", "300000", "--warmup", "0", "--drain", "0",
                       "--message-size", "100", "--batch-size", "1KiB",
                       "--fetch-max-bytes", "1024", "--fetch-partition-max-bytes", "1024",
                       want_rc=3)
    r = doc["runs"][0]
    assert r["lost"] == 0 and r["duplicated"] == 0 and r["unread"] > 0, r
    assert r["problem_partitions"] >= 1, r
    assert all(p["lost"] == 0 for p in r["problems"]), r["problems"]
    assert sum(p["unread"] for p in r["problems"]) == r["unread"], r["problems"]
    assert "unread: the drain" in out, out
    print("ok  consumer cut off by --drain 0: %d unread, 0 lost, exit 3" % r["unread"])

    # 5. bad workloads fail cleanly
    rc, out, err = run([SLUICE, "loadgen", "--acks", "7"], timeout_s=10)
    assert rc == 2 and "acks" in err, (rc, err)
    rc, out, err = run([SLUICE, "loadgen", "--bootstrap", "127.0.0.1:1", "--duration", "1"],
                       timeout_s=30)
    assert rc == 1 and "setup" in err, (rc, err)
    print("ok  bad workload and unreachable broker exit 2 and 1 with a message")

# 6. a broker that stops answering: the produce requests in flight time out, their
#    messages count as produce errors, the connection is closed and the run ends
#    (it waited for those answers forever before --request-timeout-ms)
with tempfile.TemporaryDirectory() as tmp, Broker(SLUICE, cores="1") as b:
    j = os.path.join(tmp, "run.json")
    lg = subprocess.Popen([SLUICE, "loadgen", "--bootstrap", b.bootstrap, "--json", j,
                           "--quiet", "true", "--topic", "lg-stop", "--warmup", "0",
                           "--duration", "4", "--rate", "20000", "--drain", "2",
                           "--request-timeout-ms", "1500"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Stop the broker once messages are being acked (loadgen's setup may be slow on a
    # busy machine), and a little after that, so some are in flight.
    assert wait_for(lambda: log_end(b.bootstrap, "lg-stop") > 0, 15), "nothing produced"
    time.sleep(0.5)
    t0 = time.monotonic()
    b.proc.send_signal(signal.SIGSTOP)
    try:
        out, err = lg.communicate(timeout=30)
    finally:
        b.proc.send_signal(signal.SIGCONT)
    took = time.monotonic() - t0
    with open(j) as f:
        r = json.load(f)["runs"][0]
    # exit 3 only for what the consumer had not read when the broker stopped (acked
    # just before, at 20,000 msgs/s): reported unread, never lost
    assert lg.returncode == 0 or (lg.returncode == 3 and r["unread"] > 0 and
                                  "unread: the drain" in out), (lg.returncode, out, err)
    assert "produce request timed out after 1500 ms" in err, err
    assert r["produce_errors"] > 0 and r["lost"] == 0 and r["duplicated"] == 0, r
    # every message generated is accounted for: acknowledged, or failed
    assert r["acked_msgs"] + r["produce_errors"] == r["produced_msgs"], r
    assert r["acked_msgs"] > 0, r
    assert took < 15, took
    print("ok  broker stopped mid-run: %d messages timed out after 1.5 s, run ended "
          "%.1f s after the stop (%d acked unread when it stopped)" % (r["produce_errors"], took, r["unread"]))
