#!/usr/bin/python3
"""The admin CLI (sluice topics|configs|offsets) against a 2-shard broker, every effect
checked through an independent client: confluent-kafka's AdminClient, Producer and
Consumer (librdkafka).

- topics create (partitions, --config) is seen by AdminClient list_topics/describe_configs;
  a topic AdminClient creates is seen by `topics list --json` and `topics describe --json`.
- topics alter-config / configs alter (IncrementalAlterConfigs SET + DELETE) and
  configs describe agree with AdminClient describe_configs.
- topics add-partitions grows the topic as AdminClient sees it.
- offsets (earliest/latest, --time) equal librdkafka's get_watermark_offsets and
  offsets_for_times after a known produce with explicit timestamps.
- topics delete removes the topic for AdminClient.
- Errors: unreachable broker, unknown topic, duplicate create, bad arguments give clear
  messages on stderr and exit 1 (broker said no / unreachable) or 2 (command line).
"""
import json
import sys
import time

from harness import Broker, free_port, run

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

SLUICE = sys.argv[1]


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def cli(bootstrap, *args, expect_rc=0):
    rc, out, err = run([SLUICE] + list(args) + ["-b", bootstrap], timeout_s=30)
    if rc != expect_rc:
        raise AssertionError("sluice %s: rc %d (wanted %d)\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(args), rc, expect_rc, out, err))
    return out, err


def cli_json(bootstrap, *args, expect_rc=0):
    out, _ = cli(bootstrap, *(list(args) + ["--json"]), expect_rc=expect_rc)
    return json.loads(out)


def topic_configs(admin, topic):
    fs = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    return list(fs.values())[0].result()


def partitions_of(admin, topic):
    md = admin.list_topics(timeout=10)
    t = md.topics.get(topic)
    return None if t is None or t.error is not None else len(t.partitions)


def topic_checks(b, admin):
    rows = cli_json(b, "topics", "create", "cli-a", "--partitions", "3",
                    "--config", "retention.ms=3600000")
    check(rows == [{"topic": "cli-a", "result": "OK", "message": ""}],
          "topics create cli-a: one OK row")
    check(partitions_of(admin, "cli-a") == 3, "AdminClient sees cli-a with 3 partitions")
    check(topic_configs(admin, "cli-a")["retention.ms"].value == "3600000",
          "AdminClient sees retention.ms=3600000 set at create")

    admin.create_topics([NewTopic("adm-b", 2, 1)])["adm-b"].result()
    listed = {r["topic"]: r for r in cli_json(b, "topics", "list")}
    check(listed.get("adm-b", {}).get("partitions") == 2 and
          listed.get("cli-a", {}).get("partitions") == 3 and
          listed["cli-a"]["replication_factor"] == 1,
          "topics list --json: adm-b (AdminClient) 2 partitions, cli-a 3, RF 1")
    rows = cli_json(b, "topics", "describe", "adm-b")
    md = admin.list_topics(timeout=10).topics["adm-b"]
    check(sorted(r["partition"] for r in rows) == sorted(md.partitions) and
          all(r["leader"] == md.partitions[r["partition"]].leader for r in rows),
          "topics describe adm-b: partitions and leaders as AdminClient reports them")
    out, _ = cli(b, "topics", "describe", "cli-a")
    lines = out.splitlines()
    check(lines[0].split() == ["TOPIC", "TOPIC-ID", "PARTITION", "LEADER", "REPLICAS", "ISR"]
          and len(lines) == 4, "topics describe: aligned table, header + 3 rows")

    out, err = cli(b, "topics", "create", "cli-a", "--partitions", "1", expect_rc=1)
    check("TOPIC_ALREADY_EXISTS" in out, "create an existing topic: TOPIC_ALREADY_EXISTS, rc 1")
    cli(b, "topics", "create", "cli-a", "--partitions", "1", "--if-not-exists")
    check(True, "create --if-not-exists on an existing topic: rc 0")

    cli(b, "topics", "add-partitions", "cli-a", "--partitions", "5")
    check(partitions_of(admin, "cli-a") == 5, "topics add-partitions 3 -> 5 seen by AdminClient")
    out, _ = cli(b, "topics", "add-partitions", "cli-a", "--partitions", "2", expect_rc=1)
    check("INVALID_PARTITIONS" in out, "add-partitions 5 -> 2: INVALID_PARTITIONS, rc 1")


def config_checks(b, admin):
    cli(b, "topics", "alter-config", "cli-a", "--set", "segment.ms=600000",
        "--delete", "retention.ms")
    entries = topic_configs(admin, "cli-a")
    check(entries["segment.ms"].value == "600000" and entries["retention.ms"].is_default,
          "topics alter-config: segment.ms set, retention.ms back to default (AdminClient)")
    rows = cli_json(b, "configs", "describe", "--topic", "cli-a")
    check([(r["name"], r["value"], r["source"]) for r in rows] ==
          [("segment.ms", "600000", "DYNAMIC_TOPIC_CONFIG")],
          "configs describe: only the override, as kafka-configs --describe")
    rows = cli_json(b, "configs", "describe", "--topic", "cli-a", "--all")
    mine = {r["name"]: r["value"] for r in rows}
    theirs = {k: e.value for k, e in entries.items()}
    check(mine == theirs and len(mine) >= 10,
          "configs describe --all: the same %d keys and values as AdminClient" % len(mine))
    cli(b, "configs", "alter", "--topic", "cli-a", "--set", "retention.bytes=1048576")
    check(topic_configs(admin, "cli-a")["retention.bytes"].value == "1048576",
          "configs alter --set retention.bytes seen by AdminClient")
    out, _ = cli(b, "configs", "alter", "--topic", "cli-a", "--set", "no.such.key=1",
                 expect_rc=1)
    check("INVALID_CONFIG" in out, "configs alter unknown key: INVALID_CONFIG, rc 1")
    rows = cli_json(b, "configs", "describe", "--broker", "1", "--all")
    check(any(r["name"] == "num.partitions" for r in rows),
          "configs describe --broker 1 --all lists num.partitions")


def offset_checks(b, admin):
    p = Producer({"bootstrap.servers": b, "acks": "all"})
    base_ms = 1_700_000_000_000
    for i in range(5):  # one batch each: the time lookup is then exact at any granularity
        p.produce("cli-a", value=b"v%d" % i, partition=1, timestamp=base_ms + i * 1000)
        p.flush(20)
    rows = {r["partition"]: r for r in cli_json(b, "offsets", "cli-a")}
    c = Consumer({"bootstrap.servers": b, "group.id": "cli-offsets"})
    marks = {part: c.get_watermark_offsets(TopicPartition("cli-a", part), timeout=10)
             for part in range(5)}
    check(sorted(rows) == list(range(5)) and
          all((rows[q]["earliest_offset"], rows[q]["latest_offset"]) == marks[q] for q in rows)
          and marks[1] == (0, 5),
          "offsets cli-a: earliest/latest equal librdkafka's watermarks (partition 1: 0..5)")
    when = base_ms + 2500
    rows = cli_json(b, "offsets", "cli-a", "--time", str(when))
    got = {r["partition"]: r["offset"] for r in rows}
    theirs = c.offsets_for_times([TopicPartition("cli-a", 1, when)], timeout=10)[0].offset
    check(got[1] == 3 and theirs == 3 and got[0] is None,
          "offsets --time base+2.5s: partition 1 at 3, empty partition 0 none "
          "(librdkafka offsets_for_times: %d)"
          % theirs)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((base_ms + 1000) // 1000)) + ".000Z"
    rows = cli_json(b, "offsets", "cli-a", "--time", iso)
    check({r["partition"]: r["offset"] for r in rows}[1] == 1,
          "offsets --time %s: partition 1 at offset 1" % iso)
    c.close()


def delete_and_error_checks(b, admin):
    cli(b, "topics", "delete", "adm-b")
    deadline = time.time() + 10
    while partitions_of(admin, "adm-b") is not None and time.time() < deadline:
        time.sleep(0.2)
    check(partitions_of(admin, "adm-b") is None, "topics delete adm-b: gone for AdminClient")
    out, _ = cli(b, "topics", "delete", "adm-b", expect_rc=1)
    check("UNKNOWN_TOPIC_OR_PARTITION" in out, "delete an unknown topic: rc 1")
    cli(b, "topics", "delete", "adm-b", "--if-exists")
    _, err = cli(b, "topics", "describe", "nope", expect_rc=1)
    check("topic 'nope': UNKNOWN_TOPIC_OR_PARTITION" in err, "describe unknown topic: rc 1")
    _, err = cli(b, "offsets", "nope", expect_rc=1)
    check("UNKNOWN_TOPIC_OR_PARTITION" in err, "offsets unknown topic: rc 1")
    _, err = cli("127.0.0.1:%d" % free_port(), "topics", "list", expect_rc=1)
    check("cannot connect to broker" in err, "unreachable broker: rc 1 (%s)" % err.strip())
    for args in (["topics", "frobnicate"], ["topics", "create"],
                 ["topics", "create", "x", "--partitions", "zero"],
                 ["topics", "add-partitions", "cli-a"],
                 ["configs", "describe"], ["configs", "alter", "--topic", "cli-a"],
                 ["offsets", "--time", "yesterday"]):
        _, err = cli(b, *args, expect_rc=2)
        check(err.startswith("sluice "), "bad arguments %s: rc 2 with a message" % args)
    _, err = cli("no-port-here", "topics", "list", expect_rc=2)
    check("bad broker address" in err, "malformed --bootstrap-server: rc 2")


def main():
    with Broker(SLUICE, cores="2") as broker:
        b = broker.bootstrap
        admin = AdminClient({"bootstrap.servers": b})
        topic_checks(b, admin)
        config_checks(b, admin)
        offset_checks(b, admin)
        delete_and_error_checks(b, admin)
    print("admin_cli: all checks passed")


if __name__ == "__main__":
    main()
