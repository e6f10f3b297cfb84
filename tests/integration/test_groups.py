#!/usr/bin/python3
"""Consumer groups with real clients against a 2-shard broker.

- confluent-kafka: 3 consumer processes in one group on a 6-partition topic, a 4th joins,
  one is killed with SIGKILL; after its session timeout its partitions move. Every
  produced message is consumed; duplicates are counted and must come only from the
  killed consumer's partitions (its uncommitted window); the group's committed offsets
  end at each partition's high watermark. Run with the range assignor and again with
  cooperative-sticky.
- Broker restart: committed offsets survive, a consumer resumes where the group left off;
  a deleted topic's offsets and expired offsets (offsets.retention.minutes=1) stay gone.
- Static membership: a consumer with group.instance.id closed and restarted within the
  session timeout gets the same partitions, and the other member sees no revocation.
- kafka-python group consumer with commits; kafkajs eachMessage consumer committing each
  offset; kcat -G balanced consumer.
- Bad input over raw requests: SyncGroup from an unknown member (25), wrong generation
  (22), heartbeat after leave (25), commit for an unknown partition (3), a transaction
  coordinator lookup (15), DescribeGroups / ListGroups with a state filter /
  DeleteGroups / OffsetDelete.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from harness import JS_DIR, Broker, KafkaConn, kcat_path, node_available, npm_ci, run, \
    wait_for

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what, flush=True)


def create(bootstrap, name, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result()


def produce(bootstrap, topic, count, prefix):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(count):
        p.produce(topic, key=b"%d" % i, value=b"%s-%d" % (prefix.encode(), i))
        if i % 1000 == 0:
            p.poll(0)
    check(p.flush(30) == 0, "%d messages produced to %s" % (count, topic))


def high_watermarks(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw-probe"})
    hw = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
          for p in range(partitions)]
    c.close()
    return hw


def committed(bootstrap, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    c.close()
    return [tp.offset for tp in got]


# A consumer process: prints "C <partition> <offset> <value> <time>" per message before its
# commit, "F <partition> <offset>" when the group refused that commit (a rebalance had
# begun: the partition may move and be read again), "A <partitions>" / "R <partitions>"
# on each assignment / revocation (incremental ones with cooperative-sticky), and
# "S <partitions>" whenever the whole assignment it holds changes.
CONSUMER = r'''
import sys, time
from confluent_kafka import Consumer
bootstrap, group, topic, strategy, name = sys.argv[1:6]
def on_assign(c, parts):
    print("A " + ",".join(str(p.partition) for p in parts), flush=True)
def on_revoke(c, parts):
    print("R " + ",".join(str(p.partition) for p in parts), flush=True)
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
              "auto.offset.reset": "earliest", "enable.auto.commit": False,
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
              "partition.assignment.strategy": strategy, "client.id": name})
c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
held = None
while True:
    now = sorted(p.partition for p in c.assignment())
    if now != held:
        held = now
        print("S " + ",".join(str(p) for p in now), flush=True)
    m = c.poll(0.2)
    if m is None or m.error():
        continue
    print("C %d %d %s %.6f" % (m.partition(), m.offset(), m.value().decode(), time.time()),
          flush=True)
    while True:
        try:
            c.commit(message=m, asynchronous=False)
            break
        except Exception as e:
            print("E %s" % e, flush=True)
            if "REBALANCE" in str(e) or "ILLEGAL_GENERATION" in str(e) or "UNKNOWN_MEMBER" in str(e):
                print("F %d %d" % (m.partition(), m.offset()), flush=True)  # not committed
                break
            time.sleep(0.1)
    time.sleep(0.01)
'''


def start_consumer(script, bootstrap, group, topic, strategy, name, outdir):
    out = open(os.path.join(outdir, name + ".out"), "w")
    p = subprocess.Popen([sys.executable, script, bootstrap, group, topic, strategy, name],
                         stdout=out, stderr=subprocess.DEVNULL)
    return p, out


def read_lines(outdir, name):
    with open(os.path.join(outdir, name + ".out")) as f:
        return f.read().splitlines()


def consumed(outdir, names):
    seen = {}
    for n in names:
        for line in read_lines(outdir, n):
            if line.startswith("C "):
                _, part, off, value, ts = line.split(" ")
                seen.setdefault(value, []).append((float(ts), n, int(part), int(off)))
    return {v: [r[1:] for r in sorted(reads)] for v, reads in seen.items()}  # by time


def group_kill_test(bootstrap, strategy, total, tmp):
    topic = "orders-" + strategy.replace("-", "")
    group = "g-" + strategy
    create(bootstrap, topic, 6)
    produce(bootstrap, topic, total, topic)
    script = os.path.join(tmp, "consumer.py")
    with open(script, "w") as f:
        f.write(CONSUMER)
    outdir = tempfile.mkdtemp(dir=tmp)
    procs = {}
    try:
        for n in ("c1", "c2", "c3"):
            procs[n] = start_consumer(script, bootstrap, group, topic, strategy, n, outdir)
        time.sleep(4)
        procs["c4"] = start_consumer(script, bootstrap, group, topic, strategy, "c4", outdir)
        # kill once the four share the six partitions (a settled generation)
        deadline = time.time() + 30
        while time.time() < deadline:
            held = {}
            for n in procs:
                last = [l for l in read_lines(outdir, n) if l.startswith("S ")]
                held[n] = set(int(x) for x in last[-1][2:].split(",") if x) if last else set()
            if all(held.values()) and sum(len(h) for h in held.values()) == 6 and \
                    set().union(*held.values()) == set(range(6)):
                break
            time.sleep(0.2)
        check(all(held.values()), "%s: four consumers share the partitions %s" % (strategy, held))
        victim = "c2"
        procs[victim][0].kill()  # SIGKILL: no LeaveGroup, the session timeout must find it
        procs[victim][0].wait()
        killed_at = time.time()
        check(True, "%s: %s killed with SIGKILL" % (strategy, victim))
        deadline = time.time() + 90
        while time.time() < deadline:
            if len(consumed(outdir, procs.keys())) >= total:
                break
            time.sleep(0.5)
        seen = consumed(outdir, procs.keys())
        check(len(seen) == total, "%s: all %d messages consumed (%d distinct)"
              % (strategy, total, len(seen)))
        # the victim's partitions moved to survivors after the session timeout
        victim_parts = set()
        for line in read_lines(outdir, victim):
            if line.startswith("S "):
                victim_parts = set(int(x) for x in line[2:].split(",") if x)
        print("    killed consumer's assignment events: %s" % [l for l in read_lines(outdir, victim)
              if l[:2] in ("A ", "R ", "S ")], flush=True)
        check(victim_parts, "%s: the killed consumer held %s" % (strategy, sorted(victim_parts)))
        final = set()
        for _ in range(20):  # the last rebalance may still be settling
            final, held = set(), {}
            for n in ("c1", "c3", "c4"):
                last = [l for l in read_lines(outdir, n) if l.startswith("S ")][-1]
                held[n] = last[2:]
                final |= set(int(x) for x in last[2:].split(",") if x)
            if final == set(range(6)):
                break
            time.sleep(0.5)
        print("    survivors hold %s" % held, flush=True)
        check(final == set(range(6)), "%s: after the session timeout the survivors hold all "
              "6 partitions, the killed consumer's %s included" % (strategy, sorted(victim_parts)))
        refused = set()
        for n in procs:
            for line in read_lines(outdir, n):
                if line.startswith("F "):
                    _, part, off = line.split(" ")
                    refused.add((n, int(part), int(off)))
        dups = {v: w for v, w in seen.items() if len(w) > 1}
        after_kill = [v for v, w in dups.items() if w[0][0] == victim]
        at_rebalance = [v for v, w in dups.items() if w[0][0] != victim and w[0] in refused]
        unexplained = [v for v, w in dups.items() if v not in after_kill and v not in at_rebalance]
        print("    duplicates: %d read first by the killed consumer (uncommitted window), "
              "%d whose commit a rebalance refused, %d otherwise" %
              (len(after_kill), len(at_rebalance), len(unexplained)), flush=True)
        check(not unexplained, "%s: every duplicate is inside an at-least-once window %s"
              % (strategy, unexplained[:5]))
        # A consumer prints a message before committing it: give the last commits a moment.
        hw = high_watermarks(bootstrap, topic, 6)
        wait_for(lambda: committed(bootstrap, group, topic, 6) == hw, 15)
        cm = committed(bootstrap, group, topic, 6)
        check(cm == hw, "%s: committed offsets %s == high watermarks %s" % (strategy, cm, hw))
    finally:
        for p, out in procs.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            out.close()
    return topic, group


def fetch_all(bootstrap, group):
    with KafkaConn(bootstrap) as c:
        f = c.request("OffsetFetch", 8, {"Groups": [{"GroupId": group, "Topics": None}],
                                         "RequireStable": False})
    return [(t["Name"], p["PartitionIndex"], p["CommittedOffset"])
            for t in f["Groups"][0]["Topics"] for p in t["Partitions"]]


def restart_test(b, topic, group):
    create(b.bootstrap, "del-t", 1)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-del"})
    c.commit(offsets=[TopicPartition("del-t", 0, 7), TopicPartition(topic, 0, 1)],
             asynchronous=False)
    c.close()
    check(sorted(fetch_all(b.bootstrap, "g-del")) == [("del-t", 0, 7), (topic, 0, 1)],
          "two topics' offsets committed")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, "__consumer_offsets")
    cfg = admin.describe_configs([res])[res].result()
    check(cfg["retention.ms"].value == "-1" and cfg["retention.bytes"].value == "-1",
          "__consumer_offsets keeps every commit (no time/size retention until compaction)")
    admin.delete_topics(["del-t"])["del-t"].result()
    check(fetch_all(b.bootstrap, "g-del") == [(topic, 0, 1)],
          "deleting a topic drops its committed offsets")
    before = committed(b.bootstrap, group, topic, 6)
    produce(b.bootstrap, topic, 60, "after")
    b.restart()
    after = committed(b.bootstrap, group, topic, 6)
    check(before == after, "restart: committed offsets survive %s" % after)
    check(fetch_all(b.bootstrap, "g-del") == [(topic, 0, 1)],
          "restart: the deleted topic's offsets stay gone")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    values = []
    deadline = time.time() + 30
    while len(values) < 60 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            values.append(m.value())
    check(len(values) == 60 and all(v.startswith(b"after-") for v in values),
          "restart: the group resumes where it left off (%d new messages, none re-read)"
          % len(values))
    c.close()


def member_identity_test(bootstrap):
    """DescribeGroups names each member's client.id and host, as Kafka does ("/ip")."""
    create(bootstrap, "dg-t", 1)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "g-dg", "client.id": "dg-client",
                  "session.timeout.ms": 6000})
    c.subscribe(["dg-t"])
    deadline = time.time() + 20
    while not c.assignment() and time.time() < deadline:
        c.poll(0.2)
    groups = AdminClient({"bootstrap.servers": bootstrap}).list_groups("g-dg", timeout=10)
    members = groups[0].members if groups else []
    check(len(members) == 1 and members[0].client_id == "dg-client"
          and members[0].client_host == "/127.0.0.1",
          "DescribeGroups: the member's client id and host are the client's (%s)"
          % [(m.client_id, m.client_host) for m in members])
    c.close()


