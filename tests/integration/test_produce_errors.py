#!/usr/bin/python3
"""Produce error paths with hand-built RecordBatch v2 frames (raw KafkaConn).

- One Produce request for two partitions (the 4 of the topic are spread over both
  shards, checked from the plog_open log lines, so the request is split): a batch with a
  corrupted CRC gets CORRUPT_MESSAGE (2) for its partition while the good batch in the
  other partition is appended (error 0, base offset 0) and can be fetched back.
- A batch larger than the topic's max.message.bytes: MESSAGE_TOO_LARGE (10).
- An unknown topic with auto.create.topics.enable=false: UNKNOWN_TOPIC_OR_PARTITION (3);
  a partition beyond the topic's count: 3 as well.
- acks=0: no response, and the next request on the connection is answered in order.
- DeleteTopics by name (v4) and by topic id (v6), then CreateTopics of the same name:
  the new topic starts empty (the old partition directories are gone).
- A CreateTopics whose body does not decode (decoded by control): the connection
  closes; a new connection is served.
- Fetch outside [log start, high watermark]: OFFSET_OUT_OF_RANGE (1); Fetch at the high
  watermark with max_wait waits about max_wait and returns no records; a Fetch parked
  with max_wait 5 s is woken by a produce on another connection, for each partition of
  the 4 (so both the same-shard and the cross-shard wake are exercised).
"""
import struct
import sys
import threading
import time

from harness import Broker, KafkaConn, wait_for


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(n):
    n = (n << 1) ^ (n >> 63)  # zigzag
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def record_batch(values, timestamp_ms=None, count=None):
    """An uncompressed RecordBatch v2 with one record per value (no key, no headers)."""
    ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    records = b""
    for i, v in enumerate(values):
        body = (b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v +
                varint(0))
        records += varint(len(body)) + body
    n = len(values) if count is None else count
    after_crc = struct.pack(">hiqqqhii", 0, n - 1, ts, ts, -1, -1, -1, n) + records
    crc = crc32c(after_crc)
    batch_length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc


def produce(conn, version, topic_data, acks=-1):
    body = {"TransactionalId": None, "Acks": acks, "TimeoutMs": 5000,
            "TopicData": [{"Name": t, "PartitionData": [{"Index": p, "Records": r}
                                                      for p, r in parts]}
                          for t, parts in topic_data]}
    return conn.request("Produce", version, body)


def partition_errors(resp):
    return {(t["Name"], p["Index"]): (p["ErrorCode"], p["BaseOffset"])
            for t in resp["Responses"] for p in t["PartitionResponses"]}


def fetch(conn, topic, partition, offset, max_wait_ms=0):
    body = {"ReplicaId": -1, "MaxWaitMs": max_wait_ms, "MinBytes": 1, "MaxBytes": 1 << 20,
            "IsolationLevel": 0, "SessionId": 0, "SessionEpoch": -1,
            "Topics": [{"Topic": topic, "Partitions": [
                {"Partition": partition, "CurrentLeaderEpoch": -1, "FetchOffset": offset,
                 "LogStartOffset": -1, "PartitionMaxBytes": 1 << 20}]}],
            "ForgottenTopicsData": [], "RackId": ""}
    resp = conn.request("Fetch", 11, body)
    return resp["Responses"][0]["Partitions"][0]


def create(conn, name, partitions, configs=()):
    body = {"Topics": [{"Name": name, "NumPartitions": partitions, "ReplicationFactor": 1,
                        "Assignments": [],
                        "Configs": [{"Name": k, "Value": v} for k, v in configs]}],
            "TimeoutMs": 5000, "ValidateOnly": False}
    resp = conn.request("CreateTopics", 5, body)
    return resp["Topics"][0]["ErrorCode"]


def create_v7(conn, name, partitions):
    body = {"Topics": [{"Name": name, "NumPartitions": partitions, "ReplicationFactor": -1,
                        "Assignments": [], "Configs": []}],
            "TimeoutMs": 5000, "ValidateOnly": False}
    t = conn.request("CreateTopics", 7, body)["Topics"][0]
    return t["ErrorCode"], t["TopicId"], t["NumPartitions"]


def recreate_checks(c, good):
    for how in ("name", "id"):
        err, topic_id, n = create_v7(c, "re", 2)
        check(err == 0 and n == 2 and topic_id != bytes(16),
              "CreateTopics v7: a topic id and 2 partitions")
        for p in (0, 1):
            errs = partition_errors(produce(c, 9, [("re", [(p, good)])]))
            check(errs[("re", p)] == (0, 0), "produce to re-%d at offset 0" % p)
        if how == "name":
            resp = c.request("DeleteTopics", 4, {"TopicNames": ["re"], "TimeoutMs": 5000})
            ok = resp["Responses"][0]["ErrorCode"] == 0
        else:
            resp = c.request("DeleteTopics", 6, {"Topics": [{"Name": None, "TopicId": topic_id}],
                                                 "TimeoutMs": 5000})
            r0 = resp["Responses"][0]
            ok = r0["ErrorCode"] == 0 and r0["Name"] == "re"
        check(ok, "DeleteTopics by %s: %s" % (how, resp))
        errs = partition_errors(produce(c, 9, [("re", [(0, good)])]))
        check(errs[("re", 0)][0] == 3, "produce to the deleted topic: UNKNOWN_TOPIC_OR_PARTITION")
    err, topic_id, n = create_v7(c, "re", 2)
    check(err == 0, "create 're' a third time")
    for p in (0, 1):
        part = fetch(c, "re", p, 0)
        check(part["ErrorCode"] == 0 and part["HighWatermark"] == 0 and not part["Records"],
              "re-%d starts empty: the deleted topic's data is gone" % p)


