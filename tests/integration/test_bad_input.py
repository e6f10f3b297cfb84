#!/usr/bin/python3
"""Bad input closes the offending connection cleanly; the broker keeps serving.

Frame sizes -1, 0 and 2^31-1 (refused from the size alone), a header that does
not parse, an unknown api key, a known but unimplemented api (Produce), a
half-sent frame then silence (closed after connections.max.idle.ms), and 2,000
connections opened at once against max.connections=1000 (1,000 held and
served, the rest closed at once; the broker keeps answering). After each case a
fresh connection must still get an ApiVersions answer.
"""
import os
import resource
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, KafkaConn, kcat  # noqa: E402
import kafka_schema  # noqa: E402

IDLE_MS = 600


def serving(b):
    with KafkaConn(b.bootstrap) as c:
        return c.request("ApiVersions", 3)["ErrorCode"] == 0


def expect_closed(b, what, payload):
    with KafkaConn(b.bootstrap) as c:
        c.send_raw(payload)
        assert c.is_closed(timeout_s=3), what + ": connection not closed"
    assert b.running() and serving(b), what + ": broker stopped serving"
    print("ok  " + what + ": closed, broker still serving")


def header(api_key, version, corr=1, client_id=b"bad"):
    return struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id


def main():
    sluice = sys.argv[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16384)), hard))
    config = {"connections.max.idle.ms": IDLE_MS, "max.connections": 1000,
              "socket.request.max.bytes": 1 << 20}
    with Broker(sluice, cores="2", config=config) as b:
        expect_closed(b, "frame size -1", struct.pack(">i", -1) + b"x" * 16)
        expect_closed(b, "frame size 0", struct.pack(">i", 0))
        expect_closed(b, "frame size 2^31-1", struct.pack(">i", 2**31 - 1) + b"x" * 100)
        expect_closed(b, "frame size over socket.request.max.bytes",
                      struct.pack(">i", (1 << 20) + 1))
        expect_closed(b, "3-byte body", struct.pack(">i", 3) + b"\x00\x12\x00")
        bad = header(18, 3, client_id=b"x")[:-1] + struct.pack(">h", 500)  # client id overruns
        expect_closed(b, "header whose client_id overruns the frame",
                      struct.pack(">i", len(bad)) + bad)
        bad = header(3, 12) + b"\xff\xff\xff\xff\x0f"  # Metadata topics count: bad varint
        expect_closed(b, "Metadata body that does not parse", struct.pack(">i", len(bad)) + bad)
        for key in (1000, -1, 999):
            h = header(key, 0)
            expect_closed(b, "unknown api key %d" % key, struct.pack(">i", len(h)) + h)
        h = header(0, 9) + b"\x00" * 16
        expect_closed(b, "known but unimplemented api (Produce)", struct.pack(">i", len(h)) + h)
        h = header(3, 99)
        expect_closed(b, "Metadata at an unsupported version", struct.pack(">i", len(h)) + h)

        # Pipelined good request followed by garbage: the good one is answered first.
        with KafkaConn(b.bootstrap) as c:
            good = kafka_schema.encode_request(18, 2, 41, "x", {})
            c.send_raw(good + struct.pack(">i", -5))
            corr, body = kafka_schema.parse_response(18, 2, c.recv_frame())
            assert corr == 41 and body["ErrorCode"] == 0
            assert c.is_closed(timeout_s=3)
        print("ok  good request answered before the bad frame closes the connection")

        # Half a frame, then silence: closed by the idle timeout, not before.
        with KafkaConn(b.bootstrap) as c:
            t0 = time.monotonic()
            c.send_raw(struct.pack(">i", 100) + b"\x00\x12\x00\x03")
            assert not c.is_closed(timeout_s=IDLE_MS / 1000 * 0.5), "closed too early"
            assert c.is_closed(timeout_s=5), "half frame never timed out"
            waited = time.monotonic() - t0
            assert IDLE_MS / 1000 * 0.9 <= waited <= IDLE_MS / 1000 + 3, waited
        print("ok  half-sent frame closed after the idle timeout (%.2f s)" % waited)

        assert b.stop() == 0
        tail = b.stderr_tail()
        assert "event=unsupported_request" in tail and "event=bad_frame_size" in tail, tail

    # 2,000 connections at once; max.connections=1000 (default idle timeout).
    with Broker(sluice, cores="2", config={"max.connections": 1000}) as b:
        time.sleep(0.5)  # the harness's readiness probe connection must be gone first
        host, port = b.bootstrap.rsplit(":", 1)
        socks = []
        for _ in range(2000):
            s = socket.socket()
            s.settimeout(10)
            s.connect((host, int(port)))
            socks.append(s)
        time.sleep(1.0)
        req = kafka_schema.encode_request(18, 0, 7, "many", {})
        served = refused = 0
        for s in socks:
            try:
                s.sendall(req)
                head = s.recv(4)
                if len(head) == 4:
                    size = struct.unpack(">i", head)[0]
                    data = b""
                    while len(data) < size:
                        chunk = s.recv(size - len(data))
                        if not chunk:
                            break
                        data += chunk
                    served += 1
                else:
                    refused += 1
            except (ConnectionResetError, BrokenPipeError):
                refused += 1
        assert served == 1000 and refused == 1000, (served, refused)
        print("ok  2000 connections: %d held and served, %d refused cleanly" % (served, refused))
        rc, out, err = kcat(b.bootstrap, "-L", timeout_s=30)
        assert rc != 0 or "1 brokers" in out  # at the limit a new client may be refused
        for s in socks:
            s.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not serving_safe(b):
            time.sleep(0.1)
        assert serving(b), "broker serves again once connections are released"
        rc, out, err = kcat(b.bootstrap, "-L", timeout_s=30)
        assert rc == 0 and "1 brokers" in out, out + err
        print("ok  after releasing them, kcat -L works again")
        assert b.stop() == 0
        assert "event=conn_refused" in b.stderr_tail()


def serving_safe(b):
    try:
        return serving(b)
    except OSError:
        return False


if __name__ == "__main__":
    main()
