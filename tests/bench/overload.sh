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
# (redis-benchmark cannot do this through RESP: it stops at the first
# error reply, and a shed request is one.) Needs curl and ss. Ports: QUIC
# 7701-7703, RESP 6701-6703, admin 9701-9703.
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
for tool in curl ss; do
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

bench() {
    "$QUORRA" bench --peer 127.0.0.1:7701 --tls-dir "$WORK/d/tls" --value-size 1000 \
        --read-ratio 0 --timeout 10 "$@" 2>&1 | tr '\r' '\n' | grep -A3 "ops in"
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
    echo "== limit $limit: $CONC requests in flight, $OPS writes of 1,000 B"
    bench --concurrency "$CONC" --ops "$OPS"
    kill "$sampler"
    sampler=
    shed=0
    for port in 9701 9702 9703; do
        s=$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^quorra_requests_shed_total /{print $2}')
        shed=$((shed + ${s:-0}))
    done
    echo "   shed by the nodes: $shed; peak RSS of any node: $(cat "$WORK/peak") MiB"
    echo "   then 50 in flight:"
    bench --concurrency 50 --ops 20000
    stop_cluster
done
