#!/bin/sh
# Regenerates src/bindings.rs from shim/tinv_trt.h (and only that header) with bindgen-cli
# (`cargo install bindgen-cli`, needs libclang). Usage: sys/bindgen.sh [OUTPUT]
# tests/bindings_fresh.rs runs this into a temporary file and fails when the checked-in copy differs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/src/bindings.rs}
exec bindgen "$here/shim/tinv_trt.h" -o "$out" \
  --allowlist-function 'tinv_trt_.*' --allowlist-type 'tinv_trt_.*' --allowlist-var 'TINV_TRT_.*' \
  --dynamic-loading TinvTrtShim --dynamic-link-require-all \
  --raw-line '//! bindgen output for shim/tinv_trt.h. Do not edit: regenerate with sys/bindgen.sh.'