def static_membership_test(bootstrap, tmp):
    topic, group = "static-t", "g-static"
    create(bootstrap, topic, 4)
    events = {"s1": [], "s2": []}

    def make(name):
        def on_assign(c, parts):
            events[name].append(("A", sorted(p.partition for p in parts)))

        def on_revoke(c, parts):
            events[name].append(("R", sorted(p.partition for p in parts)))
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "group.instance.id": name, "session.timeout.ms": 10000,
                      "auto.offset.reset": "earliest"})
        c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        return c

    s1, s2 = make("s1"), make("s2")
    deadline = time.time() + 30
    while time.time() < deadline:
        s1.poll(0.1)
        s2.poll(0.1)
        a1 = [e for e in events["s1"] if e[0] == "A"]
        a2 = [e for e in events["s2"] if e[0] == "A"]
        if a1 and a2 and len(a1[-1][1]) + len(a2[-1][1]) == 4:
            break
    first = [e for e in events["s1"] if e[0] == "A"][-1][1]
    s2_events = len(events["s2"])
    check(len(first) > 0, "static: s1 assigned %s" % first)
    s1.close()  # a static member does not leave on close
    events["s1"].clear()
    s1 = make("s1")
    deadline = time.time() + 20
    while time.time() < deadline and not any(e[0] == "A" for e in events["s1"]):
        s1.poll(0.1)
        s2.poll(0.1)
    again = [e for e in events["s1"] if e[0] == "A"]
    check(again and again[-1][1] == first, "static: restarted s1 gets the same partitions %s"
          % (again[-1][1] if again else None))
    for _ in range(20):
        s2.poll(0.1)
    check(len(events["s2"]) == s2_events,
          "static: s2 saw no rebalance (%s)" % events["s2"][s2_events:])
    s1.close()
    s2.close()


