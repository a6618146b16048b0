# Shared by the benchmark scripts in this folder (sourced, not run).

# Waits until nothing listens on TCP port $1 (a cluster of the previous
# run may still be closing): a benchmark must never reach a stale cluster.
port_free() {
    for _ in $(seq 1 100); do
        ss -ltn | grep -q ":$1 " || return 0
        sleep 0.2
    done
    echo "port $1 is still taken" >&2
    exit 1
}
