#!/bin/bash
# bench_dpdk.sh - the DPDK path against the io_uring kernel-socket path, same veth pair,
# same run.
#
#   perf/bench_dpdk.sh [SLUICE] [DURATION_S] [RATE_FOR_LATENCY]
#   (defaults: build/sluice, 10, 5000)
#
# One veth pair (scripts/netns-veth), the load generator in the namespace, the broker
# (one shard, core 0) on the root end. Three paths, each measured twice: at the highest
# rate the path takes (throughput; its p99 is queueing) and at a fixed rate below every
# path's maximum (latency: produce p99 and end-to-end p99 are comparable there):
#   kernel   broker on kernel sockets (io_uring) at SUBNET.254, loadgen on kernel sockets
#   dpdk     broker on DPDK (net_af_packet on the root end, userspace stack at SUBNET.1),
#            loadgen on kernel sockets
#   dpdk2    the same broker, loadgen --dpdk too (af_packet on the namespace end, its own
#            stack at SUBNET.3): both ends bypass the kernel's TCP
# Workload: 1 topic, 1 partition, 1 producer, 1 consumer, 1 KiB messages, acks=1.
# For the DPDK broker it also prints the shard's busy time per packet (busy_ms of
# shard_stopped over rx+tx of dpdk_backend_stopped): Kafka handling + stack + driver.
# The namespace and veth pair are removed on exit (trap). Prints a markdown table.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SLUICE=$(realpath "${1:-$ROOT/build/sluice}")
DURATION=${2:-10}
RATE=${3:-5000}
NAME=bd$$
NAME=${NAME:0:11}
SUBNET=10.93.$((RANDOM % 200)).0
SUBNET=${SUBNET%.0}
TMP=$(mktemp -d /tmp/bench-dpdk.XXXXXX)
BROKER_PID=

cleanup() {
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
    "$ROOT/scripts/netns-veth" destroy "$NAME"
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

"$ROOT/scripts/netns-veth" create "$NAME" "$SUBNET" >"$TMP/veth" || exit 1
# shellcheck disable=SC1090
. "$TMP/veth" # ns= root_if= ns_if= root_kernel_ip= root_dpdk_ip= ns_kernel_ip= ns_dpdk_ip=

broker_start() { # LISTEN_IP [dpdk]
    local ip=$1 mode=${2:-}
    local args=(serve --listen "$ip:9092" --data-dir "$TMP/data-$mode$ip" --cores 1
                --set sluice.metrics.listen=127.0.0.1:0)
    if [ "$mode" = dpdk ]; then
        args+=(--set dpdk.enabled=true --set "dpdk.ip=$ip"
               --set "dpdk.eal.args=--no-pci --vdev=net_af_packet0,iface=$root_if")
    fi
    "$SLUICE" "${args[@]}" >"$TMP/broker.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 200); do
        grep -q "event=ready" "$TMP/broker.log" && return 0
        sleep 0.05
    done
    echo "broker did not start:" >&2
    tail -20 "$TMP/broker.log" >&2
    exit 1
}

broker_stop() {
    kill "$BROKER_PID"
    wait "$BROKER_PID"
    BROKER_PID=
}

loadgen() { # LABEL BROKER_IP RATE [dpdk]
    local label=$1 ip=$2 rate=$3 mode=${4:-}
    local extra=()
    if [ "$mode" = dpdk ]; then
        extra=(--dpdk --dpdk-ip "$ns_dpdk_ip"
               --dpdk-eal-args "--no-pci --vdev=net_af_packet0,iface=$ns_if")
    fi
    ip netns exec "$ns" "$SLUICE" loadgen --bootstrap "$ip:9092" --topic "t$label" \
        --partitions 1 --producers 1 --consumers 1 --message-size 1024 --acks 1 \
        --rate "$rate" --warmup 2 --duration "$DURATION" --drain 10 --cpus 1 --quiet true \
        --json "$TMP/$label.json" "${extra[@]}" >"$TMP/$label.out" 2>&1 ||
        { echo "loadgen $label failed:" >&2; tail -20 "$TMP/$label.out" >&2; }
}

row() { # LABEL PATH
    /usr/bin/python3 - "$TMP/$1.json" "$2" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))["runs"][0]
except Exception as e:
    print("| %s | (no result: %s) |" % (sys.argv[2], e)); sys.exit()
print("| %s | %.0f | %.1f | %.2f | %.2f | %.2f | %d |" % (
    sys.argv[2], r["produce_msgs_per_s"], r["produce_mb_per_s"],
    r["produce_latency_us"]["p50"] / 1e3, r["produce_latency_us"]["p99"] / 1e3,
    r["e2e_latency_us"]["p99"] / 1e3, r["lost"]))
EOF
}

per_packet() {
    /usr/bin/python3 - "$TMP/broker.log" <<'EOF'
import sys
busy = pk = 0
totals = {}
for line in open(sys.argv[1]):
    f = dict(x.split("=", 1) for x in line.split() if "=" in x)
    if f.get("event") == "shard_stopped": busy += int(f["busy_ms"])
    if f.get("event") == "dpdk_backend_stopped": pk += int(f["rx"]) + int(f["tx"])
    if f.get("event") in ("ustack_stopped", "dpdk_port_stats", "dpdk_backend_stopped"):
        for k in ("tcp_retransmits_rto", "tcp_retransmits_fast", "tx_dropped", "imissed",
                  "tcp_rcv_queue_full", "tcp_out_of_window", "steer_dropped"):
            if k in f: totals[k] = totals.get(k, 0) + int(f[k])
if pk:
    print("broker shard busy %d ms over %d packets: %.0f ns/packet (Kafka + stack + driver)"
          % (busy, pk, busy * 1e6 / pk))
print("dpdk broker counters over its four runs: " +
      " ".join("%s=%d" % kv for kv in sorted(totals.items())))
EOF
}

echo "# bench_dpdk $(date -u +%Y-%m-%dT%H:%M:%SZ): $SLUICE, ${DURATION} s runs, latency at $RATE msg/s"
broker_start "$root_kernel_ip"
loadgen kmax "$root_kernel_ip" 0
loadgen krate "$root_kernel_ip" "$RATE"
broker_stop
broker_start "$root_dpdk_ip" dpdk
loadgen dmax "$root_dpdk_ip" 0
loadgen drate "$root_dpdk_ip" "$RATE"
loadgen d2max "$root_dpdk_ip" 0 dpdk
loadgen d2rate "$root_dpdk_ip" "$RATE" dpdk
broker_stop
PER_PACKET=$(per_packet)
echo
echo "| path | produce msg/s | MB/s | produce p50 ms | produce p99 ms | e2e p99 ms | lost |"
echo "|---|---|---|---|---|---|---|"
row kmax "kernel (io_uring), max rate"
row dmax "dpdk broker, max rate"
row d2max "dpdk both ends, max rate"
row krate "kernel (io_uring), $RATE msg/s"
row drate "dpdk broker, $RATE msg/s"
row d2rate "dpdk both ends, $RATE msg/s"
echo
echo "$PER_PACKET"
