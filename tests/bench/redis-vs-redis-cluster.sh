#!/usr/bin/env bash
# Quorra's RESP gateway against a 3-master Redis Cluster, in the same run,
# with the issue-7 workload:
#
#   redis-benchmark -t set,get,incr,mset -n 200000 -c 50 -d 100 -r 100000
#
# against one node's RESP port of a 3-node `quorra dev` cluster (N=3,
# quorum: every write goes to 3 replicas, 2 acknowledge before the reply),
# once per fsync mode, and against 3 redis-server masters with
# `cluster-enabled yes`, no replicas, no persistence (`--cluster`).
#
# Needs redis-server, redis-cli and redis-benchmark (Debian: redis-server,
# redis-tools). Prints one CSV table per target and the ratios. Ports:
# Quorra 7601-7603 (QUIC) and 6601-6603 (RESP), Redis 7701-7703.
#
#   bash tests/bench/redis-vs-redis-cluster.sh [requests]
set -euo pipefail

N=${1:-200000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/quorra-resp-bench.XXXXXX)
BENCH=(-t set,get,incr,mset -n "$N" -c 50 -d 100 -r 100000 --csv)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (Debian: redis-server redis-tools)" >&2; exit 1; }
done

cargo build --release --locked -p quorra-node --bin quorra --manifest-path "$ROOT/Cargo.toml" >&2
QUORRA="$ROOT/target/release/quorra"

# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

quorra_run() { # fsync mode
    local dir="$WORK/quorra-$1"
    port_free 6601
    "$QUORRA" dev --data-dir "$dir" --base-port 7601 --resp-base-port 6601 --fsync "$1" >"$dir.out" 2>&1 &
    local pid=$!
    cluster_up "$dir.out"
    echo "== quorra dev, 3 nodes, N=3 quorum, --fsync $1 (one node's RESP port) =="
    redis-benchmark -p 6601 "${BENCH[@]}"
    kill -TERM "$pid"
    wait "$pid" || true
    port_free 6601
}

redis_cluster_run() {
    for port in 7701 7702 7703; do
        mkdir -p "$WORK/redis-$port"
        redis-server --port "$port" --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
            --dir "$WORK/redis-$port" --save "" --appendonly no --daemonize no \
            --logfile "$WORK/redis-$port.log" &
        pids+=($!)
    done
    for port in 7701 7702 7703; do
        for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    done
    redis-cli --cluster create 127.0.0.1:7701 127.0.0.1:7702 127.0.0.1:7703 \
        --cluster-replicas 0 --cluster-yes >/dev/null
    for _ in $(seq 1 100); do
        redis-cli -p 7701 cluster info | grep -q "cluster_state:ok" && break
        sleep 0.1
    done
    echo "== Redis Cluster, 3 masters, no replicas, no persistence (--cluster) =="
    redis-benchmark --cluster -p 7701 "${BENCH[@]}"
}

quorra_run always
quorra_run periodic
redis_cluster_run
