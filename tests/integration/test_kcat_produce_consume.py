#!/usr/bin/python3
"""kcat (librdkafka) produces and consumes through a 2-shard broker, for every codec.

For each compression codec (none, gzip, snappy, lz4, zstd): create a 4-partition topic
(CreateTopics from kcat's auto-create path is not used: the topic is auto-created by
Metadata, which exercises LEADER_NOT_AVAILABLE then retry), produce MESSAGES keyed
messages with two headers -- among them null keys and null values (kcat -Z) -- with
acks=all, consume everything from the beginning (-e) and compare byte for byte: the
multiset of (key, value, headers) with their lengths (-1 for null), and per partition
offsets 0..n-1 in order. Then -Q: offsets for a time before the produce (0 for each
partition), and after (-1: none). And -L lists the topics with 4 partitions each led by
broker 1. The partitions of a topic are spread over both shards, so produce and fetch
requests are split and travel over the mesh.

librdkafka's default batch.size (1,000,000 bytes) is kept: batches near 1 MB are stored
(sluice.storage.chunk.bytes is sized for them).

MESSAGES is 100,000 per codec, as issue 5 asks.
"""
import collections
import sys
import time

from harness import Broker, kcat, kcat_path, skip

MESSAGES = 100000
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def make_input():
    lines = []
    expected = collections.Counter()
    for i in range(MESSAGES):
        if i % 97 == 0:
            key, value = "", "value-%d" % i           # null key (-Z)
        elif i % 89 == 0:
            key, value = "key-%d" % (i % 500), ""     # null value (tombstone)
        else:
            key, value = "key-%d" % (i % 500), "value-%d-%s" % (i, "x" * (i % 300))
        lines.append("%s\t%s" % (key, value))
        klen = len(key) if key else -1
        vlen = len(value) if value else -1
        expected[(klen, key, vlen, value, "h1=one,h2=two")] += 1
    return "\n".join(lines) + "\n", expected


def consume(bootstrap, topic):
    fmt = "%p\t%o\t%K\t%k\t%S\t%s\t%h\n"
    rc, out, err = kcat(bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
                        "-f", fmt, timeout_s=120)
    check(rc == 0, "kcat -C %s exits 0 (%s)" % (topic, err.strip()[-300:]))
    got = collections.Counter()
    offsets = collections.defaultdict(list)
    for line in out.split("\n"):
        if not line:
            continue
        p, o, klen, key, vlen, value, headers = line.split("\t")
        offsets[int(p)].append(int(o))
        got[(int(klen), key, int(vlen), value, headers)] += 1
    return got, offsets


def main():
    if kcat_path() is None:
        skip("kcat not installed")
    config = {"num.partitions": 4, "auto.create.topics.enable": "true"}
    with Broker(sys.argv[1], cores="2", config=config) as b:
        data, expected = make_input()
        before_ms = int(time.time() * 1000) - 1000
        for codec in CODECS:
            topic = "kc-" + codec
            t0 = time.monotonic()
            rc, out, err = kcat(b.bootstrap, "-P", "-t", topic, "-K", "\t", "-Z",
                                "-H", "h1=one", "-H", "h2=two", "-z", codec,
                                "-X", "acks=all", "-X", "enable.idempotence=false",
                                input=data, timeout_s=120)
            check(rc == 0 and "ERROR" not in err,
                  "kcat -P %d messages -z %s acks=all (%.1f s) %s"
                  % (MESSAGES, codec, time.monotonic() - t0, err.strip()[-300:]))
            got, offsets = consume(b.bootstrap, topic)
            check(got == expected,
                  "%s: consumed %d messages equal the produced ones byte for byte "
                  "(keys, values, null key/value lengths, headers)"
                  % (codec, sum(got.values())))
            check(sorted(offsets) == [0, 1, 2, 3] and
                  all(v == list(range(len(v))) for v in offsets.values()),
                  "%s: every partition holds offsets 0..n-1 in order (%s)"
                  % (codec, {p: len(v) for p, v in sorted(offsets.items())}))
        # One 900,000-byte message: a ~900 KB batch is stored and fetched whole.
        big = "B" * 900000
        rc, out, err = kcat(b.bootstrap, "-P", "-t", "kc-big", "-p", "0", "-X", "acks=all",
                            input=big + "\n", timeout_s=60)
        check(rc == 0 and "ERROR" not in err, "kcat -P one 900,000-byte message " + err[-200:])
        rc, out, err = kcat(b.bootstrap, "-C", "-t", "kc-big", "-p", "0", "-o", "beginning",
                            "-e", "-q", "-f", "%S %s\n", timeout_s=60)
        check(rc == 0 and out == "900000 %s\n" % big, "the 900,000-byte message comes back")
        # -Q: offsets for times. Before the produce: the first offset; after: -1 (none).
        topic = "kc-none"
        args = []
        for p in range(4):
            args += ["-t", "%s:%d:%d" % (topic, p, before_ms)]
        rc, out, err = kcat(b.bootstrap, "-Q", *args)
        check(rc == 0 and out.count("offset 0") == 4,
              "kcat -Q a time before the produce: offset 0 in every partition\n" + out + err)
        future_ms = int(time.time() * 1000) + 3600 * 1000
        rc, out, err = kcat(b.bootstrap, "-Q", "-t", "%s:0:%d" % (topic, future_ms))
        check(rc == 0 and "offset -1" in out, "kcat -Q a time after the produce: -1\n" + out)
        rc, out, err = kcat(b.bootstrap, "-L")
        check(rc == 0 and all('topic "kc-%s" with 4 partitions' % c in out for c in CODECS) and
              "leader 1, replicas: 1, isrs: 1" in out,
              "kcat -L lists every topic, 4 partitions led by broker 1")
        check(b.stop() == 0 and "level=error" not in b.stderr_tail(), "clean stop, no errors")


if __name__ == "__main__":
    main()
