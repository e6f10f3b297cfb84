#!/usr/bin/python3
"""Transactions on the data path (KIP-98), against the real broker (2 shards, so some
partitions are owned by the shard that did not accept the connection).

Raw protocol (harness.KafkaConn, batches built by hand as test_idempotent_raw.py does):
- A transactional batch opens a transaction: on every partition the LSO stays at its
  first offset while plain batches after it move the high watermark. Fetch at
  read_uncommitted returns everything and reports that LSO; at read_committed it
  returns only the batches below the LSO, and nothing (no error) from the LSO on.
  ListOffsets latest at read_committed is the LSO, at read_uncommitted the high
  watermark.
- A client's own control batch is refused: INVALID_RECORD (87) with Produce v9,
  CORRUPT_MESSAGE (2) with v7; a transactional batch without a producer id too; one in
  a Produce request without a transactional id is TRANSACTIONAL_ID_AUTHORIZATION_FAILED
  (53), as Kafka answers (the batches of phase 1 carry an id no coordinator knows).
- SIGKILL restart, then SIGTERM restart, with the transaction still open: the LSO is
  the same (open transactions are recovered from the snapshot and the log scan).
With the coordinator (control/txn_api.c) through the raw protocol:
- FindCoordinator(key type 1), InitProducerId(transactional id), AddPartitionsToTxn,
  transactional Produce, EndTxn(abort): read_committed Fetch lists the aborted
  transaction (producer id, first offset) and the LSO moves past its marker;
  EndTxn(commit) of the next one moves the LSO to the high watermark with no new
  aborted entry. A read_committed fetch parked (MaxWaitMs 8000) on an open transaction
  is woken by the commit marker, well before its deadline.
- DescribeProducers (API 61) reports the open transaction's start offset.
Real clients (confluent-kafka): a transactional producer aborts one transaction and
commits another; a read_committed consumer gets exactly the committed records, a
read_uncommitted consumer both. After a SIGKILL restart the LSO equals the high
watermark again (never below what it was) and a read_committed consumer still gets
exactly the committed records (the aborted index was recovered).
"""
import struct
import sys
import threading
import time

from harness import Broker, KafkaConn, wait_for

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_produce_errors import crc32c, varint, partition_errors  # noqa: E402

TOPIC = "txs"
PARTS = 4


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def batch(pid=-1, epoch=-1, seq=-1, values=(b"v",), transactional=False, control=False,
          key=None):
    ts = int(time.time() * 1000)
    records = b""
    for i, v in enumerate(values):
        k = (varint(-1) if key is None else varint(len(key)) + key)
        body = b"\x00" + varint(0) + varint(i) + k + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    n = len(values)
    attrs = (0x10 if transactional else 0) | (0x20 if control else 0)
    after_crc = struct.pack(">hiqqqhii", attrs, n - 1, ts, ts, pid, epoch, seq, n) + records
    batch_length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc32c(after_crc)) + after_crc


def produce(c, partition, data, version=9, tid=None):
    body = {"TransactionalId": tid, "Acks": -1, "TimeoutMs": 5000,
            "TopicData": [{"Name": TOPIC, "PartitionData": [{"Index": partition,
                                                            "Records": data}]}]}
    return partition_errors(c.request("Produce", version, body))[(TOPIC, partition)]


def fetch(c, partition, offset, isolation, max_wait_ms=0):
    body = {"ReplicaId": -1, "MaxWaitMs": max_wait_ms, "MinBytes": 1, "MaxBytes": 1 << 20,
            "IsolationLevel": isolation, "SessionId": 0, "SessionEpoch": -1,
            "Topics": [{"Topic": TOPIC, "Partitions": [
                {"Partition": partition, "CurrentLeaderEpoch": -1, "FetchOffset": offset,
                 "LogStartOffset": -1, "PartitionMaxBytes": 1 << 20}]}],
            "ForgottenTopicsData": [], "RackId": ""}
    return c.request("Fetch", 11, body)["Responses"][0]["Partitions"][0]


