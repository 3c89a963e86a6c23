#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the test suite. Arguments go to pytest,
# e.g. `bash scripts/test.sh -m slow` for the slow tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m pytest "$@"
