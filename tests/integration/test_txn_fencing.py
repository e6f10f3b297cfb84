#!/usr/bin/python3
"""Zombie fencing, and broker restarts in the middle of transactions (confluent-kafka).

Fencing (topic "fence", 2 partitions):
  - producer P1 (transactional.id "fence-id") opens a transaction and writes 10 records;
    P2 with the same transactional.id calls init_transactions: P1 is fenced. P1's next
    produce + commit_transaction fails with a fatal error (PRODUCER_FENCED, or librdkafka's
    _FENCED / INVALID_PRODUCER_EPOCH), P1's records are aborted; P2 commits its own
    transaction; a read_committed consumer gets exactly P2's records.
Timed out while alive (topic "fence"): a producer with transaction.timeout.ms 2 s writes and
  then idles 4 s; the coordinator aborts the transaction (cleanup every 0.5 s) and bumps the
  epoch: its next produce + commit_transaction fails, and none of its records is visible.
Offsets in transactions (topic "offs", group "offs-g"): offsets sent with
  send_offsets_to_transaction in an aborted transaction are not committed; in a committed
  one they are, and they survive a broker SIGKILL.
Restarts (topic "rs", 2 partitions), while a thread polls ListOffsets read_committed latest
(the LSO) on both partitions every 20 ms, across the restarts; the LSO must never move
backward:
  a. a transaction open (records written and acknowledged), broker SIGKILLed and restarted,
     then the same producer calls commit_transaction: it either commits or fails and aborts;
     either way the transaction is atomic for a read_committed reader (all of its records
     or none), and the LSO reaches the HW;
  b. the same with SIGTERM (a clean shutdown);
  c. commit_transaction returned, then at once SIGKILL: the commit was acknowledged, so
     after the restart the coordinator completes it (markers re-sent): all its records are
     visible to read_committed, the LSO reaches the HW;
  d. a transaction open, broker SIGKILLed, the producer gone for good: after the restart
     the coordinator aborts it when its transaction.timeout.ms (3 s) expires; the LSO
     reaches the HW with no client action, and none of its records is visible.

    tests/integration/test_txn_fencing.py build/sluice
"""
import sys
import threading
import time

from harness import Broker, KafkaConn, wait_for

PARTITIONS = 2
PER_TXN = 10


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what, flush=True)


def create(bootstrap, topic):
    with KafkaConn(bootstrap) as c:
        body = {"Topics": [{"Name": topic, "NumPartitions": PARTITIONS, "ReplicationFactor": 1,
                            "Assignments": [], "Configs": []}],
                "TimeoutMs": 5000, "ValidateOnly": False}
        check(c.request("CreateTopics", 5, body)["Topics"][0]["ErrorCode"] == 0,
              "topic %s with %d partitions" % (topic, PARTITIONS))


def list_latest(bootstrap, topic, isolation):
    body = {"ReplicaId": -1, "IsolationLevel": isolation,
            "Topics": [{"Name": topic, "Partitions": [
                {"PartitionIndex": p, "CurrentLeaderEpoch": -1, "Timestamp": -1}
                for p in range(PARTITIONS)]}]}
    with KafkaConn(bootstrap, timeout_s=2) as c:
        parts = c.request("ListOffsets", 5, body)["Topics"][0]["Partitions"]
    if any(p["ErrorCode"] != 0 for p in parts):
        return None
    return tuple(p["Offset"] for p in sorted(parts, key=lambda p: p["PartitionIndex"]))


def settled(bootstrap, topic, timeout_s=10.0):
    """Wait until LSO = HW on every partition; returns (lso, hw) last seen."""
    def seen():
        try:
            return list_latest(bootstrap, topic, 1), list_latest(bootstrap, topic, 0)
        except (OSError, ConnectionError):
            return None, None
    # The sample that satisfied the wait is the answer: sampling again could see a marker
    # land between the LSO and the HW requests (a re-sent duplicate marker after a restart
    # moves both, one request apart -- CI saw LSO 18 / HW 19 that way).
    last = [None, None]

    def equal():
        last[:] = seen()
        return last[0] is not None and last[0] == last[1]
    wait_for(equal, timeout_s)
    return last[0], last[1]


