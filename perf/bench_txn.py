#!/usr/bin/python3
"""Transactional produce vs idempotent produce, same run, same client (confluent-kafka).

Starts sluice (tests/integration/harness.Broker: fresh data dir, --cores 1 by default),
and for R rounds runs three modes in turn, each on its own 1-partition topic, producing N
messages of S bytes (acks=all, linger.ms=5):
  idempotent  enable.idempotence=true, one flush at the end: the plain streaming baseline;
  idem-sync   the same producer flushing every T messages: the cost of a sync point per T
              messages without any transaction (separates "a transaction waits for its
              records" from "a transaction's coordinator round trips");
  txn         transactional.id set, T messages per transaction: begin_transaction,
              produce T, flush(), commit_transaction(). commit_transaction() is timed on
              its own: after the flush its time is EndTxn's round trip (librdkafka sends
              EndTxn once the records are acknowledged); p50/p99 over every transaction.
The time of each T-message produce + flush() is also kept (p50/p99): in a transaction it
includes AddPartitionsToTxn, which librdkafka sends before the first record goes out.
Prints msgs/s per round and mode, the best of each, txn/idempotent, and EndTxn p50/p99
(of the round with the best txn throughput). --json FILE writes the same as JSON.

    /usr/bin/python3 perf/bench_txn.py build/sluice [--messages N] [--size S]
        [--per-txn T] [--rounds R] [--cores C] [--json FILE]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Broker  # noqa: E402

MODES = ("idempotent", "idem-sync", "txn")


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def produce_all(p, topic, value, count, errors):
    for _ in range(count):
        while True:
            try:
                p.produce(topic, value, on_delivery=lambda err, msg: err and errors.append(err))
                break
            except BufferError:
                p.poll(0.001)


def one_round(bootstrap, topic, mode, n, size, per_txn, round_no):
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "enable.idempotence": True, "queue.buffering.max.messages": 500000}
    if mode == "txn":
        conf["transactional.id"] = "bench-txn-%d" % round_no
    p = Producer(conf)
    if mode == "txn":
        p.init_transactions(30)
        p.begin_transaction()
    p.produce(topic, b"warm-up")   # metadata, producer id and (txn) partition added
    if mode == "txn":
        p.commit_transaction(30)
    else:
        p.flush(30)
    value = b"x" * size
    errors, commit_s, flush_s = [], [], []
    t0 = time.perf_counter()
    if mode == "idempotent":
        produce_all(p, topic, value, n, errors)
        left = p.flush(120)
    else:
        left = 0
        for _ in range(n // per_txn):
            if mode == "txn":
                p.begin_transaction()
            f0 = time.perf_counter()
            produce_all(p, topic, value, per_txn, errors)
            left += p.flush(60)
            flush_s.append(time.perf_counter() - f0)
            if mode == "txn":
                c0 = time.perf_counter()
                p.commit_transaction(30)
                commit_s.append(time.perf_counter() - c0)
    dt = time.perf_counter() - t0
    assert left == 0 and not errors, (mode, left, errors[:3])
    sent = n if mode == "idempotent" else (n // per_txn) * per_txn
    out = {"msgs_s": sent / dt, "mb_s": sent * size / dt / 1e6, "seconds": dt}
    if flush_s:
        flush_s.sort()
        out.update(produce_flush_ms_p50=percentile(flush_s, 0.50) * 1e3,
                   produce_flush_ms_p99=percentile(flush_s, 0.99) * 1e3)
    if commit_s:
        commit_s.sort()
        out.update(txn_s=len(commit_s) / dt, end_txn_ms_p50=percentile(commit_s, 0.50) * 1e3,
                   end_txn_ms_p99=percentile(commit_s, 0.99) * 1e3,
                   end_txn_ms_max=commit_s[-1] * 1e3, transactions=len(commit_s))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sluice")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--per-txn", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cores", default="1")
    ap.add_argument("--json")
    a = ap.parse_args()
    best = {}
    runs = []
    with Broker(a.sluice, cores=a.cores, config={"num.partitions": 1}) as b:
        for r in range(a.rounds):
            for mode in MODES:
                topic = "bench-%d-%s" % (r, mode)
                res = one_round(b.bootstrap, topic, mode, a.messages, a.size, a.per_txn, r)
                res.update(round=r, mode=mode)
                runs.append(res)
                line = "round %d %-10s %9.0f msg/s %7.1f MB/s" % (r, mode, res["msgs_s"],
                                                                   res["mb_s"])
                if mode != "idempotent":
                    line += "  produce+flush p50 %.2f ms p99 %.2f ms" % (
                        res["produce_flush_ms_p50"], res["produce_flush_ms_p99"])
                if mode == "txn":
                    line += "  %4.0f txn/s  commit_transaction p50 %.2f ms p99 %.2f ms" % (
                        res["txn_s"], res["end_txn_ms_p50"], res["end_txn_ms_p99"])
                print(line, flush=True)
                if mode not in best or res["msgs_s"] > best[mode]["msgs_s"]:
                    best[mode] = res
    for mode in MODES:
        print("best %-10s %9.0f msg/s %7.1f MB/s" % (mode, best[mode]["msgs_s"],
                                                    best[mode]["mb_s"]))
    ratio = best["txn"]["msgs_s"] / best["idempotent"]["msgs_s"]
    print("txn / idempotent: %.3f   txn / idem-sync (same sync points): %.3f" %
          (ratio, best["txn"]["msgs_s"] / best["idem-sync"]["msgs_s"]))
    print("EndTxn (commit_transaction after flush), best txn round: p50 %.2f ms p99 %.2f ms "
          "max %.2f ms over %d transactions" % (best["txn"]["end_txn_ms_p50"],
                                                best["txn"]["end_txn_ms_p99"],
                                                best["txn"]["end_txn_ms_max"],
                                                best["txn"]["transactions"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "runs": runs, "best": best, "txn_over_idempotent": ratio,
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, f, indent=1)


if __name__ == "__main__":
    main()
