#!/usr/bin/python3
"""64 connections x 1000 pipelined ApiVersions requests: every response arrives,
in request order, with its correlation id.

Each connection writes all 1000 requests (mixed ApiVersions versions 0-4, so
responses differ in size) before reading anything, so the broker sees deep
pipelines spread over many receive buffers. Run against two brokers: the
default in-flight bound, and sluice.conn.max.inflight=8 on 2 shards, where the
broker must stop reading each connection and resume it as responses leave.
"""
import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker  # noqa: E402
import kafka_schema  # noqa: E402
from test_clients_bootstrap import ADVERTISED  # noqa: E402  (the implemented APIs)

CONNECTIONS = 64
REQUESTS = 1000


def read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def client(bootstrap, index, errors):
    try:
        host, port = bootstrap.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=30)
        base = index * 1_000_000
        reqs, versions = [], []
        for i in range(REQUESTS):
            v = i % 5
            versions.append(v)
            reqs.append(kafka_schema.encode_request(
                18, v, base + i, "pipe-%d" % index,
                {"ClientSoftwareName": "pipe", "ClientSoftwareVersion": "1"}))
        sender = threading.Thread(target=sock.sendall, args=(b"".join(reqs),))
        sender.start()
        for i in range(REQUESTS):
            size = struct.unpack(">i", read_exact(sock, 4))[0]
            frame = read_exact(sock, size)
            corr, body = kafka_schema.parse_response(18, versions[i], frame)
            if corr != base + i:
                raise AssertionError("conn %d: response %d has correlation id %d, expected %d"
                                     % (index, i, corr, base + i))
            if body["ErrorCode"] != 0 or len(body["ApiKeys"]) != len(ADVERTISED):
                raise AssertionError("conn %d: bad body %s" % (index, body))
        sender.join()
        sock.close()
    except Exception as e:  # reported by the main thread
        errors.append("conn %d: %r" % (index, e))


def run_clients(bootstrap):
    # Load the schema cache once before the threads share it (kafka_schema's cache is
    # filled lazily and is not thread-safe).
    for v in range(5):
        kafka_schema.encode_request(18, v, 0, "warm", {})
        kafka_schema.parse_response(18, v, kafka_schema.encode_response(18, v, 0, {})[4:])
    errors = []
    threads = [threading.Thread(target=client, args=(bootstrap, i, errors))
               for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    alive = [t for t in threads if t.is_alive()]
    if alive or errors:
        raise AssertionError("%d clients hung; errors: %s" % (len(alive), errors[:5]))


BIG_TOPICS = ["t-%05d-%s" % (i, "z" * 40) for i in range(3000)]


def big_client(bootstrap, index, errors):
    """5 pipelined ~200 KB Metadata requests; 5 ~200 KB responses in order."""
    try:
        host, port = bootstrap.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=30)
        reqs = [kafka_schema.encode_request(3, 12, index * 10 + k, "big",
                                            {"Topics": [{"Name": n} for n in BIG_TOPICS]})
                for k in range(5)]
        sender = threading.Thread(target=sock.sendall, args=(b"".join(reqs),))
        sender.start()
        for k in range(5):
            size = struct.unpack(">i", read_exact(sock, 4))[0]
            corr, body = kafka_schema.parse_response(3, 12, read_exact(sock, size))
            if corr != index * 10 + k or [t["Name"] for t in body["Topics"]] != BIG_TOPICS:
                raise AssertionError("conn %d: response %d wrong (corr %d)" % (index, k, corr))
        sender.join()
        sock.close()
    except Exception as e:  # reported by the main thread
        errors.append("big conn %d: %r" % (index, e))


def run_big_clients(bootstrap, count):
    kafka_schema.encode_request(3, 12, 0, "warm", {})  # fill the schema cache first
    kafka_schema.parse_response(3, 12, kafka_schema.encode_response(3, 12, 0, {})[4:])
    errors = []
    threads = [threading.Thread(target=big_client, args=(bootstrap, i, errors))
               for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    if any(t.is_alive() for t in threads) or errors:
        raise AssertionError("big clients failed: %s" % errors[:5])


def main():
    sluice = sys.argv[1]
    # 32 connections x 5 pipelined 200 KB requests against only 16 receive buffers
    # (1 MiB): the provided-buffer ring runs dry (ENOBUFS ends the multishot recv, which
    # is re-armed) and every frame spans several buffers (the stash path).
    # Auto-creation off: the big Metadata requests name 3000 topics that must stay unknown.
    with Broker(sluice, cores="1", config={"sluice.net.recv.buffers": 16,
                                           "auto.create.topics.enable": "false"}) as b:
        run_big_clients(b.bootstrap, 32)
        assert b.stop() == 0
        enobufs = sum(int(x.split("=")[1]) for x in b.stderr_tail().split()
                      if x.startswith("recv_enobufs="))
        print("ok  32 x 5 pipelined 200 KB Metadata requests with 16 receive buffers "
              "(ENOBUFS re-arms: %d)" % enobufs)
    # The same against a 64 KiB input budget per shard: connections starting a frame wait
    # while the budget is spent; frames in progress always complete, so all finish.
    with Broker(sluice, cores="1", config={"sluice.shard.input.max.bytes": 65536,
                                           "auto.create.topics.enable": "false"}) as b:
        run_big_clients(b.bootstrap, 16)
        assert b.stop() == 0
        paused = sum(int(x.split("=")[1]) for x in b.stderr_tail().split()
                     if x.startswith("paused="))
        assert paused > 0, "the input budget never paused a connection"
        print("ok  16 x 5 pipelined 200 KB requests through a 64 KiB shard input budget "
              "(pauses: %d)" % paused)
    for cores, config in [("1", {}), ("2", {"sluice.conn.max.inflight": 8})]:
        with Broker(sluice, cores=cores, config=config) as b:
            run_clients(b.bootstrap)
            print("ok  %d x %d pipelined ApiVersions in order (cores=%s %s)"
                  % (CONNECTIONS, REQUESTS, cores, config))
            assert b.stop() == 0, "broker did not exit 0"
            tail = b.stderr_tail()
            assert "level=error" not in tail, tail
            paused = sum(int(x.split("=")[1]) for x in tail.split() if x.startswith("paused="))
            if "sluice.conn.max.inflight" in config:
                assert paused > 0, "the in-flight bound never paused a connection"
            print("ok  connections paused at the in-flight bound %d times" % paused)


if __name__ == "__main__":
    main()