class LsoWatch(threading.Thread):
    """Polls the LSO of every partition of a topic; remembers any backward move."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.stop_flag, self.samples, self.backward = False, 0, []
        self.last = None

    def run(self):
        while not self.stop_flag:
            try:
                lso = list_latest(self.bootstrap, self.topic, 1)
            except (OSError, ConnectionError, Exception):  # broker down: try again
                lso = None
            if lso is not None:
                self.samples += 1
                if self.last is not None and any(n < o for n, o in zip(lso, self.last)):
                    self.backward.append((self.last, lso))
                self.last = lso if self.last is None else tuple(
                    max(n, o) for n, o in zip(lso, self.last))
            time.sleep(0.02)

    def finish(self):
        self.stop_flag = True
        self.join(10)


def producer(bootstrap, tid, **extra):
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 1}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def write(p, topic, prefix):
    values = [b"%s-%d" % (prefix.encode(), i) for i in range(PER_TXN)]
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=i % PARTITIONS)
    assert p.flush(30) == 0, "records not acknowledged"
    return values


def read_committed(bootstrap, topic, want):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "rc-" + topic,
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got, last, deadline = [], time.monotonic(), time.monotonic() + 20
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            if len(got) >= want and time.monotonic() - last >= 1.5:
                break
            continue
        got.append(m.value())
        last = time.monotonic()
    c.close()
    return got


def fencing(b):
    from confluent_kafka import KafkaError, KafkaException
    topic = "fence"
    create(b.bootstrap, topic)
    p1 = producer(b.bootstrap, "fence-id")
    p1.begin_transaction()
    zombie = write(p1, topic, "p1")
    p2 = producer(b.bootstrap, "fence-id")
    check(True, "P2 init_transactions with P1's transactional.id while P1's transaction is open")
    err = None
    try:
        p1.produce(topic, value=b"p1-late", partition=0)
        p1.flush(10)
        p1.commit_transaction(10)
    except KafkaException as e:
        err = e.args[0]
    fenced = (KafkaError.PRODUCER_FENCED, KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
    check(err is not None and err.fatal() and err.code() in fenced,
          "P1's next produce/commit fails with a fatal fenced error (%s)" % err)
    p2.begin_transaction()
    good = write(p2, topic, "p2")
    p2.commit_transaction(30)
    lso, hw = settled(b.bootstrap, topic)
    check(lso == hw, "LSO = HW %s after P2's commit" % (hw,))
    got = read_committed(b.bootstrap, topic, len(good))
    check(sorted(got) == sorted(good), "read_committed: exactly P2's %d records, none of the "
          "zombie's %d (got %d)" % (len(good), len(zombie) + 1, len(got)))
    del p1, p2
    return good


def timed_out_alive(b, visible):
    from confluent_kafka import KafkaException
    topic = "fence"
    p = producer(b.bootstrap, "fence-timeout", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    write(p, topic, "late")
    time.sleep(4.0)
    err = None
    try:
        p.produce(topic, value=b"late-after", partition=1)
        p.flush(10)
        p.commit_transaction(10)
    except KafkaException as e:
        err = e.args[0]
    check(err is not None, "a transaction past its 2 s timeout was aborted by the coordinator: "
          "the producer's commit fails (%s)" % err)
    lso, hw = settled(b.bootstrap, topic)
    check(lso == hw, "LSO = HW %s after the timeout abort" % (hw,))
    got = read_committed(b.bootstrap, topic, len(visible))
    check(sorted(got) == sorted(visible), "none of the timed-out transaction's records visible "
          "(%d visible, %d expected)" % (len(got), len(visible)))
    del p


def offsets_in_txn(b):
    from confluent_kafka import Consumer, TopicPartition
    topic, group = "offs", "offs-g"
    create(b.bootstrap, topic)

    def committed():
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group,
                      "enable.auto.commit": False})
        try:
            return c.committed([TopicPartition(topic, 0)], 10)[0].offset
        finally:
            c.close()
    meta = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group,
                     "enable.auto.commit": False})
    p = producer(b.bootstrap, "offs-id")
    for offset, commit in ((7, False), (9, True)):
        p.begin_transaction()
        p.produce(topic, value=b"o-%d" % offset, partition=1)
        p.send_offsets_to_transaction([TopicPartition(topic, 0, offset)],
                                      meta.consumer_group_metadata(), 10)
        if commit:
            p.commit_transaction(10)
        else:
            assert p.flush(10) == 0
            p.abort_transaction(10)
        want = offset if commit else -1001   # -1001: librdkafka's "no committed offset"
        wait_for(lambda: committed() == want, 5.0)
        check(committed() == want,
              "offset %d sent in a%s transaction: the group's committed offset is %s"
              % (offset, " committed" if commit else "n aborted", committed()))
    meta.close()
    del p
    b.kill()
    b.start()
    check(committed() == 9, "after SIGKILL and restart the transactional offset 9 is still "
          "committed (%s)" % committed())


def no_sanitizer_report(b):
    rc = b.stop()
    with open(b.stderr_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    bad = [ln for ln in log.splitlines() if "Sanitizer" in ln or "runtime error:" in ln]
    check(rc == 0 and not bad, "SIGTERM: broker exits 0 (rc %s), no sanitizer report in its "
          "stderr %s" % (rc, bad[:3]))


def restart_open_txn(b, topic, sig_name, visible):
    from confluent_kafka import KafkaException
    p = producer(b.bootstrap, "rs-" + sig_name)
    p.begin_transaction()
    values = write(p, topic, "open-" + sig_name)
    if sig_name == "kill":
        b.kill()
    else:
        check(b.stop() == 0, "SIGTERM with a transaction open: broker exits 0")
    b.start()
    outcome = "committed"
    try:
        p.commit_transaction(30)
    except KafkaException as e:
        err = e.args[0]
        outcome = "failed (%s), then aborted" % err
        if err.txn_requires_abort():
            p.abort_transaction(30)
        else:
            p = producer(b.bootstrap, "rs-" + sig_name)  # fatal: a new one aborts it
    lso, hw = settled(b.bootstrap, topic)
    check(lso == hw, "%s with a transaction open: commit_transaction %s; LSO = HW %s"
          % ("SIGKILL" if sig_name == "kill" else "SIGTERM", outcome, hw))
    if outcome == "committed":
        visible += values
    got = read_committed(b.bootstrap, topic, len(visible))
    check(sorted(got) == sorted(visible), "read_committed: the transaction is atomic (%d records "
          "visible, %d expected)" % (len(got), len(visible)))
    del p


def restart_after_commit(b, topic, visible):
    p = producer(b.bootstrap, "rs-commit")
    p.begin_transaction()
    values = write(p, topic, "acked")
    p.commit_transaction(30)
    b.kill()
    b.start()
    visible += values
    lso, hw = settled(b.bootstrap, topic)
    check(lso == hw, "SIGKILL right after commit_transaction returned: LSO = HW %s" % (hw,))
    got = read_committed(b.bootstrap, topic, len(visible))
    check(sorted(got) == sorted(visible), "the acknowledged commit survived: all %d records "
          "visible to read_committed (got %d)" % (len(visible), len(got)))
    del p


def restart_abandoned(b, topic, visible):
    p = producer(b.bootstrap, "rs-gone", **{"transaction.timeout.ms": 3000})
    p.begin_transaction()
    write(p, topic, "gone")
    del p   # the producer goes away with its transaction open (no EndTxn)
    b.kill()
    b.start()
    t0 = time.monotonic()
    lso, hw = settled(b.bootstrap, topic, timeout_s=20.0)
    check(lso == hw, "abandoned transaction after SIGKILL: aborted by the coordinator after "
          "its 3 s timeout, LSO = HW %s after %.1f s" % (hw, time.monotonic() - t0))
    got = read_committed(b.bootstrap, topic, len(visible))
    check(sorted(got) == sorted(visible), "none of the abandoned transaction's records visible "
          "(%d visible, %d expected)" % (len(got), len(visible)))


def main():
    config = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 500}
    with Broker(sys.argv[1], cores="2", config=config) as b:
        good = fencing(b)
        timed_out_alive(b, good)
        offsets_in_txn(b)
        topic = "rs"
        create(b.bootstrap, topic)
        watch = LsoWatch(b.bootstrap, topic)
        watch.start()
        visible = []
        try:
            restart_open_txn(b, topic, "kill", visible)
            restart_open_txn(b, topic, "term", visible)
            restart_after_commit(b, topic, visible)
            restart_abandoned(b, topic, visible)
        finally:
            watch.finish()
        check(watch.samples > 50 and not watch.backward,
              "the LSO never moved backward over %d samples across 4 restarts %s"
              % (watch.samples, watch.backward[:3]))
        no_sanitizer_report(b)
    print("PASS")


if __name__ == "__main__":
    main()
