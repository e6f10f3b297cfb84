#!/usr/bin/python3
"""Does an independent Kafka implementation accept what our writers produce?

Runs the seed generator (tests/fuzz/seeds/records/gen_seeds.c, built by meson) in a
temporary folder, then reads every batch/set it wrote with kafka-python's own
MemoryRecords reader (its own CRC32C/CRC32 check) and compares the records with the
inputs gen_seeds.c was given. kafka-python here has only gzip, so the snappy/lz4/zstd
files are checked by test_records/test_legacy and by hand with kcat (see
vectors/capture_librdkafka.py). Exit 77 (meson: skipped) if kafka-python is missing.
Usage: kafka_python_reads.py GEN_SEEDS_EXE"""
import os, subprocess, sys, tempfile

try:
    from kafka.record.memory_records import MemoryRecords
except ImportError:
    sys.exit(77)

# gen_seeds.c's records: (key, value, timestamp, headers)
RECORDS = [
    (b"k0", b'{"a":1}', 1700000000000, [("trace", b"abc")]),
    (None, b'{"a":2}', 1700000000005, []),
    (b"k2", None, 1700000000001, []),
    (b"k3", b'{"a":4}', 1700000000009, []),
]

def read_all(path):
    mr = MemoryRecords(open(path, "rb").read())
    out = []
    while True:
        batch = mr.next_batch()
        if batch is None:
            return out
        if not batch.validate_crc():
            raise SystemExit("%s: kafka-python says the CRC is wrong" % path)
        out.extend(batch)

def main():
    gen = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([gen], cwd=tmp, check=True)
        checked = 0
        for name, magic, count in [("v2_none.bin", 2, 4), ("v2_gzip.bin", 2, 4),
                                   ("v0_none.bin", 0, 3), ("v0_gzip.bin", 0, 3),
                                   ("v1_none.bin", 1, 3), ("v1_gzip.bin", 1, 3)]:
            recs = read_all(os.path.join(tmp, name))
            if len(recs) != count:
                raise SystemExit("%s: %d records, want %d" % (name, len(recs), count))
            for i, r in enumerate(recs):
                key, value, ts, headers = RECORDS[i]
                want_ts = None if magic == 0 else ts
                got = (r.offset, r.key, r.value, r.timestamp)
                if got != (i, key, value, want_ts):
                    raise SystemExit("%s record %d: got %r want %r" % (name, i, got, (i, key, value, want_ts)))
                if magic == 2 and list(r.headers) != headers:
                    raise SystemExit("%s record %d headers %r" % (name, i, r.headers))
                checked += 1
        ctl = read_all(os.path.join(tmp, "v2_control_commit.bin"))
        # control key: version 0, type 1 (COMMIT); value: version 0, coordinator epoch 3
        if len(ctl) != 1 or ctl[0].key != b"\x00\x00\x00\x01" or ctl[0].value != b"\x00\x00\x00\x00\x00\x03":
            raise SystemExit("control batch: %r" % ctl)
        print("kafka-python read %d records from our writers, CRCs valid" % (checked + 1))

main()
