#!/usr/bin/python3
"""Admin APIs against a 2-shard broker with real clients and the raw harness codec.

confluent-kafka (librdkafka 1.7) AdminClient: describe_configs on a topic (override,
defaults, key subset) and on the broker (STATIC_BROKER_CONFIG for a key set with --set,
DEFAULT_CONFIG otherwise), alter_configs (full replace), create_partitions (then a
produce to the new partition read back), bad input (unknown key, cleanup.policy=compact,
a partition decrease, a wrong broker id, an unknown topic). IncrementalAlterConfigs,
DeleteRecords (absent from confluent-kafka 1.7 and kafka-python 2.0.2),
OffsetForLeaderEpoch, DescribeLogDirs and DescribeCluster go through a raw KafkaConn; the low watermark
DeleteRecords sets is what librdkafka's watermark query (ListOffsets) and a consumer
from the beginning see. kafka-python KafkaAdminClient: create_topics + describe_configs. kafkajs 2.2.4
(js/admin_configs.js): describeConfigs, alterConfigs, createPartitions,
deleteTopicRecords and fetchTopicOffsets.
A restart keeps the altered configs, the added partitions and the low watermark.
"""
import sys
import time

import json
import os

from harness import JS_DIR, Broker, KafkaConn, node_available, npm_ci, run

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, ConfigResource, NewPartitions,
                                   NewTopic)

INVALID_CONFIG = 40
INVALID_PARTITIONS = 37
INVALID_REQUEST = 42
UNKNOWN_TOPIC = 3


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def error_code(future):
    try:
        future.result()
    except Exception as e:  # KafkaException carries a KafkaError
        err = e.args[0]
        return err.code(), err.str()
    return 0, ""


def topic_configs(admin, topic, keys=None):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    if keys:
        res.set_config = None
    fs = admin.describe_configs([res])
    return list(fs.values())[0].result()


def describe_checks(a):
    entries = topic_configs(a, "adm-a")
    check(entries["retention.ms"].value == "3600000" and
          entries["retention.ms"].source == 1,
          "describe_configs topic: override retention.ms=3600000, DYNAMIC_TOPIC_CONFIG")
    check(entries["segment.bytes"].value == "1073741824" and
          entries["segment.bytes"].is_default,
          "describe_configs topic: segment.bytes default 1073741824")
    check(len(entries) >= 20, "describe_configs topic: every key (%d)" % len(entries))
    fs = a.describe_configs([ConfigResource(ConfigResource.Type.BROKER, "1")])
    broker = list(fs.values())[0].result()
    check(broker["num.partitions"].value == "2" and broker["num.partitions"].source == 4,
          "describe_configs broker: num.partitions=2 STATIC_BROKER_CONFIG")
    dflt = [e for e in broker.values() if e.source == 5]
    check(len(dflt) > 0 and all(e.is_read_only for e in broker.values()),
          "describe_configs broker: %d keys DEFAULT_CONFIG, all read-only" % len(dflt))
    fs = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "adm-none")])
    code, msg = error_code(list(fs.values())[0])
    check(code == UNKNOWN_TOPIC, "describe_configs unknown topic: UNKNOWN_TOPIC_OR_PARTITION")


def alter_checks(a):
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm-a",
                         set_config={"segment.ms": "600000"})
    code, _ = error_code(list(a.alter_configs([res]).values())[0])
    entries = topic_configs(a, "adm-a")
    check(code == 0 and entries["segment.ms"].value == "600000" and
          entries["retention.ms"].is_default,
          "alter_configs: full replace (segment.ms set, retention.ms back to default)")
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm-a",
                         set_config={"retention.ms": "1000"})
    code, _ = error_code(list(a.alter_configs([res], validate_only=True).values())[0])
    entries = topic_configs(a, "adm-a")
    check(code == 0 and entries["retention.ms"].is_default and
          entries["segment.ms"].value == "600000",
          "alter_configs validate_only: nothing changes")
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm-a", set_config={"no.such.key": "1"})
    code, msg = error_code(list(a.alter_configs([res]).values())[0])
    check(code == INVALID_CONFIG, "alter_configs unknown key: INVALID_CONFIG (%s)" % msg)
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm-a",
                         set_config={"cleanup.policy": "compact"})
    code, msg = error_code(list(a.alter_configs([res]).values())[0])
    check(code == INVALID_CONFIG and "not supported yet" in msg,
          "alter_configs cleanup.policy=compact: INVALID_CONFIG (%s)" % msg)
    res = ConfigResource(ConfigResource.Type.BROKER, "1", set_config={"num.partitions": "3"})
    code, msg = error_code(list(a.alter_configs([res]).values())[0])
    check(code == INVALID_REQUEST and "not supported" in msg,
          "alter_configs broker: refused (%s)" % msg)


