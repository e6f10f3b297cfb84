#!/usr/bin/python3
"""Crash test: an idempotent producer with acks=all while the broker is SIGKILLed and
restarted 5 times; every acknowledged message is consumable afterwards, exactly once.

The producer is confluent-kafka-python's own kafkatest VerifiableProducer
(/usr/lib/python3/dist-packages/confluent_kafka/kafkatest/verifiable_producer.py), run
unmodified with enable.idempotence=true, --acks -1. The packaged kafkatest helper is
Python 2 code in two places (VerifiableClient.set_config iterates args.iteritems(), and
send() JSON-encodes message values that are bytes in Python 3), so this test starts it
through a small shim that hands set_config a dict with an iteritems() method and
decodes bytes values before send(); nothing else of the producer is touched. It prints one JSON line per
delivery report (producer_send_success with partition and offset, or
producer_send_error).

The producer caps its reconnect backoff at 1 s (reconnect.backoff.max.ms=1000).
librdkafka doubles the backoff after each failed connect and only resets it after
reconnect.backoff.max.ms (10 s by default) without an attempt; with a crash every 5 s it
never resets, so by the 4th crash the client waits up to 10 s before trying again. That
once left it disconnected through the last two crashes and past the producer's fixed 5 s
final flush (79,227 of 120,000 acknowledged, in CI). The cap keeps this test about the
broker's recovery, not the client's backoff. The reconnect delays the client chose are
read from its debug log (debug=broker) and printed.

Meanwhile the broker (1 shard, a 3-partition topic with small segments so rolls and
their producer-state snapshots happen) is killed with SIGKILL and restarted 5 times.
Afterwards every partition is read from offset 0 to its end with a plain consumer and:
- every acknowledged value is in the log exactly once, at the partition and offset its
  acknowledgement named (no loss, no duplicate from the producer's retries);
- no value appears twice in the log at all (retries across the crashes were
  deduplicated by the rebuilt producer state);
- within a partition, values are in the order they were produced (no reordering).
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from harness import Broker, PYTHON

KAFKATEST = "/usr/lib/python3/dist-packages/confluent_kafka/kafkatest"
TOPIC = "crash-idem"
PARTITIONS = 3
MESSAGES = 120000
THROUGHPUT = 4000  # msgs/s: about 30 s of producing
KILLS = 5
RECONNECT_BACKOFF_MAX_MS = 1000

SHIM = """
import runpy, sys
sys.path.insert(0, %r)
import verifiable_client
_orig = verifiable_client.VerifiableClient.set_config
class _Args(dict):
    def iteritems(self):
        return iter(self.items())
verifiable_client.VerifiableClient.set_config = staticmethod(lambda c, a: _orig(c, _Args(a)))
_send = verifiable_client.VerifiableClient.send
verifiable_client.VerifiableClient.send = lambda self, d: _send(
    self, {k: v.decode() if isinstance(v, bytes) else v for k, v in d.items()})
