#!/usr/bin/python3
"""Capture the rdk_*.bin interop vectors: a minimal fake Kafka broker that answers
ApiVersions, Metadata and Produce (non-flexible versions) so that kcat (librdkafka)
sends real message sets / record batches, and appends each one's raw bytes to
OUTDIR/<topic>.bin. The advertised Produce/Fetch maximum versions pick librdkafka's
message format: (1, 1) -> magic 0, (2, 2) -> magic 1, (7, 11) -> magic 2 (FindCoordinator
is advertised because librdkafka enables lz4 only with it). Usage, per format:

  /usr/bin/python3 capture_librdkafka.py 19092 OUTDIR PRODUCE_MAX FETCH_MAX &
  kcat -P -b 127.0.0.1:19092 -t rdk_gzip -z gzip -K: -X linger.ms=100 -l rdk_msgs.txt

librdkafka sends zstd only with magic 2 (it falls back to uncompressed for 0/1), so
there are no rdk_v0_zstd / rdk_v1_zstd files. Test-only tool: not part of sluice.

Serve mode (the other direction: does librdkafka accept batches sluice wrote?):

  /usr/bin/python3 capture_librdkafka.py 19092 DIR serve &
  kcat -C -b 127.0.0.1:19092 -t v2_zstd -p 0 -o 0 -e -Z -f '%k|%s|%h\n'

answers Fetch v4 for topic T with the bytes of DIR/T.bin at offset 0 (one v2 batch
with base offset 0, or a v0/v1 message set starting at offset 0) and an empty,
end-of-partition answer after it."""
import socket, struct, sys, threading

PORT = int(sys.argv[1]); OUTDIR = sys.argv[2]
SERVE = sys.argv[3] == "serve"
PRODUCE_MAX = 7 if SERVE else int(sys.argv[3])
FETCH_MAX = 4 if SERVE else int(sys.argv[4])

def rd(fmt, b, o):
    v = struct.unpack_from(fmt, b, o); return v[0], o + struct.calcsize(fmt)
def rstr(b, o):
    n, o = rd(">h", b, o)
    if n < 0: return None, o
    return b[o:o+n].decode(), o + n
def wstr(s):
    if s is None: return struct.pack(">h", -1)
    e = s.encode(); return struct.pack(">h", len(e)) + e

def metadata(ver, body):
    o = 0; topics = []
    n, o = rd(">i", body, o)
    for _ in range(max(n, 0)):
        t, o = rstr(body, o); topics.append(t)
    out = b""
    if ver >= 3: out += struct.pack(">i", 0)
    out += struct.pack(">i", 1) + struct.pack(">i", 1) + wstr("127.0.0.1") + struct.pack(">i", PORT)
    if ver >= 1: out += wstr(None)
    if ver >= 2: out += wstr("fake")
    if ver >= 1: out += struct.pack(">i", 1)
    out += struct.pack(">i", len(topics))
    for t in topics:
        out += struct.pack(">h", 0) + wstr(t)
        if ver >= 1: out += b"\x00"
        out += struct.pack(">i", 1) + struct.pack(">hii", 0, 0, 1)
        if ver >= 7: out += struct.pack(">i", 0)
        out += struct.pack(">ii", 1, 1) + struct.pack(">ii", 1, 1)
        if ver >= 5: out += struct.pack(">i", 0)
    return out

def produce(ver, body):
    o = 0
    if ver >= 3: _, o = rstr(body, o)
    acks, o = rd(">h", body, o); _, o = rd(">i", body, o)
    nt, o = rd(">i", body, o); resp = []
    for _ in range(nt):
        t, o = rstr(body, o); np_, o = rd(">i", body, o); parts = []
        for _ in range(np_):
            p, o = rd(">i", body, o); n, o = rd(">i", body, o)
            rec = body[o:o+n]; o += n
            with open("%s/%s.bin" % (OUTDIR, t), "ab") as f: f.write(rec)
            parts.append(p)
        resp.append((t, parts))
    out = struct.pack(">i", len(resp))
    for t, parts in resp:
        out += wstr(t) + struct.pack(">i", len(parts))
        for p in parts:
            out += struct.pack(">ihq", p, 0, 0)
            if ver >= 2: out += struct.pack(">q", -1)
            if ver >= 5: out += struct.pack(">q", 0)
    if ver >= 1: out += struct.pack(">i", 0)
    return out, acks

def last_legacy_offset(data):
    o = 0; last = 0
    while o + 12 <= len(data):
        last = struct.unpack_from(">q", data, o)[0]; o += 12 + struct.unpack_from(">i", data, o + 8)[0]
    return last

def fetch(ver, body):
    assert ver == 4
    o = 16; _, o = rd(">b", body, o)
    nt, o = rd(">i", body, o); out = struct.pack(">i", 0) + struct.pack(">i", nt)
    for _ in range(nt):
        t, o = rstr(body, o); np_, o = rd(">i", body, o)
        out += wstr(t) + struct.pack(">i", np_)
        data = open("%s/%s.bin" % (OUTDIR, t), "rb").read()
        # v2: base offset 0 + last_offset_delta; legacy sets: the last message's offset
        last = struct.unpack_from(">i", data, 23)[0] if data[16] == 2 else last_legacy_offset(data)
        for _ in range(np_):
            p, o = rd(">i", body, o); off, o = rd(">q", body, o); _, o = rd(">i", body, o)
            recs = data if off == 0 else b""
            out += struct.pack(">ihqq", p, 0, last + 1, last + 1) + struct.pack(">i", 0)
            out += struct.pack(">i", len(recs)) + recs
    return out

def serve(c):
    buf = b""
    while True:
        while len(buf) < 4 or len(buf) < 4 + struct.unpack_from(">i", buf)[0]:
            d = c.recv(65536)
            if not d: return
            buf += d
        n = struct.unpack_from(">i", buf)[0]; req = buf[4:4+n]; buf = buf[4+n:]
        key, ver, corr = struct.unpack_from(">hhi", req); o = 8
        _, o = rstr(req, o); body = req[o:]
        if key == 18:
            apis = [(0, 0, PRODUCE_MAX), (1, 0, FETCH_MAX), (3, 0, 7), (10, 0, 2), (18, 0, 3)]
            if ver >= 3:
                out = struct.pack(">h", 0) + bytes([len(apis) + 1])
                for a in apis: out += struct.pack(">hhh", *a) + b"\x00"
                out += struct.pack(">i", 0) + b"\x00"
            else:
                out = struct.pack(">hi", 0, len(apis))
                for a in apis: out += struct.pack(">hhh", *a)
                if ver >= 1: out += struct.pack(">i", 0)
        elif key == 3: out = metadata(ver, body)
        elif key == 1: out = fetch(ver, body)
        elif key == 0:
            out, acks = produce(ver, body)
            if acks == 0: continue
        else:
            print("unhandled api", key, ver, file=sys.stderr); return
        msg = struct.pack(">i", corr) + out
        c.sendall(struct.pack(">i", len(msg)) + msg)

s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", PORT)); s.listen(8)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
