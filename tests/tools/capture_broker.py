#!/usr/bin/python3
"""capture_broker: a tiny fake Kafka broker that records real clients' requests.

It is a CAPTURE TOOL ONLY, never a test of sluice. It listens on a loopback
port, reads frames (int32 size + body), saves each request frame body (header
+ body, without the size prefix) under --out as
    <client>-<apiname>-v<version>[-N].bin
and answers just enough for the client to go on to its next request: one
broker (itself), one topic "golden" (any topic asked for exists, 1 partition,
led by itself), Produce succeeds at offset 0, Fetch returns no records with
high watermark 0, the first group member becomes leader and gets back the
assignment it sent, offsets are "none committed".

Responses are encoded by tests/tools/kafka_schema.py from the Kafka message
definitions for exactly the version the client sent, so flexible versions
(compact types, tagged fields, header v1) come out right; ApiVersions always
answers with response header v0.

Bounds: a frame larger than MAX_FRAME_BYTES closes the connection; at most
--max-per-api distinct frames are saved per (api, version) and client; frames
identical to a saved one except for the correlation id are not saved again.
Every saved frame is parsed back before it is written (sanity check).

Usage:
    capture_broker.py --out DIR --client NAME [--port N] [--port-file F]
                      [--max-seconds S] [--max-per-api K]
"""

import argparse
import os
import signal
import socketserver
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_schema as ks  # noqa: E402

MAX_FRAME_BYTES = 16 << 20
NODE_ID = 1
CLUSTER_ID = "golden-cluster-0001"
TOPIC_ID = bytes(range(1, 17))  # fixed, non-zero uuid for Metadata v10+
PRODUCER_ID = 1000

# What we advertise in ApiVersions (api name -> (min, max)).
ADVERTISED = {
    "Produce": (0, 9), "Fetch": (0, 13), "ListOffsets": (0, 7),
    "Metadata": (0, 12), "OffsetCommit": (0, 8), "OffsetFetch": (0, 8),
    "FindCoordinator": (0, 4), "JoinGroup": (0, 9), "Heartbeat": (0, 4),
    "LeaveGroup": (0, 5), "SyncGroup": (0, 5), "ApiVersions": (0, 3),
    "CreateTopics": (0, 7), "InitProducerId": (0, 4),
    "AddPartitionsToTxn": (0, 3), "AddOffsetsToTxn": (0, 4),
    "EndTxn": (0, 4), "TxnOffsetCommit": (0, 4),
}

ERR_UNSUPPORTED_VERSION = 35


class Capture:
    """Saves frames to disk, deduplicated and bounded per (api, version)."""

    def __init__(self, out_dir, client, max_per_api):
        self.out_dir = out_dir
        self.client = client
        self.max_per_api = max_per_api
        self.lock = threading.Lock()
        self.seen = {}  # (api_key, version) -> set of frame[8:]
        os.makedirs(out_dir, exist_ok=True)

    def _existing(self, prefix):
        return sorted(f for f in os.listdir(self.out_dir)
                      if f == prefix + ".bin" or
                      (f.startswith(prefix + "-") and f.endswith(".bin")))

    def save(self, api_key, version, frame):
        name = ks.snake(ks.api_names()[api_key])
        prefix = "%s-%s-v%d" % (self.client, name, version)
        with self.lock:
            seen = self.seen.setdefault((api_key, version), set())
            if frame[8:] in seen:
                return None
            existing = self._existing(prefix)
            for fn in existing:  # earlier runs of the same client
                with open(os.path.join(self.out_dir, fn), "rb") as f:
                    seen.add(f.read()[8:])
            if frame[8:] in seen or len(existing) >= self.max_per_api:
                return None
            seen.add(frame[8:])
            fn = prefix + ".bin" if not existing else "%s-%d.bin" % (
                prefix, len(existing) + 1)
            path = os.path.join(self.out_dir, fn)
            with open(path, "wb") as f:
                f.write(frame)
            return fn


# ---------------------------------------------------------------- responses

def _topic_names(req_topics):
    return [t.get("Name") or "golden" for t in req_topics]


def resp_api_versions(ctx, version, req):
    keys = {v: k for k, v in ks.api_names().items()}
    api_keys = [{"ApiKey": keys[n], "MinVersion": lo, "MaxVersion": hi}
                for n, (lo, hi) in sorted(ADVERTISED.items(),
                                          key=lambda kv: keys[kv[0]])]
    return {"ErrorCode": 0, "ApiKeys": api_keys}