def kafka_python_test(bootstrap):
    from kafka import KafkaConsumer
    topic, group = "kp-t", "g-kafka-python"
    create(bootstrap, topic, 3)
    produce(bootstrap, topic, 300, "kp")
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=15000)
    got = 0
    for m in c:
        got += 1
        if got % 50 == 0:
            c.commit()
        if got == 300:
            break
    c.commit()
    c.close()
    check(got == 300, "kafka-python: group consumer read 300 messages")
    check(committed(bootstrap, group, topic, 3) == high_watermarks(bootstrap, topic, 3),
          "kafka-python: its commits reached the high watermarks")


def kafkajs_test(bootstrap):
    if not node_available():
        print("skip kafkajs: node missing", flush=True)
        return
    npm_ci(JS_DIR)
    topic, group = "js-t", "g-kafkajs"
    create(bootstrap, topic, 3)
    produce(bootstrap, topic, 150, "js")
    rc, out, err = run(["node", os.path.join(JS_DIR, "group_consume.js"), bootstrap, topic,
                        group, "150"], timeout=60)
    check(rc == 0, "kafkajs: eachMessage group consumer finished (%s)" % err.strip()[-300:])
    res = json.loads(out)
    check(res["count"] == 150 and res["partitions"] == [0, 1, 2],
          "kafkajs: read 150 messages from partitions %s" % res["partitions"])
    check(committed(bootstrap, group, topic, 3) == high_watermarks(bootstrap, topic, 3),
          "kafkajs: its commits reached the high watermarks")


