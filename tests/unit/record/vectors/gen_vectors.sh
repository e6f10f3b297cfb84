#!/bin/sh
# Regenerate the interop vectors in this folder (the rdk_* files come from
# capture_librdkafka.py, see its header). They come from tools that are not
# sluice: kafka-python's own RecordBatch/MessageSet builders (pure Python, its own
# CRC32C) and the gzip / zstd / lz4 command-line tools. Run from this folder:
#   sh gen_vectors.sh
set -eu
/usr/bin/python3 - <<'PY'
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

PAD = b"." * 100  # so gzip pays off and kafka-python keeps it compressed

# v2: the records test_interop.c expects (see kp_records there).
def v2(codec, name):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=0,
                                  producer_id=4242, producer_epoch=7, base_sequence=100,
                                  batch_size=1 << 20)
    b.append(0, 1700000000000, b"key-0", b"value-0" + PAD, [("h1", b"v1"), ("h2", None)])
    b.append(1, 1700000000007, None, b"value-1" + PAD, [])
    b.append(2, 1700000000003, b"key-2", None, [])
    open(name, "wb").write(bytes(b.build()))

v2(0, "kp_v2_none.bin")
v2(1, "kp_v2_gzip.bin")

def legacy(magic, codec, name):
    b = LegacyRecordBatchBuilder(magic=magic, compression_type=codec, batch_size=1 << 20)
    b.append(0, 1700000000000, b"key-0", b"value-0" + PAD)
    b.append(1, 1700000000007, None, b"value-1" + PAD)
    b.append(2, 1700000000003, b"key-2", None)
    open(name, "wb").write(bytes(b.build()))

legacy(0, 0, "kp_v0_none.bin")
legacy(0, 1, "kp_v0_gzip.bin")
legacy(1, 0, "kp_v1_none.bin")
legacy(1, 1, "kp_v1_gzip.bin")

# Text for the codec CLIs: JSON-ish lines, compressible but not trivial.
with open("text.txt", "w") as f:
    for i in range(3000):
        f.write('{"id":%d,"user":"user-%d","score":%d,"tags":["a%d","b"]}\n'
                % (i, i * 7919 % 1000, i * i % 977, i % 13))
PY
gzip -9 -n -c text.txt > text.txt.gz
zstd -q -19 -f -o text.txt.zst text.txt
lz4 -q -f text.txt text.txt.lz4
# A zstd bomb: 1 GiB of zeros in a few tens of KiB.
head -c 1073741824 /dev/zero | zstd -q -19 -c > zeros_1g.zst
