#!/usr/bin/python3
"""The transaction coordinator with confluent-kafka (librdkafka) against a 2-shard broker.

- init_transactions, begin, produce to 2 partitions, send_offsets_to_transaction, commit:
  read_committed sees the records, the group's offset is committed, the transactional id
  is CompleteCommit (DescribeTransactions, ListTransactions over the raw protocol).
- abort: read_committed never sees the records, read_uncommitted does; offsets sent
  inside the aborted transaction are not committed.
- OffsetFetch v7 with require_stable answers UNSTABLE_OFFSET_COMMIT (88) while a
  transaction holds an offset of the partition, the offset once it commits.
- Raw protocol: 20 transactions back to back, the next AddPartitionsToTxn sent while
  the markers are out waits for them instead of CONCURRENT_TRANSACTIONS; version-mapped
  fencing error, per-partition errors, EndTxn without a transaction.
- A second producer with the same transactional.id fences the first (its commit fails,
  fatal), and the first's open transaction is aborted.
- transaction.timeout.ms above transaction.max.timeout.ms: INVALID_TRANSACTION_TIMEOUT.
- A transaction past its timeout is aborted by the coordinator with an epoch bump.
- transactional.id.expiration.ms forgets an idle id (a tombstone: still forgotten after
  a restart), never one with an open transaction.
- Restarts (SIGTERM, then SIGKILL): a transaction whose last logged state is
  PrepareCommit (the record is produced into __transaction_state by this test, encoded
  here in Kafka's TransactionLog format -- so the broker's reload reads Kafka's format)
  completes after the restart: markers re-sent, read_committed sees its records. An
  Ongoing one survives the restart: after SIGTERM its client aborts it, after SIGKILL the
  coordinator times it out.
"""
import struct
import sys
import time

from harness import Broker, KafkaConn, wait_for

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TXN_LOG_PARTITIONS = 4
STATUS = {"Empty": 0, "Ongoing": 1, "PrepareCommit": 2, "PrepareAbort": 3,
          "CompleteCommit": 4, "CompleteAbort": 5}


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def java_hash(s):
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(s, n):
    h = java_hash(s)
    return (0 if h == -(1 << 31) else abs(h)) % n


def producer(bootstrap, txn_id, **extra):
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5}
    conf.update(extra)
    return Producer(conf)


def read_all(bootstrap, topic, partitions, isolation, expect=None, timeout_s=10.0):
    """Values of every record of topic (from the beginning) at an isolation level."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader-%f" % time.time(),
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.time() + timeout_s
    idle_since = time.time()
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if expect is not None and len(got) >= expect and time.time() - idle_since > 1.0:
                break
            if expect is None and time.time() - idle_since > 2.0:
                break
            continue
        idle_since = time.time()
        if m.error():
            continue
        got.append(m.value().decode())
    c.close()
    return sorted(got)


def describe(bootstrap, txn_id):
    with KafkaConn(bootstrap) as c:
        body = c.request("DescribeTransactions", 0, {"TransactionalIds": [txn_id]})
    return body["TransactionStates"][0]


def settles(bootstrap, txn_id, state, timeout_s=10.0):
    """EndTxn is answered once Prepare* is logged; Complete* follows the markers."""
    return wait_for(lambda: describe(bootstrap, txn_id)["TransactionState"] == state,
                    timeout_s=timeout_s)


def committed(bootstrap, group, topic, partition):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    tp = c.committed([TopicPartition(topic, partition)], timeout=10)[0]
    c.close()
    return tp.offset


def produce_txn(p, topic, values, partitions=2):
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=i % partitions)
    p.flush(10)


def txn_log_record(txn_id, pid, epoch, timeout_ms, status, parts, start_ms):
    """Kafka's TransactionLogKey / TransactionLogValue, version 0."""
    key = struct.pack(">hh", 0, len(txn_id)) + txn_id.encode()
    topics = {}
    for t, p in parts:
        topics.setdefault(t, []).append(p)
    value = struct.pack(">hqhib", 0, pid, epoch, timeout_ms, status)
    value += struct.pack(">i", len(topics))
    for t, ps in topics.items():
        value += struct.pack(">h", len(t)) + t.encode() + struct.pack(">i", len(ps))
        value += b"".join(struct.pack(">i", p) for p in ps)
    now = int(time.time() * 1000)
    value += struct.pack(">qq", now, start_ms)
    return key, value


