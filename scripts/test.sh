#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), then runs every Rust test of
# the workspace in release mode (numeric suites are slow in debug), the C/C++ ABI tests, and the
# aarch64 build under qemu where the cross tools are available.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export TINV_PYTHON="$PWD/.venv/bin/python"
cargo test --release --workspace
# The TensorRT backend's orchestration, against the recording doubles (no GPU, no TensorRT), and
# the C ABI built with it (its AUTO falls back to the CPU as quietly as the Rust API's), and
# `tinv-run`'s unit tests with it (`selftest`'s and `build`'s are compiled with the feature only).
cargo test --release -p tinv --features tensorrt --lib --bins --test backend --test regressions \
  --test cli --test cli_bench_selftest --test cli_classify --test cli_export --test cli_inspect \
  --test capi --test capi_header --test capi_install --test capi_model --test capi_session
# The fuzz targets are outside the workspace: compile them, so an API change cannot break them
# unnoticed (running them is scripts/fuzz.sh).
(cd fuzz && cargo check --bins --examples)
if [ -x scripts/cross-aarch64.sh ]; then
  ./scripts/cross-aarch64.sh test
fi
