#!/usr/bin/python3
"""Aborted transactions are invisible to read_committed consumers, visible to read_uncommitted.

One topic "vis" with 2 partitions on a 2-shard broker. Writers, interleaved in the log:
  - a plain (non-transactional, idempotent) confluent-kafka producer, between transactions;
  - two confluent-kafka transactional producers X and Y whose transactions overlap on both
    partitions: X opens, Y writes and COMMITS while X is still open, then X aborts; then
    three more rounds of overlapping X/Y transactions where one commits and the other aborts
    (alternating);
  - kafkajs as a transactional producer (tests/tools/drive_kafkajs_txn.js): one aborted,
    then one committed transaction.
While X's first transaction is open (Y's committed records behind it): ListOffsets
read_committed latest is X's first offset on each partition (the LSO), read_uncommitted
latest the high watermark, and a read_committed confluent-kafka consumer receives only the
plain records before X's start (Y's committed records wait behind the LSO).
Then every reader gets exactly the expected multiset of values (each value is unique):
  read_committed (all committed + plain, no aborted): confluent-kafka, kcat (librdkafka's
    default isolation), kafkajs's consumer (its default);
  read_uncommitted (everything): confluent-kafka, kcat -X isolation.level=read_uncommitted,
    kafkajs with readUncommitted: true.
Compressed and wide: topic "vis16" with 16 partitions; for each codec (zstd, lz4, gzip,
snappy) a transactional producer aborts a 1,600-record transaction over all 16 partitions
(flushed first, so the records are in the log) and commits a 160-record one:
read_committed (confluent-kafka, kcat) gets exactly the committed records, read_uncommitted
all of them, and again after a broker SIGKILL and restart (the aborted index recovered).
At the end the broker stops on SIGTERM with exit code 0 and its stderr holds no
sanitizer report (for ASan/UBSan builds).
The kafkajs parts are skipped (noted) when node is not available.

    tests/integration/test_txn_visibility.py build/sluice
"""
import json
import os
import sys
import time

from harness import (JS_DIR, ROOT, Broker, KafkaConn, kcat, kcat_path, node_available,
                     npm_ci, run, skip, wait_for)

TOPIC, PARTITIONS = "vis", 2
PER_PARTITION = 5      # records per partition per transaction
JS_DRIVER = os.path.join(ROOT, "tests", "tools", "drive_kafkajs_txn.js")


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what, flush=True)


def list_latest(bootstrap, isolation):
    body = {"ReplicaId": -1, "IsolationLevel": isolation,
            "Topics": [{"Name": TOPIC, "Partitions": [
                {"PartitionIndex": p, "CurrentLeaderEpoch": -1, "Timestamp": -1}
                for p in range(PARTITIONS)]}]}
    with KafkaConn(bootstrap) as c:
        parts = c.request("ListOffsets", 5, body)["Topics"][0]["Partitions"]
    assert all(p["ErrorCode"] == 0 for p in parts), parts
    return {p["PartitionIndex"]: p["Offset"] for p in parts}


class Writers:
    """The confluent-kafka writers; records what was committed, aborted and written plain."""

    def __init__(self, bootstrap):
        from confluent_kafka import Producer
        self.committed, self.aborted, self.plain = [], [], []
        self.plain_producer = Producer({"bootstrap.servers": bootstrap,
                                        "enable.idempotence": True, "linger.ms": 1})
        self.txn = {}
        for name in ("x", "y"):
            p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "vis-" + name,
                          "linger.ms": 1})
            p.init_transactions(30)
            self.txn[name] = p

    def write_plain(self, tag):
        values = [b"plain-%s-%d" % (tag.encode(), i) for i in range(PARTITIONS)]
        for i, v in enumerate(values):
            self.plain_producer.produce(TOPIC, value=v, partition=i % PARTITIONS)
        assert self.plain_producer.flush(30) == 0
        self.plain += values

    def write(self, name, rnd):
        """Begin a transaction of `name` and write its records (flushed); returns them."""
        p = self.txn[name]
        p.begin_transaction()
        values = [b"%s%d-%d" % (name.encode(), rnd, i) for i in range(PER_PARTITION * PARTITIONS)]
        for i, v in enumerate(values):
            p.produce(TOPIC, value=v, partition=i % PARTITIONS)
        assert p.flush(30) == 0
        return values

    def end(self, name, values, commit):
        if commit:
            self.txn[name].commit_transaction(30)
            self.committed += values
        else:
            self.txn[name].abort_transaction(30)
            self.aborted += values


def consume_confluent(bootstrap, isolation, want, quiet_s=2.0, deadline_s=30.0):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "vis-ck-" + isolation,
                  "isolation.level": isolation, "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    got, last, deadline = [], time.monotonic(), time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            if len(got) >= want and time.monotonic() - last >= quiet_s:
                break
            continue
        got.append(m.value())
        last = time.monotonic()
    c.close()
    return got


