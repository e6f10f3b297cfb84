#!/usr/bin/python3
"""Pipelined Produce on one raw connection (conn.c's request ring, issue 5's throughput).

A broker with 2 shards and a 4-partition topic (the partitions are spread over both
shards, so a connection's requests go to its own shard and across the mesh). One raw
connection writes every request back to back before reading any answer:

- 60 Produce requests (acks=-1, a few with acks=1, and three with acks=0), each one batch
  to partition i % 4, with a Metadata request after the 10th and a CreateTopics (a
  control-plane request, which runs alone) after the 30th. Every answered request gets
  its response in request order (correlation ids consecutive, acks=0 ones skipped);
  each partition's base offsets are consecutive in request order (acks=0 batches
  included), and fetching each partition back shows the batches in request order (the
  batch's first timestamp carries the request number).
- An idempotent producer (InitProducerId) pipelining 40 batches to one partition with
  consecutive sequences: every answer is error 0 (a batch that overtook an earlier one
  would get OUT_OF_ORDER_SEQUENCE_NUMBER), offsets consecutive.
- The same 40 batches again (retries of the last 5 are duplicates answered with their
  original offsets; earlier ones are out of the window of 5), showing the broker checks
  each pipelined batch against the state left by the ones before it.
"""
import struct
import sys
import threading
import time

from harness import Broker, KafkaConn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_produce_errors import crc32c, varint, partition_errors, fetch, create  # noqa: E402

TOPIC = "pipe"
PARTITIONS = 4
RECORDS = 5  # per batch


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def batch(values, first_ts, pid=-1, epoch=-1, seq=-1):
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    n = len(values)
    after_crc = struct.pack(">hiqqqhii", 0, n - 1, first_ts, first_ts, pid, epoch, seq, n) + records
    batch_length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc32c(after_crc)) + after_crc


def produce_body(partition, records, acks):
    return {"TransactionalId": None, "Acks": acks, "TimeoutMs": 5000,
            "TopicData": [{"Name": TOPIC, "PartitionData": [{"Index": partition,
                                                            "Records": records}]}]}


def send_all(conn, requests):
    """Send every (api, version, body) without reading; returns the correlation ids.

    The bytes go out from a thread: the broker stops reading at its in-flight bound
    until answers leave, and those answers wait in our receive buffer meanwhile."""
    frames, ids = [], []
    import kafka_schema
    from harness import api_key_of
    for api, version, body in requests:
        cid = conn.next_correlation_id
        conn.next_correlation_id += 1
        frames.append(kafka_schema.encode_request(api_key_of(api), version, cid,
                                                  conn.client_id, body))
        ids.append(cid)
    sender = threading.Thread(target=conn.send_raw, args=(b"".join(frames),))
    sender.start()
    return ids, sender


def batches_in_log(conn, partition):
    """(base offset, first timestamp) of every batch of the partition, in log order."""
    out, off = [], 0
    for _ in range(1000):
        data = fetch(conn, TOPIC, partition, off)["Records"] or b""
        if not data:
            return out
        pos = 0
        while pos + 61 <= len(data):
            base, blen = struct.unpack(">qi", data[pos:pos + 12])
            if pos + 12 + blen > len(data):
                break
            last_delta = struct.unpack(">i", data[pos + 23:pos + 27])[0]
            first_ts = struct.unpack(">q", data[pos + 27:pos + 35])[0]
            out.append((base, first_ts))
            off = base + last_delta + 1
            pos += 12 + blen
    return out


