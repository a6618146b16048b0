#!/usr/bin/env bash
# Overload: far more requests in flight than a 3-node cluster completes,
# then a light load, once per shedding limit, to show what the nodes do
# with the excess (shed it at once, or queue it until it times out), what
# memory they hold meanwhile, and that they recover.
#
# For each LIMIT, starts a 3-node `quorra dev` (N=3, quorum, --fsync
# always) with QUORRA_MAX_REQUESTS_IN_FLIGHT=LIMIT and runs
#   quorra bench --concurrency CONC --ops OPS --value-size 1000 --read-ratio 0
#   quorra bench --concurrency 50 --ops 20000 --value-size 1000 --read-ratio 0
# printing the bench's summaries, the requests the nodes shed, and the
# peak RSS of any node during the first.
#
#   bash tests/bench/overload.sh [conc] [ops] [limits] [quorra binary]
#   e.g.  bash tests/bench/overload.sh 10000 200000 "1000000 4096 1024"
#
# Through the RESP gateway instead (OVERLOAD_VIA=resp): CONC connections
# spread over the three RESP ports, each pipelining OVERLOAD_PIPELINE SETs
# (default 32) for OVERLOAD_SECS seconds (default 20; OPS is not used),
# waiting OVERLOAD_BACKOFF_MS after a refused batch (default 0: they send
# again at once), with `quorra bench --resp`; then 50 connections, one
# command at a time. redis-benchmark cannot do this: it stops at the first
# error reply, and a shed request (-BUSY) is one.
#   e.g.  OVERLOAD_VIA=resp bash tests/bench/overload.sh 5000 1000000 "1000000 4096 1024"
#
# Needs curl, ss and bc. Ports: QUIC 7701-7703, RESP 6701-6703, admin
# 9701-9703.
set -euo pipefail

CONC=${1:-10000}
OPS=${2:-200000}
LIMITS=${3:-"1000000 4096"}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QUORRA=${4:-}
if [ -z "$QUORRA" ]; then
    cargo build --release --locked -p quorra-node --bin quorra --manifest-path "$ROOT/Cargo.toml" >&2
    QUORRA="$ROOT/target/release/quorra"
fi
for tool in curl ss bc; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/quorra-overload.XXXXXX)
pid=
sampler=
stop_cluster() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    sampler=
    pid=
}
trap 'stop_cluster; rm -rf "$WORK"' EXIT

# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

VIA=${OVERLOAD_VIA:-sdk}
PIPELINE=${OVERLOAD_PIPELINE:-32}
# Shed commands come back fast, so a count of them would be spent in
# seconds: through RESP the overload runs for a time instead.
SECS=${OVERLOAD_SECS:-20}
# Milliseconds a RESP connection waits after a refused batch (0: a retry
# storm; a client that honours -BUSY waits).
BACKOFF=${OVERLOAD_BACKOFF_MS:-0}
# Thousands of connections need as many descriptors, in the bench and in
# the nodes it starts.
if [ "$VIA" = resp ]; then
    ulimit -n $(( CONC + 4096 )) || { echo "cannot raise ulimit -n to $(( CONC + 4096 ))" >&2; exit 1; }
fi
# bench IN_FLIGHT OPS: IN_FLIGHT requests (SDK) or connections (RESP).
# User and system CPU ticks of the cluster's nodes so far.
node_cpu_ticks() {
    local total=0 p
    for p in $nodes; do
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}

bench() {
    if [ "$VIA" = resp ]; then
        local pipeline=$PIPELINE
        [ "$1" -le 50 ] && pipeline=1
        local run=(--ops "$2")
        [ "$1" -gt 50 ] && run=(--duration "$SECS")
        "$QUORRA" bench --resp 127.0.0.1:6701,127.0.0.1:6702,127.0.0.1:6703 --value-size 1000 \
            --read-ratio 0 --connections "$1" --pipeline "$pipeline" --busy-backoff-ms "$BACKOFF" \
            "${run[@]}" 2>&1 |
            tr '\r' '\n' | grep -A6 "replies in"
    else
        "$QUORRA" bench --peer 127.0.0.1:7701 --tls-dir "$WORK/d/tls" --value-size 1000 \
            --read-ratio 0 --timeout 10 --concurrency "$1" --ops "$2" 2>&1 |
            tr '\r' '\n' | grep -A3 "ops in"
    fi
}

for limit in $LIMITS; do
    port_free 6701
    rm -rf "$WORK/d"
    QUORRA_MAX_REQUESTS_IN_FLIGHT=$limit "$QUORRA" dev --data-dir "$WORK/d" --base-port 7701 \
        --resp-base-port 6701 --admin-base-port 9701 --fsync always >"$WORK/out" 2>&1 &
    pid=$!
    cluster_up "$WORK/out"
    nodes=$(pgrep -f -- "--data-dir $WORK/d/node")
    echo 0 >"$WORK/peak"
    (
        peak=0
        while true; do
            for p in $nodes; do
                r=$(awk '/^VmRSS/{print int($2 / 1024)}' "/proc/$p/status" 2>/dev/null || echo 0)
                if [ "$r" -gt "$peak" ]; then
                    peak=$r
                    echo "$peak" >"$WORK/peak"
                fi
            done
            sleep 0.3
        done
    ) &
    sampler=$!
    if [ "$VIA" = resp ]; then
        echo "== limit $limit: $CONC RESP connections x $PIPELINE pipelined, SETs of 1,000 B for $SECS s"
    else
        echo "== limit $limit: $CONC requests in flight, $OPS writes of 1,000 B"
    fi
    cpu_before=$(node_cpu_ticks)
    started=$(date +%s.%N)
    bench "$CONC" "$OPS"
    cpu=$(( $(node_cpu_ticks) - cpu_before ))
    wall=$(echo "$(date +%s.%N) - $started" | bc)
    echo "   the nodes used $(echo "scale=1; $cpu / $(getconf CLK_TCK)" | bc) CPU seconds of \
$(echo "scale=1; $wall * $(nproc)" | bc) ($(nproc) cores x ${wall%.*} s); the rest went to the load generator and the kernel"
    kill "$sampler"
    sampler=
    shed=0
    admitting=
    for port in 9701 9702 9703; do
        metrics=$(curl -fsS "http://127.0.0.1:$port/metrics")
        s=$(awk '/^quorra_requests_shed_total /{print $2}' <<<"$metrics")
        shed=$((shed + ${s:-0}))
        admitting="$admitting $(awk '/^quorra_admission_limit /{print $2}' <<<"$metrics")"
    done
    echo "   shed by the nodes: $shed; peak RSS of any node: $(cat "$WORK/peak") MiB"
    echo "   admission limits at the end (nodes 1-3; the ceiling is $limit):$admitting"
    echo "   then 50 in flight:"
    bench 50 20000
    stop_cluster
done
