#!/usr/bin/python3
"""bench_fanout: broker CPU per delivered byte and aggregate consume rate, 1 and K
consumers on one topic (perf/results/zerocopy.md).

    /usr/bin/python3 perf/bench_fanout.py SLUICE [SLUICE_BASE] [--messages N]
        [--bytes B] [--cores C] [--consumers K] [--runs R]

For each binary (the change and, to compare, its parent built elsewhere), for 1 and K
consumers, on a fresh broker and topic (4 partitions):
  tail:     K kcat consumers (-o beginning -c N) wait at the log end; one confluent-kafka
            producer (acks=1, linger 5 ms) writes N messages of B bytes; the phase ends
            when every consumer has all N. Broker CPU includes the produce side (the
            same for both binaries).
  catch-up: K new kcat consumers read the same N messages from offset 0 (batch cache):
            the broker does fetch work only.
Broker CPU = utime + stime of the broker process (/proc/PID/stat, 10 ms ticks) over the
phase.
Delivered bytes = K * N * B (values only). Each configuration runs R times; the best
(lowest CPU per byte) run is kept, as the machine is shared.
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "tests", "integration"))
from harness import Broker, kcat_path  # noqa: E402

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PARTITIONS = 4
TICK = os.sysconf("SC_CLK_TCK")

PRODUCER = r"""
import sys
from confluent_kafka import Producer
bootstrap, topic, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 5,
              "enable.idempotence": False, "queue.buffering.max.messages": 1000000,
              "batch.size": 1000000})
value = b"v" * size
for i in range(n):
    while True:
        try:
            p.produce(topic, value=value, partition=i % %(parts)d)
            break
        except BufferError:
            p.poll(0.01)
assert p.flush(120) == 0
""".replace("%(parts)d", str(PARTITIONS))


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def consumers(bootstrap, topic, k, n):
    cmd = [kcat_path(), "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-c", str(n),
           "-q", "-f", "%p\n"]
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            for _ in range(k)]


def wait_consumers(procs, n, timeout_s=300):
    for p in procs:
        out, _ = p.communicate(timeout=timeout_s)
        got = out.count(b"\n")
        if got != n:
            raise RuntimeError("a consumer got %d of %d messages" % (got, n))


def run_once(sluice, k, n, size, cores):
    config = {"sluice.metrics.listen": "", "sluice.shard.buffer.bytes": 768 << 20,
              "sluice.batch.cache.bytes": 640 << 20}  # the whole topic stays cached
    with Broker(sluice, cores=cores, config=config) as b:
        topic = "fan%d" % k
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS,
                                      replication_factor=1)])[topic].result(30)
        pid = b.proc.pid
        tails = consumers(b.bootstrap, topic, k, n)
        time.sleep(2.0)  # connected and waiting at the log end
        c0, t0 = cpu_s(pid), time.monotonic()
        subprocess.run([sys.executable, "-c", PRODUCER, b.bootstrap, topic, str(n), str(size)],
                       check=True, timeout=300)
        wait_consumers(tails, n)
        c1, t1 = cpu_s(pid), time.monotonic()
        catch = consumers(b.bootstrap, topic, k, n)
        wait_consumers(catch, n)
        c2, t2 = cpu_s(pid), time.monotonic()
    delivered = k * n * size
    return {"tail": (c1 - c0, t1 - t0, delivered), "catchup": (c2 - c1, t2 - t1, delivered)}


def fmt(label, phase, cpu, secs, delivered):
    return ("| %s | %s | %.2f | %.1f | %.0f | %.0f |"
            % (label, phase, cpu, secs, delivered / secs / 1e6, cpu * 1e3 / (delivered / 1e9)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sluice", nargs="+")
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--bytes", type=int, default=1000)
    ap.add_argument("--cores", default="1")
    ap.add_argument("--consumers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    print("| binary, consumers | phase | broker CPU s | wall s | consume MB/s (all consumers) "
          "| broker CPU ms per delivered GB |")
    print("|---|---|---|---|---|---|")
    for k in (1, a.consumers):
        for sluice in a.sluice:
            best = {}
            for _ in range(a.runs):
                r = run_once(sluice, k, a.messages, a.bytes, a.cores)
                for phase, v in r.items():
                    if phase not in best or v[0] / v[2] < best[phase][0] / best[phase][2]:
                        best[phase] = v
            label = "%s, %d" % (os.path.relpath(sluice), k)
            for phase in ("tail", "catchup"):
                print(fmt(label, phase, *best[phase]), flush=True)


if __name__ == "__main__":
    main()
