#!/usr/bin/env bash
# Node CPU per request through the RESP gateway: a steadier figure than
# requests/s on a shared, noisy machine, for comparing two builds.
#
# Starts a 3-node `quorra dev` (N=3, quorum), runs
#   redis-benchmark -t TEST -n N -c 50 -d 100 -r 100000
# once per test against node 1's RESP port, and prints requests/s, p50,
# p99 and the CPU time (user + system) the three node processes spent per
# request. Compare builds by alternating them in one session:
#
#   bash tests/bench/resp-cpu-per-op.sh [fsync] [tests] [requests] [quorra binary]
#   e.g.  bash tests/bench/resp-cpu-per-op.sh periodic set,get 200000 /tmp/quorra-before
#
# QUORRA_DEV_ARGS adds flags to `quorra dev`, e.g. "--engine memory" to see
# what the cluster costs without storage. WARMUP=SECONDS waits that long
# after the cluster is up (e.g. 45, so that anti-entropy has built its
# Merkle trees and writes pay for keeping them, as in a cluster that has
# been running).
#
# Needs redis-benchmark (Debian: redis-tools) and ss (iproute2). Ports:
# QUIC 7601-7603, RESP 6601-6603.
set -euo pipefail

FSYNC=${1:-periodic}
TESTS=${2:-set,get}
N=${3:-200000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QUORRA=${4:-}
if [ -z "$QUORRA" ]; then
    cargo build --release --locked -p quorra-node --bin quorra --manifest-path "$ROOT/Cargo.toml" >&2
    QUORRA="$ROOT/target/release/quorra"
fi
for tool in redis-benchmark ss; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/quorra-cpu-bench.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

port_free 6601
"$QUORRA" dev --data-dir "$WORK/d" --base-port 7601 --resp-base-port 6601 --fsync "$FSYNC" \
    ${QUORRA_DEV_ARGS:-} >"$WORK/out" 2>&1 &
pid=$!
cluster_up "$WORK/out"
sleep "${WARMUP:-0}"
nodes=$(pgrep -f -- "--data-dir $WORK/d/node")
ticks() { # user + system clock ticks of the node processes
    local t=0
    for p in $nodes; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}
hz=$(getconf CLK_TCK)
udp_out() { # UDP datagrams this machine sent (the nodes' QUIC packets)
    awk '/^Udp:/ { if (h) print $5; h = 1 }' /proc/net/snmp
}
udp_dropped() { # UDP datagrams dropped for a full receive buffer
    awk '/^Udp:/ { if (h) print $6; h = 1 }' /proc/net/snmp
}
echo "== $QUORRA, --fsync $FSYNC, $N requests per test"
for test in ${TESTS//,/ }; do
    before=$(ticks)
    udp_before=$(udp_out)
    dropped_before=$(udp_dropped)
    line=$(redis-benchmark -p 6601 -t "$test" -n "$N" -c 50 -d 100 -r 100000 --csv | tail -1)
    after=$(ticks)
    udp=$(($(udp_out) - udp_before))
    dropped=$(($(udp_dropped) - dropped_before))
    echo "$line" | awk -F'"' -v t=$((after - before)) -v hz="$hz" -v n="$N" -v udp="$udp" -v dropped="$dropped" \
        '{printf "%-6s %9.0f req/s  p50 %s ms  p99 %s ms  node CPU %.1f us/request  %.2f datagrams/request (%d dropped)\n", $2, $4, $10, $14, t * 1e6 / hz / n, udp / n, dropped}'
done
kill -TERM "$pid"
wait "$pid" || true
pid=
port_free 6601