def batch_offsets(records):
    """(base offset, last offset, attributes) of every batch in a Fetch answer."""
    out, pos, data = [], 0, records or b""
    while pos + 61 <= len(data):
        base, blen = struct.unpack(">qi", data[pos:pos + 12])
        attrs, delta = struct.unpack(">hi", data[pos + 21:pos + 27])
        out.append((base, base + delta, attrs))
        pos += 12 + blen
    return out


def list_latest(c, partition, isolation):
    body = {"ReplicaId": -1, "IsolationLevel": isolation,
            "Topics": [{"Name": TOPIC, "Partitions": [
                {"PartitionIndex": partition, "CurrentLeaderEpoch": -1, "Timestamp": -1}]}]}
    p = c.request("ListOffsets", 5, body)["Topics"][0]["Partitions"][0]
    return p["ErrorCode"], p["Offset"]


def lso(c, partition):
    p = fetch(c, partition, 0, 0)
    return p["LastStableOffset"], p["HighWatermark"]


def create(c, name, partitions):
    body = {"Topics": [{"Name": name, "NumPartitions": partitions, "ReplicationFactor": 1,
                        "Assignments": [], "Configs": []}],
            "TimeoutMs": 5000, "ValidateOnly": False}
    return c.request("CreateTopics", 5, body)["Topics"][0]["ErrorCode"]


def open_transactions(b, c):
    """Phase 1: transactional batches by hand (no coordinator); returns the txn start."""
    check(create(c, TOPIC, PARTS) == 0, "topic %s with %d partitions" % (TOPIC, PARTS))
    r = c.request("InitProducerId", 4, {"TransactionalId": None, "TransactionTimeoutMs": 60000,
                                        "ProducerId": -1, "ProducerEpoch": -1})
    pid = r["ProducerId"]
    check(r["ErrorCode"] == 0 and pid >= 0, "an idempotent producer id %d" % pid)
    for p in range(PARTS):
        check(produce(c, p, batch(values=[b"plain-before"])) == (0, 0), "p%d: plain batch at 0" % p)
        txn = batch(pid, 0, 0, [b"txn-%d" % i for i in range(3)], transactional=True)
        check(produce(c, p, txn)[0] == 53,
              "p%d: transactional batch without a transactional id: "
              "TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53)" % p)
        ec, off = produce(c, p, txn, tid="hand-made")
        check(ec == 0 and off == 1, "p%d: transactional batch at 1..3" % p)
        check(produce(c, p, batch(values=[b"plain-after"])) == (0, 4), "p%d: plain batch at 4" % p)
    for p in range(PARTS):
        u = fetch(c, p, 0, 0)
        offs = batch_offsets(u["Records"])
        check(u["ErrorCode"] == 0 and u["HighWatermark"] == 5 and u["LastStableOffset"] == 1 and
              [o[0] for o in offs] == [0, 1, 4],
              "p%d read_uncommitted: all 3 batches, HW 5, LSO 1" % p)
        k = fetch(c, p, 0, 1)
        offs = batch_offsets(k["Records"])
        check(k["ErrorCode"] == 0 and k["LastStableOffset"] == 1 and [o[0] for o in offs] == [0],
              "p%d read_committed: only the batch below the LSO" % p)
        check(not (k["AbortedTransactions"] or []), "p%d: no aborted transactions listed" % p)
        k = fetch(c, p, 1, 1)
        check(k["ErrorCode"] == 0 and not batch_offsets(k["Records"]),
              "p%d read_committed from the LSO: nothing, no error" % p)
        check(list_latest(c, p, 1) == (0, 1) and list_latest(c, p, 0) == (0, 5),
              "p%d ListOffsets latest: 1 read_committed, 5 read_uncommitted" % p)
    # A client may not write control batches, nor transactional ones without an id.
    marker = batch(pid, 0, -1, [b"\x00\x00\x00\x01"], transactional=True, control=True)
    check(produce(c, 0, marker, tid="hand-made")[0] == 87, "client control batch: INVALID_RECORD (87)")
    check(produce(c, 0, marker, version=7, tid="hand-made")[0] == 2,
          "client control batch v7: CORRUPT_MESSAGE")
    check(produce(c, 0, batch(transactional=True), tid="hand-made")[0] == 87,
          "transactional batch without producer id: INVALID_RECORD")
    check(lso(c, 0) == (1, 5), "refused batches changed nothing")
    return pid