def incremental_checks(bootstrap):
    with KafkaConn(bootstrap) as c:
        body = {"Resources": [{"ResourceType": 2, "ResourceName": "adm-a", "Configs": [
            {"Name": "retention.ms", "ConfigOperation": 0, "Value": "7200000"},
            {"Name": "segment.ms", "ConfigOperation": 1, "Value": None}]}],
            "ValidateOnly": False}
        r = c.request("IncrementalAlterConfigs", 1, body)
        check(r["Responses"][0]["ErrorCode"] == 0, "IncrementalAlterConfigs v1: SET + DELETE")
        r = c.request("DescribeConfigs", 4, {"Resources": [
            {"ResourceType": 2, "ResourceName": "adm-a",
             "ConfigurationKeys": ["retention.ms", "segment.ms"]}],
            "IncludeSynonyms": True, "IncludeDocumentation": True})
        got = {e["Name"]: e for e in r["Results"][0]["Configs"]}
        check(set(got) == {"retention.ms", "segment.ms"},
              "DescribeConfigs v4: only the requested keys")
        ret = got["retention.ms"]
        check(ret["Value"] == "7200000" and ret["ConfigSource"] == 1 and
              ret["Synonyms"][0]["Source"] == 1 and ret["Synonyms"][-1]["Source"] == 5 and
              ret["Documentation"] and ret["ConfigType"] == 5,
              "DescribeConfigs v4: value, source, synonyms, documentation, LONG type")
        check(got["segment.ms"]["ConfigSource"] == 5, "segment.ms deleted: DEFAULT_CONFIG")
        body["Resources"][0]["Configs"] = [
            {"Name": "cleanup.policy", "ConfigOperation": 0, "Value": "compact"}]
        r = c.request("IncrementalAlterConfigs", 0, body)
        e = r["Responses"][0]
        check(e["ErrorCode"] == INVALID_CONFIG and "not supported yet" in e["ErrorMessage"],
              "IncrementalAlterConfigs compact: INVALID_CONFIG (%s)" % e["ErrorMessage"])
        body["Resources"][0]["Configs"] = [
            {"Name": "no.such.key", "ConfigOperation": 0, "Value": "1"}]
        e = c.request("IncrementalAlterConfigs", 1, body)["Responses"][0]
        check(e["ErrorCode"] == INVALID_CONFIG,
              "IncrementalAlterConfigs unknown key: INVALID_CONFIG (%s)" % e["ErrorMessage"])
        # librdkafka routes a broker resource to that broker: a wrong id only raw
        r = c.request("DescribeConfigs", 2, {"Resources": [
            {"ResourceType": 4, "ResourceName": "7", "ConfigurationKeys": None},
            {"ResourceType": 4, "ResourceName": "x", "ConfigurationKeys": None}],
            "IncludeSynonyms": False})
        check([e["ErrorCode"] for e in r["Results"]] == [INVALID_REQUEST] * 2,
              "DescribeConfigs broker 7 / 'x': INVALID_REQUEST (%s)"
              % r["Results"][0]["ErrorMessage"])
        port = int(bootstrap.rsplit(":", 1)[1])
        for v in (0, 1):
            r = c.request("DescribeCluster", v, {})
            check(r["ErrorCode"] == 0 and r["ControllerId"] == 1 and
                  [(b["BrokerId"], b["Port"]) for b in r["Brokers"]] == [(1, port)] and
                  r["ClusterId"],
                  "DescribeCluster v%d: node 1, cluster id %s, controller 1"
                  % (v, r["ClusterId"]))


def produce_to(bootstrap, topic, partition, value):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                  "topic.metadata.refresh.interval.ms": 500})
    done = []
    deadline = time.time() + 20
    while not done and time.time() < deadline:
        p.produce(topic, value=value, partition=partition,
                  on_delivery=lambda err, m: done.append((err, m.offset())))
        p.flush(10)
        if done and done[-1][0] is not None:
            done.clear()
            time.sleep(0.3)
    return done


def consume_partition(bootstrap, topic, partition):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "none",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, -2)])
    got, deadline = [], time.time() + 20
    while not got and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    return got


