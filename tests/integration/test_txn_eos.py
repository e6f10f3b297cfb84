#!/usr/bin/python3
"""Exactly-once consume-transform-produce with confluent-kafka, killed at random points.

A worker process (this file run with --worker) reads topic A in consumer group "eos"
(isolation.level read_committed, enable.auto.commit false, static member "eos-w" so a
restarted worker takes its place without waiting for a session timeout), writes one
transformed record T(value) to topic B per A record, and every TXN_RECORDS records calls
send_offsets_to_transaction(offsets it consumed, group metadata) and commit_transaction().
It sleeps a random 0-60 ms inside each transaction (after producing, before committing), so
a kill often lands on an open transaction whose records are already in B's log. On any
client error it exits (rc 3); the test starts it again.

The test (seeded; the seed is printed, SLUICE_EOS_SEED=<n> replays it):
  1. creates A and B (2 partitions each, a 2-shard broker) and writes A_RECORDS records to
     A with an idempotent producer;
  2. WORKER_KILLS times: starts the worker, waits a random 0.3-3 s, SIGKILLs it. Every
     restart calls init_transactions with the same transactional.id, which fences the dead
     incarnation and aborts its open transaction, and resumes from the group's committed
     offsets. BROKER_KILLS of those rounds also SIGKILL the broker itself at a random point
     while the worker runs (and restart it on the same data dir);
  3. starts a last worker and waits until the group's committed offsets reach A's end;
  4. reads B from the beginning with read_committed: every A record's T(value) is there
     exactly once and nothing else is. Also: read_uncommitted sees at least as many records
     (the aborted copies are in the log), and the transactional id's epoch grew with the
     restarts (DescribeTransactions, when advertised); the broker stops on SIGTERM with
     exit code 0 and no sanitizer report in its stderr.

    tests/integration/test_txn_eos.py build/sluice
"""
import os
import random
import signal
import subprocess
import sys
import time

from harness import Broker, KafkaConn, PYTHON

TOPIC_A, TOPIC_B, PARTITIONS = "eos-a", "eos-b", 2
GROUP, INSTANCE, TXN_ID = "eos", "eos-w", "eos-tx"
A_RECORDS = 5000
TXN_RECORDS = 10
WORKER_KILLS = 20
BROKER_KILLS = 3
FINAL_DRAIN_S = 30  # the final drain fails after this long without progress
MAX_EXTRA_STARTS = 40   # starts after a worker died by itself (client error), bounded


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what, flush=True)


def transform(value):
    return b"T(" + value + b")"


# ------------------------------------------------------------------ the worker

def worker(bootstrap):
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    rng = random.Random(os.getpid())
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                         "group.instance.id": INSTANCE, "isolation.level": "read_committed",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": TXN_ID,
                         "transaction.timeout.ms": 30000, "linger.ms": 2})
    try:
        producer.init_transactions(30)
        print("worker %d: init_transactions done" % os.getpid(), flush=True)
        consumer.subscribe([TOPIC_A])
        producer.begin_transaction()
        pending, commits = {}, 0  # pending: partition -> next offset
        while True:
            msgs = consumer.consume(num_messages=TXN_RECORDS, timeout=0.2)
            for m in msgs:
                if m.error():
                    raise KafkaException(m.error())
                producer.produce(TOPIC_B, key=m.key(), value=transform(m.value()),
                                 partition=m.partition())
                pending[m.partition()] = m.offset() + 1
            if not pending:
                continue
            time.sleep(rng.uniform(0, 0.06))
            offsets = [TopicPartition(TOPIC_A, p, off) for p, off in sorted(pending.items())]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(),
                                                 30)
            producer.commit_transaction(30)
            commits += 1
            print("worker %d: commit %d %s" % (os.getpid(), commits, sorted(pending.items())),
                  flush=True)
            pending = {}
            producer.begin_transaction()
    except KafkaException as e:
        print("worker %d: client error: %s" % (os.getpid(), e), flush=True)
        sys.exit(3)


# ------------------------------------------------------------------ the test

