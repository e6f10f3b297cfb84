#!/usr/bin/python3
"""kafkajs 2.2.4 (pinned in tests/integration/js): admin.createTopics (and again: false,
the topic exists), fetchTopicMetadata (3 partitions led by node 1, replicas = isr = [1]),
a producer with acks=-1 sending 1000 keyed messages with headers (half uncompressed, half
gzip), and admin.fetchTopicOffsets (ListOffsets). kcat then consumes the topic and
finds every message with its header; the high watermarks add up to 1000.
"""
import json
import os
import sys

from harness import JS_DIR, Broker, kcat, kcat_path, node_available, npm_ci, run, skip

COUNT = 1000


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def main():
    if not node_available() or kcat_path() is None:
        skip("node or kcat missing")
    npm_ci(JS_DIR)
    with Broker(sys.argv[1], cores="2") as b:
        rc, out, err = run(["node", os.path.join(JS_DIR, "produce_admin.js"), b.bootstrap,
                            "js-topic", str(COUNT)], timeout_s=90)
        check(rc == 0, "kafkajs produce_admin.js exits 0\n" + out + err)
        d = json.loads(out)
        check(d["created"] is True and d["again"] is False,
              "createTopics: true, then false for the existing topic")
        check(d["partitions"] == [{"id": p, "leader": 1, "replicas": [1], "isr": [1]}
                                  for p in range(3)],
              "fetchTopicMetadata: 3 partitions, leader 1, replicas/isr [1]")
        check(all(a["err"] == 0 for a in d["acks"]), "every produce ack has error 0")
        check(sum(int(o["high"]) for o in d["offsets"]) == COUNT and
              all(o["low"] == "0" for o in d["offsets"]),
              "fetchTopicOffsets: high watermarks add up to %d" % COUNT)
        rc, out, err = kcat(b.bootstrap, "-C", "-t", "js-topic", "-o", "beginning", "-e",
                            "-q", "-f", "%k %s %h\n", timeout_s=60)
        got = sorted(out.split("\n")[:-1])
        want = sorted("k%d js-%d h=v%d" % (i % 10, i, i) for i in range(COUNT))
        check(rc == 0 and got == want, "kcat reads back all %d kafkajs messages with headers"
              % COUNT)


if __name__ == "__main__":
    main()
