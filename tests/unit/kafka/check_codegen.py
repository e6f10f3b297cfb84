#!/usr/bin/env python3
"""check_codegen.py REPO_ROOT: re-run the Kafka codec generator into a temporary folder and
fail if any committed generated file under dataplane/kafka differs (they must never drift).
Exit 77 (meson: skipped) when the JSON input folder is not present on this machine."""
import difflib
import os
import subprocess
import sys
import tempfile

GENERATED = ["kafka_msgs.h", "kafka_msgs.c", "kafka_msgs_requests.c",
             "kafka_msgs_responses.c", "kafka_msgs_fill.h", "kafka_msgs_fill.c"]


def main():
    repo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    gen = os.path.join(repo, "dataplane", "kafka", "gen", "kafka_codegen.py")
    indir = os.path.normpath(os.path.join(repo, "..", "shared", "kafka-protocol", "message"))
    if not os.path.isdir(indir):
        print("skip: generator input %s not found" % indir)
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, gen, "--input", indir, "--output", tmp], check=True)
        bad = 0
        produced = sorted(os.listdir(tmp))
        if produced != sorted(GENERATED):
            print("generator output set changed: %s" % produced)
            bad += 1
        for name in GENERATED:
            committed = os.path.join(repo, "dataplane", "kafka", name)
            fresh = os.path.join(tmp, name)
            a = open(committed, encoding="utf-8").read().splitlines() if os.path.exists(committed) else []
            b = open(fresh, encoding="utf-8").read().splitlines() if os.path.exists(fresh) else []
            if a != b:
                bad += 1
                diff = list(difflib.unified_diff(a, b, "committed/" + name, "fresh/" + name,
                                                 lineterm=""))
                print("\n".join(diff[:40]))
        if bad:
            print("FAIL: %d generated file(s) drifted; run python3 %s" % (bad, gen))
            return 1
    print("ok: %d generated files match the generator" % len(GENERATED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