def partition_checks(a, bootstrap):
    fs = a.create_partitions([NewPartitions("adm-a", 5)], validate_only=True)
    code, _ = error_code(fs["adm-a"])
    check(code == 0 and len(a.list_topics(timeout=10).topics["adm-a"].partitions) == 2,
          "create_partitions validate_only: still 2 partitions")
    fs = a.create_partitions([NewPartitions("adm-a", 5)])
    code, _ = error_code(fs["adm-a"])
    check(code == 0 and len(a.list_topics(timeout=10).topics["adm-a"].partitions) == 5,
          "create_partitions: 2 -> 5")
    fs = a.create_partitions([NewPartitions("adm-a", 3)])
    code, msg = error_code(fs["adm-a"])
    check(code == INVALID_PARTITIONS, "create_partitions 5 -> 3: INVALID_PARTITIONS (%s)" % msg)
    fs = a.create_partitions([NewPartitions("adm-a", 6, [[0], [0], [0], [0], [0], [0]][:1])])
    code, msg = error_code(fs["adm-a"])
    check(code == 39, "create_partitions manual assignment: INVALID_REPLICA_ASSIGNMENT")
    done = produce_to(bootstrap, "adm-a", 4, b"on-new-partition")
    check(done and done[-1][0] is None, "produce to new partition 4")
    check(consume_partition(bootstrap, "adm-a", 4) == [b"on-new-partition"],
          "consume partition 4 back")


def delete_records(c, v, topic, partition, offset):
    r = c.request("DeleteRecords", v, {"Topics": [{"Name": topic, "Partitions": [
        {"PartitionIndex": partition, "Offset": offset}]}], "TimeoutMs": 1000})
    p = r["Topics"][0]["Partitions"][0]
    return p["ErrorCode"], p["LowWatermark"]


def leader_epoch(c, v, topic, partition, epoch, current=-1):
    r = c.request("OffsetForLeaderEpoch", v, {"ReplicaId": -1, "Topics": [
        {"Topic": topic, "Partitions": [{"Partition": partition,
                                         "CurrentLeaderEpoch": current,
                                         "LeaderEpoch": epoch}]}]})
    p = r["Topics"][0]["Partitions"][0]
    return p["ErrorCode"], p.get("LeaderEpoch", -1), p["EndOffset"]


def watermarks(bootstrap, topic, partition):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "none"})
    lo_hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    c.close()
    return lo_hi


def records_checks(bootstrap):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False})
    for i in range(10):
        p.produce("adm-a", value=b"r%d" % i, partition=0)
    check(p.flush(20) == 0, "10 records produced to adm-a/0")
    with KafkaConn(bootstrap) as c:
        check(delete_records(c, 2, "adm-a", 0, 4) == (0, 4), "DeleteRecords v2 offset 4: low watermark 4")
        check(watermarks(bootstrap, "adm-a", 0) == (4, 10),
              "list_offsets (get_watermark_offsets) after DeleteRecords: (4, 10)")
        check(delete_records(c, 1, "adm-a", 0, 2) == (0, 4), "DeleteRecords below start: stays 4")
        check(delete_records(c, 1, "adm-a", 0, 11)[0] == 1,
              "DeleteRecords beyond HW: OFFSET_OUT_OF_RANGE")
        check(delete_records(c, 0, "adm-a", 0, -1) == (0, 10), "DeleteRecords -1: up to HW 10")
        check(delete_records(c, 0, "adm-none", 0, 1)[0] == UNKNOWN_TOPIC,
              "DeleteRecords unknown topic: UNKNOWN_TOPIC_OR_PARTITION")
        check(leader_epoch(c, 4, "adm-a", 0, 0) == (0, 0, 10),
              "OffsetForLeaderEpoch epoch 0: end offset 10 (log end)")
        check(leader_epoch(c, 4, "adm-a", 0, 3) == (0, -1, -1),
              "OffsetForLeaderEpoch epoch 3: unknown epoch (-1, -1), as Kafka's epoch cache")
        check(leader_epoch(c, 3, "adm-a", 0, 0, current=2)[0] == 75,
              "OffsetForLeaderEpoch current epoch 2: UNKNOWN_LEADER_EPOCH")
        check(leader_epoch(c, 0, "adm-a", 9, 0)[0] == UNKNOWN_TOPIC,
              "OffsetForLeaderEpoch unknown partition: UNKNOWN_TOPIC_OR_PARTITION")
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False})
    p.produce("adm-a", value=b"after-delete", partition=0)
    p.flush(20)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "none",
                  "enable.auto.commit": False})
    c.assign([TopicPartition("adm-a", 0, -2)])
    got, deadline = [], time.time() + 20
    while not got and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append((m.offset(), m.value()))
    c.close()
    check(got == [(10, b"after-delete")], "consume from the beginning starts at the low watermark")


