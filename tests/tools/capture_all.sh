#!/bin/bash
# capture_all.sh: re-capture the golden request frames of real Kafka clients.
#
# For each client named on the command line (default: all of kcat, kcattxn,
# kafkapython, kafkapython010, kafkajs, platformatic, platformatictxn) it deletes that client's frames from
# tests/data/golden, starts tests/tools/capture_broker.py on a free loopback
# port, drives the real client against it, stops the broker, and finally
# re-checks every frame and rewrites tests/data/golden/MANIFEST
# (tests/tools/make_manifest.py). See tests/data/golden/README.md.
#
# Needs: kcat, /usr/bin/python3 with kafka-python, node + npm (kafkajs and
# @platformatic/kafka are installed by `npm ci` in tests/integration/js).
set -euo pipefail

TOOLS="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$TOOLS/../.." && pwd)"
GOLDEN="${GOLDEN:-$ROOT/tests/data/golden}"
JS_DIR="$ROOT/tests/integration/js"
PY=/usr/bin/python3
WORK="$(mktemp -d)"
BROKER_PID=""
trap 'stop_broker; rm -rf "$WORK"' EXIT

start_broker() { # client max_per_api
    rm -f "$GOLDEN/$1"-*.bin "$WORK/port"
    "$PY" "$TOOLS/capture_broker.py" --out "$GOLDEN" --client "$1" \
        --max-per-api "$2" --port-file "$WORK/port" --max-seconds 300 \
        2>>"$WORK/broker-$1.log" &
    BROKER_PID=$!
    for _ in $(seq 50); do
        [ -s "$WORK/port" ] && break
        sleep 0.1
    done
    PORT="$(cat "$WORK/port")"
    B="127.0.0.1:$PORT"
    echo "== $1 against capture broker at $B"
}

stop_broker() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=""
    fi
}

capture_kcat() {
    start_broker kcat 6
    kcat -V | head -n 4 | tail -n 1
    timeout 20 kcat -b "$B" -L >/dev/null
    # Uncompressed (2 records with keys), then one batch per codec.
    printf 'k1:v1\nk2:v2\n' | timeout 20 kcat -b "$B" -P -t golden -K:
    # librdkafka sends a batch uncompressed when compression does not
    # shrink it, so these batches are several compressible records.
    local text="the quick brown fox jumps over the lazy dog, again and again"
    for codec in gzip snappy lz4 zstd; do
        for i in 1 2 3 4; do printf 'k%d:%s %s\n' "$i" "$codec" "$text"; done |
            timeout 20 kcat -b "$B" -P -t golden -K: -z "$codec"
    done
    # Idempotent producer: InitProducerId, then Produce with pid/sequence.
    printf 'idem-1\n' | timeout 20 kcat -b "$B" -P -t golden \
        -X enable.idempotence=true
    timeout 20 kcat -b "$B" -C -t golden -o beginning -e >/dev/null
    timeout 20 kcat -b "$B" -G golden-group golden -e >/dev/null 2>&1
    stop_broker
}

capture_kcattxn() {
    start_broker kcattxn 4
    printf 'txn-1\ntxn-2\n' | timeout 20 kcat -b "$B" -P -t golden \
        -X transactional.id=golden-txn
    stop_broker
}

capture_kafkapython() { # client-name api_version-or-empty
    start_broker "$1" 4
    "$PY" "$TOOLS/drive_kafkapython.py" "$B" "$2"
    stop_broker
}

npm_ci() {
    if [ ! -f "$JS_DIR/node_modules/.package-lock.json" ]; then
        (cd "$JS_DIR" && npm ci --silent --no-audit --no-fund)
    fi
}

capture_kafkajs() {
    npm_ci
    start_broker kafkajs 4
    node "$TOOLS/drive_kafkajs.js" "$B"
    stop_broker
}

capture_platformatic() { # client-name [txn]
    npm_ci
    start_broker "$1" 4
    node "$TOOLS/drive_platformatic.mjs" "$B" "${2:-}"
    stop_broker
}

clients=("$@")
[ ${#clients[@]} -gt 0 ] ||
    clients=(kcat kcattxn kafkapython kafkapython010 kafkajs platformatic
             platformatictxn)
for c in "${clients[@]}"; do
    case "$c" in
    kcat) capture_kcat ;;
    kcattxn) capture_kcattxn ;;
    kafkapython) capture_kafkapython kafkapython "" ;;
    kafkapython010) capture_kafkapython kafkapython010 0.10.1 ;;
    kafkajs) capture_kafkajs ;;
    platformatic) capture_platformatic platformatic ;;
    platformatictxn) capture_platformatic platformatictxn txn ;;
    *) echo "unknown client $c" >&2; exit 2 ;;
    esac
done
"$PY" "$TOOLS/make_manifest.py" "$GOLDEN"
