#!/usr/bin/python3
"""`sluice loadgen --group`: the load generator's consumers as a consumer group, against
a real sluice broker, checked with real Kafka tools.

1. 3 loadgen consumers in group g1 over 6 partitions, 2 producers, 30000 messages from
   the earliest offset: exit 0, nothing lost or duplicated, every acknowledged message
   consumed once (the end-to-end histogram counts every message of the run), one
   settled generation before producing and no rebalance after.
2. `sluice groups describe g1`: the committed offsets are the partitions' end offsets.
3. A confluent-kafka consumer in g1 (auto.offset.reset=earliest) starts from the
   committed offsets: it reads the 10 messages produced after the run and nothing old.
4. A second loadgen run in g1 resumes at the committed offsets (no message read twice,
   so still nothing duplicated) and commits the new end offsets.
5. A rebalance mid-run: while loadgen's group g2 reads, a confluent-kafka consumer joins
   g2 on the same topic (it takes some of the partitions and commits nothing) and leaves
   again. The partitions move: loadgen's members commit before they rejoin, the next
   holder continues from the commit and the previous holder's check state, so nothing
   is lost or duplicated (whatever the Kafka consumer read, loadgen reads again);
   `sluice groups describe` showed loadgen's members owning the partitions (our
   ConsumerProtocolAssignment bytes are readable).
6. Commits that fail: loadgen's group g3 (session timeout 2 s -- the broker's
   group.min.session.timeout.ms is lowered to 1 s for it -- auto-commit every 1.5 s)
   reads; just after its members committed, the loadgen process is stopped (SIGSTOP)
   until the broker's log says it removed both members for their session timeout and
   an auto-commit is due, then continued. Each member's next OffsetCommit fails
   (UNKNOWN_MEMBER_ID: commit_errors), its heartbeat too, and it rejoins; the next
   holders start at the older committed offsets and read again what was read since
   (redelivered > 0, Kafka's at-least-once) -- and that is neither duplicated nor lost:
   loadgen exits 0 and every acknowledged message was read once.
7. A partition that moves on before its new holder has read again what the old one had
   read: loadgen's group g4 (nothing committed: auto-commit every 60 s; fetches of 1 KiB,
   so reading it all again takes a while; heartbeats every 50 ms, so a rebalance is
   heard of before that) is stopped past its session timeout while a confluent-kafka
   consumer joins g4 and takes every partition. When loadgen continues its members
   rejoin, and as soon as the Kafka consumer has its share of that generation it
   leaves: loadgen's members, reading again from offset 0, commit where they got to and
   the next holders continue from there. What those read up to where the first holders
   had got is redelivered too, not duplicated (loadgen counted only what was below the
   last holder's position as redelivered: thousands of "duplicates" here)."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, run, wait_for  # noqa: E402

from confluent_kafka import Consumer, Producer  # noqa: E402

SLUICE = sys.argv[1]


def loadgen_cmd(bootstrap, json_path, *args):
    return [SLUICE, "loadgen", "--bootstrap", bootstrap, "--json", json_path,
            "--quiet", "true"] + list(args)


def loadgen(bootstrap, json_path, *args, timeout_s=90):
    rc, out, err = run(loadgen_cmd(bootstrap, json_path, *args), timeout_s=timeout_s)
    assert rc == 0, (rc, out, err)
    with open(json_path) as f:
        return json.load(f)["runs"][0], out


def reap(proc):
    """A background loadgen still running when a scenario failed: stop it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def run_of(proc, out, err, json_path):
    """A background loadgen's exit (0) and its run from --json."""
    assert proc.returncode == 0, (proc.returncode, out, err)
    with open(json_path) as f:
        return json.load(f)["runs"][0]


def check_clean(r, but=()):
    for k in ("lost", "duplicated", "out_of_order", "crc_errors", "produce_errors",
              "fetch_errors", "connection_errors", "problem_partitions", "commit_errors"):
        assert k in but or r[k] == 0, (k, r)


