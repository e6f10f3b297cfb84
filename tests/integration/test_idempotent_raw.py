#!/usr/bin/python3
"""Idempotent produce at the protocol level (raw KafkaConn, hand-built batches).

- InitProducerId at every advertised version: a fresh id at epoch 0, ids increase; a
  v3+ request carrying its id and epoch (KIP-360) gets a new id; an empty transactional
  id is INVALID_REQUEST (42); a transactional id is answered by the transaction
  coordinator (test_txn_coordinator.py tests it).
- The same idempotent batch sent twice: the second answer is the first one's base
  offset with error 0, and the record is stored once (fetched back).
- The six batches after it: the first is no longer a duplicate (outside the window of
  5): OUT_OF_ORDER_SEQUENCE_NUMBER (45); a gap: 45; an older epoch:
  INVALID_PRODUCER_EPOCH (47); a new epoch starting at 0: appended; a new epoch not
  at 0: 45.
- Restart after SIGTERM (state from the close snapshot), then after SIGKILL (no close
  snapshot: the previous one plus a scan of the batches after it): a retried duplicate
  still answers its original offset, a second producer's too, the next sequence is
  appended, a gap is still 45, the old epoch still 47; producer ids handed out after a
  restart are larger than every one before it (the persisted block mark).
"""
import struct
import sys
import time

from harness import Broker, KafkaConn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_produce_errors import crc32c, varint, partition_errors, fetch, create  # noqa: E402

TOPIC = "idem"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def idem_batch(pid, epoch, seq, values):
    ts = int(time.time() * 1000)
    records = b""
    for i, v in enumerate(values):
        body = (b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0))
        records += varint(len(body)) + body
    n = len(values)
    after_crc = struct.pack(">hiqqqhii", 0, n - 1, ts, ts, pid, epoch, seq, n) + records
    batch_length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc32c(after_crc)) + after_crc


def send(conn, batch, partition=0, acks=-1, version=9):
    body = {"TransactionalId": None, "Acks": acks, "TimeoutMs": 5000,
            "TopicData": [{"Name": TOPIC, "PartitionData": [{"Index": partition,
                                                            "Records": batch}]}]}
    resp = conn.request("Produce", version, body)
    return partition_errors(resp)[(TOPIC, partition)]


def init_pid(conn, version, tid=None, pid=-1, epoch=-1):
    body = {"TransactionalId": tid, "TransactionTimeoutMs": 60000,
            "ProducerId": pid, "ProducerEpoch": epoch}
    r = conn.request("InitProducerId", version, body)
    return r["ErrorCode"], r["ProducerId"], r["ProducerEpoch"]


def values(tag, n):
    return [b"%s-%d" % (tag, i) for i in range(n)]


def count_records(conn, value_prefix):
    """Fetch the whole partition 0 and count records whose value starts with prefix."""
    off, seen = 0, 0
    for _ in range(1000):
        p = fetch(conn, TOPIC, 0, off)
        data = p["Records"] or b""
        if not data:
            return seen
        pos = 0
        while pos + 61 <= len(data):
            base, blen = struct.unpack(">qi", data[pos:pos + 12])
            if pos + 12 + blen > len(data):
                break
            seen += data[pos:pos + 12 + blen].count(value_prefix)
            last_delta = struct.unpack(">i", data[pos + 23:pos + 27])[0]
            off = base + last_delta + 1
            pos += 12 + blen
    return seen


