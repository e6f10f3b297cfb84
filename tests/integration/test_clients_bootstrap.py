#!/usr/bin/python3
"""Real clients bootstrap against sluice: ApiVersions + Metadata.

kcat -L (librdkafka), kafka-python KafkaAdminClient.describe_cluster and
KafkaConsumer.topics(), confluent-kafka AdminClient.list_topics, kafkajs
admin.connect() + describeCluster(). Then protocol checks with the harness's
independent codec: ApiVersions at every version advertises exactly the implemented APIs
and Metadata; an unsupported ApiVersions version gets the v0-format answer with
UNSUPPORTED_VERSION (35); Metadata at every advertised version names this
broker, the cluster id and the controller, and answers a named topic with
UNKNOWN_TOPIC_OR_PARTITION (3).
"""
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Broker, KafkaConn, JS_DIR, kcat, node_available, npm_ci,  # noqa: E402
                     run)
import kafka_schema  # noqa: E402

PY = "/usr/bin/python3"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what.splitlines()[0])


def python_clients(bootstrap, port):
    script = r'''
import json, sys
from kafka import KafkaAdminClient, KafkaConsumer
import confluent_kafka.admin as ca
bs = sys.argv[1]
a = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
d = a.describe_cluster()
a.close()
c = KafkaConsumer(bootstrap_servers=bs, request_timeout_ms=10000)
topics = sorted(c.topics())
c.close()
md = ca.AdminClient({"bootstrap.servers": bs}).list_topics(timeout=10)
print(json.dumps({"kafka_python": d, "consumer_topics": topics,
                  "confluent": {"brokers": {str(k): [v.host, v.port] for k, v in md.brokers.items()},
                                "cluster_id": md.cluster_id, "controller_id": md.controller_id}}))
'''
    rc, out, err = run([PY, "-c", script, bootstrap], timeout_s=60)
    check(rc == 0, "python clients ran\n" + out + err)
    res = json.loads(out.strip().splitlines()[-1])
    kp = res["kafka_python"]
    check(kp["brokers"] == [{"node_id": 1, "host": "127.0.0.1", "port": port, "rack": None}]
          and kp["controller_id"] == 1 and kp["cluster_id"] == "sluice-it-cluster",
          "kafka-python KafkaAdminClient.describe_cluster: %s" % kp)
    check(res["consumer_topics"] == [], "kafka-python KafkaConsumer bootstraps (no topics)")
    cf = res["confluent"]
    check(cf["brokers"] == {"1": ["127.0.0.1", port]} and cf["controller_id"] == 1
          and cf["cluster_id"] == "sluice-it-cluster",
          "confluent-kafka list_topics: %s" % cf)


def protocol_checks(bootstrap, port):
    with KafkaConn(bootstrap) as c:
        for v in range(0, 5):
            body = c.request("ApiVersions", v, {"ClientSoftwareName": "it",
                                                "ClientSoftwareVersion": "1"})
            keys = {k["ApiKey"]: (k["MinVersion"], k["MaxVersion"]) for k in body["ApiKeys"]}
            check(body["ErrorCode"] == 0 and keys == ADVERTISED,
                  "ApiVersions v%d advertises exactly the implemented APIs: %s" % (v, keys))
        meta_max = keys[3][1]
        for v in range(0, meta_max + 1):
            body = c.request("Metadata", v, {"Topics": [{"Name": "nosuch"}]})
            b = body["Brokers"]
            check(len(b) == 1 and b[0]["NodeId"] == 1 and b[0]["Host"] == "127.0.0.1"
                  and b[0]["Port"] == port, "Metadata v%d broker list" % v)
            if v >= 2:
                check(body["ClusterId"] == "sluice-it-cluster", "Metadata v%d cluster id" % v)
            if v >= 1:
                check(body["ControllerId"] == 1, "Metadata v%d controller" % v)
            t = body["Topics"]
            check(len(t) == 1 and t[0]["ErrorCode"] == 3 and t[0]["Name"] == "nosuch",
                  "Metadata v%d: unknown topic answered UNKNOWN_TOPIC_OR_PARTITION" % v)
        body = c.request("Metadata", meta_max, {"Topics": None})
        check(body["Topics"] == [], "Metadata all-topics: empty list")
        # A ~200 KB request and response: the request spans several receive buffers (the
        # stash path), the response is larger than an output chunk (a heap block, sent
        # with SENDMSG_ZC, 64 KiB threshold). Pipelined twice with a small one between.
        names = ["topic-%05d-%s" % (i, "x" * 40) for i in range(3000)]
        big = {"Topics": [{"Name": n} for n in names]}
        ids = [c.send_request("Metadata", 9, big), c.send_request("ApiVersions", 3),
               c.send_request("Metadata", meta_max, big)]
        b1 = c.recv_response("Metadata", 9, ids[0])
        c.recv_response("ApiVersions", 3, ids[1])
        b2 = c.recv_response("Metadata", meta_max, ids[2])
        for v, body in ((9, b1), (meta_max, b2)):
            t = body["Topics"]
            check(len(t) == 3000 and [x["Name"] for x in t] == names and
                  all(x["ErrorCode"] == 3 for x in t),
                  "Metadata v%d with 3000 topics (~200 KB each way), in order" % v)
    # An ApiVersions version the broker does not know: v0-format fallback, error 35.
    with KafkaConn(bootstrap) as c:
        # Patch the version field of a v4 request to 99 (same wire layout, unknown version).
        req = bytearray(kafka_schema.encode_request(18, 4, 78, "it", {}))
        struct.pack_into(">h", req, 6, 99)
        c.send_raw(bytes(req))
        frame = c.recv_frame()
        corr, body = kafka_schema.parse_response(18, 0, frame)
        keys = sorted(k["ApiKey"] for k in body["ApiKeys"])
        check(corr == 78 and body["ErrorCode"] == 35 and keys == sorted(ADVERTISED),
              "ApiVersions v99 -> v0 answer with UNSUPPORTED_VERSION and the ranges: %s" % body)
        # The connection stays usable: the client retries at a version both know.
        body = c.request("ApiVersions", 0)
        check(body["ErrorCode"] == 0, "connection usable after the fallback answer")