def commit_and_abort(b):
    p = producer(b.bootstrap, "tx-basic")
    p.init_transactions(10)
    p.begin_transaction()
    produce_txn(p, "out", ["c%d" % i for i in range(10)])
    group = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-basic"})
    p.send_offsets_to_transaction([TopicPartition("in", 0, 5)],
                                  group.consumer_group_metadata(), 10)
    p.commit_transaction(10)
    check(settles(b.bootstrap, "tx-basic", "CompleteCommit"), "commit: CompleteCommit")
    d = describe(b.bootstrap, "tx-basic")
    check(d["ErrorCode"] == 0 and d["TransactionState"] == "CompleteCommit" and
          d["ProducerEpoch"] == 0 and d["Topics"] == [],
          "commit: DescribeTransactions says CompleteCommit: %s" % d)
    check(committed(b.bootstrap, "g-basic", "in", 0) == 5,
          "commit: the offset sent in the transaction is committed (5)")
    check(read_all(b.bootstrap, "out", 2, "read_committed", 10) ==
          sorted("c%d" % i for i in range(10)), "commit: read_committed sees the 10 records")

    p.begin_transaction()
    produce_txn(p, "out", ["a%d" % i for i in range(6)])
    p.send_offsets_to_transaction([TopicPartition("in", 0, 9)],
                                  group.consumer_group_metadata(), 10)
    d = describe(b.bootstrap, "tx-basic")
    check(d["TransactionState"] == "Ongoing" and
          sorted((t["Topic"], sorted(t["Partitions"])) for t in d["Topics"]) ==
          [("__consumer_offsets", [partition_for("g-basic", 3)]), ("out", [0, 1])],
          "DescribeTransactions of an open transaction: Ongoing, its partitions: %s" % d)
    with KafkaConn(b.bootstrap) as c:
        for v in (0, 1):
            body = c.request("ListTransactions", v, {"StateFilters": ["Ongoing", "Bogus"],
                                                     "ProducerIdFilters": []})
            ids = [t["TransactionalId"] for t in body["TransactionStates"]]
            check(body["ErrorCode"] == 0 and ids == ["tx-basic"] and
                  body["UnknownStateFilters"] == ["Bogus"],
                  "ListTransactions v%d filtered on Ongoing: %s" % (v, body))
    p.abort_transaction(10)
    check(settles(b.bootstrap, "tx-basic", "CompleteAbort"), "abort: CompleteAbort")
    check(committed(b.bootstrap, "g-basic", "in", 0) == 5,
          "abort: the offset sent in the aborted transaction is not committed (still 5)")
    check(read_all(b.bootstrap, "out", 2, "read_committed", 10) ==
          sorted("c%d" % i for i in range(10)),
          "abort: read_committed never sees the aborted records")
    check(read_all(b.bootstrap, "out", 2, "read_uncommitted", 16) ==
          sorted(["c%d" % i for i in range(10)] + ["a%d" % i for i in range(6)]),
          "abort: read_uncommitted sees them")
    group.close()
    return p


def unstable_offsets(b):
    p = producer(b.bootstrap, "tx-stable")
    p.init_transactions(10)
    p.begin_transaction()
    produce_txn(p, "out", ["s0"])
    group = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-stable"})
    p.send_offsets_to_transaction([TopicPartition("in", 1, 7)],
                                  group.consumer_group_metadata(), 10)
    req = {"GroupId": "g-stable", "Topics": [{"Name": "in", "PartitionIndexes": [1]}],
           "RequireStable": True}
    with KafkaConn(b.bootstrap) as c:
        body = c.request("OffsetFetch", 7, req)
        part = body["Topics"][0]["Partitions"][0]
        check(part["ErrorCode"] == 88 and part["CommittedOffset"] == -1,
              "OffsetFetch v7 require_stable during the transaction: UNSTABLE_OFFSET_COMMIT")
        req["RequireStable"] = False
        part = c.request("OffsetFetch", 7, req)["Topics"][0]["Partitions"][0]
        check(part["ErrorCode"] == 0 and part["CommittedOffset"] == -1,
              "... without require_stable: no offset yet, no error")
        p.commit_transaction(10)
        req["RequireStable"] = True
        # EndTxn is answered once PrepareCommit is logged; the offset is stable when the
        # marker reaches the group's partition (until then 88, which clients retry)
        check(wait_for(lambda: c.request("OffsetFetch", 7, req)["Topics"][0]["Partitions"][0]
                       == {"PartitionIndex": 1, "CommittedOffset": 7,
                           "CommittedLeaderEpoch": -1, "Metadata": "", "ErrorCode": 0}, 10),
              "... after the commit: offset 7, no error")
    group.close()