def restarts_keep_lso(b):
    for how in ("SIGKILL", "SIGTERM"):
        if how == "SIGKILL":
            b.kill()
        else:
            b.stop()
        b.start()
        with KafkaConn(b.bootstrap) as c:
            for p in range(PARTS):
                l, hw = lso(c, p)
                check(l == 1 and hw == (5 if p or how == "SIGKILL" else 6),
                      "after %s restart p%d: LSO 1, HW %d" % (how, p, hw))
            check(produce(c, 0, batch(values=[b"plain-after-%s" % how.encode()]))[0] == 0,
                  "after %s: plain batch appended" % how)
            l0, hw0 = lso(c, 0)
            check(l0 == 1 and hw0 > 5, "after %s: LSO still 1 with HW %d" % (how, hw0))


def advertised(c, api_key):
    keys = {k["ApiKey"]: (k["MinVersion"], k["MaxVersion"])
            for k in c.request("ApiVersions", 3)["ApiKeys"]}
    return keys.get(api_key)


def coordinator_raw(b, c):
    """Phase 2: the coordinator writes the markers (raw protocol). On a fresh topic: the
    phase-1 transactions were never ended (no coordinator knows them) and hold the LSO of
    "txs" for good, as a hanging transaction does in Kafka."""
    global TOPIC
    TOPIC = "txs2"
    check(create(c, TOPIC, PARTS) == 0, "topic %s with %d partitions" % (TOPIC, PARTS))
    tid = "raw-txn"
    fc = c.request("FindCoordinator", 3, {"Key": tid, "KeyType": 1})
    check(fc["ErrorCode"] == 0, "FindCoordinator key type 1: %s" % fc["ErrorCode"])
    r = wait_for(lambda: (lambda x: x if x["ErrorCode"] == 0 else None)(
        c.request("InitProducerId", 3, {"TransactionalId": tid, "TransactionTimeoutMs": 60000,
                                        "ProducerId": -1, "ProducerEpoch": -1})), 15)
    check(r, "InitProducerId with a transactional id")
    pid, epoch = r["ProducerId"], r["ProducerEpoch"]
    seq = 0
    for round_, commit in enumerate((False, True)):
        def add_partitions():
            add = c.request("AddPartitionsToTxn", 3, {
                "V3AndBelowTransactionalId": tid, "V3AndBelowProducerId": pid,
                "V3AndBelowProducerEpoch": epoch,
                "V3AndBelowTopics": [{"Name": TOPIC, "Partitions": [2, 3]}]})
            return [pp["PartitionErrorCode"] for t in add["ResultsByTopicV3AndBelow"]
                    for pp in t["ResultsByPartition"]]
        # CONCURRENT_TRANSACTIONS (51) while the previous transaction's markers are still
        # being completed: clients retry, so does this
        errs = []
        wait_for(lambda: errs.append(add_partitions()) or errs[-1] != [51, 51], 15, 0.1)
        check(errs[-1] == [0, 0], "round %d: AddPartitionsToTxn p2, p3 (%s)" % (round_, errs[-1]))
        firsts = {}
        for p in (2, 3):
            ec, off = produce(c, p, batch(pid, epoch, seq, [b"raw-%d-%d" % (round_, p)],
                                          transactional=True), tid=tid)
            check(ec == 0, "round %d: transactional produce p%d at %d" % (round_, p, off))
            firsts[p] = off
        seq += 1
        hw_before = {p: lso(c, p)[1] for p in (2, 3)}
        check(all(lso(c, p)[0] <= firsts[p] for p in (2, 3)), "round %d: LSO held" % round_)
        waiter = {}
        if commit:  # a read_committed fetch parked at the LSO, woken by the marker
            # The LSO is read here, before EndTxn: a thread started late must still fetch
            # from the held LSO, not from where the marker has already moved it.
            held_lso = lso(c, 2)[0]

            def park():
                with KafkaConn(b.bootstrap) as c2:
                    t0 = time.time()
                    w = fetch(c2, 2, held_lso, 1, max_wait_ms=8000)
                    waiter["elapsed"] = time.time() - t0
                    waiter["resp"] = w
            th = threading.Thread(target=park)
            th.start()
            time.sleep(0.5)
        end = c.request("EndTxn", 3, {"TransactionalId": tid, "ProducerId": pid,
                                      "ProducerEpoch": epoch, "Committed": commit})
        check(end["ErrorCode"] == 0, "round %d: EndTxn(%s)" % (round_, "commit" if commit else "abort"))
        for p in (2, 3):  # markers are written after EndTxn answers: wait for them
            moved = wait_for(lambda: lso(c, p)[0] > hw_before[p] - 1 and
                             lso(c, p)[0] == lso(c, p)[1], 10)
            check(moved, "round %d p%d: the marker moved the LSO to the HW %s" % (round_, p, lso(c, p)))
            k = fetch(c, p, firsts[p], 1)
            aborted = [(a["ProducerId"], a["FirstOffset"]) for a in (k["AbortedTransactions"] or [])]
            offs = batch_offsets(k["Records"])
            check(any(o[2] & 0x20 for o in offs), "round %d p%d: the control batch is fetched" % (round_, p))
            if commit:
                check((pid, firsts[p]) not in aborted, "round %d p%d: commit not listed aborted" % (round_, p))
            else:
                check((pid, firsts[p]) in aborted,
                      "round %d p%d: aborted transaction (%d, %d) listed" % (round_, p, pid, firsts[p]))
        if commit:
            th.join(15)
            w = waiter.get("resp")
            check(w is not None and batch_offsets(w["Records"]) and waiter["elapsed"] < 6.0,
                  "a parked read_committed fetch woke on the commit after %.2f s"
                  % waiter.get("elapsed", -1))
    return pid