def consume_kcat(bootstrap, isolation):
    rc, out, err = kcat(bootstrap, "-C", "-t", TOPIC, "-o", "beginning", "-e", "-q",
                        "-X", "isolation.level=" + isolation, "-f", "%s\n", timeout_s=60)
    assert rc == 0, err
    return [v.encode() for v in out.split("\n")[:-1]]


def consume_kafkajs(bootstrap, isolation, want):
    rc, out, err = run(["node", JS_DRIVER, bootstrap, "consume", TOPIC,
                        "vis-js-" + isolation, isolation, str(want)], timeout_s=60)
    assert rc == 0, out + err
    return [v.encode() for v in json.loads(out)["values"]]


def wait_offsets(bootstrap, want_hw, want_lso, timeout_s=5.0):
    """Wait until (HW, LSO) per partition are (want_hw, want_lso); returns the last seen.

    EndTxn answers once PrepareCommit/PrepareAbort is durable; the markers follow (as in
    Kafka), so the HW and LSO reach their values shortly after commit/abort returns.
    """
    def seen():
        return list_latest(bootstrap, 0), list_latest(bootstrap, 1)
    got = wait_for(lambda: (lambda s: s if s == (want_hw, want_lso) else None)(seen()),
                   timeout_s=timeout_s)
    return got or seen()


def overlapping_phase(b, w):
    """X open; Y writes and commits behind it; the LSO holds at X's start; X aborts."""
    w.write_plain("0")
    hw0 = list_latest(b.bootstrap, 0)
    x1 = w.write("x", 1)
    y1 = w.write("y", 1)
    w.end("y", y1, commit=True)
    hw1 = {p: hw0[p] + 2 * PER_PARTITION + 1 for p in range(PARTITIONS)}
    hw, lso = wait_offsets(b.bootstrap, hw1, hw0)
    check(hw == hw1, "ListOffsets read_uncommitted latest = HW %s (X's and Y's records + "
          "Y's commit marker; got %s)" % (hw1, hw))
    check(lso == hw0, "X open, Y committed behind it: ListOffsets read_committed latest = X's "
          "first offset %s on each partition (got %s)" % (hw0, lso))
    early = consume_confluent(b.bootstrap, "read_committed", len(w.plain), quiet_s=3.0,
                              deadline_s=10.0)
    check(sorted(early) == sorted(w.plain),
          "read_committed consumer while X is open: only the %d plain records before it, "
          "not Y's committed ones (got %d)" % (len(w.plain), len(early)))
    w.end("x", x1, commit=False)
    hw2 = {p: hw1[p] + 1 for p in range(PARTITIONS)}
    hw, lso = wait_offsets(b.bootstrap, hw2, hw2)
    check(hw == hw2 and lso == hw2, "X aborted: HW %s and LSO %s both %s (abort markers "
          "written)" % (hw, lso, hw2))


def alternating_phase(w):
    for rnd in (2, 3, 4):
        x, y = w.write("x", rnd), w.write("y", rnd)
        w.write_plain(str(rnd))
        x_commits = rnd % 2 == 0
        w.end("x", x, commit=x_commits)
        w.end("y", y, commit=not x_commits)
    check(True, "3 rounds of overlapping X/Y transactions, one committed and one aborted each, "
          "with plain records between")


def kafkajs_producer(b, w):
    rc, out, err = run(["node", JS_DRIVER, b.bootstrap, "produce", TOPIC, "vis-js", "js"],
                       timeout_s=60)
    check(rc == 0, "kafkajs transactional producer: one aborted, one committed\n" + out + err)
    n = json.loads(out)
    w.aborted += [b"js-aborted-%d" % i for i in range(n["aborted"])]
    w.committed += [b"js-committed-%d" % i for i in range(n["committed"])]


WIDE_TOPIC, WIDE_PARTITIONS = "vis16", 16
CODECS = ("zstd", "lz4", "gzip", "snappy")


def read_wide(bootstrap, isolation, want, group):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "isolation.level": isolation, "enable.auto.commit": False})
    c.assign([TopicPartition(WIDE_TOPIC, p, 0) for p in range(WIDE_PARTITIONS)])
    got, last, deadline = [], time.monotonic(), time.monotonic() + 30
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            if len(got) >= want and time.monotonic() - last >= 2.0:
                break
            continue
        got.append(m.value())
        last = time.monotonic()
    c.close()
    return sorted(got)