def resp_metadata(ctx, version, req):
    topics = req.get("Topics")
    names = ["golden"] if not topics else _topic_names(topics)
    partition = {"PartitionIndex": 0, "LeaderId": NODE_ID, "LeaderEpoch": 0,
                 "ReplicaNodes": [NODE_ID], "IsrNodes": [NODE_ID],
                 "OfflineReplicas": []}
    return {
        "Brokers": [{"NodeId": NODE_ID, "Host": "127.0.0.1",
                     "Port": ctx.port, "Rack": None}],
        "ClusterId": CLUSTER_ID, "ControllerId": NODE_ID,
        "Topics": [{"ErrorCode": 0, "Name": n, "TopicId": TOPIC_ID,
                    "IsInternal": False, "Partitions": [partition]}
                   for n in names],
    }


def resp_produce(ctx, version, req):
    if req["Acks"] == 0:
        return None  # acks=0: the broker never answers
    return {"Responses": [
        {"Name": t["Name"], "PartitionResponses": [
            {"Index": p["Index"], "ErrorCode": 0, "BaseOffset": 0,
             "LogAppendTimeMs": -1, "LogStartOffset": 0}
            for p in t["PartitionData"]]}
        for t in req["TopicData"]]}


def resp_fetch(ctx, version, req):
    # Behave like an idle log: wait (bounded) then return nothing.
    time.sleep(min(max(req["MaxWaitMs"], 0), 500) / 1000.0)
    return {"ErrorCode": 0, "SessionId": 0, "Responses": [
        {"Topic": t.get("Topic"), "TopicId": t.get("TopicId", b"\0" * 16),
         "Partitions": [
             {"PartitionIndex": p["Partition"], "ErrorCode": 0,
              "HighWatermark": 0, "LastStableOffset": 0, "LogStartOffset": 0,
              "AbortedTransactions": [], "PreferredReadReplica": -1,
              "Records": b""}
             for p in t["Partitions"]]}
        for t in req["Topics"]]}


def resp_list_offsets(ctx, version, req):
    return {"Topics": [
        {"Name": t["Name"], "Partitions": [
            {"PartitionIndex": p["PartitionIndex"], "ErrorCode": 0,
             "OldStyleOffsets": [0], "Timestamp": -1, "Offset": 0,
             "LeaderEpoch": 0}
            for p in t["Partitions"]]}
        for t in req["Topics"]]}


def resp_find_coordinator(ctx, version, req):
    me = {"NodeId": NODE_ID, "Host": "127.0.0.1", "Port": ctx.port,
          "ErrorCode": 0, "ErrorMessage": None}
    if version >= 4:
        return {"Coordinators": [dict(me, Key=k)
                                 for k in req["CoordinatorKeys"]]}
    return me


def resp_join_group(ctx, version, req):
    member_id = req["MemberId"] or "%s-member-1" % ctx.client
    protocol = req["Protocols"][0] if req["Protocols"] else {
        "Name": "", "Metadata": b""}
    return {
        "ErrorCode": 0, "GenerationId": 1, "ProtocolType": req["ProtocolType"],
        "ProtocolName": protocol["Name"], "Leader": member_id,
        "SkipAssignment": False, "MemberId": member_id,
        "Members": [{"MemberId": member_id, "GroupInstanceId": None,
                     "Metadata": protocol["Metadata"]}],
    }


def resp_sync_group(ctx, version, req):
    mine = [a["Assignment"] for a in req["Assignments"]
            if a["MemberId"] == req["MemberId"]]
    return {"ErrorCode": 0, "ProtocolType": req.get("ProtocolType"),
            "ProtocolName": req.get("ProtocolName"),
            "Assignment": mine[0] if mine else b""}


def resp_heartbeat(ctx, version, req):
    return {"ErrorCode": 0}


def resp_leave_group(ctx, version, req):
    return {"ErrorCode": 0, "Members": [
        {"MemberId": m["MemberId"], "GroupInstanceId": m["GroupInstanceId"],
         "ErrorCode": 0} for m in req.get("Members", [])]}


def _offset_fetch_topics(topics):
    return [{"Name": t["Name"], "Partitions": [
        {"PartitionIndex": i, "CommittedOffset": -1,
         "CommittedLeaderEpoch": -1, "Metadata": "", "ErrorCode": 0}
        for i in t["PartitionIndexes"]]}
        for t in (topics or [])]


def resp_offset_fetch(ctx, version, req):
    if version >= 8:
        return {"Groups": [
            {"GroupId": g["GroupId"], "ErrorCode": 0,
             "Topics": _offset_fetch_topics(g["Topics"])}
            for g in req["Groups"]]}
    return {"ErrorCode": 0, "Topics": _offset_fetch_topics(req["Topics"])}


