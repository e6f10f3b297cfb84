#!/usr/bin/python3
"""`sluice check` prints one line per probe and exits 0 only when every required
feature is present (this test host has them all: kernel 6.x, io_uring with provided
buffer rings and multishot accept)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run  # noqa: E402

rc, out, err = run([sys.argv[1], "check"], timeout_s=30)
lines = out.strip().splitlines()
names = ["kernel", "io_uring", "io_uring READ/WRITE_FIXED", "io_uring SEND_ZC/SENDMSG_ZC",
         "io_uring provided buffer ring", "io_uring multishot accept",
         "io_uring multishot recv", "hugepages", "memlock limit", "cores", "dpdk"]
for name in names:
    assert any(line.split(None, 1)[1].startswith(name) for line in lines[:-1]), (name, out)
missing = [line for line in lines if line.startswith("MISSING")]
assert (rc == 0) == (not missing), (rc, out)
assert rc == 0 and lines[-1].startswith("ready"), (rc, out, err)
print("ok  sluice check: %d probes, ready, exit 0" % (len(lines) - 1))
