#!/bin/sh
# trt-compile-check.sh -- compile the TensorRT shim (sys/shim/tinv_trt.cpp) against the public
# headers of every TensorRT version you have checked out, and report PASS/FAIL per version.
# It downloads nothing. No GPU and no TensorRT library is needed: it proves the shim compiles,
# links with no TensorRT symbol (-Wl,--no-undefined, no DT_NEEDED on libnvinfer) and exports
# every function of sys/shim/tinv_trt.h.
#
# Usage: scripts/trt-compile-check.sh [HEADERS_ROOT]      (default: .trt-headers, git-ignored)
#
# HEADERS_ROOT/<name>/include/ must hold NvInfer*.h and NvOnnxParser.h of one TensorRT version.
# Produce them from a clone of github.com/NVIDIA/TensorRT (never commit them):
#   for ref in release/8.5 release/8.6 v10.3.0 v10.16 v11.0 v11.1; do
#     d=.trt-headers/$(echo $ref | tr / -); mkdir -p $d
#     git -C TensorRT archive $ref include | tar -x -C $d
#   done
# Before 10.8 NvOnnxParser.h is not in include/ but in the parsers/onnx submodule
# (github.com/onnx/onnx-tensorrt); take it from the submodule commit of that ref:
#   git -C TensorRT ls-tree release/8.5 parsers/onnx       # -> commit fd119fe...
#   git -C onnx-tensorrt show <commit>:NvOnnxParser.h > .trt-headers/release-8.5/include/NvOnnxParser.h
# (v10.3.0's submodule commit 62bdde2 may be missing from a mirror; onnx-tensorrt's 10.1-GA
# NvOnnxParser.h declares the same API.)
#
# CUDA runtime headers: CUDA_INCLUDE_DIR (':'-separated), else the PyPI wheels unpacked under
# HEADERS_ROOT/cuda-wheels/x/nvidia/{cuda_runtime,cuda_nvcc}/include:
#   pip download --no-deps nvidia-cuda-runtime-cu12 nvidia-cuda-nvcc-cu12 -d .trt-headers/cuda-wheels
#   for w in .trt-headers/cuda-wheels/*.whl; do python3 -m zipfile -e "$w" .trt-headers/cuda-wheels/x/; done
#
# CXX selects the compiler (default g++); set CXX=aarch64-linux-gnu-g++ to check a cross build.
set -u
# A relative HEADERS_ROOT is the caller's, not the repository's: made absolute before the cd.
root=${1:-}
if [ -n "$root" ] && [ "${root#/}" = "$root" ]; then root=$PWD/$root; fi
cd "$(dirname "$0")/.." || exit 2
root=${root:-.trt-headers}
cxx=${CXX:-g++}
command -v "$cxx" >/dev/null || { echo "error: compiler $cxx not found (apt-get install g++, or set CXX)" >&2; exit 2; }
shim=sys/shim

cuda_flags=""
if [ -n "${CUDA_INCLUDE_DIR:-}" ]; then
  old_ifs=$IFS; IFS=:
  for d in $CUDA_INCLUDE_DIR; do cuda_flags="$cuda_flags -isystem $d"; done
  IFS=$old_ifs
else
  for d in "$root/cuda-wheels/x/nvidia/cuda_runtime/include" "$root/cuda-wheels/x/nvidia/cuda_nvcc/include"; do
    [ -d "$d" ] && cuda_flags="$cuda_flags -isystem $d"
  done
fi
if [ -z "$cuda_flags" ]; then
  echo "no CUDA runtime headers: set CUDA_INCLUDE_DIR (see the comment at the top of $0)" >&2
  exit 2
fi

# The functions the header declares (every one must be exported by the built library).
expected=$(grep -o '^[a-z_0-9]* \**tinv_trt_[a-z_0-9]*(' "$shim/tinv_trt.h" | sed 's/.*\(tinv_trt_[a-z_0-9]*\)(/\1/' | sort -u)
n_expected=$(echo "$expected" | wc -l)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pass=0; fail=0; found=0
printf '%-16s %-12s %-6s %s\n' "headers" "TensorRT" "result" "detail"
for inc in "$root"/*/include; do
  [ -f "$inc/NvInferVersion.h" ] || continue
  found=$((found + 1))
  name=$(basename "$(dirname "$inc")")
  version=$(printf '#include <NvInferVersion.h>\nNV_TENSORRT_MAJOR.NV_TENSORRT_MINOR.NV_TENSORRT_PATCH\n' |
    "$cxx" -E -P -isystem "$inc" - 2>/dev/null | tail -n 1 | tr -d ' ')
  major=${version%%.*}
  lib="$out/$name/libtinv_trt$major.so"
  mkdir -p "$out/$name"
  if [ ! -f "$inc/NvOnnxParser.h" ]; then
    printf '%-16s %-12s %-6s %s\n' "$name" "$version" "FAIL" "NvOnnxParser.h missing (see header comment)"
    fail=$((fail + 1)); continue
  fi
  # shellcheck disable=SC2086
  if ! "$cxx" -std=c++17 -O1 -fPIC -shared -Wall -Wextra -Werror -Wl,--no-undefined -Wl,-z,nodelete \
      -I "$shim" -isystem "$inc" $cuda_flags "$shim/tinv_trt.cpp" -o "$lib" -ldl 2>"$out/$name/log"; then
    printf '%-16s %-12s %-6s %s\n' "$name" "$version" "FAIL" "compile: $(grep -m1 -E 'error' "$out/$name/log")"
    fail=$((fail + 1)); continue
  fi
  needed=$(readelf -d "$lib" | grep NEEDED | grep -E 'nvinfer|nvonnxparser|cudart' || true)
  exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep '^tinv_trt_' | sort -u)
  missing=$(printf '%s\n' "$expected" | grep -vxF "$exported" || true)
  if [ -n "$needed" ]; then
    printf '%-16s %-12s %-6s %s\n' "$name" "$version" "FAIL" "links TensorRT/CUDA: $needed"
    fail=$((fail + 1))
  elif [ -n "$missing" ]; then
    printf '%-16s %-12s %-6s %s\n' "$name" "$version" "FAIL" "not exported: $(echo $missing)"
    fail=$((fail + 1))
  else
    printf '%-16s %-12s %-6s %s\n' "$name" "$version" "PASS" "libtinv_trt$major.so, $n_expected functions, no TensorRT link dependency ($cxx)"
    pass=$((pass + 1))
  fi
done
if [ "$found" -eq 0 ]; then
  echo "no header folders under $root (see the comment at the top of $0)" >&2
  exit 2
fi
echo "passed $pass, failed $fail"
[ "$fail" -eq 0 ]
