#!/usr/bin/env bash
# The main job on the embedded default model (engines/fmnist): classify its sample images, then
# evaluate the adaptive controller on the 10,000 Fashion-MNIST test images against full depth
# and the oracle. Installs the dataset if it is missing.
set -euo pipefail
if [ $# -gt 0 ]; then
  echo "usage: scripts/demo.sh (no arguments): classify the default model's samples and evaluate it" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
data=/usr/share/datasets/fashion-mnist
if [ ! -f "$data/t10k-images-idx3-ubyte.gz" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  # On lines of their own: `set -e` does not stop at the left side of `&&`.
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
  [ -f "$data/t10k-images-idx3-ubyte.gz" ] || {
    echo "error: $data/t10k-images-idx3-ubyte.gz still missing after installing dataset-fashion-mnist" >&2
    exit 1
  }
fi
if [ ! -f engines/fmnist/model.tinv ]; then
  echo "error: the default model engines/fmnist/model.tinv is not in this checkout yet (see engines/fmnist/README.md)" >&2
  exit 1
fi
cargo build --release --bin tinv-run
run=${CARGO_TARGET_DIR:-target}/release/tinv-run
$run inspect engines/fmnist
echo
$run classify engines/fmnist/samples/*.png
echo
$run eval --model engines/fmnist --images "$data/t10k-images-idx3-ubyte.gz" --labels "$data/t10k-labels-idx1-ubyte.gz"
