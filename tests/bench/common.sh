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

# Waits until the `quorra dev` writing its output to file $1 says its
# cluster is up; shows that output and exits if it does not within 60 s.
cluster_up() {
    for _ in $(seq 1 300); do
        grep -q "cluster of 3 nodes is up" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    cat "$1" >&2
    exit 1
}
