#!/bin/bash
# bench_acksall.sh - acks=all produce throughput of one broker build, the way
# perf/results/pipeline.md section 7 compared builds and settings.
#
#   perf/bench_acksall.sh BUILD_DIR [broker --set KEY=VALUE ...]
#   SIZES="64KiB 1MiB" (batch sizes), LGARGS="--consumers 0 ..." (extra loadgen flags)
#
# A broker (`--cores 1`, fresh data dir under /var/tmp, pinned to CPU 0) and loadgen
# (pinned to CPU 1): 1 topic x 1 partition, 1 KiB messages, acks=all, 1 s warm-up + 5 s,
# one run per batch size. Prints produce MB/s and latency, loadgen's CPU, the broker's
# CPU over the run, and the broker's mean disk write / fdatasync latency (its /metrics).
# Compare builds by interleaving calls, with a fio run between rounds: this VM's disk
# varies by 30 % from minute to minute.
set -euo pipefail
B=$(cd "$1" && pwd); shift
D=$(mktemp -d /var/tmp/sluice-acksall-XXXXXX)
PORT=$((20000 + RANDOM % 20000))
taskset -c 0 "$B/sluice" serve --listen 127.0.0.1:$PORT --data-dir "$D/data" --cores 1 \
    --set sluice.metrics.listen=127.0.0.1:$((PORT + 1)) "$@" > "$D/broker.log" 2>&1 &
BP=$!
trap 'kill $BP 2>/dev/null; wait $BP 2>/dev/null; rm -rf "$D"' EXIT
sleep 1
for bs in ${SIZES:-64KiB 1MiB}; do
    c0=$(awk '{print $14 + $15}' /proc/$BP/stat)
    /usr/bin/time -f "  loadgen cpu %U user %S sys, %e s" taskset -c 1 "$B/sluice" loadgen \
        --bootstrap 127.0.0.1:$PORT --json "$D/r.json" --quiet true --cpus 1 --topic "t$bs" \
        --partitions 1 --acks all --batch-size "$bs" ${LGARGS:-} --warmup 1 --duration 5 \
        --message-size 1024 2>&1 >/dev/null | grep "loadgen cpu"
    c1=$(awk '{print $14 + $15}' /proc/$BP/stat)
    curl -s 127.0.0.1:$((PORT + 1))/metrics > "$D/metrics"
    /usr/bin/python3 - "$D/r.json" "$D/metrics" "$bs" $((c1 - c0)) <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1]))
r = doc["runs"][0]
p = r["produce_latency_us"]
print("%s batches: %.1f MB/s acked, produce p50 %.2f ms p99 %.2f ms, broker cpu %.2f s"
      % (sys.argv[3], r["produce_mb_per_s"], p["p50"] / 1e3, p["p99"] / 1e3,
         int(sys.argv[4]) / 100))
v = {}
for line in open(sys.argv[2]):
    if line.startswith("sluice_disk_"):
        k, x = line.rsplit(None, 1)
        k = re.sub(r"\{.*\}", "", k)
        v[k] = v.get(k, 0) + float(x)
for kind in ("write", "fsync"):
    n = v.get("sluice_disk_%s_latency_seconds_count" % kind, 0)
    s = v.get("sluice_disk_%s_latency_seconds_sum" % kind, 0)
    print("  disk %s: %d (since start), mean %.0f us" % (kind, n, s / n * 1e6 if n else 0))
PY
done