def back_to_back(b):
    """The next transaction's AddPartitionsToTxn sent right after EndTxn, while the
    markers are being written: it waits for them and succeeds (never 51)."""
    with KafkaConn(b.bootstrap) as c:
        r = c.request("InitProducerId", 3, {"TransactionalId": "tx-raw",
                                            "TransactionTimeoutMs": 60000,
                                            "ProducerId": -1, "ProducerEpoch": -1})
        pid, epoch = r["ProducerId"], r["ProducerEpoch"]
        check(r["ErrorCode"] == 0, "raw InitProducerId with a transactional id")
        errors = []
        for i in range(20):
            add = c.request("AddPartitionsToTxn", 3, {
                "V3AndBelowTransactionalId": "tx-raw", "V3AndBelowProducerId": pid,
                "V3AndBelowProducerEpoch": epoch,
                "V3AndBelowTopics": [{"Name": "out", "Partitions": [0, 1]}]})
            errors += [p["PartitionErrorCode"] for t in add["ResultsByTopicV3AndBelow"]
                       for p in t["ResultsByPartition"]]
            end = c.request("EndTxn", 3, {"TransactionalId": "tx-raw", "ProducerId": pid,
                                          "ProducerEpoch": epoch, "Committed": i % 2 == 0})
            errors.append(end["ErrorCode"])
        check(errors == [0] * 60, "20 transactions back to back: every AddPartitionsToTxn "
              "and EndTxn answered 0 (%s)" % sorted(set(errors)))
        add = c.request("AddPartitionsToTxn", 1, {
            "V3AndBelowTransactionalId": "tx-raw", "V3AndBelowProducerId": pid,
            "V3AndBelowProducerEpoch": epoch + 1,
            "V3AndBelowTopics": [{"Name": "out", "Partitions": [0]}]})
        check(add["ResultsByTopicV3AndBelow"][0]["ResultsByPartition"][0]
              ["PartitionErrorCode"] == 47,
              "AddPartitionsToTxn v1 with another epoch: INVALID_PRODUCER_EPOCH (47, "
              "PRODUCER_FENCED exists from v2)")
        add = c.request("AddPartitionsToTxn", 3, {
            "V3AndBelowTransactionalId": "tx-raw", "V3AndBelowProducerId": pid,
            "V3AndBelowProducerEpoch": epoch,
            "V3AndBelowTopics": [{"Name": "out", "Partitions": [0, 9]}]})
        check([p["PartitionErrorCode"] for p in add["ResultsByTopicV3AndBelow"][0]
               ["ResultsByPartition"]] == [55, 3],
              "AddPartitionsToTxn with an unknown partition: UNKNOWN_TOPIC_OR_PARTITION, the "
              "others OPERATION_NOT_ATTEMPTED")
        check(settles(b.bootstrap, "tx-raw", "CompleteAbort"), "the last one aborted")
        end = c.request("EndTxn", 3, {"TransactionalId": "tx-raw", "ProducerId": pid,
                                      "ProducerEpoch": epoch, "Committed": True})
        check(end["ErrorCode"] == 48, "EndTxn with no transaction open: INVALID_TXN_STATE")


def fencing(b):
    p1 = producer(b.bootstrap, "tx-fence")
    p1.init_transactions(10)
    p1.begin_transaction()
    produce_txn(p1, "out", ["zombie0", "zombie1"])
    e1 = describe(b.bootstrap, "tx-fence")["ProducerEpoch"]
    p2 = producer(b.bootstrap, "tx-fence")
    p2.init_transactions(20)
    d = describe(b.bootstrap, "tx-fence")
    check(d["TransactionState"] == "Empty" and d["ProducerEpoch"] == e1 + 2,
          "a second producer with the same id: the open transaction aborted (epoch + 1), "
          "the new producer at epoch + 2: %s" % d)
    err = None
    try:
        p1.commit_transaction(10)
    except KafkaException as e:
        err = e.args[0]
    check(err is not None and err.fatal() and
          err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                         KafkaError.INVALID_PRODUCER_EPOCH),
          "the first producer is fenced: commit fails fatally (%s)" % err)
    check(not any(v.startswith("zombie") for v in
                  read_all(b.bootstrap, "out", 2, "read_committed")),
          "the fenced producer's records never reach read_committed")
    p2.begin_transaction()
    produce_txn(p2, "out", ["fresh"])
    p2.commit_transaction(10)
    check("fresh" in read_all(b.bootstrap, "out", 2, "read_committed"),
          "the new producer commits")