def mixed_pipeline(c):
    ts0 = int(time.time() * 1000) - 1_000_000
    requests, expect = [], []  # expect: (kind, request number, partition, acks)
    for i in range(60):
        acks = 0 if i in (7, 25, 44) else (1 if i % 9 == 4 else -1)
        part = i % PARTITIONS
        values = [b"r%d-%d" % (i, k) for k in range(RECORDS)]
        requests.append(("Produce", 8, produce_body(part, batch(values, ts0 + i), acks)))
        expect.append(("produce", i, part, acks))
        if i == 10:
            requests.append(("Metadata", 1, {"Topics": [{"Name": TOPIC}]}))
            expect.append(("metadata", None, None, None))
        if i == 30:
            requests.append(("CreateTopics", 5, {
                "Topics": [{"Name": "pipe-side", "NumPartitions": 1, "ReplicationFactor": 1,
                            "Assignments": [], "Configs": []}],
                "TimeoutMs": 5000, "ValidateOnly": False}))
            expect.append(("create", None, None, None))
    ids, sender = send_all(c, requests)
    next_offset = [0] * PARTITIONS
    answered = 0
    for cid, (api, version, _), (kind, i, part, acks) in zip(ids, requests, expect):
        if kind == "produce":
            base = next_offset[part]
            next_offset[part] += RECORDS
            if acks == 0:
                continue
        body = c.recv_response(api, version, cid)  # raises unless this correlation id
        answered += 1
        if kind == "produce":
            ec, off = partition_errors(body)[(TOPIC, part)]
            if ec != 0 or off != base:
                raise AssertionError("request %d (partition %d): error %d offset %d, "
                                     "expected 0 and %d" % (i, part, ec, off, base))
        elif kind == "metadata":
            t = [t for t in body["Topics"] if t["Name"] == TOPIC][0]
            if t["ErrorCode"] != 0 or len(t["Partitions"]) != PARTITIONS:
                raise AssertionError("metadata in the pipeline: %s" % t)
        else:
            if body["Topics"][0]["ErrorCode"] != 0:
                raise AssertionError("CreateTopics in the pipeline: %s" % body)
    sender.join()
    check(answered == len(requests) - 3,
          "%d pipelined requests (Produce acks=-1/1/0, Metadata, CreateTopics): every "
          "answer in request order, base offsets consecutive per partition" % len(requests))
    for part in range(PARTITIONS):
        got = batches_in_log(c, part)
        want = [(RECORDS * k, ts0 + i) for k, i in
                enumerate(i for i in range(60) if i % PARTITIONS == part)]
        if got != want:
            raise AssertionError("partition %d log %s, expected %s" % (part, got, want))
    check(True, "each partition's log holds its batches in request order (acks=0 included)")


def idempotent_pipeline(c):
    r = c.request("InitProducerId", 4, {"TransactionalId": None, "TransactionTimeoutMs": 60000,
                                        "ProducerId": -1, "ProducerEpoch": -1})
    check(r["ErrorCode"] == 0, "InitProducerId: producer id %d" % r["ProducerId"])
    pid, epoch = r["ProducerId"], r["ProducerEpoch"]
    start = batches_in_log(c, 1)
    first = start[-1][0] + RECORDS if start else 0
    ts = int(time.time() * 1000)

    def round_of(n):
        return [("Produce", 9, produce_body(1, batch([b"i%d-%d" % (k, j) for j in range(RECORDS)],
                                                     ts, pid, epoch, k * RECORDS), -1))
                for k in range(n)]

    requests = round_of(40)
    ids, sender = send_all(c, requests)
    offsets = []
    for cid, (api, version, _) in zip(ids, requests):
        ec, off = partition_errors(c.recv_response(api, version, cid))[(TOPIC, 1)]
        if ec != 0:
            raise AssertionError("idempotent batch %d: error %d" % (len(offsets), ec))
        offsets.append(off)
    sender.join()
    check(offsets == [first + RECORDS * k for k in range(40)],
          "idempotent producer, 40 pipelined batches to one partition: all accepted in "
          "sequence order, offsets consecutive")
    # The whole round again: batches 0..34 are outside the window of 5 (45), the last
    # five are duplicates answered with their original offsets.
    ids, sender = send_all(c, requests)
    answers = []
    for cid, (api, version, _) in zip(ids, requests):
        answers.append(partition_errors(c.recv_response(api, version, cid))[(TOPIC, 1)])
    sender.join()
    check(all(ec == 45 for ec, _ in answers[:35]) and
          answers[35:] == [(0, o) for o in offsets[35:]],
          "the same 40 again: 35 out of the window (45), the last 5 duplicates with their "
          "original offsets")


def main():
    sluice = sys.argv[1]
    with Broker(sluice, cores="2") as b:
        with KafkaConn(b.bootstrap, timeout_s=30) as c:
            check(create(c, TOPIC, PARTITIONS) == 0, "topic %s with %d partitions" % (TOPIC, PARTITIONS))
            time.sleep(0.2)
            mixed_pipeline(c)
            idempotent_pipeline(c)
        check(b.running(), "broker still running")


if __name__ == "__main__":
    main()
