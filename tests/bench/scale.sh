#!/usr/bin/env bash
# Performance as data grows: for each data size, a fresh 3-node `quorra
# dev` (N=3, quorum, --fsync always, release build), preloaded with every
# key once, then a mixed run (50% reads) and a read-only run, each for
# SCALE_SECS seconds at SCALE_CONC requests in flight. Prints one row per
# size: load rate and p99, mixed and read throughput with p99, the
# largest resident memory of any node against its budget, and disk.
# With SCALE_RESTART=1 the last size also gets a restart row: the cluster
# is stopped, started again on its data, and the mixed run's throughput
# in its first and second 30 s is printed (caches cold, trees rebuilt).
#
#   bash tests/bench/scale.sh [SIZES] [quorra binary] [baseline binary]
#
# SIZES defaults to "100000x100 100000x1024 1000000x100 1000000x1024"
# (keys x value bytes). With a baseline binary, every size runs on both,
# one after the other, so a change is compared within one session on
# this noisy machine; the bench itself (the load generator) is always the
# first binary's. QUORRA_DEV_ARGS adds flags to `quorra dev` (e.g.
# "--fsync periodic"); QUORRA_MEMORY sets the nodes' budget.
# Ports: QUIC 7801-7803. Needs python3.
set -euo pipefail

SIZES=${1:-"100000x100 100000x1024 1000000x100 1000000x1024"}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QUORRA=${2:-}
BASELINE=${3:-}
SECS=${SCALE_SECS:-30}
CONC=${SCALE_CONC:-50}
if [ -z "$QUORRA" ]; then
    cargo build --release --locked -p quorra-node --bin quorra --manifest-path "$ROOT/Cargo.toml" >&2
    QUORRA="$ROOT/target/release/quorra"
fi
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }
WORK=$(mktemp -d /tmp/quorra-scale.XXXXXX)
pid=
stop_cluster() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    pid=
}
trap 'stop_cluster; rm -rf "$WORK"' EXIT

# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

# Starts `quorra dev` of binary $1 on directory $WORK/d (kept if there).
start_cluster() {
    port_free 7801
    # shellcheck disable=SC2086
    "$1" dev --data-dir "$WORK/d" --base-port 7801 --resp-base-port 0 --admin-base-port 0 \
        ${QUORRA_DEV_ARGS:-} >"$WORK/out" 2>&1 &
    pid=$!
    cluster_up "$WORK/out"
}

node_pids() { pgrep -f -- "--data-dir $WORK/d/node" || true; }

# CPU ticks used by the nodes so far.
node_ticks() {
    local total=0 p
    for p in $(node_pids); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# Waits (up to 4 min) until the nodes are nearly idle: compaction of
# what the preload wrote settled, so the timed runs do not pay for it.
settle() {
    local i a b
    for i in $(seq 1 120); do
        a=$(node_ticks)
        sleep 2
        b=$(node_ticks)
        if [ $((b - a)) -lt 20 ]; then
            echo "$((i * 2))"
            return
        fi
    done
    echo "240+"
}

# The largest resident memory any node reached (VmHWM), in MiB.
peak_rss() {
    local max=0 p kb
    for p in $(node_pids); do
        kb=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        [ "$kb" -gt "$max" ] && max=$kb
    done
    echo $((max / 1024))
}

bench() {
    "$QUORRA" bench --json --peer 127.0.0.1:7801,127.0.0.1:7802,127.0.0.1:7803 \
        --tls-dir "$WORK/d/tls" --concurrency "$CONC" "$@" 2>"$WORK/bench.err"
}

# One row: binary $1, KEYS $2, VALUE $3.
row() {
    local bin=$1 keys=$2 value=$3 load mixed reads settled rss disk
    rm -rf "$WORK/d"
    start_cluster "$bin"
    load=$(bench --keys "$keys" --value-size "$value" --preload --ops 0)
    settled=$(settle)
    mixed=$(bench --keys "$keys" --value-size "$value" --duration "$SECS")
    reads=$(bench --keys "$keys" --value-size "$value" --duration "$SECS" --read-ratio 1)
    rss=$(peak_rss)
    disk=$(du -sm "$WORK/d" | cut -f1)
    python3 - "$load" "$mixed" "$reads" "$rss" "$disk" "$settled" "$(basename "$bin")" <<'EOF'
import json, sys
load, mixed, reads = (json.loads(a) for a in sys.argv[1:4])
rss, disk, settled, name = sys.argv[4:8]
p = load["preload"]
ms = lambda us: f"{us / 1000:.1f}"
print(f"| {load['keys']:,} x {load['value_size']} B | {name} "
      f"| {p['writes_per_sec']:,.0f} ({ms(p['write_p99_us'])}) "
      f"| {mixed['ops_per_sec']:,.0f} ({ms(mixed['read_p99_us'])} / {ms(mixed['write_p99_us'])}) "
      f"| {reads['ops_per_sec']:,.0f} ({ms(reads['read_p99_us'])}) "
      f"| {rss} | {disk} | {settled} s |", flush=True)
for run in (mixed, reads):
    if run["errors"]:
        print(f"  ({run['errors']} errors in a run)", flush=True)
EOF
}

# The restart row: the cluster of the last row, stopped and started again.
restart_row() {
    local bin=$1 keys=$2 value=$3 run
    stop_cluster
    start_cluster "$bin"
    run=$(bench --keys "$keys" --value-size "$value" --duration 60)
    python3 - "$run" "$(basename "$bin")" <<'EOF'
import json, sys
run = json.loads(sys.argv[1])
t = run["ops_per_second_timeline"]
first, second = t[:30], t[30:60]
avg = lambda xs: sum(xs) / max(len(xs), 1)
print(f"| same, after a restart | {sys.argv[2]} | | first 30 s {avg(first):,.0f}, "
      f"next 30 s {avg(second):,.0f} (p99 {run['read_p99_us'] / 1000:.1f} / "
      f"{run['write_p99_us'] / 1000:.1f} over both) | | | | |", flush=True)
EOF
}

echo "3 nodes (quorra dev), N=3, quorum, concurrency $CONC, ${SECS} s per run, ${QUORRA_DEV_ARGS:-default flags}, memory ${QUORRA_MEMORY:-default}"
echo "| data per replica | binary | load writes/s (p99 ms) | mixed 50% ops/s (p99 r/w ms) | reads ops/s (p99 ms) | peak RSS MiB | disk MiB (3 nodes) | settled |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
last=
for size in $SIZES; do
    keys=${size%x*}
    value=${size#*x}
    for bin in "$QUORRA" ${BASELINE:+"$BASELINE"}; do
        row "$bin" "$keys" "$value"
        last="$bin $keys $value"
        [ "${SCALE_RESTART:-0}" = 1 ] && [ "$size" = "${SIZES##* }" ] && restart_row $last
        stop_cluster
    done
done