def timeouts(b):
    p = producer(b.bootstrap, "tx-big-timeout", **{"transaction.timeout.ms": 120000})
    err = None
    try:
        p.init_transactions(10)
    except KafkaException as e:
        err = e.args[0]
    check(err is not None and err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT,
          "transaction.timeout.ms 120000 > transaction.max.timeout.ms 60000: "
          "INVALID_TRANSACTION_TIMEOUT (%s)" % err)
    p = producer(b.bootstrap, "tx-slow", **{"transaction.timeout.ms": 2000,
                                            "message.timeout.ms": 2000})
    p.init_transactions(10)
    p.begin_transaction()
    produce_txn(p, "out", ["slow0"])
    e0 = describe(b.bootstrap, "tx-slow")["ProducerEpoch"]
    check(wait_for(lambda: describe(b.bootstrap, "tx-slow")["TransactionState"] ==
                   "CompleteAbort", timeout_s=15),
          "a transaction past its 2 s timeout is aborted by the coordinator")
    check(describe(b.bootstrap, "tx-slow")["ProducerEpoch"] == e0 + 1,
          "... with an epoch bump that fences its producer")
    check("slow0" not in read_all(b.bootstrap, "out", 2, "read_committed"),
          "... and its records never reach read_committed")


def prepare_commit_record(b, txn_id, values):
    """An Ongoing transaction of values, then its PrepareCommit record written into
    __transaction_state as Kafka would have written it (as if the broker died between
    the record and the markers). Returns the producer."""
    p = producer(b.bootstrap, txn_id)
    p.init_transactions(10)
    p.begin_transaction()
    produce_txn(p, "out", values)
    group = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-" + txn_id})
    p.send_offsets_to_transaction([TopicPartition("in", 1, 42)],
                                  group.consumer_group_metadata(), 10)
    group.close()
    d = describe(b.bootstrap, txn_id)
    check(d["TransactionState"] == "Ongoing", "%s Ongoing before the restart" % txn_id)
    parts = [(t["Topic"], x) for t in d["Topics"] for x in t["Partitions"]]
    key, value = txn_log_record(txn_id, d["ProducerId"], d["ProducerEpoch"],
                                d["TransactionTimeoutMs"], STATUS["PrepareCommit"], parts,
                                d["TransactionStartTimeMs"])
    w = Producer({"bootstrap.servers": b.bootstrap, "acks": "all",
                  "enable.idempotence": False})
    w.produce("__transaction_state", key=key, value=value,
              partition=partition_for(txn_id, TXN_LOG_PARTITIONS))
    check(w.flush(10) == 0, "PrepareCommit record of %s written to __transaction_state"
          % txn_id)
    return p