def kcat_test(bootstrap):
    topic, group = "kcat-t", "g-kcat"
    create(bootstrap, topic, 2)
    produce(bootstrap, topic, 100, "kc")
    rc, out, err = run([kcat_path(), "-b", bootstrap, "-G", group, "-o", "beginning",
                        "-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100",
                        "-e", "-q", "-f", "%s\n", topic], timeout=60)
    lines = [l for l in out.splitlines() if l]
    check(rc == 0 and len(lines) == 100, "kcat -G: balanced consumer read %d messages (rc %d)"
          % (len(lines), rc))
    cm = committed(bootstrap, group, topic, 2)
    check(cm == high_watermarks(bootstrap, topic, 2), "kcat -G: auto commits stored %s" % cm)


# ConsumerProtocolSubscription v0: topics ["raw-t"], null user data.
SUBSCRIPTION = b"\x00\x00" + b"\x00\x00\x00\x01" + b"\x00\x05raw-t" + b"\xff\xff\xff\xff"


def raw_errors_test(bootstrap):
    create(bootstrap, "raw-t", 2)
    with KafkaConn(bootstrap) as c:
        fc = c.request("FindCoordinator", 3, {"Key": "raw-g", "KeyType": 0})
        check(fc["ErrorCode"] == 0 and fc["Port"] > 0, "FindCoordinator: this broker")
        fc = c.request("FindCoordinator", 4, {"KeyType": 1, "CoordinatorKeys": ["tx"]})
        check(fc["Coordinators"][0]["ErrorCode"] == 0 and fc["Coordinators"][0]["Port"] > 0,
              "FindCoordinator: transaction key -> this broker (the transaction coordinator)")
        join = {"GroupId": "raw-g", "SessionTimeoutMs": 10000, "RebalanceTimeoutMs": 10000,
                "MemberId": "", "GroupInstanceId": None, "ProtocolType": "consumer",
                "Protocols": [{"Name": "range", "Metadata": SUBSCRIPTION}],
                "Reason": None}
        j = c.request("JoinGroup", 9, join)
        check(j["ErrorCode"] == 79 and j["MemberId"], "JoinGroup v9: MEMBER_ID_REQUIRED")
        join["MemberId"] = j["MemberId"]
        j = c.request("JoinGroup", 9, join)
        check(j["ErrorCode"] == 0 and j["GenerationId"] == 1 and len(j["Members"]) == 1,
              "JoinGroup v9: generation 1, leader sees itself")
        mid = j["MemberId"]
        sync = {"GroupId": "raw-g", "GenerationId": 1, "MemberId": "nobody",
                "GroupInstanceId": None, "ProtocolType": "consumer", "ProtocolName": "range",
                "Assignments": []}
        check(c.request("SyncGroup", 5, sync)["ErrorCode"] == 25, "SyncGroup unknown member -> 25")
        sync["MemberId"] = mid
        sync["GenerationId"] = 7
        check(c.request("SyncGroup", 5, sync)["ErrorCode"] == 22, "SyncGroup wrong generation -> 22")
        sync["GenerationId"] = 1
        sync["Assignments"] = [{"MemberId": mid, "Assignment": b"xyz"}]
        s = c.request("SyncGroup", 5, sync)
        check(s["ErrorCode"] == 0 and s["Assignment"] == b"xyz", "SyncGroup leader -> its assignment")
        d = c.request("DescribeGroups", 5, {"Groups": ["raw-g", "nope"],
                                            "IncludeAuthorizedOperations": False})
        g0, g1 = d["Groups"]
        check(g0["GroupState"] == "Stable" and g0["ProtocolData"] == "range" and
              g0["Members"][0]["MemberAssignment"] == b"xyz", "DescribeGroups: Stable, member, assignment")
        check(g1["GroupState"] == "Dead", "DescribeGroups: unknown group is Dead")
        lg = c.request("ListGroups", 4, {"StatesFilter": ["stable"]})
        check([g["GroupId"] for g in lg["Groups"]] == ["raw-g"], "ListGroups: state filter")
        lg = c.request("ListGroups", 4, {"StatesFilter": ["Empty"]})
        check(lg["Groups"] == [], "ListGroups: Empty filter excludes it")
        commit = {"GroupId": "raw-g", "GenerationIdOrMemberEpoch": 1, "MemberId": mid,
                  "GroupInstanceId": None,
                  "Topics": [{"Name": "raw-t", "Partitions": [
                      {"PartitionIndex": 0, "CommittedOffset": 5, "CommittedLeaderEpoch": -1,
                       "CommittedMetadata": "meta"},
                      {"PartitionIndex": 9, "CommittedOffset": 5, "CommittedLeaderEpoch": -1,
                       "CommittedMetadata": None}]},
                             {"Name": "no-such-topic", "Partitions": [
                      {"PartitionIndex": 0, "CommittedOffset": 5, "CommittedLeaderEpoch": -1,
                       "CommittedMetadata": None}]}]}
        r = c.request("OffsetCommit", 8, commit)
        errs = [p["ErrorCode"] for t in r["Topics"] for p in t["Partitions"]]
        check(errs == [0, 3, 3], "OffsetCommit: unknown partitions -> 3, the rest stored %s" % errs)
        f = c.request("OffsetFetch", 8, {"Groups": [{"GroupId": "raw-g", "Topics": None}],
                                         "RequireStable": False})
        parts = f["Groups"][0]["Topics"][0]["Partitions"]
        check(len(parts) == 1 and parts[0]["CommittedOffset"] == 5 and parts[0]["Metadata"] == "meta",
              "OffsetFetch v8 (all topics): offset and metadata")
        od = c.request("OffsetDelete", 0, {"GroupId": "raw-g", "Topics": [
            {"Name": "raw-t", "Partitions": [{"PartitionIndex": 0}]}]})
        check(od["Topics"][0]["Partitions"][0]["ErrorCode"] == 86,
              "OffsetDelete: a subscribed topic -> GROUP_SUBSCRIBED_TO_TOPIC")
        dg = c.request("DeleteGroups", 2, {"GroupsNames": ["raw-g"]})
        check(dg["Results"][0]["ErrorCode"] == 68, "DeleteGroups: non-empty group -> 68")
        lv = c.request("LeaveGroup", 5, {"GroupId": "raw-g", "Members": [
            {"MemberId": mid, "GroupInstanceId": None, "Reason": None}]})
        check(lv["ErrorCode"] == 0 and lv["Members"][0]["ErrorCode"] == 0, "LeaveGroup v5 batch")
        hb = c.request("Heartbeat", 4, {"GroupId": "raw-g", "GenerationId": 1, "MemberId": mid,
                                        "GroupInstanceId": None})
        check(hb["ErrorCode"] == 25, "Heartbeat after leave -> 25")
        od = c.request("OffsetDelete", 0, {"GroupId": "raw-g", "Topics": [
            {"Name": "raw-t", "Partitions": [{"PartitionIndex": 0}]}]})
        check(od["ErrorCode"] == 0 and od["Topics"][0]["Partitions"][0]["ErrorCode"] == 0,
              "OffsetDelete: an empty group's offset deleted")
        f = c.request("OffsetFetch", 1, {"GroupId": "raw-g", "Topics": [
            {"Name": "raw-t", "PartitionIndexes": [0]}]})
        check(f["Topics"][0]["Partitions"][0]["CommittedOffset"] == -1, "OffsetFetch v1: gone")
        dg = c.request("DeleteGroups", 2, {"GroupsNames": ["raw-g", "nope"]})
        check([r["ErrorCode"] for r in dg["Results"]] == [0, 69],
              "DeleteGroups: empty group deleted, unknown -> 69")
        simple = {"GroupId": "simple-g", "GenerationIdOrMemberEpoch": -1, "MemberId": "",
                  "GroupInstanceId": None, "Topics": [{"Name": "raw-t", "Partitions": [
                      {"PartitionIndex": 1, "CommittedOffset": 3, "CommittedLeaderEpoch": -1,
                       "CommittedMetadata": ""}]}]}
        r = c.request("OffsetCommit", 8, simple)
        check(r["Topics"][0]["Partitions"][0]["ErrorCode"] == 0, "OffsetCommit: simple commit")