def compressed_wide_phase(b):
    from confluent_kafka import Producer
    with KafkaConn(b.bootstrap) as c:
        body = {"Topics": [{"Name": WIDE_TOPIC, "NumPartitions": WIDE_PARTITIONS,
                            "ReplicationFactor": 1, "Assignments": [], "Configs": []}],
                "TimeoutMs": 5000, "ValidateOnly": False}
        check(c.request("CreateTopics", 5, body)["Topics"][0]["ErrorCode"] == 0,
              "topic %s with %d partitions" % (WIDE_TOPIC, WIDE_PARTITIONS))
    committed, aborted = [], []
    for codec in CODECS:
        p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "vis-" + codec,
                      "compression.type": codec, "linger.ms": 20})
        p.init_transactions(30)
        for kind, n in (("aborted", 100 * WIDE_PARTITIONS), ("committed", 10 * WIDE_PARTITIONS)):
            p.begin_transaction()
            values = [b"%s-%s-%d" % (codec.encode(), kind.encode(), i) for i in range(n)]
            for i, v in enumerate(values):
                p.produce(WIDE_TOPIC, value=v, partition=i % WIDE_PARTITIONS)
            assert p.flush(30) == 0  # in the log before the abort (abort purges the queue)
            if kind == "aborted":
                p.abort_transaction(30)
                aborted += values
            else:
                p.commit_transaction(30)
                committed += values
        del p
    check(True, "%s: one aborted (%d records) and one committed (%d) transaction per codec %s"
          % (WIDE_TOPIC, 100 * WIDE_PARTITIONS, 10 * WIDE_PARTITIONS, CODECS))
    committed.sort()
    for when in ("", " after SIGKILL and restart"):
        got = read_wide(b.bootstrap, "read_committed", len(committed),
                        "w-rc" + ("-2" if when else ""))
        check(got == committed, "confluent-kafka read_committed%s: exactly the %d committed "
              "compressed records (got %d, %d aborted leaked)"
              % (when, len(committed), len(got), len(set(got) & set(aborted))))
        rc, out, err = kcat(b.bootstrap, "-C", "-t", WIDE_TOPIC, "-o", "beginning", "-e", "-q",
                            "-f", "%s\n", timeout_s=60)
        got = sorted(v.encode() for v in out.split("\n")[:-1])
        check(rc == 0 and got == committed, "kcat read_committed%s: exactly the %d committed "
              "compressed records (got %d)" % (when, len(committed), len(got)))
        if not when:
            got = read_wide(b.bootstrap, "read_uncommitted", len(committed) + len(aborted),
                            "w-ru")
            check(got == sorted(committed + aborted), "confluent-kafka read_uncommitted: all "
                  "%d records (got %d)" % (len(committed) + len(aborted), len(got)))
            b.kill()
            b.start()


def no_sanitizer_report(b):
    rc = b.stop()
    with open(b.stderr_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    bad = [ln for ln in log.splitlines() if "Sanitizer" in ln or "runtime error:" in ln]
    check(rc == 0 and not bad, "SIGTERM: broker exits 0 (rc %s), no sanitizer report in its "
          "stderr %s" % (rc, bad[:3]))


def main():
    if kcat_path() is None:
        skip("kcat missing")
    have_node = node_available()
    if have_node:
        npm_ci(JS_DIR)
    with Broker(sys.argv[1], cores="2", config={"group.initial.rebalance.delay.ms": 0}) as b:
        with KafkaConn(b.bootstrap) as c:
            body = {"Topics": [{"Name": TOPIC, "NumPartitions": PARTITIONS,
                                "ReplicationFactor": 1, "Assignments": [], "Configs": []}],
                    "TimeoutMs": 5000, "ValidateOnly": False}
            check(c.request("CreateTopics", 5, body)["Topics"][0]["ErrorCode"] == 0,
                  "topic %s with %d partitions" % (TOPIC, PARTITIONS))
        w = Writers(b.bootstrap)
        overlapping_phase(b, w)
        alternating_phase(w)
        if have_node:
            kafkajs_producer(b, w)
        else:
            print("note: node not available; kafkajs not run")
        hw = list_latest(b.bootstrap, 0)
        lso = wait_for(lambda: list_latest(b.bootstrap, 1) == list_latest(b.bootstrap, 0),
                       timeout_s=5.0)
        check(lso, "every transaction ended: LSO = HW %s on every partition" % hw)
        visible = sorted(w.committed + w.plain)
        everything = sorted(w.committed + w.plain + w.aborted)
        print("written: %d committed, %d aborted, %d plain" % (len(w.committed), len(w.aborted),
                                                               len(w.plain)))
        readers = [("confluent-kafka", lambda iso, n: consume_confluent(b.bootstrap, iso, n)),
                   ("kcat", lambda iso, n: consume_kcat(b.bootstrap, iso))]
        if have_node:
            readers.append(("kafkajs", lambda iso, n: consume_kafkajs(
                b.bootstrap, "committed" if iso == "read_committed" else "uncommitted", n)))
        for name, read in readers:
            got = sorted(read("read_committed", len(visible)))
            leaked = sorted(set(got) & set(w.aborted))
            check(got == visible, "%s read_committed: exactly the %d committed and plain records,"
                  " no aborted one (got %d, %d aborted leaked %s)"
                  % (name, len(visible), len(got), len(leaked), leaked[:3]))
            got = sorted(read("read_uncommitted", len(everything)))
            check(got == everything, "%s read_uncommitted: all %d records, aborted ones included"
                  " (got %d)" % (name, len(everything), len(got)))
        del w  # the producers go before the broker (no reconnect noise)
        compressed_wide_phase(b)
        no_sanitizer_report(b)
    print("PASS")


if __name__ == "__main__":
    main()