def describe(bootstrap, group):
    rc, out, err = run([SLUICE, "groups", "describe", group, "-b", bootstrap, "--json"],
                       timeout_s=30)
    assert rc == 0, (rc, out, err)
    return json.loads(out)


def owners(bootstrap, group, topic, partitions):
    """describe's rows for topic once a member owns each of its partitions, else None."""
    try:
        rows = describe(bootstrap, group)
    except (AssertionError, ValueError):
        return None
    mine = [x for x in rows if x["topic"] == topic and x["consumer_id"] not in ("-", "")]
    return mine if len(mine) == partitions else None


def committed(row):
    return row["current_offset"] if isinstance(row["current_offset"], int) else -1


def session_expired(broker, group):
    """The member ids the broker's log says it removed from group for their session
    timeout (group_coordinator.c: group_member_removed ... reason=session-timeout)."""
    with open(broker.stderr_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    pat = re.compile(r"event=group_member_removed group=(\S+) member=(\S+) "
                     r"reason=session-timeout")
    return {m.group(2) for m in pat.finditer(log) if m.group(1) == group}


def committed_at_end(bootstrap, group, topic, partitions):
    rows = [r for r in describe(bootstrap, group) if r["topic"] == topic]
    assert len(rows) == partitions, rows
    for r in rows:
        assert r["current_offset"] == r["log_end_offset"], rows
    return {r["partition"]: r["current_offset"] for r in rows}


# 6. and 7. need a session timeout a test outwaits quickly (Kafka's minimum is 6 s)
with tempfile.TemporaryDirectory() as tmp, \
        Broker(SLUICE, cores="2", config={"group.min.session.timeout.ms": 1000}) as b:
    j = os.path.join(tmp, "run.json")

    # 1. a group of 3 over 6 partitions
    r, out = loadgen(b.bootstrap, j, "--topic", "lg-group", "--group", "g1",
                     "--consumers", "3", "--partitions", "6", "--producers", "2",
                     "--messages", "30000", "--consume-from", "earliest", "--warmup", "0",
                     "--message-size", "200")
    check_clean(r)
    assert r["group"] == "g1", r
    assert r["acked_msgs"] == 30000, r
    assert r["e2e_latency_us"]["count"] == r["acked_msgs"], r  # every message, once
    assert r["rebalances"] >= 1 and r["rebalances_mid_run"] == 0, r
    assert r["redelivered"] == 0, r
    assert "group g1:" in out, out
    print("ok  3 group members read 30000 messages once: %d generation(s), 0 lost"
          % r["rebalances"])

    # 2. the group's committed offsets are the end offsets
    ends = committed_at_end(b.bootstrap, "g1", "lg-group", 6)
    assert sum(ends.values()) == 30000, ends
    print("ok  sluice groups describe: committed offsets = end offsets %s" % ends)

    # 3. a Kafka consumer joining g1 afterwards starts at the committed offsets
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(10):
        p.produce("lg-group", value=b"after-%d" % i, partition=i % 6)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g1",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["lg-group"])
    got = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(got) < 10:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    # nothing more comes (nothing old is behind the committed offsets)
    end = time.monotonic() + 2
    while time.monotonic() < end:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    assert sorted(got) == sorted(b"after-%d" % i for i in range(10)), got[:20]
    print("ok  a confluent-kafka consumer in g1 read only the 10 newer messages")

    # 4. loadgen again in g1: resumes where the group committed
    r, out = loadgen(b.bootstrap, j, "--topic", "lg-group", "--group", "g1",
                     "--create-topics", "false", "--consumers", "2", "--producers", "2",
                     "--messages", "6000", "--consume-from", "earliest", "--warmup", "0",
                     "--message-size", "200")
    check_clean(r)
    assert r["e2e_latency_us"]["count"] == r["acked_msgs"] == 6000, r
    ends = committed_at_end(b.bootstrap, "g1", "lg-group", 6)
    assert sum(ends.values()) == 30000 + 10 + 6000, ends
    print("ok  a second run resumed at the committed offsets and committed 36010")

    # 5. a Kafka consumer joins and leaves loadgen's group mid-run
    proc = subprocess.Popen(
        loadgen_cmd(b.bootstrap, j, "--topic", "lg-rebalance", "--group", "g2",
                    "--consumers", "2", "--partitions", "4", "--producers", "1",
                    "--rate", "2000", "--duration", "12", "--warmup", "0",
                    "--message-size", "200", "--drain", "15"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        rows = wait_for(lambda: owners(b.bootstrap, "g2", "lg-rebalance", 4),
                        timeout_s=20, interval_s=0.5)
        assert rows, describe(b.bootstrap, "g2")
        assert len({x["consumer_id"] for x in rows}) == 2, rows
        print("ok  sluice groups describe shows loadgen's 2 members owning the 4 partitions")
        time.sleep(1)
        other = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g2",
                          "auto.offset.reset": "earliest", "enable.auto.commit": False})
        other.subscribe(["lg-rebalance"])
        read = 0
        end = time.monotonic() + 5
        while time.monotonic() < end:
            m = other.poll(0.2)
            read += m is not None and not m.error()
        other.close()
        out, err = proc.communicate(timeout=90)
    finally:
        reap(proc)
    r = run_of(proc, out, err, j)
    check_clean(r)
    assert r["rebalances_mid_run"] >= 1, r
    # every message once, plus what a new holder read again (none when commits land).
    # A --duration run's window ends at the deadline, so acked_msgs (the window's) may miss
    # acks still in flight then (CI saw 23999 of 24000); lost == 0 (check_clean) is the
    # whole run's check that every acknowledged message was read.
    once = r["e2e_latency_us"]["count"] - r["redelivered"]
    assert r["acked_msgs"] <= once <= r["produced_msgs"], r
    assert r["acked_msgs"] > 0, r
    print("ok  %d rebalance(s) mid-run (a Kafka consumer joined, read %d, left): %d acked, "
          "0 lost, 0 duplicated, %d redelivered"
          % (r["rebalances_mid_run"], read, r["acked_msgs"], r["redelivered"]))

    # 6. the loadgen process stopped past its members' session timeout: their commits fail
    auto_commit_s = 1.5
    proc = subprocess.Popen(
        loadgen_cmd(b.bootstrap, j, "--topic", "lg-evict", "--group", "g3",
                    "--consumers", "2", "--partitions", "4", "--producers", "1",
                    "--rate", "2000", "--duration", "14", "--warmup", "0",
                    "--message-size", "200", "--drain", "15",
                    "--session-timeout-ms", "2000", "--heartbeat-interval-ms", "500",
                    "--auto-commit-interval-ms", str(int(auto_commit_s * 1000))),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        # the stop comes just after an auto-commit (a change in the committed offsets,
        # every partition's past 0: producing started), once records beyond it were
        # written -- the members, tailing, read them at once and commit them only an
        # auto-commit interval later
        seen = []

        def fresh_commit():
            rows = owners(b.bootstrap, "g3", "lg-evict", 4)
            seen.append(rows and [committed(x) for x in rows])
            return (rows and len(seen) > 1 and seen[-2] and min(seen[-1]) > 0 and
                    seen[-1] != seen[-2] and rows)
        rows = wait_for(fresh_commit, timeout_s=30, interval_s=0.05)
        assert rows, (seen, describe(b.bootstrap, "g3"))
        members = {x["consumer_id"] for x in rows}
        assert len(members) == 2, rows
        base = {x["partition"]: committed(x) for x in rows}

        def written_past():
            rows = describe(b.bootstrap, "g3")
            return all(x["log_end_offset"] >= base[x["partition"]] + 100
                       for x in rows if x["topic"] == "lg-evict")
        assert wait_for(written_past, timeout_s=10, interval_s=0.05), describe(b.bootstrap, "g3")
        os.kill(proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        expired = wait_for(lambda: session_expired(b, "g3") >= members, timeout_s=15,
                           interval_s=0.1)
        assert expired and session_expired(b, "g3") == members, (members, b.stderr_tail())
        # A stopped loadgen cannot be polled: its members' next auto-commits are due at
        # most auto_commit_s after the stop, so after that each one's first request when
        # it runs again is an OffsetCommit as a member the broker no longer has.
        time.sleep(max(0.0, stopped_at + auto_commit_s + 0.5 - time.monotonic()))
        os.kill(proc.pid, signal.SIGCONT)
        stopped_s = time.monotonic() - stopped_at
        out, err = proc.communicate(timeout=90)
    finally:
        reap(proc)
    r = run_of(proc, out, err, j)
    check_clean(r, but=("commit_errors",))
    assert r["commit_errors"] >= len(members), r  # each member's commit after the stop
    assert r["redelivered"] > 0, r
    assert r["rebalances_mid_run"] >= 1, r
    once = r["e2e_latency_us"]["count"] - r["redelivered"]  # as in 5.
    assert r["acked_msgs"] <= once <= r["produced_msgs"], r
    assert r["acked_msgs"] > 0, r
    committed_at_end(b.bootstrap, "g3", "lg-evict", 4)  # the new members' commits work
    print("ok  loadgen stopped %.1f s, the broker expired its 2 members: %d commit error(s), "
          "%d rebalance(s) mid-run, %d redelivered, 0 lost, 0 duplicated, %d acked"
          % (stopped_s, r["commit_errors"], r["rebalances_mid_run"], r["redelivered"],
             r["acked_msgs"]))

    # 7. the next holder gives a partition back before it has read again what the first had
    proc = subprocess.Popen(
        loadgen_cmd(b.bootstrap, j, "--topic", "lg-remove", "--group", "g4",
                    "--consumers", "2", "--partitions", "4", "--producers", "1",
                    "--rate", "10000", "--duration", "14", "--warmup", "0",
                    "--message-size", "200", "--drain", "15",
                    "--fetch-max-bytes", "1024", "--fetch-partition-max-bytes", "1024",
                    "--session-timeout-ms", "2000", "--heartbeat-interval-ms", "50",
                    "--auto-commit-interval-ms", "60000"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        rows = wait_for(lambda: owners(b.bootstrap, "g4", "lg-remove", 4), timeout_s=20,
                        interval_s=0.2)
        assert rows, describe(b.bootstrap, "g4")
        members = {x["consumer_id"] for x in rows}
        assert len(members) == 2, rows

        def produced(n):
            rows = describe(b.bootstrap, "g4")
            return sum(x["log_end_offset"] for x in rows if x["topic"] == "lg-remove") >= n
        assert wait_for(lambda: produced(30000), timeout_s=20, interval_s=0.2)
        os.kill(proc.pid, signal.SIGSTOP)
        assigned = []  # the Kafka consumer's assignments, one per generation it joined
        other = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g4",
                          "auto.offset.reset": "earliest", "enable.auto.commit": False,
                          "heartbeat.interval.ms": 100})
        other.subscribe(["lg-remove"], on_assign=lambda c, ps: assigned.append(len(ps)))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (assigned and
                                                   session_expired(b, "g4") >= members):
            other.poll(0.05)
        assert assigned == [4] and session_expired(b, "g4") == members, \
            (assigned, members, b.stderr_tail())
        os.kill(proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(assigned) < 2:
            other.poll(0.01)
        assert len(assigned) == 2 and 0 < assigned[1] < 4, assigned  # shared with loadgen
        other.close()
        out, err = proc.communicate(timeout=90)
    finally:
        reap(proc)
    r = run_of(proc, out, err, j)
    check_clean(r)
    assert r["rebalances_mid_run"] >= 2, r  # with the Kafka consumer, and after it left
    assert r["redelivered"] > 0, r
    once = r["e2e_latency_us"]["count"] - r["redelivered"]  # as in 5.
    assert r["acked_msgs"] <= once <= r["produced_msgs"], r
    assert r["acked_msgs"] > 0, r
    print("ok  partitions moved twice after an eviction (a Kafka consumer took them, shared "
          "them, left): %d rebalance(s) mid-run, %d redelivered, 0 lost, 0 duplicated, "
          "%d acked" % (r["rebalances_mid_run"], r["redelivered"], r["acked_msgs"]))