def version_sweep_test(bootstrap):
    """Every advertised version of each group API answers and decodes (independent codec)."""
    with KafkaConn(bootstrap) as c:
        for v in range(0, 7):
            fc = c.request("FindCoordinator", v, {"Key": "sw", "KeyType": 0,
                                                  "CoordinatorKeys": ["sw"]})
            err = fc["Coordinators"][0]["ErrorCode"] if v >= 4 else fc["ErrorCode"]
            check(err == 0, "FindCoordinator v%d" % v)
        fc = c.request("FindCoordinator", 6, {"KeyType": 2, "CoordinatorKeys": ["sw"]})
        check(fc["Coordinators"][0]["ErrorCode"] == 42,
              "FindCoordinator v6 share-group key: INVALID_REQUEST (no share groups)")
        for v in range(0, 10):
            gid = "sw-j%d" % v
            join = {"GroupId": gid, "SessionTimeoutMs": 10000, "RebalanceTimeoutMs": 10000,
                    "MemberId": "", "GroupInstanceId": None, "ProtocolType": "consumer",
                    "Protocols": [{"Name": "range", "Metadata": SUBSCRIPTION}], "Reason": None}
            j = c.request("JoinGroup", v, join)
            if v >= 4:
                check(j["ErrorCode"] == 79, "JoinGroup v%d: MEMBER_ID_REQUIRED" % v)
                join["MemberId"] = j["MemberId"]
                j = c.request("JoinGroup", v, join)
            check(j["ErrorCode"] == 0 and j["GenerationId"] == 1, "JoinGroup v%d: joined" % v)
            mid = j["MemberId"]
            sv, hv, lv = min(v, 5), min(v, 4), min(v, 5)
            s = c.request("SyncGroup", sv, {"GroupId": gid, "GenerationId": 1, "MemberId": mid,
                                            "GroupInstanceId": None, "ProtocolType": "consumer",
                                            "ProtocolName": "range",
                                            "Assignments": [{"MemberId": mid, "Assignment": b"a"}]})
            check(s["ErrorCode"] == 0 and s["Assignment"] == b"a", "SyncGroup v%d" % sv)
            h = c.request("Heartbeat", hv, {"GroupId": gid, "GenerationId": 1, "MemberId": mid,
                                            "GroupInstanceId": None})
            check(h["ErrorCode"] == 0, "Heartbeat v%d" % hv)
            l = c.request("LeaveGroup", lv, {"GroupId": gid, "MemberId": mid, "Members": [
                {"MemberId": mid, "GroupInstanceId": None, "Reason": None}]})
            check(l["ErrorCode"] == 0, "LeaveGroup v%d" % lv)
        for v in range(0, 10):
            gid = "sw-c%d" % v
            c.request("OffsetCommit", v, {"GroupId": gid, "GenerationIdOrMemberEpoch": -1,
                                          "MemberId": "", "GroupInstanceId": None,
                                          "RetentionTimeMs": -1, "Topics": [
                {"Name": "raw-t", "Partitions": [{"PartitionIndex": 1, "CommittedOffset": 40 + v,
                                                  "CommittedLeaderEpoch": -1, "CommitTimestamp": -1,
                                                  "CommittedMetadata": "m%d" % v}]}]})
            if v < 8:
                f = c.request("OffsetFetch", v, {"GroupId": gid, "Topics": [
                    {"Name": "raw-t", "PartitionIndexes": [1]}], "RequireStable": False})
                p = f["Topics"][0]["Partitions"][0]
            else:
                f = c.request("OffsetFetch", v, {"Groups": [{"GroupId": gid, "MemberId": None,
                                                        "MemberEpoch": -1, "Topics": [
                    {"Name": "raw-t", "PartitionIndexes": [1]}]}], "RequireStable": False})
                p = f["Groups"][0]["Topics"][0]["Partitions"][0]
            check(p["CommittedOffset"] == 40 + v and p["Metadata"] == "m%d" % v,
                  "OffsetCommit v%d stored, OffsetFetch v%d read it back" % (v, v))
        for v in range(0, 6):
            d = c.request("DescribeGroups", v, {"Groups": ["sw-c1"], "IncludeAuthorizedOperations": False})
            check(d["Groups"][0]["GroupState"] == "Empty", "DescribeGroups v%d" % v)
            lg = c.request("ListGroups", v, {"StatesFilter": [], "TypesFilter": []})
            check(lg["ErrorCode"] == 0 and "sw-c1" in [g["GroupId"] for g in lg["Groups"]],
                  "ListGroups v%d" % v)
        for v in range(0, 3):
            dg = c.request("DeleteGroups", v, {"GroupsNames": ["sw-c%d" % v]})
            check(dg["Results"][0]["ErrorCode"] == 0, "DeleteGroups v%d" % v)