def restarts(b, sig_name):
    tag = sig_name.lower()
    prepare_commit_record(b, "tx-prep-" + tag, ["p%s%d" % (tag, i) for i in range(4)])
    ongoing = producer(b.bootstrap, "tx-open-" + tag,
                       **{"transaction.timeout.ms": 10000 if sig_name == "SIGKILL" else 60000})
    ongoing.init_transactions(10)
    ongoing.begin_transaction()
    produce_txn(ongoing, "out", ["o%s%d" % (tag, i) for i in range(3)])
    group = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-tx-open-" + tag})
    ongoing.send_offsets_to_transaction([TopicPartition("in", 1, 13)],
                                        group.consumer_group_metadata(), 10)
    group.close()
    if sig_name == "SIGTERM":
        check(b.stop() == 0, "SIGTERM exits 0")
    else:
        b.kill()
    b.start()
    # Checked first: after SIGKILL the transaction's timeout (10 s, counted from its start
    # and restored from __transaction_state) keeps running while the checks below go on.
    check(describe(b.bootstrap, "tx-open-" + tag)["TransactionState"] == "Ongoing",
          "after %s: the Ongoing transaction is still Ongoing" % sig_name)
    check(wait_for(lambda: describe(b.bootstrap, "tx-prep-" + tag)["TransactionState"] ==
                   "CompleteCommit", timeout_s=15),
          "after %s: the PrepareCommit transaction completes (markers re-sent)" % sig_name)
    seen = read_all(b.bootstrap, "out", 2, "read_committed")
    check(all("p%s%d" % (tag, i) in seen for i in range(4)),
          "after %s: read_committed sees its records" % sig_name)
    check(committed(b.bootstrap, "g-tx-prep-" + tag, "in", 1) == 42,
          "after %s: the offset it sent is committed once its marker is written" % sig_name)
    if sig_name == "SIGTERM":
        ongoing.abort_transaction(20)
        check(settles(b.bootstrap, "tx-open-" + tag, "CompleteAbort"),
              "after SIGTERM: its client aborts it cleanly")
    else:
        check(wait_for(lambda: describe(b.bootstrap, "tx-open-" + tag)["TransactionState"] ==
                       "CompleteAbort", timeout_s=30),
              "after SIGKILL: it times out and is aborted by the coordinator")
    seen = read_all(b.bootstrap, "out", 2, "read_committed")
    check(not any(v.startswith("o" + tag) for v in seen),
          "after %s: the aborted transaction's records never reach read_committed" % sig_name)
    check(committed(b.bootstrap, "g-tx-open-" + tag, "in", 1) < 0,
          "after %s: the offset it sent is never committed" % sig_name)
    d = describe(b.bootstrap, "tx-basic")
    check(d["TransactionState"] == "CompleteAbort" and
          committed(b.bootstrap, "g-basic", "in", 0) == 5,
          "after %s: earlier transactions and committed offsets reloaded" % sig_name)


def expiry(sluice):
    """transactional.id.expiration.ms: an idle id is forgotten, its tombstone keeps it
    forgotten across a restart; an id in use is not."""
    config = {"transactional.id.expiration.ms": 3000,
              "transaction.abort.timed.out.transaction.cleanup.interval.ms": 300}
    with Broker(sluice, config=config, cores="1") as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic("out", 2, 1)])["out"].result()
        p = producer(b.bootstrap, "tx-idle")
        p.init_transactions(10)
        check(describe(b.bootstrap, "tx-idle")["ErrorCode"] == 0, "tx-idle known")
        busy = producer(b.bootstrap, "tx-busy", **{"transaction.timeout.ms": 60000})
        busy.init_transactions(10)
        busy.begin_transaction()
        produce_txn(busy, "out", ["b0"])
        check(wait_for(lambda: describe(b.bootstrap, "tx-idle")["ErrorCode"] == 105,
                       timeout_s=15),
              "an id idle past transactional.id.expiration.ms is forgotten "
              "(TRANSACTIONAL_ID_NOT_FOUND)")
        check(describe(b.bootstrap, "tx-busy")["TransactionState"] == "Ongoing",
              "an id with an open transaction is kept")
        b.restart()
        check(describe(b.bootstrap, "tx-idle")["ErrorCode"] == 105,
              "after a restart the expired id stays forgotten (its tombstone reloaded)")
        check(describe(b.bootstrap, "tx-busy")["TransactionState"] == "Ongoing",
              "after a restart the open transaction is still Ongoing")


def main():
    sluice = sys.argv[1]
    config = {"transaction.max.timeout.ms": 60000,
              "transaction.abort.timed.out.transaction.cleanup.interval.ms": 500,
              "transaction.state.log.num.partitions": TXN_LOG_PARTITIONS,
              "offsets.topic.num.partitions": 3}
    with Broker(sluice, config=config, cores="2") as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        for f in admin.create_topics([NewTopic("out", 2, 1), NewTopic("in", 2, 1)]).values():
            f.result()
        with KafkaConn(b.bootstrap) as c:
            body = c.request("FindCoordinator", 3, {"Key": "tx-basic", "KeyType": 1})
            check(body["ErrorCode"] == 0 and body["Port"] == b.port,
                  "FindCoordinator key type 1 (transaction): this node")
            body = c.request("DescribeTransactions", 0, {"TransactionalIds": ["nosuch"]})
            check(body["TransactionStates"][0]["ErrorCode"] == 105,
                  "DescribeTransactions of an unknown id: TRANSACTIONAL_ID_NOT_FOUND")
        commit_and_abort(b)
        unstable_offsets(b)
        back_to_back(b)
        fencing(b)
        timeouts(b)
        restarts(b, "SIGTERM")
        restarts(b, "SIGKILL")
        check(b.running(), "broker still running")
    expiry(sluice)


if __name__ == "__main__":
    main()
