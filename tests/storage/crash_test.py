#!/usr/bin/env python3
"""crash_test.py - kill a durable writer with SIGKILL at random moments, 50 times.

Each round starts `crash_tool write DIR`, which appends durable batches (acks=all) and
prints each acknowledged offset range to a pipe; after a random 20-400 ms (one round in four:
1-30 ms, inside recovery) it is killed with SIGKILL. Then `crash_tool verify DIR ACKED` recovers the log and checks that every
batch ever acknowledged (in any round) is present at its offsets and intact (CRC32C and
record contents), and that the log has no gaps. The next round appends on top, so the
log keeps growing across recoveries (and rolls segments).
usage: crash_test.py CRASH_TOOL [ROUNDS]"""
import os, random, shutil, signal, subprocess, sys, tempfile, time

tool = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 50
work = tempfile.mkdtemp(prefix="sluice-crash-", dir="/var/tmp")
acked_path = os.path.join(work, "acked.txt")
data_dir = os.path.join(work, "data")
open(acked_path, "w").close()
rng = random.Random(int(os.environ.get("CRASH_SEED", time.time())))
total_acked = 0
try:
    for r in range(rounds):
        with open(acked_path, "ab") as acked:
            p = subprocess.Popen([tool, "write", data_dir], stdout=subprocess.PIPE)
            # mostly mid-stream; one round in four very early, inside recovery or the
            # first flushes (that timing found the lost-tail-before-a-roll case)
            time.sleep(rng.uniform(0.001, 0.03) if rng.random() < 0.25 else rng.uniform(0.02, 0.4))
            p.send_signal(signal.SIGKILL)
            out, _ = p.communicate()  # everything printed before the kill
            acked.write(out)
            total_acked += out.count(b"\n")
            if p.returncode != -signal.SIGKILL:
                sys.exit(f"round {r}: writer exited with {p.returncode} before the kill")
        v = subprocess.run([tool, "verify", data_dir, acked_path], capture_output=True, text=True)
        if v.returncode != 0:
            sys.stderr.write(v.stderr[-4000:])
            sys.exit(f"round {r}: verification failed")
        print(f"round {r}: acked so far {total_acked}; {v.stdout.strip()}", flush=True)
    if total_acked == 0:
        sys.exit("no batch was ever acknowledged: the test proved nothing")
    print(f"PASS {rounds} SIGKILL rounds, {total_acked} acknowledged batches all intact")
finally:
    shutil.rmtree(work, ignore_errors=True)
