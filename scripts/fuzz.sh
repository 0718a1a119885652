#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/) on a stable toolchain, without a sanitizer.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 600 s, every target, two at a time
#
# New inputs go to fuzz/target/corpus/<target> (the seeds in fuzz/corpus/<target> stay small and
# unchanged); crashes to fuzz/artifacts/<target>/; logs to fuzz/target/logs/<target>.log. The last
# lines print, per target, the executions, libFuzzer's cov:/ft: counters, the corpus size and
# whether it crashed, which is what docs/RELIABILITY.md records.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets stable rustc take the
# sanitizer-coverage flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(tinv_parse manifest idx image)
export RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
[ -d corpus/tinv_parse ] || cargo run --release --example make_seeds
cargo fuzz build -s none
mkdir -p target/logs
run_one() {
    local t=$1
    mkdir -p "target/corpus/$t" "artifacts/$t"
    # -max_len: the .tinv seeds are up to 29 KiB; the other formats stay small.
    local max=4096
    [ "$t" = tinv_parse ] && max=32768
    nice -n 19 cargo fuzz run -s none "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len="$max" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"target/logs/$t.log" 2>&1
}
status=0
# Two at a time: the build machine has two cores.
for ((i = 0; i < ${#targets[@]}; i += 2)); do
    pids=()
    for t in "${targets[@]:i:2}"; do
        run_one "$t" & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || status=1; done
done
for t in "${targets[@]}"; do
    log="target/logs/$t.log"
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    # `|| true`: a target that crashed on a seed or never started has no such line, and under
    # pipefail the summary then ended silently, hiding the crash.
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | tail -1 || true)
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | tail -1 || true)
    corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' <<<"$last" | tail -1 || true)
    crashed=no
    grep -qE 'ERROR: libFuzzer|panicked at|SUMMARY' "$log" && crashed="YES (see $log, artifacts/$t/)"
    echo "$t: ${secs}s execs=$execs $cov $ft $corp crashed=$crashed"
done
exit $status
