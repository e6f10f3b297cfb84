#!/usr/bin/env python3
"""check_crossimpl.py DUMP_EXE REPO_ROOT: cross-check the generated C codec against an
independent implementation, tests/tools/kafka_schema.py (a Python encoder/decoder written
separately from the same JSON definitions for the capture tooling).

DUMP_EXE prints messages filled with non-default values and encoded by the C codec for every
API, version, request and response. Each must decode with kafka_schema to the last byte, and
kafka_schema's re-encoding of what it decoded must give the same bytes. A version condition
that is wrong symmetrically in the C encoder and decoder passes the C round-trip test but
fails here. Exit 77 (skip) when kafka_schema.py or its JSON input is absent."""
import os
import subprocess
import sys


def main():
    exe, repo = sys.argv[1], os.path.abspath(sys.argv[2])
    tools = os.path.join(repo, "tests", "tools")
    if not os.path.exists(os.path.join(tools, "kafka_schema.py")):
        print("skip: tests/tools/kafka_schema.py not present")
        return 77
    sys.path.insert(0, tools)
    import kafka_schema as ks
    if not os.path.isdir(ks.MESSAGE_DIR):
        print("skip: %s not present" % ks.MESSAGE_DIR)
        return 77
    out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    checked, failures = 0, []
    for line in out.splitlines():
        parts = line.split()
        kind, key, version = parts[:3]
        hexbytes = parts[3] if len(parts) > 3 else ""
        key, version = int(key), int(version)
        data = bytes.fromhex(hexbytes)
        schema = ks.request_schema(key) if kind == "request" else ks.response_schema(key)
        what = "%s %s v%d" % (schema.name, kind, version)
        try:
            r = ks.Reader(data)
            value = ks.Decoder(schema, version).decode(r)
            if r.remaining() != 0:
                failures.append("%s: %d bytes left" % (what, r.remaining()))
                continue
            again = ks.Encoder(schema, version).encode(value)
            if again != data:
                failures.append("%s: re-encoding differs (%d vs %d bytes)"
                                % (what, len(again), len(data)))
                continue
        except ks.DecodeError as e:
            failures.append("%s: %s" % (what, e))
            continue
        checked += 1
    for f in failures[:30]:
        print("FAIL", f)
    print("%d messages agree, %d disagree" % (checked, len(failures)))
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
