#!/usr/bin/env bash
# Installs what the test suite and the demo need on a fresh Debian/Ubuntu machine (idempotent):
# the Fashion-MNIST dataset, valgrind, qemu-user and the arm64 cross libc for the aarch64 tests,
# pkg-config, gcc and g++ for the C/C++ tests, rustfmt/clippy, and a Python venv (.venv, with
# python3 and python3-venv when missing) with ONNX Runtime, the independent numerical reference.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || need_apt+=(dataset-fashion-mnist)
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need_apt+=(libc6-arm64-cross libgcc-s1-arm64-cross)
# The C and C++ ABI tests compile with cc and c++; the ONNX Runtime reference runs in a venv
# (stock images lack python3, Ubuntu's lacks its venv module).
command -v cc >/dev/null || need_apt+=(gcc)
command -v c++ >/dev/null || need_apt+=(g++)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c "import ensurepip, venv" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import onnxruntime, numpy, onnx" 2>/dev/null; then
  echo "setup: python venv .venv with numpy + onnxruntime"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q numpy onnxruntime onnx
fi
./scripts/cross-aarch64.sh install-only
echo "setup: done"