def main():
    sluice = sys.argv[1]
    cfg = {"num.partitions": 1, "log.segment.bytes": 4096}
    with Broker(sluice, config=cfg) as b:
        with KafkaConn(b.bootstrap) as c:
            ids = []
            for v in range(0, 5):
                ec, pid, epoch = init_pid(c, v)
                check(ec == 0 and epoch == 0 and pid >= 0, "InitProducerId v%d: id %d epoch 0" % (v, pid))
                ids.append(pid)
            check(ids == sorted(set(ids)), "producer ids are distinct and increasing")
            ec, pid2, epoch2 = init_pid(c, 4, pid=ids[-1], epoch=0)
            check(ec == 0 and pid2 > ids[-1] and epoch2 == 0, "KIP-360 re-init gets a new id")
            ids.append(pid2)
            check(init_pid(c, 3, tid="")[0] == 42, "empty transactional id: INVALID_REQUEST")
            ec, tpid, tepoch = init_pid(c, 4, tid="txn-1")
            check(ec == 0 and tpid > ids[-1] and tepoch == 0,
                  "transactional id: a new id at epoch 0 from the transaction coordinator")
            ids.append(tpid)

            pid = ids[0]
            check(create(c, TOPIC, 1, [("segment.bytes", "4096")]) == 0, "topic created")
            ec, _ = send(c, idem_batch(-1, -1, -1, [b"plain"]))
            check(ec == 0, "plain batch appended")
            first = idem_batch(pid, 0, 0, values(b"dupcheck", 3))
            ec1, off1 = send(c, first)
            ec2, off2 = send(c, first)
            check(ec1 == 0 and ec2 == 0 and off1 == off2, "duplicate answered with the original offset %d" % off1)
            check(count_records(c, b"dupcheck-0") == 1, "the duplicate was stored once")
            ec, _ = send(c, first, acks=1)
            check(ec == 0, "duplicate with acks=1 answered too")
            seq = 3
            offsets = {}
            for k in range(6):
                ec, off = send(c, idem_batch(pid, 0, seq, values(b"b%d" % k, 2)))
                check(ec == 0, "batch seq %d appended at %d" % (seq, off))
                offsets[seq] = off
                seq += 2
            check(send(c, first) == (45, -1), "retry older than the 5-batch window: 45")
            check(send(c, idem_batch(pid, 0, seq - 2, values(b"b5", 2)))[1] == offsets[seq - 2],
                  "newest batch still a duplicate")
            check(send(c, idem_batch(pid, 0, seq + 1, values(b"gap", 1))) == (45, -1), "gap: 45")
            check(send(c, idem_batch(pid, 1, 5, values(b"e1", 1))) == (45, -1),
                  "new epoch not starting at 0: 45")
            ec, off_e1 = send(c, idem_batch(pid, 1, 0, values(b"e1", 1)))
            check(ec == 0, "new epoch at seq 0 appended")
            check(send(c, idem_batch(pid, 0, seq, values(b"old", 1))) == (47, -1), "older epoch: 47")
            ec, off_next = send(c, idem_batch(pid, 1, 1, values(b"e1b", 4)))
            check(ec == 0, "epoch 1 continues at seq 1")
            last_batch = idem_batch(pid, 1, 1, values(b"e1b", 4))
            pid_b = ids[1]
            ec, off_b = send(c, idem_batch(pid_b, 0, 0, values(b"pb", 2)))
            check(ec == 0, "a second producer appends")

        next_seq = 5  # epoch 1 of pid: seqs 0..4 used
        for how in ("SIGTERM", "SIGKILL"):
            if how == "SIGTERM":
                b.stop()
            else:
                b.kill()
            b.restart()
            with KafkaConn(b.bootstrap) as c:
                r = send(c, last_batch)
                check(r == (0, off_next), "after %s restart: retried duplicate answers %d" % (how, off_next))
                check(send(c, idem_batch(pid_b, 0, 0, values(b"pb", 2))) == (0, off_b),
                      "after %s: second producer's duplicate answers %d" % (how, off_b))
                check(send(c, idem_batch(pid, 1, next_seq + 3, values(b"gap", 1))) == (45, -1),
                      "after %s: a gap is still 45" % how)
                check(send(c, idem_batch(pid, 0, 0, values(b"old", 1))) == (47, -1),
                      "after %s: the old epoch is still fenced" % how)
                ec, new_pid, _ = init_pid(c, 4)
                check(ec == 0 and new_pid > max(ids), "after %s: new producer id %d > %d" % (how, new_pid, max(ids)))
                ids.append(new_pid)
                for _ in range(2):
                    batch = idem_batch(pid, 1, next_seq, values(b"after-%s-%d" % (how.encode(), next_seq), 1))
                    ec, off = send(c, batch)
                    check(ec == 0 and off > off_next, "after %s: seq %d appended at %d" % (how, next_seq, off))
                    last_batch, off_next = batch, off
                    next_seq += 1
        log = b.stderr_tail()
        check("producer_state_rebuilt" in log, "the broker logged the producer state rebuild")
    print("PASS")


if __name__ == "__main__":
    main()