def describe_producers(c, pid_open):
    body = {"Topics": [{"Name": TOPIC, "PartitionIndexes": [0, 1]}]}
    r = c.request("DescribeProducers", 0, body)
    parts = r["Topics"][0]["Partitions"]
    for pp in parts:
        active = {a["ProducerId"]: a for a in pp["ActiveProducers"]}
        check(pp["ErrorCode"] == 0 and pid_open in active and
              active[pid_open]["CurrentTxnStartOffset"] == 1,
              "DescribeProducers p%d: producer %d, transaction open since 1"
              % (pp["PartitionIndex"], pid_open))


def real_clients(b):
    from confluent_kafka import Consumer, Producer, TopicPartition
    topic = "txclients"
    with KafkaConn(b.bootstrap) as c:
        body = {"Topics": [{"Name": topic, "NumPartitions": 2, "ReplicationFactor": 1,
                            "Assignments": [], "Configs": []}],
                "TimeoutMs": 5000, "ValidateOnly": False}
        check(c.request("CreateTopics", 5, body)["Topics"][0]["ErrorCode"] == 0, "topic " + topic)
    prod = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "ck-txn",
                     "linger.ms": 5})
    prod.init_transactions(30)
    prod.begin_transaction()
    for i in range(50):
        prod.produce(topic, key=b"k%d" % i, value=b"aborted-%d" % i, partition=i % 2)
    prod.flush(30)
    prod.abort_transaction(30)
    prod.begin_transaction()
    for i in range(50):
        prod.produce(topic, key=b"k%d" % i, value=b"committed-%d" % i, partition=i % 2)
    prod.commit_transaction(30)
    check(True, "confluent-kafka: one transaction aborted, one committed")

    def consume(isolation):
        cons = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-" + isolation,
                         "isolation.level": isolation, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
        cons.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
        got, deadline, want = [], time.time() + 20, 100 if isolation == "read_committed" else 100
        idle = 0
        while time.time() < deadline:
            m = cons.poll(0.5)
            if m is None:
                idle += 1
                if len(got) >= want and idle > 3:
                    break
                continue
            idle = 0
            if m.error():
                continue
            got.append(m.value())
        cons.close()
        return got

    rc = consume("read_committed")
    check(sorted(rc) == sorted(b"committed-%d" % i for i in range(50)),
          "read_committed consumer: exactly the 50 committed records (%d got)" % len(rc))
    ru = consume("read_uncommitted")
    check(sorted(ru) == sorted([b"committed-%d" % i for i in range(50)] +
                               [b"aborted-%d" % i for i in range(50)]),
          "read_uncommitted consumer: all 100 records (%d got)" % len(ru))
    with KafkaConn(b.bootstrap) as c:
        before = {}
        for p in (0, 1):
            q = fetch_topic(c, topic, p)
            before[p] = (q["LastStableOffset"], q["HighWatermark"])
            check(q["LastStableOffset"] == q["HighWatermark"], "%s-%d: LSO = HW = %d after the commit"
                  % (topic, p, q["HighWatermark"]))
    b.kill()
    b.start()
    with KafkaConn(b.bootstrap) as c:
        for p in (0, 1):
            q = fetch_topic(c, topic, p)
            check((q["LastStableOffset"], q["HighWatermark"]) == before[p],
                  "after SIGKILL %s-%d: LSO %d = HW, not moved back" % (topic, p, before[p][0]))
    # the aborted index came back too: read_committed still skips the aborted records
    rc = consume("read_committed")
    check(sorted(rc) == sorted(b"committed-%d" % i for i in range(50)),
          "after SIGKILL: read_committed consumer still gets exactly the 50 committed (%d got)"
          % len(rc))


