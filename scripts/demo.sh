#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then compresses real trained weight matrices and
# prints a report. Arguments go to python -m pyweightvc_bench.demo (e.g. --qp 30).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd /tmp  # import the installed package, not the source tree
exec "${PYTHON:-python3}" -m pyweightvc_bench.demo "$@"