# What the broker implements: Produce, Fetch (from v4: no down-conversion), ListOffsets,
# Metadata, ApiVersions, CreateTopics, DeleteTopics.
ADVERTISED = {0: (0, 9), 1: (4, 13), 2: (0, 7), 3: (0, 12), 18: (0, 4), 19: (0, 7), 20: (0, 6),
              21: (0, 2), 22: (0, 5), 23: (0, 4), 32: (0, 4), 33: (0, 2), 35: (0, 4),
              37: (0, 3),
              8: (0, 9), 9: (0, 9), 10: (0, 6), 11: (0, 9), 12: (0, 4), 13: (0, 5),
              14: (0, 5), 15: (0, 5), 16: (0, 5), 42: (0, 2), 47: (0, 0),  # groups
              44: (0, 1), 60: (0, 1),
              24: (0, 3), 25: (0, 3), 26: (0, 3), 28: (0, 3), 65: (0, 0), 66: (0, 1),  # txn
              61: (0, 0)}  # DescribeProducers


def main():
    sluice = sys.argv[1]
    # Auto-creation off: the checks below expect unknown topics to stay unknown.
    with Broker(sluice, config={"sluice.cluster.id": "sluice-it-cluster",
                                "auto.create.topics.enable": "false",
                                # zero copy to local clients too, so SENDMSG_ZC is exercised
                                "sluice.net.zc.local.peers": "true"}) as b:
        rc, out, err = kcat(b.bootstrap, "-L", timeout_s=30)
        check(rc == 0 and "1 brokers:" in out and
              "broker 1 at 127.0.0.1:%d (controller)" % b.port in out and "0 topics" in out,
              "kcat -L\n" + out + err)
        rc, out, err = kcat(b.bootstrap, "-L", "-t", "nosuch", timeout_s=30)
        check(rc == 0 and "Unknown topic or partition" in out, "kcat -L -t nosuch\n" + out + err)
        python_clients(b.bootstrap, b.port)
        if node_available():
            npm_ci(JS_DIR)
            rc, out, err = run(["node", os.path.join(JS_DIR, "describe_cluster.js"),
                                b.bootstrap], timeout_s=60)
            check(rc == 0, "kafkajs admin.connect + describeCluster\n" + out + err)
            d = json.loads(out)
            check(d["brokers"] == [{"nodeId": 1, "host": "127.0.0.1", "port": b.port}] and
                  d["controller"] == 1 and d["clusterId"] == "sluice-it-cluster",
                  "kafkajs describeCluster: %s" % d)
        else:
            print("skip kafkajs: node/npm not available")
        protocol_checks(b.bootstrap, b.port)
        check(b.running(), "broker still running")
        check(b.stop() == 0, "SIGTERM exits 0")
        zc = sum(int(x.split("=")[1]) for x in b.stderr_tail(65536).split()
                 if x.startswith("sends_zc="))
        check(zc >= 2, "the large responses went out with SENDMSG_ZC (sends_zc=%d)" % zc)


if __name__ == "__main__":
    main()