def fetch_topic(c, topic, partition):
    body = {"ReplicaId": -1, "MaxWaitMs": 0, "MinBytes": 1, "MaxBytes": 1 << 20,
            "IsolationLevel": 1, "SessionId": 0, "SessionEpoch": -1,
            "Topics": [{"Topic": topic, "Partitions": [
                {"Partition": partition, "CurrentLeaderEpoch": -1, "FetchOffset": 0,
                 "LogStartOffset": -1, "PartitionMaxBytes": 1 << 20}]}],
            "ForgottenTopicsData": [], "RackId": ""}
    return c.request("Fetch", 11, body)["Responses"][0]["Partitions"][0]


def main():
    sluice = sys.argv[1]
    with Broker(sluice, cores="2", config={"auto.create.topics.enable": "false"}) as b:
        with KafkaConn(b.bootstrap) as c:
            pid_open = open_transactions(b, c)
        restarts_keep_lso(b)
        with KafkaConn(b.bootstrap) as c:
            if advertised(c, 61):
                describe_producers(c, pid_open)
            else:
                print("note: DescribeProducers not advertised; not checked")
            if advertised(c, 26):
                coordinator_raw(b, c)
            else:
                print("note: EndTxn not advertised; coordinator checks not run")
        if advertised_at(b, 26):
            real_clients(b)
    print("PASS")


def advertised_at(b, api_key):
    with KafkaConn(b.bootstrap) as c:
        return advertised(c, api_key)


if __name__ == "__main__":
    main()