def create_topics(bootstrap):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (TOPIC_A, TOPIC_B)])
    for t, f in fs.items():
        f.result(30)
    check(True, "topics %s and %s created (%d partitions each)" % (TOPIC_A, TOPIC_B,
                                                                    PARTITIONS))


def fill_a(bootstrap):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    errors = []
    for i in range(A_RECORDS):
        p.produce(TOPIC_A, key=b"k%d" % i, value=b"a-%05d" % i, partition=i % PARTITIONS,
                  on_delivery=lambda err, msg: err and errors.append(err))
        if i % 1000 == 0:
            p.poll(0)
    check(p.flush(60) == 0 and not errors, "%d records written to %s" % (A_RECORDS, TOPIC_A))
    return {b"a-%05d" % i for i in range(A_RECORDS)}


def committed_offsets(bootstrap):
    """The group's committed offsets for A (OffsetFetch v5: no pending offsets)."""
    body = {"GroupId": GROUP, "Topics": [{"Name": TOPIC_A,
                                          "PartitionIndexes": list(range(PARTITIONS))}]}
    try:
        with KafkaConn(bootstrap, timeout_s=5) as c:
            r = c.request("OffsetFetch", 5, body)
    except (OSError, ConnectionError):
        return None
    if r["ErrorCode"] != 0:
        return None
    return {p["PartitionIndex"]: p["CommittedOffset"] for p in r["Topics"][0]["Partitions"]}