def resp_offset_commit(ctx, version, req):
    return {"Topics": [
        {"Name": t["Name"], "Partitions": [
            {"PartitionIndex": p["PartitionIndex"], "ErrorCode": 0}
            for p in t["Partitions"]]}
        for t in req["Topics"]]}


def resp_init_producer_id(ctx, version, req):
    return {"ErrorCode": 0, "ProducerId": PRODUCER_ID, "ProducerEpoch": 0}


def resp_create_topics(ctx, version, req):
    return {"Topics": [
        {"Name": t["Name"], "TopicId": TOPIC_ID, "ErrorCode": 0,
         "ErrorMessage": None, "NumPartitions": 1, "ReplicationFactor": 1,
         "Configs": []}
        for t in req["Topics"]]}


def resp_add_partitions_to_txn(ctx, version, req):
    return {"ResultsByTopicV3AndBelow": [
        {"Name": t["Name"], "ResultsByPartition": [
            {"PartitionIndex": i, "PartitionErrorCode": 0}
            for i in t["Partitions"]]}
        for t in req["V3AndBelowTopics"]]}


def resp_add_offsets_to_txn(ctx, version, req):
    return {"ErrorCode": 0}


def resp_end_txn(ctx, version, req):
    return {"ErrorCode": 0}


def resp_txn_offset_commit(ctx, version, req):
    return resp_offset_commit(ctx, version, req)


HANDLERS = {
    "ApiVersions": resp_api_versions, "Metadata": resp_metadata,
    "Produce": resp_produce, "Fetch": resp_fetch,
    "ListOffsets": resp_list_offsets, "FindCoordinator": resp_find_coordinator,
    "JoinGroup": resp_join_group, "SyncGroup": resp_sync_group,
    "Heartbeat": resp_heartbeat, "LeaveGroup": resp_leave_group,
    "OffsetFetch": resp_offset_fetch, "OffsetCommit": resp_offset_commit,
    "InitProducerId": resp_init_producer_id,
    "CreateTopics": resp_create_topics,
    "AddPartitionsToTxn": resp_add_partitions_to_txn,
    "AddOffsetsToTxn": resp_add_offsets_to_txn,
    "EndTxn": resp_end_txn, "TxnOffsetCommit": resp_txn_offset_commit,
}


# ---------------------------------------------------------------- server

def read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        ctx = self.server.ctx
        while True:
            head = read_exact(self.request, 4)
            if head is None:
                return
            size = struct.unpack(">i", head)[0]
            if size < 8 or size > MAX_FRAME_BYTES:
                log("bad frame size %d, closing" % size)
                return
            frame = read_exact(self.request, size)
            if frame is None:
                return
            out = self.answer(ctx, frame)
            if out is False:
                return
            if out:
                self.request.sendall(out)

    def answer(self, ctx, frame):
        api_key, version, corr = struct.unpack(">hhi", frame[:8])
        name = ks.api_names().get(api_key, "api%d" % api_key)
        try:
            header, req = ks.parse_request(frame)
        except (ks.DecodeError, KeyError) as e:
            if api_key == ks.API_VERSIONS_KEY:  # too new: answer at v0
                log("ApiVersions v%d unparsed (%s): UNSUPPORTED_VERSION"
                    % (version, e))
                return ks.encode_response(api_key, 0, corr, dict(
                    resp_api_versions(ctx, 0, {}),
                    ErrorCode=ERR_UNSUPPORTED_VERSION))
            log("cannot parse %s v%d: %s; closing" % (name, version, e))
            return False
        saved = ctx.capture.save(api_key, version, frame)
        log("%s v%d corr=%d client_id=%r saved=%s"
            % (name, version, corr, header.get("ClientId"), saved))
        handler = HANDLERS.get(name)
        if handler is None:
            log("no handler for %s; closing" % name)
            return False
        body = handler(ctx, version, req)
        if body is None:
            return b""
        return ks.encode_response(api_key, version, corr, body)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Context:
    def __init__(self, port, client, capture):
        self.port = port
        self.client = client
        self.capture = capture


def log(msg):
    sys.stderr.write("capture_broker: %s\n" % msg)
    sys.stderr.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--max-per-api", type=int, default=2)
    args = ap.parse_args()

    server = Server(("127.0.0.1", args.port), Handler)
    port = server.server_address[1]
    server.ctx = Context(port, args.client,
                         Capture(args.out, args.client, args.max_per_api))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    log("listening on 127.0.0.1:%d client=%s" % (port, args.client))

    deadline = threading.Timer(args.max_seconds, server.shutdown)
    deadline.daemon = True
    deadline.start()
    signal.signal(signal.SIGTERM,
                  lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    server.server_close()


if __name__ == "__main__":
    main()
