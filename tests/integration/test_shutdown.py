#!/usr/bin/python3
"""SIGTERM with clients connected: the broker stops accepting, answers what it
has, closes every connection and exits 0 within 5 s.

Clients at the moment of the signal: 40 idle connections, 8 connections in the
middle of a pipelined stream of requests, and one that sent half a frame.
"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, KafkaConn, run, wait_for  # noqa: E402
import kafka_schema  # noqa: E402


def streamer(bootstrap, stop, counts, i):
    try:
        host, port = bootstrap.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10)
        req = kafka_schema.encode_request(18, 3, i, "stream", {})
        while not stop.is_set():
            s.sendall(req * 50)
            got = s.recv(65536)
            if not got:
                break
            counts[i] += len(got)
        s.close()
    except OSError:
        pass  # the broker closing under us is the point


def main():
    sluice = sys.argv[1]
    with Broker(sluice, cores="2") as b:
        idle = [KafkaConn(b.bootstrap) for _ in range(40)]
        for c in idle[:5]:
            assert c.request("ApiVersions", 3)["ErrorCode"] == 0
        # A second broker on the same port must refuse to start, not share it.
        rc, out, err = run([sluice, "serve", "--listen", b.bootstrap, "--data-dir",
                            os.path.join(b.tmp_dir, "second")], timeout_s=20)
        assert rc == 1 and "Address already in use" in err, (rc, err)
        print("ok  a second broker on the same port exits 1 (address in use)")
        half = KafkaConn(b.bootstrap)
        half.send_raw(b"\x00\x00\x00\x40\x00\x12")
        stop = threading.Event()
        counts = [0] * 8
        threads = [threading.Thread(target=streamer, args=(b.bootstrap, stop, counts, i))
                   for i in range(8)]
        for t in threads:
            t.start()
        assert wait_for(lambda: all(c > 0 for c in counts), 10), \
            "streams flowing before the signal: %s" % counts
        t0 = time.monotonic()
        rc = b.stop(timeout=5.0)
        elapsed = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join(timeout=10)
        assert rc == 0, "exit code %s\n%s" % (rc, b.stderr_tail())
        assert elapsed < 5.0, "took %.2f s" % elapsed
        print("ok  SIGTERM with 49 clients connected: exit 0 after %.2f s" % elapsed)
        assert all(c.is_closed(timeout_s=2) for c in idle), "idle connections closed"
        assert half.is_closed(timeout_s=2), "half-frame connection closed"
        tail = b.stderr_tail()
        assert "event=stopped exit=0" in tail, tail
        print("ok  every connection closed, 'stopped' logged")

    # A client that pipelines large requests and never reads: its responses cannot leave,
    # so the drain gives up at sluice.shutdown.timeout.ms and the broker still exits 0.
    # (auto-creation off: 3000 named topics would otherwise be created)
    with Broker(sluice, cores="1", config={"sluice.shutdown.timeout.ms": 2000,
                                           "auto.create.topics.enable": "false"}) as b:
        big = {"Topics": [{"Name": "t-%05d-%s" % (i, "y" * 40)} for i in range(3000)]}
        req = kafka_schema.encode_request(3, 12, 1, "stuck", big)
        host, port = b.bootstrap.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(0.2)
        sent = 0
        try:
            for _ in range(200):
                s.sendall(req)
                sent += 1
        except socket.timeout:
            pass  # the broker stopped reading us: it is backed up
        time.sleep(0.5)
        t0 = time.monotonic()
        rc = b.stop(timeout=5.0)
        elapsed = time.monotonic() - t0
        assert rc == 0, "exit code %s\n%s" % (rc, b.stderr_tail())
        assert 1.5 < elapsed < 5.0, "took %.2f s (expected the 2 s drain limit)" % elapsed
        s.close()
        assert "connections_left=1" in b.stderr_tail(), b.stderr_tail()
        print("ok  a client that never reads: drain gave up, exit 0 after %.2f s (%d requests sent)"
              % (elapsed, sent))


if __name__ == "__main__":
    main()