class Workers:
    """Starts the worker process (one at a time), each with its own log file."""

    def __init__(self, bootstrap, log_dir):
        self.bootstrap, self.log_dir = bootstrap, log_dir
        self.proc, self.starts, self.self_exits = None, 0, []

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        self.log_path = os.path.join(self.log_dir, "worker-%02d.log" % self.starts)
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([PYTHON, os.path.abspath(__file__), "--worker",
                                          self.bootstrap], stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def note_exit(self):
        """A worker that ended by itself (a client error): keep its log tail."""
        with open(self.log_path, "rb") as f:
            tail = f.read()[-600:].decode("utf-8", "replace")
        self.self_exits.append((self.starts, self.proc.returncode, tail))

    def tail(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")


def run_for(workers, seconds):
    """Keep one worker running for `seconds` (restarting one that exits by itself)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not workers.alive():
            workers.note_exit()
            assert len(workers.self_exits) <= MAX_EXTRA_STARTS, \
                "worker keeps failing:\n%s" % workers.self_exits[-1][2]
            workers.start()
        time.sleep(0.02)


def read_b(bootstrap, isolation, expect_at_least):
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "eos-check-" + isolation,
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(TOPIC_B, p, 0) for p in range(PARTITIONS)])
    got, eof, deadline = [], set(), time.monotonic() + 60
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                if len(eof) == PARTITIONS and len(got) >= expect_at_least:
                    break
            continue
        eof.discard(m.partition())
        got.append(m.value())
    c.close()
    return got


def describe_txn_epoch(bootstrap):
    with KafkaConn(bootstrap) as c:
        keys = {k["ApiKey"]: k for k in c.request("ApiVersions", 3, {
            "ClientSoftwareName": "t", "ClientSoftwareVersion": "1"})["ApiKeys"]}
        if 65 not in keys:
            return None
        r = c.request("DescribeTransactions", 0, {"TransactionalIds": [TXN_ID]})
    st = r["TransactionStates"][0]
    return st["ErrorCode"], st["ProducerEpoch"], st["TransactionState"]


def main():
    seed = int(os.environ.get("SLUICE_EOS_SEED", str(int(time.time() * 1000) % 1000000)))
    print("seed %d (SLUICE_EOS_SEED=%d replays it)" % (seed, seed), flush=True)
    rng = random.Random(seed)
    broker_rounds = set(rng.sample(range(1, WORKER_KILLS - 1), BROKER_KILLS))
    t_start = time.monotonic()
    with Broker(sys.argv[1], cores="2",
                config={"group.initial.rebalance.delay.ms": 0}) as b:
        create_topics(b.bootstrap)
        want = fill_a(b.bootstrap)
        workers = Workers(b.bootstrap, b.tmp_dir)
        try:
            for i in range(WORKER_KILLS):
                workers.start()
                delay_s = rng.uniform(0.3, 3.0)
                if i in broker_rounds:
                    before = rng.uniform(0.1, delay_s)
                    run_for(workers, before)
                    b.kill()
                    b.start()
                    print("round %d: broker SIGKILLed %.2f s into the worker's run and "
                          "restarted" % (i, before), flush=True)
                    run_for(workers, delay_s - before)
                else:
                    run_for(workers, delay_s)
                workers.kill()
                print("round %d: worker #%d SIGKILLed after %.2f s; committed %s"
                      % (i, workers.starts, delay_s, committed_offsets(b.bootstrap)),
                      flush=True)
            check(True, "%d worker SIGKILLs (%d broker SIGKILLs among them), %d worker starts,"
                  " %d worker exits on a client error" % (WORKER_KILLS, BROKER_KILLS,
                                                          workers.starts,
                                                          len(workers.self_exits)))
            for n, rc, tail in workers.self_exits:
                why = [ln for ln in tail.splitlines() if "client error" in ln] or [""]
                print("  worker #%d exited rc %s: %s" % (n, rc, why[-1]))
            end = {p: (A_RECORDS + PARTITIONS - 1 - p) // PARTITIONS for p in range(PARTITIONS)}
            workers.start()
            # The drain may take as long as it makes progress: it fails once the group's
            # committed offsets have not moved for FINAL_DRAIN_S (a slow machine has more
            # left to do here, and does it more slowly).
            got_offsets = committed_offsets(b.bootstrap)
            moved_at = time.monotonic()
            while got_offsets != end and time.monotonic() - moved_at < FINAL_DRAIN_S:
                if not workers.alive():
                    workers.note_exit()
                    workers.start()
                time.sleep(0.2)
                now_offsets = committed_offsets(b.bootstrap)
                if now_offsets != got_offsets:
                    got_offsets, moved_at = now_offsets, time.monotonic()
            workers.kill()
            check(got_offsets == end, "the group's committed offsets reached A's end %s (%s)"
                  % (end, got_offsets))
        except BaseException:
            if workers.proc is not None:
                workers.kill()
                sys.stderr.write("--- last worker log ---\n%s\n" % workers.tail())
            raise
        values = read_b(b.bootstrap, "read_committed", len(want))
        dups = len(values) - len(set(values))
        check(dups == 0, "read_committed B: no duplicate (%d duplicated of %d)"
              % (dups, len(values)))
        missing = sorted(v for v in (transform(a) for a in want) if v not in set(values))
        extra = sorted(set(values) - {transform(a) for a in want})
        check(not missing and not extra,
              "read_committed B holds every one of the %d A records exactly once "
              "(missing %d %s, extra %d)" % (len(want), len(missing), missing[:5], len(extra)))
        raw = read_b(b.bootstrap, "read_uncommitted", len(want))
        check(len(raw) >= len(values) and set(raw) >= set(values),
              "read_uncommitted B: %d records, including %d aborted copies"
              % (len(raw), len(raw) - len(values)))
        epoch = describe_txn_epoch(b.bootstrap)
        if epoch is None:
            print("note: DescribeTransactions not advertised; epoch not checked")
        else:
            check(epoch[0] == 0 and epoch[1] >= workers.starts - 1,
                  "DescribeTransactions %s: epoch %d >= %d worker starts - 1 (state %s)"
                  % (TXN_ID, epoch[1], workers.starts, epoch[2]))
        rc = b.stop()
        with open(b.stderr_path, "rb") as f:
            bad = [ln for ln in f.read().decode("utf-8", "replace").splitlines()
                   if "Sanitizer" in ln or "runtime error:" in ln]
        check(rc == 0 and not bad, "SIGTERM: broker exits 0 (rc %s), no sanitizer report in "
              "its stderr %s" % (rc, bad[:3]))
    print("PASS in %.0f s (seed %d)" % (time.monotonic() - t_start, seed))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        main()