def log_dirs_checks(bootstrap, data_dir):
    with KafkaConn(bootstrap) as c:
        r = c.request("DescribeLogDirs", 4, {"Topics": None})
        check(r["ErrorCode"] == 0 and len(r["Results"]) == 1, "DescribeLogDirs v4: one log dir")
        d = r["Results"][0]
        sizes = {(t["Name"], p["PartitionIndex"]): p["PartitionSize"]
                 for t in d["Topics"] for p in t["Partitions"]}
        check(d["LogDir"] == data_dir and d["TotalBytes"] > 0 and
              0 < d["UsableBytes"] <= d["TotalBytes"],
              "DescribeLogDirs v4: data dir, total %d / usable %d bytes"
              % (d["TotalBytes"], d["UsableBytes"]))
        check(len([k for k in sizes if k[0] == "adm-a"]) == 5 and sizes[("adm-a", 0)] > 0 and
              ("adm-kp", 2) in sizes and
              all(p["OffsetLag"] == 0 for t in d["Topics"] for p in t["Partitions"]),
              "DescribeLogDirs all topics: adm-a 5 partitions (p0 %d bytes), adm-kp, lag 0"
              % sizes[("adm-a", 0)])
        r = c.request("DescribeLogDirs", 0, {"Topics": [
            {"Topic": "adm-a", "Partitions": [0, 4, 99]}, {"Topic": "adm-none", "Partitions": [0]}]})
        d = r["Results"][0]
        got = [(t["Name"], [p["PartitionIndex"] for p in t["Partitions"]]) for t in d["Topics"]]
        check(got == [("adm-a", [0, 4])],
              "DescribeLogDirs v0 subset: adm-a 0 and 4 (absent partition and topic left out)")


def kafka_python_checks(bootstrap):
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic
    from kafka.admin import ConfigResource as KRes, ConfigResourceType
    k = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    k.create_topics([KNewTopic("adm-kp", 3, 1, topic_configs={"max.message.bytes": "5000"})])
    resp = k.describe_configs([KRes(ConfigResourceType.TOPIC, "adm-kp")])
    entries = {e[0]: e[1] for e in resp[0].resources[0][4]}
    check(entries.get("max.message.bytes") == "5000",
          "kafka-python create_topics + describe_configs: max.message.bytes=5000")
    k.close()


def kafkajs_checks(bootstrap):
    """kafkajs 2.2.4: describeConfigs, alterConfigs, createPartitions, deleteTopicRecords."""
    if not node_available():
        print("skip kafkajs checks: node missing")
        return
    npm_ci()
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic("adm-js", 2, 1)]).values():
        f.result()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False})
    for i in range(6):
        p.produce("adm-js", value=b"js%d" % i, partition=0)
    check(p.flush(20) == 0, "6 records in adm-js/0 for kafkajs")
    rc, out, err = run(["node", os.path.join(JS_DIR, "admin_configs.js"), bootstrap, "adm-js"],
                       timeout_s=90)
    check(rc == 0, "kafkajs admin_configs.js exits 0\n" + out + err)
    d = json.loads(out)
    check(d["before"]["value"] == "604800000" and d["before"]["isDefault"],
          "kafkajs describeConfigs: retention.ms default 604800000")
    check(d["after"]["value"] == "123456789" and d["after"]["source"] == 1,
          "kafkajs alterConfigs then describeConfigs: retention.ms=123456789 (topic config)")
    check(d["broker"]["num.partitions"]["value"] == "2" and
          d["broker"]["num.partitions"]["source"] == 4 and len(d["broker"]) == 2,
          "kafkajs describeConfigs broker 1: the two requested keys")
    check(d["partitions"] == 4, "kafkajs createPartitions: 2 -> 4")
    lows = {o["p"]: (o["low"], o["high"]) for o in d["offsets"]}
    check(lows[0] == ("3", "6") and len(lows) == 4,
          "kafkajs deleteTopicRecords to 3, fetchTopicOffsets: low 3 high 6 (%s)" % lows)


def main(sluice):
    with Broker(sluice, cores="2", config={"num.partitions": "2"}) as b:
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        for f in a.create_topics([NewTopic("adm-a", -1, -1,
                                           config={"retention.ms": "3600000"})]).values():
            f.result()
        describe_checks(a)
        alter_checks(a)
        incremental_checks(b.bootstrap)
        partition_checks(a, b.bootstrap)
        kafka_python_checks(b.bootstrap)
        records_checks(b.bootstrap)
        log_dirs_checks(b.bootstrap, b.data_dir)
        kafkajs_checks(b.bootstrap)
        b.restart()
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        entries = topic_configs(a, "adm-a")
        check(entries["retention.ms"].value == "7200000",
              "restart keeps altered config retention.ms=7200000")
        check(len(a.list_topics(timeout=10).topics["adm-a"].partitions) == 5,
              "restart keeps 5 partitions")
        check(consume_partition(b.bootstrap, "adm-a", 4) == [b"on-new-partition"],
              "restart: partition 4 still holds its record")
        check(watermarks(b.bootstrap, "adm-a", 0) == (10, 11),
              "restart keeps the low watermark DeleteRecords set: (10, 11)")
    print("all admin checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