def retention_test(sluice):
    """offsets.retention.minutes=1: an empty group's offsets expire a minute after its last
    commit, and their tombstones keep them gone across a restart."""
    cfg = {"offsets.retention.minutes": 1, "offsets.topic.num.partitions": 2}
    with Broker(sluice, config=cfg, cores="2") as b:
        create(b.bootstrap, "ret-t", 1)
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-ret"})
        c.commit(offsets=[TopicPartition("ret-t", 0, 9)], asynchronous=False)
        c.close()
        check(fetch_all(b.bootstrap, "g-ret") == [("ret-t", 0, 9)], "retention: committed")
        time.sleep(50)
        check(fetch_all(b.bootstrap, "g-ret") == [("ret-t", 0, 9)], "retention: kept at 50 s")
        ok = False
        for _ in range(40):
            time.sleep(0.5)
            if fetch_all(b.bootstrap, "g-ret") == []:
                ok = True
                break
        check(ok, "retention: expired after a minute")
        b.restart()
        check(fetch_all(b.bootstrap, "g-ret") == [], "retention: still gone after a restart")


def main():
    sluice = sys.argv[1]
    cfg = {"group.initial.rebalance.delay.ms": 0, "offsets.topic.num.partitions": 5,
           "group.min.session.timeout.ms": 1000}
    with tempfile.TemporaryDirectory() as tmp, Broker(sluice, config=cfg, cores="2") as b:
        raw_errors_test(b.bootstrap)
        version_sweep_test(b.bootstrap)
        topic, group = group_kill_test(b.bootstrap, "range", 3000, tmp)
        group_kill_test(b.bootstrap, "cooperative-sticky", 3000, tmp)
        static_membership_test(b.bootstrap, tmp)
        member_identity_test(b.bootstrap)
        kafka_python_test(b.bootstrap)
        kcat_test(b.bootstrap)
        kafkajs_test(b.bootstrap)
        restart_test(b, topic, group)
    retention_test(sluice)
    print("all group tests passed")


if __name__ == "__main__":
    main()
