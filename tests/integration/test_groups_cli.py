#!/usr/bin/python3
"""`sluice groups` against a broker with consumer groups, checked through confluent-kafka
(librdkafka) consumers.

- describe shows the lag a known consumer left: a consumer of group g-lag (client.id
  lag-client) commits p0=6 of 10 and p1=1 of 4; while it is subscribed, describe shows
  CURRENT-OFFSET, LOG-END-OFFSET, LAG 4 and 3, and as CONSUMER-ID / HOST / CLIENT-ID
  exactly the member DescribeGroups reports (decoded by the harness's own codec); after it
  leaves the owner columns are '-' and the lag stays.
- reset-offsets is a dry run by default (the committed offsets do not move), is refused
  with --execute while the group has a member, and with --execute on the empty group moves
  it: --to-offset 2, then a new consumer of the group resumes at offset 2 on both
  partitions; --shift-by -1, --to-latest and --to-datetime land where librdkafka's
  committed() then reads them.
- list shows the group and its state; delete removes it (describe then exits 1).
- bad arguments exit 2.
"""
import json
import sys
import time

from harness import Broker, KafkaConn, run

from confluent_kafka import Consumer, Producer, TopicPartition

SLUICE = sys.argv[1]
TOPIC = "gc"


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


def rows_of(bootstrap, *args):
    out, _ = cli(bootstrap, *(list(args) + ["--json"]))
    return {(r["topic"], r["partition"]): r for r in json.loads(out)}


def consumer(bootstrap, client_id="lag-client"):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "g-lag",
                     "client.id": client_id, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "session.timeout.ms": 10000})


def committed(bootstrap):
    c = consumer(bootstrap, "peek")
    got = c.committed([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)], timeout=10)
    c.close()
    return [tp.offset for tp in got]


def wait_assignment(c, n, timeout_s=30):
    deadline = time.time() + timeout_s
    while len(c.assignment()) < n and time.time() < deadline:
        c.poll(0.2)
    return len(c.assignment()) == n


def first_offsets(c, timeout_s=30):
    """First offset the consumer gets on each partition."""
    first, deadline = {}, time.time() + timeout_s
    while len(first) < 2 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error() and m.partition() not in first:
            first[m.partition()] = m.offset()
    return first


def lag_checks(b):
    p = Producer({"bootstrap.servers": b})
    for i in range(10):
        p.produce(TOPIC, value=b"a%d" % i, partition=0)
    for i in range(4):
        p.produce(TOPIC, value=b"b%d" % i, partition=1)
    p.flush(20)
    c = consumer(b)
    c.subscribe([TOPIC])
    check(wait_assignment(c, 2), "consumer of g-lag owns both partitions")
    c.commit(offsets=[TopicPartition(TOPIC, 0, 6), TopicPartition(TOPIC, 1, 1)],
             asynchronous=False)
    rows = rows_of(b, "groups", "describe", "g-lag")
    r0, r1 = rows[(TOPIC, 0)], rows[(TOPIC, 1)]
    check((r0["current_offset"], r0["log_end_offset"], r0["lag"]) == (6, 10, 4) and
          (r1["current_offset"], r1["log_end_offset"], r1["lag"]) == (1, 4, 3),
          "describe: p0 6/10 lag 4, p1 1/4 lag 3")
    with KafkaConn(b) as k:  # the coordinator's own answer, decoded independently
        g = k.request("DescribeGroups", 5, {"Groups": ["g-lag"],
                                            "IncludeAuthorizedOperations": False})["Groups"][0]
    member = g["Members"][0] if len(g["Members"]) == 1 else {}
    check(r0["consumer_id"] not in ("", "-") and r0["consumer_id"] == r1["consumer_id"] and
          (r0["consumer_id"], r0["host"], r0["client_id"]) ==
          (member.get("MemberId"), member.get("ClientHost"), member.get("ClientId")),
          "describe: owner columns are DescribeGroups' member (%s, host '%s', client '%s')"
          % (r0["consumer_id"], r0["host"], r0["client_id"]))
    out, _ = cli(b, "groups", "describe", "g-lag")
    check(out.splitlines()[0].split() == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET",
                                          "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST",
                                          "CLIENT-ID"], "describe: kafka-consumer-groups columns")
    _, err = cli(b, "groups", "reset-offsets", "g-lag", "--topic", TOPIC, "--to-earliest",
                 "--execute", expect_rc=1)
    check("Stable" in err or "members" in err, "reset --execute refused while a member is in "
          "the group (%s)" % err.strip())
    check(committed(b) == [6, 1], "refused reset left the committed offsets at 6, 1")
    c.close()
    rows = rows_of(b, "groups", "describe", "g-lag")
    check(rows[(TOPIC, 0)]["consumer_id"] == "-" and rows[(TOPIC, 0)]["lag"] == 4 and
          rows[(TOPIC, 1)]["lag"] == 3, "after the consumer left: no owner, lag 4 and 3")


