#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer on the stable toolchain and runs
# each for a bounded time over the committed corpus and the regressions.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# What cargo-fuzz does, without needing cargo-fuzz or nightly: the
# instrumentation it asks rustc for (SanitizerCoverage: edge counters, the
# PC table and comparison tracing) are stable `-C` flags, and libFuzzer
# itself comes from the libfuzzer-sys crate (built with the C++ compiler).
# Not AddressSanitizer: it needs nightly's `-Zsanitizer`, and the decoders
# are safe Rust (no `unsafe` in the workspace); the `fuzz` profile keeps
# debug assertions and overflow checks on instead.
# New inputs go to target/fuzz/corpus/TARGET (not committed); a crash
# leaves its input in target/fuzz/artifacts/TARGET/ and fails the script:
# copy it to fuzz/regressions/TARGET/ with the fix, and it is replayed by
# `cargo test` for good.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(client_frame peer_frame resp_request context stored_record storage_upgrade)
fi

export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
# An explicit --target, as cargo-fuzz passes: RUSTFLAGS then reach only
# the code built for it, not build scripts and proc macros (which would
# not link without libFuzzer).
host="$(rustc -vV | sed -n 's/^host: //p')"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
cargo build --profile fuzz --locked -p quorra-fuzz --features libfuzzer "${bins[@]}" \
    --target "$host" --target-dir target/fuzz

failed=0
for t in "${targets[@]}"; do
    work="target/fuzz/corpus/$t"
    artifacts="target/fuzz/artifacts/$t"
    mkdir -p "$work" "$artifacts"
    dirs=("$work" "fuzz/corpus/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    printf '\n=== fuzz %s for %ss\n' "$t" "$secs"
    # -rss_limit_mb: a decoder that allocates what a frame claims would
    # show up here as an out-of-memory crash.
    if ! "target/fuzz/$host/fuzz/$t" -max_total_time="$secs" -print_final_stats=1 \
        -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$artifacts/" "${dirs[@]}" \
        2>"target/fuzz/$t.log"; then
        failed=1
        tail -40 "target/fuzz/$t.log"
        echo "fuzz target $t FAILED; the input is in $artifacts/"
    fi
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb|new_units_added)|cov: " \
        "target/fuzz/$t.log" | tail -5
done
exit "$failed"
