#!/usr/bin/env bash
# Bootstrap speed: a fourth node joins a 3-node cluster (N=3, real
# processes on loopback, release build) that holds KEYS keys of VALUE
# bytes, written once each at `all`. Prints the load rate, then, every
# 2 s, what the newcomer received (`quorra transfers --json`), and at the
# end the wall time until its moves settled and the MB/s it pulled;
# optionally with foreground load (`quorra bench`) before, during and
# after the join, to compare throughput and p99 within one run.
#
#   tests/bench/bootstrap.sh [KEYS] [VALUE] [TRANSFER_BYTES_PER_SEC] [LOAD]
#
# KEYS defaults to 1000000, VALUE to 1024, TRANSFER_BYTES_PER_SEC to the
# node's default (64 MiB/s; 0 is unlimited), LOAD to 0 (1: run `quorra
# bench` at quorum, 50% reads, for LOAD_SECS seconds (default 45) three
# times: on the 3 nodes before the join; from the newcomer's start, so
# within the move if the move lasts longer (the script says whether it
# did); and on the 4 nodes after the move settled, which separates what
# the move costs from what a fourth process on the same cores costs).
# Everything lives in a temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

KEYS=${1:-1000000}
VALUE=${2:-1024}
RATE=${3:-}
LOAD=${4:-0}
LOAD_SECS=${LOAD_SECS:-45}

cargo build --release -q -p quorra-node --bin quorra
Q=$PWD/target/release/quorra
WORK=$(mktemp -d /tmp/quorra-bootstrap.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

"$Q" cert init --dir "$WORK/tls" >/dev/null
"$Q" cert issue --dir "$WORK/tls" --name node >/dev/null
"$Q" cert issue --dir "$WORK/tls" --name client --client >/dev/null

BASE=$((17000 + RANDOM % 2000))
addr() { echo "127.0.0.1:$((BASE + $1))"; }
start() {
    local i=$1
    shift
    "$Q" node --listen "$(addr "$i")" --data-dir "$WORK/node$i" --node-id "$i" \
        --tls-dir "$WORK/tls" --admin-listen off "$@" >"$WORK/node$i.log" 2>&1 &
    PIDS+=($!)
}
peers() { echo "--tls-dir $WORK/tls --peer $(addr 1) --peer $(addr 2) --peer $(addr 3)"; }
# Waits until node $1 reports $2 normal members and no partition moving.
settled() {
    local json
    json=$("$Q" transfers --json --tls-dir "$WORK/tls" --peer "$(addr "$1")" 2>/dev/null) || return 1
    python3 -c '
import json, sys
m = json.loads(sys.argv[1])["moves"]
sys.exit(0 if m.get("moving_partitions", 1) == 0 else 1)' "$json"
}
normal() {
    "$Q" status --json --tls-dir "$WORK/tls" --peer "$(addr "$1")" 2>/dev/null |
        python3 -c 'import json,sys; s=json.load(sys.stdin); print(sum(m["state"]=="normal" for m in s["members"]))' 2>/dev/null ||
        echo 0
}
normal_is() { [ "$(normal "$1")" = "$2" ]; }
wait_for() {
    for _ in $(seq 1 600); do
        "$@" && return 0
        sleep 0.5
    done
    echo "timed out waiting for: $*" >&2
    exit 1
}

extra=()
if [ -n "$RATE" ]; then extra=(--transfer-bytes-per-sec "$RATE"); fi
start 1 "${extra[@]}"
wait_for normal_is 1 1
start 2 --seeds "$(addr 1)" "${extra[@]}"
start 3 --seeds "$(addr 1)" "${extra[@]}"
wait_for normal_is 1 3
wait_for settled 1

echo "== loading $KEYS keys of $VALUE B at all into 3 nodes =="
# shellcheck disable=SC2046
"$Q" bench $(peers) --preload --ops 0 --keys "$KEYS" --value-size "$VALUE" \
    --consistency all --concurrency 64
du -sh "$WORK"/node1 "$WORK"/node2 "$WORK"/node3

# Foreground load for LOAD_SECS seconds: quorum, 50% reads.
load() {
    # shellcheck disable=SC2046
    "$Q" bench $(peers) --ops 0 --duration "$LOAD_SECS" --keys "$KEYS" --value-size "$VALUE" \
        --concurrency 50 2>/dev/null | grep -E "ops in|reads |writes "
}
if [ "$LOAD" = 1 ]; then
    echo "== foreground load before the join, 3 nodes (quorum, 50% reads, $LOAD_SECS s) =="
    load
fi

echo "== node 4 joins (transfer budget: ${RATE:-default}) =="
ms() { echo $(($(date +%s%N) / 1000000)); }
started=$(ms)
start 4 --seeds "$(addr 1)" "${extra[@]}"
if [ "$LOAD" = 1 ]; then
    (load >"$WORK/during.txt") &
    PIDS+=($!)
fi
sleep 2
while true; do
    json=$("$Q" transfers --json --tls-dir "$WORK/tls" --peer "$(addr 4)" 2>/dev/null || echo '{}')
    line=$(python3 -c '
import json, sys
m = json.loads(sys.argv[1] or "{}").get("moves")
if not m:
    print("starting"); sys.exit(0)
print("moving %s, to pull %d, received %d keys %.1f MB, %s keys/s, ETA %s s" % (
    m.get("moving_partitions"), len(m.get("gains", [])), m.get("keys_received", 0),
    m.get("bytes_received", 0) / 1e6, m.get("keys_per_sec"), m.get("eta_secs")))
if m.get("moving_partitions", 1) == 0 and m.get("keys_received", 0) > 0:
    sys.exit(3)' "$json") && rc=0 || rc=$?
    printf '%6.1fs  %s\n' "$(($(ms) - started))e-3" "$line"
    [ "$rc" = 3 ] && break
    sleep 2
done
ended=$(ms)
json=$("$Q" transfers --json --tls-dir "$WORK/tls" --peer "$(addr 4)")
python3 -c '
import json, sys
m = json.loads(sys.argv[1])["moves"]; secs = int(sys.argv[2]) / 1000
mb = m["bytes_received"] / 1e6
print("node 4 owns its share after %.1f s: %d keys, %.1f MB received, %.1f MB/s" % (
    secs, m["keys_received"], mb, mb / secs))' "$json" "$((ended - started))"
"$Q" status --tls-dir "$WORK/tls" --peer "$(addr 4)" | head -8
if [ "$LOAD" = 1 ]; then
    wait "${PIDS[-1]}" 2>/dev/null || true
    took=$(( (ended - started) / 1000 ))
    if [ "$took" -ge "$LOAD_SECS" ]; then
        echo "== foreground load during the join (its first $LOAD_SECS s of $took s) =="
    else
        echo "== foreground load from the join on (the move took $took s of its $LOAD_SECS s) =="
    fi
    cat "$WORK/during.txt"
    echo "== foreground load after the join, 4 nodes =="
    load
fi
