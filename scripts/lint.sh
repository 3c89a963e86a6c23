#!/usr/bin/env bash
# Static checks, as CI runs them: ruff (lint and format), mypy on the package, and
# import-linter (imports point down the layers: the contract in pyproject.toml).
# Installs the pinned tools when missing. The pre-commit hooks run the same commands.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import importlib.metadata as m; import sys; sys.exit(any(m.version(p) != v for p, v in
  [("ruff", "0.17.6"), ("mypy", "2.4.1"), ("import-linter", "2.16")]))' 2>/dev/null \
  || PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet --disable-pip-version-check \
       ruff==0.17.6 mypy==2.4.1 import-linter==2.16
"$PYTHON" -m ruff check src tests bench benchmarks fuzz
"$PYTHON" -m ruff format --check src tests bench benchmarks fuzz
PYTHONPATH=src "$PYTHON" -m mypy
PYTHONPATH=src lint-imports --no-cache
echo "lint: ruff, mypy and import-linter clean"