sys.argv = [%r] + sys.argv[1:]
runpy.run_path(%r, run_name="__main__")
"""


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what, flush=True)


def skip_unless_kafkatest():
    if not os.path.exists(os.path.join(KAFKATEST, "verifiable_producer.py")):
        print("SKIP: confluent_kafka kafkatest not installed")
        sys.exit(77)


def create_topic(bootstrap):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.create_topics([NewTopic(TOPIC, PARTITIONS, 1,
                                   config={"segment.bytes": str(256 * 1024)})])
    fs[TOPIC].result(timeout=30)


def reconnect_delays_ms(err_path):
    """The delays librdkafka logged before each reconnect attempt (debug=broker)."""
    delays = []
    with open(err_path, errors="replace") as f:
        for line in f:
            i = line.find("Delaying next reconnect by ")
            if i >= 0:
                delays.append(int(line[i:].split()[4].rstrip("ms")))
    return delays


def consume_all(bootstrap):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-verify",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.max.bytes": 4 << 20})
    ends = {}
    for p in range(PARTITIONS):
        lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)
        ends[p] = hi
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    logs = {p: [] for p in range(PARTITIONS)}
    done = {p for p in range(PARTITIONS) if ends[p] == 0}
    deadline = time.time() + 60
    while len(done) < PARTITIONS and time.time() < deadline:
        for m in c.consume(10000, 1.0):
            if m.error():
                continue
            logs[m.partition()].append((m.offset(), m.value()))
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
    c.close()
    return ends, logs


def main():
    skip_unless_kafkatest()
    sluice = sys.argv[1]
    t0 = time.time()
    with Broker(sluice, cores="1") as b:
        create_topic(b.bootstrap)
        shim = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
        shim.write(SHIM % (KAFKATEST, os.path.join(KAFKATEST, "verifiable_producer.py"),
                           os.path.join(KAFKATEST, "verifiable_producer.py")))
        shim.close()
        out_path = shim.name + ".out"
        err_path = shim.name + ".err"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            prod = subprocess.Popen(
                [PYTHON, shim.name, "--topic", TOPIC, "--broker-list", b.bootstrap,
                 "--max-messages", str(MESSAGES), "--throughput", str(THROUGHPUT),
                 "--acks", "-1", "-X", "conf_enable.idempotence=true",
                 "-X", "conf_linger.ms=5", "-X", "conf_message.timeout.ms=120000",
                 "-X", "conf_reconnect.backoff.max.ms=%d" % RECONNECT_BACKOFF_MAX_MS,
                 "-X", "conf_debug=broker"],
                stdout=out, stderr=err)
        produce_s = MESSAGES / THROUGHPUT
        started = time.monotonic()
        kills = 0
        try:
            for k in range(KILLS):
                # On a fixed schedule from the producer's start, so slow restarts do not
                # push the last kill past the end of its producing.
                due = started + (k + 1) * produce_s / (KILLS + 1)
                time.sleep(max(0.0, due - time.monotonic()))
                if prod.poll() is not None:
                    with open(err_path) as f:
                        print(f.read()[-3000:])
                check(prod.poll() is None, "producer still running before kill %d" % (k + 1))
                b.kill()
                time.sleep(0.3)
                b.restart()
                kills += 1
                print("kill %d done at %.1f s" % (kills, time.time() - t0), flush=True)
            rc = prod.wait(timeout=produce_s + 60)
        finally:
            if prod.poll() is None:
                prod.kill()
                prod.wait()
        check(kills == KILLS, "broker SIGKILLed and restarted %d times" % KILLS)
        check(rc == 0, "verifiable producer exited 0")
        acked = {}
        errors = 0
        shutdown = False
        with open(out_path) as f:
            for line in f:
                ev = json.loads(line)
                if ev["name"] == "producer_send_success":
                    acked.setdefault(ev["value"], []).append((ev["partition"], ev["offset"]))
                elif ev["name"] == "producer_send_error":
                    errors += 1
                elif ev["name"] == "shutdown_complete":
                    shutdown = True
        delays_ms = reconnect_delays_ms(err_path)
        for path in (shim.name, out_path, err_path):
            os.unlink(path)
        print("client reconnect delays (ms): %s" % delays_ms, flush=True)
        check(all(d <= RECONNECT_BACKOFF_MAX_MS for d in delays_ms),
              "client reconnect backoff within %d ms" % RECONNECT_BACKOFF_MAX_MS)
        check(shutdown, "producer reported shutdown_complete")
        n_acks = sum(len(v) for v in acked.values())
        print("acknowledged %d, errors %d" % (n_acks, errors), flush=True)
        check(n_acks >= MESSAGES * 0.9, "most messages acknowledged (%d of %d)" % (n_acks, MESSAGES))
        check(all(len(v) == 1 for v in acked.values()), "each value acknowledged once")

        ends, logs = consume_all(b.bootstrap)
        total = sum(len(v) for v in logs.values())
        check(all(len(logs[p]) == ends[p] for p in range(PARTITIONS)),
              "read every partition to its end (%d records, ends %s)" % (total, ends))
        where = {}
        dups = 0
        for p in range(PARTITIONS):
            for off, val in logs[p]:
                v = val.decode()
                if v in where:
                    dups += 1
                where[v] = (p, off)
        check(dups == 0, "no value appears twice in the log (%d duplicates)" % dups)
        missing = [v for v, locs in acked.items() if where.get(v) != locs[0]]
        check(not missing, "every acknowledged value is in the log at its acked offset "
              "(%d missing or moved, e.g. %s)" % (len(missing), missing[:3]))
        for p in range(PARTITIONS):
            seq = [int(val) for _, val in logs[p]]
            check(seq == sorted(seq), "partition %d in produce order" % p)
        tail = b.stderr_tail(1 << 20)
        check(tail.count("producer_state_rebuilt") >= KILLS,
              "producer state rebuilt at each restart")
        print("broker log: %d retried duplicates answered with their original offset, "
              "%d sequence rejections, %d recovery truncations (logged at most 10/s)" %
              (tail.count("event=produce_duplicate"), tail.count("produce_sequence_rejected"),
               tail.count("recovery_truncate")))
    print("PASS in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