def main():
    config = {"auto.create.topics.enable": "false"}
    with Broker(sys.argv[1], cores="2", config=config) as b, KafkaConn(b.bootstrap) as c:
        check(create(c, "err", 4) == 0 and
              create(c, "small", 1, [("max.message.bytes", "1000")]) == 0,
              "CreateTopics v5: 'err' (4 partitions) and 'small' (max.message.bytes=1000)")
        def owners():
            return {line.split("shard=")[1].split()[0] for line in b.stderr_tail().splitlines()
                    if "event=plog_open" in line and "/err-" in line}
        check(wait_for(lambda: owners() == {"0", "1"}, 5),
              "topic 'err' has partitions on both shards")
        good = record_batch([b"good-%d" % i for i in range(10)])
        bad = bytearray(record_batch([b"bad-%d" % i for i in range(10)]))
        bad[-1] ^= 0xFF  # a byte under the CRC
        for version in (3, 7, 9):
            resp = produce(c, version, [("err", [(0, bytes(bad)), (1, good)])])
            errs = partition_errors(resp)
            check(errs[("err", 0)][0] == 2 and errs[("err", 1)][0] == 0,
                  "Produce v%d: bad CRC -> CORRUPT_MESSAGE, the other partition appended %s"
                  % (version, errs))
        lying = record_batch([b"a", b"b", b"c"], count=4)  # valid CRC, 3 records, says 4
        errs = partition_errors(produce(c, 9, [("err", [(0, lying), (1, good)])]))
        check(errs[("err", 0)][0] == 2 and errs[("err", 1)][0] == 0,
              "a batch whose record count disagrees with its records (CRC valid): "
              "CORRUPT_MESSAGE, the other partition appended")
        part = fetch(c, "err", 1, 0)
        check(part["ErrorCode"] == 0 and part["HighWatermark"] == 40 and
              part["Records"].count(b"good-9") >= 1,
              "Fetch v11 partition 1: HW 40 and the good batches' bytes")
        part = fetch(c, "err", 0, 0)
        check(part["ErrorCode"] == 0 and part["HighWatermark"] == 0,
              "partition 0 got nothing from the corrupt batches")
        big = record_batch([b"x" * 2000])
        errs = partition_errors(produce(c, 7, [("small", [(0, big)])]))
        check(errs[("small", 0)][0] == 10, "batch over max.message.bytes: MESSAGE_TOO_LARGE")
        errs = partition_errors(produce(c, 7, [("nosuch", [(0, good)]), ("err", [(9, good)])]))
        check(errs[("nosuch", 0)][0] == 3 and errs[("err", 9)][0] == 3,
              "unknown topic / partition with auto-create off: UNKNOWN_TOPIC_OR_PARTITION")
        md = c.request("Metadata", 12, {"Topics": [{"Name": "nosuch", "TopicId": bytes(16)}],
                                        "AllowAutoTopicCreation": True,
                                        "IncludeTopicAuthorizedOperations": False})
        check(md["Topics"][0]["ErrorCode"] == 3,
              "Metadata with auto-create off: the topic stays unknown")
        # acks=0: no response; the next request's answer comes next, in order.
        c.send_request("Produce", 7, {"TransactionalId": None, "Acks": 0, "TimeoutMs": 5000,
                                      "TopicData": [{"Name": "err", "PartitionData": [
                                          {"Index": 2, "Records": good}]}]})
        part = fetch(c, "err", 2, 0)
        check(part["HighWatermark"] == 10, "acks=0 produce appended; the next answer is the "
              "Fetch's (HW %d)" % part["HighWatermark"])
        part = fetch(c, "err", 2, 11)
        check(part["ErrorCode"] == 1, "Fetch beyond the high watermark: OFFSET_OUT_OF_RANGE")
        recreate_checks(c, good)
        for p in range(4):
            hw = fetch(c, "err", p, 0)["HighWatermark"]
            result = {}

            def park():
                with KafkaConn(b.bootstrap) as c2:
                    t = time.monotonic()
                    result["part"] = fetch(c2, "err", p, hw, max_wait_ms=5000)
                    result["s"] = time.monotonic() - t
            th = threading.Thread(target=park)
            th.start()
            time.sleep(0.3)
            produce(c, 9, [("err", [(p, good)])])
            th.join(10)
            part = result.get("part", {})
            check(part.get("ErrorCode") == 0 and b"good-9" in (part.get("Records") or b"") and
                  result["s"] < 4.0,
                  "a Fetch parked on err-%d (max_wait 5 s) is woken by a produce after %.2f s"
                  % (p, result.get("s", -1)))
        with KafkaConn(b.bootstrap) as bad:
            hdr = struct.pack(">hhih", 19, 5, 7, 2) + b"it" + b"\x00"  # header v2
            bad.send_frame(hdr + b"\xff\xff\xff")
            check(bad.is_closed(), "CreateTopics with an undecodable body: connection closed")
        with KafkaConn(b.bootstrap) as again:
            check(create(again, "after-bad", 1) == 0, "a new connection is served")
        hw = fetch(c, "err", 2, 0)["HighWatermark"]
        t0 = time.monotonic()
        part = fetch(c, "err", 2, hw, max_wait_ms=300)
        waited = time.monotonic() - t0
        check(part["ErrorCode"] == 0 and not part["Records"] and 0.25 < waited < 2.0,
              "Fetch at the high watermark with max_wait 300 ms: empty after %.2f s" % waited)


if __name__ == "__main__":
    main()