def reset_checks(b):
    listed = {r["group"]: r for r in json.loads(cli(b, "groups", "list", "--json")[0])}
    check(listed.get("g-lag", {}).get("state") == "Empty", "list: g-lag Empty")
    rows = rows_of(b, "groups", "reset-offsets", "g-lag", "--topic", TOPIC, "--to-earliest")
    check(rows[(TOPIC, 0)]["new_offset"] == 0 and committed(b) == [6, 1],
          "reset dry run (default): plan shows 0, committed stays 6, 1")
    rows = rows_of(b, "groups", "reset-offsets", "g-lag", "--topic", TOPIC, "--to-offset", "2",
                   "--execute")
    check(rows[(TOPIC, 0)]["new_offset"] == 2 and rows[(TOPIC, 1)]["new_offset"] == 2 and
          committed(b) == [2, 2], "reset --to-offset 2 --execute: committed 2, 2")
    c = consumer(b, "resumer")
    c.subscribe([TOPIC])
    first = first_offsets(c)
    c.close()
    check(first == {0: 2, 1: 2}, "a new consumer of g-lag resumes at offset 2 on both (%s)" % first)
    cli(b, "groups", "reset-offsets", "g-lag", "--topic", TOPIC, "--to-offset", "5", "--execute")
    cli(b, "groups", "reset-offsets", "g-lag", "--all-topics", "--shift-by", "-1", "--execute")
    check(committed(b) == [4, 3], "--to-offset 5 (p1 clamped to 4) then --shift-by -1: 4, 3")
    cli(b, "groups", "reset-offsets", "g-lag", "--topic", TOPIC, "--to-latest", "--execute")
    check(committed(b) == [10, 4], "--to-latest: 10, 4")
    cli(b, "groups", "reset-offsets", "g-lag", "--topic", TOPIC, "--to-datetime",
        "2000-01-01T00:00:00Z", "--execute")
    check(committed(b) == [0, 0], "--to-datetime 2000-01-01: 0, 0 (every record is newer)")


def delete_and_error_checks(b):
    out, _ = cli(b, "groups", "delete", "g-lag")
    check("OK" in out, "delete g-lag")
    listed = {r["group"] for r in json.loads(cli(b, "groups", "list", "--json")[0])}
    check("g-lag" not in listed, "list after delete: g-lag gone")
    _, err = cli(b, "groups", "describe", "g-lag", expect_rc=1)
    check("does not exist" in err, "describe a deleted group: rc 1 (%s)" % err.strip())
    for args in (["groups", "reset-offsets", "g", "--topic", TOPIC],
                 ["groups", "reset-offsets", "g", "--to-earliest"],
                 ["groups", "reset-offsets", "g", "--topic", TOPIC, "--all-topics",
                  "--to-latest"],
                 ["groups", "reset-offsets", "g", "--to-offset", "-3", "--topic", TOPIC],
                 ["groups", "describe"], ["groups", "bogus"]):
        _, err = cli(b, *args, expect_rc=2)
        check(err.startswith("sluice groups:"), "bad arguments %s: rc 2" % args[1:])


def main():
    config = {"group.initial.rebalance.delay.ms": "0", "sluice.metrics.listen": ""}
    with Broker(SLUICE, cores="2", config=config) as broker:
        b = broker.bootstrap
        cli(b, "topics", "create", TOPIC, "--partitions", "2")
        lag_checks(b)
        reset_checks(b)
        delete_and_error_checks(b)
    print("groups_cli: all checks passed")


if __name__ == "__main__":
    main()
