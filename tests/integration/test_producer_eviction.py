#!/usr/bin/python3
"""sluice.max.producers.per.partition bounds a partition's idempotent-producer table (LRU).

Raw protocol (harness.KafkaConn, hand-built idempotent batches from
test_idempotent_raw.py), one partition, sluice.max.producers.per.partition=2:
- producers A and B append (A, B, then A again: B is now the least recently used;
  recency moves on appends only -- answering a duplicate does not refresh it);
- both retried batches are still recognised as duplicates (2 producers fit);
- producer C appends: the table is full, B (least recently used) is evicted, A is not:
  A's retried batch still answers its original offset;
- B's retried batch is no longer recognised. What the client sees: error 0 and a NEW
  base offset -- the broker treats B as a producer it does not know and, as Kafka does
  since KIP-360 (2.5), accepts its batch at whatever sequence it carries. The records
  are stored a second time (fetched back: two copies). A client that retried because
  an earlier answer was lost gets a duplicate in the log; this is the price of the
  bound, exactly as with Kafka when producer.id.expiration.ms has passed.
- B continues in sequence after its re-appended batch (state rebuilt from it).
The same steps against a broker with the default bound (4096): B's retry answers its
original offset and is stored once -- the difference is the configured key.
producer.id.expiration.ms=1000: a retry within the second is recognised; one sent after
the producer has been idle longer is not (a new offset, as above).
"""
import sys
import time

from harness import Broker, KafkaConn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_idempotent_raw import (count_records, create, idem_batch, init_pid,  # noqa: E402
                                 send, values, TOPIC)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def scenario(sluice, max_producers):
    """Run the steps; returns (B's retry answer, B's first offset, copies of B's records)."""
    cfg = {"num.partitions": 1}
    if max_producers is not None:
        cfg["sluice.max.producers.per.partition"] = max_producers
    label = "max=%s" % (max_producers or "default")
    with Broker(sluice, config=cfg) as b, KafkaConn(b.bootstrap) as c:
        check(create(c, TOPIC, 1, []) == 0, "%s: topic created" % label)
        a, bb, cc = (init_pid(c, 4)[1] for _ in range(3))
        check(len({a, bb, cc}) == 3, "%s: three producer ids %d %d %d" % (label, a, bb, cc))
        a0 = idem_batch(a, 0, 0, values(b"A0", 2))
        b0 = idem_batch(bb, 0, 0, values(b"B0", 2))
        a1 = idem_batch(a, 0, 2, values(b"A1", 2))
        ec, off_a0 = send(c, a0)
        check(ec == 0, "%s: A seq 0 appended at %d" % (label, off_a0))
        ec, off_b0 = send(c, b0)
        check(ec == 0, "%s: B seq 0 appended at %d" % (label, off_b0))
        ec, off_a1 = send(c, a1)
        check(ec == 0, "%s: A seq 2 appended at %d (B is now least recently used)"
              % (label, off_a1))
        check(send(c, b0) == (0, off_b0), "%s: B's retry recognised before C" % label)
        check(send(c, a1) == (0, off_a1), "%s: A's retry recognised before C" % label)
        ec, off_c0 = send(c, idem_batch(cc, 0, 0, values(b"C0", 1)))
        check(ec == 0, "%s: C seq 0 appended at %d" % (label, off_c0))
        check(send(c, a1) == (0, off_a1),
              "%s: after C, A's retry still answers its offset %d" % (label, off_a1))
        b_retry = send(c, b0)
        copies = count_records(c, b"B0-0")
        if b_retry[1] != off_b0:
            ec, off_b1 = send(c, idem_batch(bb, 0, 2, values(b"B1", 1)))
            check(ec == 0 and off_b1 > b_retry[1],
                  "%s: B continues at seq 2 after its re-appended batch (%d)" % (label, off_b1))
        return b_retry, off_b0, copies


def expiration(sluice):
    cfg = {"num.partitions": 1, "producer.id.expiration.ms": 1000}
    with Broker(sluice, config=cfg) as b, KafkaConn(b.bootstrap) as c:
        check(create(c, TOPIC, 1, []) == 0, "expiry: topic created")
        pid = init_pid(c, 4)[1]
        batch = idem_batch(pid, 0, 0, values(b"X0", 1))
        ec, off = send(c, batch)
        check(ec == 0, "expiry: appended at %d" % off)
        check(send(c, batch) == (0, off), "expiry: retry within 1 s recognised")
        time.sleep(1.5)
        ec, again = send(c, batch)
        check(ec == 0 and again > off,
              "expiry: retry after 1.5 s idle no longer recognised (new offset %d)" % again)


def main():
    sluice = sys.argv[1]
    (ec, off), off_b0, copies = scenario(sluice, 2)
    check(ec == 0, "max=2: B's retried batch answered with error 0")
    check(off > off_b0, "max=2: ... at a new offset %d, not its original %d (B was evicted)"
          % (off, off_b0))
    check(copies == 2, "max=2: B's records are stored twice (%d copies)" % copies)

    (ec, off), off_b0, copies = scenario(sluice, None)
    check((ec, off) == (0, off_b0),
          "default bound: B's retry answers its original offset %d" % off_b0)
    check(copies == 1, "default bound: B's records are stored once (%d)" % copies)
    expiration(sluice)
    print("PASS")


if __name__ == "__main__":
    main()
