#!/usr/bin/python3
"""make_manifest: check every captured golden frame and (re)write the MANIFEST.

For each tests/data/golden/*.bin (a request frame: header + body, no size
prefix) it parses the request header and the whole body with
tests/tools/kafka_schema.py against the Kafka message definitions, and
refuses the set (exit 1) if a frame does not parse to its last byte, if the
parsed frame does not re-encode to the same bytes, if a Produce frame's
record batch CRC (CRC32C for magic 2, CRC32 for magic 0/1) does not check,
if the api key/version in the file name disagree with the header, or if a
frame contains this machine's host name. Then it writes MANIFEST, one line a
frame:
    <file> <api_key> <api_version> <client>
sorted by file name. With --check it only verifies that MANIFEST is current.
"""

import argparse
import os
import re
import socket
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_schema as ks  # noqa: E402

NAME_RE = re.compile(r"^(?P<client>.+)-(?P<api>[a-z]+)-v(?P<ver>\d+)"
                     r"(-(?P<n>\d+))?\.bin$")


CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def check_records(records):
    """Walk a Produce partition's record set; verify every batch/message CRC.

    Returns a short description ("v2 gzip 1 batch 2 records") or raises
    ValueError. Magic 2 batches use CRC32C over attributes..end; magic 0/1
    messages use CRC32 (zlib) over magic..end.
    """
    pos, parts = 0, []
    while pos < len(records):
        if len(records) - pos < 17:
            raise ValueError("truncated batch header at %d" % pos)
        _, size = struct.unpack_from(">qi", records, pos)
        end = pos + 12 + size
        if size < 5 or end > len(records):
            raise ValueError("batch size %d overruns record set" % size)
        magic = records[pos + 16]
        if magic == 2:
            crc, attrs = struct.unpack_from(">Ih", records, pos + 17)
            count = struct.unpack_from(">i", records, pos + 57)[0]
            if crc32c(records[pos + 21:end]) != crc:
                raise ValueError("record batch CRC32C mismatch")
            flags = "".join([" transactional" if attrs & 0x10 else "",
                             " control" if attrs & 0x20 else ""])
            parts.append("v2 %s %d records%s" % (CODECS[attrs & 7], count,
                                                 flags))
        elif magic in (0, 1):
            crc = struct.unpack_from(">I", records, pos + 12)[0]
            attrs = records[pos + 17]
            if zlib.crc32(records[pos + 16:end]) != crc:
                raise ValueError("message v%d CRC32 mismatch" % magic)
            parts.append("v%d %s" % (magic, CODECS[attrs & 7]))
        else:
            raise ValueError("unknown magic %d" % magic)
        pos = end
    return ", ".join(parts)


def describe_produce(body):
    out = []
    for t in body["TopicData"]:
        for p in t["PartitionData"]:
            if p["Records"] is not None:
                out.append(check_records(p["Records"]))
    return "acks=%d [%s]" % (body["Acks"], "; ".join(out))


def check_frame(path, hostname):
    """Return (api_key, version, client, summary) or raise ValueError."""
    fn = os.path.basename(path)
    m = NAME_RE.match(fn)
    if not m:
        raise ValueError("%s: name is not <client>-<api>-v<N>[-N].bin" % fn)
    with open(path, "rb") as f:
        frame = f.read()
    try:
        header, body = ks.parse_request(frame)
    except ks.DecodeError as e:
        raise ValueError("%s: does not parse: %s" % (fn, e))
    except ValueError as e:
        raise ValueError("%s: %s" % (fn, e))
    api_key = header["RequestApiKey"]
    version = header["RequestApiVersion"]
    again = ks.encode_request(api_key, version, header["CorrelationId"],
                              header.get("ClientId"), body)[4:]
    if again != frame:
        raise ValueError("%s: re-encoding the parsed frame differs" % fn)
    name = ks.snake(ks.api_names()[api_key])
    if name != m.group("api") or version != int(m.group("ver")):
        raise ValueError("%s: header says %s v%d" % (fn, name, version))
    if hostname and hostname.encode() in frame:
        raise ValueError("%s: contains the host name %r" % (fn, hostname))
    summary = "corr=%d client_id=%r %d bytes" % (
        header["CorrelationId"], header.get("ClientId"), len(frame))
    if api_key == 0:
        try:
            summary += " " + describe_produce(body)
        except ValueError as e:
            raise ValueError("%s: %s" % (fn, e))
    return api_key, version, m.group("client"), summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden"))
    ap.add_argument("--check", action="store_true",
                    help="verify MANIFEST is current; do not write it")
    args = ap.parse_args()

    hostname = socket.gethostname()
    if hostname in ("localhost", "127.0.0.1"):
        hostname = None
    lines, failed = [], False
    for fn in sorted(os.listdir(args.dir)):
        if not fn.endswith(".bin"):
            continue
        try:
            key, ver, client, summary = check_frame(
                os.path.join(args.dir, fn), hostname)
        except ValueError as e:
            print("FAIL " + str(e))
            failed = True
            continue
        print("ok   %-44s %s" % (fn, summary))
        lines.append("%s %d %d %s\n" % (fn, key, ver, client))
    if failed:
        return 1
    manifest = os.path.join(args.dir, "MANIFEST")
    text = "".join(lines)
    if args.check:
        with open(manifest) as f:
            if f.read() != text:
                print("MANIFEST is stale: run %s" % sys.argv[0])
                return 1
        return 0
    with open(manifest, "w") as f:
        f.write(text)
    print("wrote %s (%d frames)" % (manifest, len(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
