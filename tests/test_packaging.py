"""Release artefacts: the self-contained wheel and the sdist's build errors."""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_missing_libraries_give_a_clear_cmake_error(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is needed to build pyweightvc from source")
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(tmp_path), PKG_CONFIG_PATH=str(tmp_path))
    r = subprocess.run([cmake, "-S", str(ROOT), "-B", str(tmp_path / "build")], capture_output=True, text=True, env=env)
    assert r.returncode != 0
    text = " ".join((r.stdout + r.stderr).split())
    assert "x265 >= 3.5 (Debian/Ubuntu package libx265-dev)" in text
    assert "libde265 >= 1.0.8 (Debian/Ubuntu package libde265-dev)" in text


@pytest.mark.slow
def test_wheel_is_self_contained(tmp_path):
    env = dict(os.environ, DIST=str(tmp_path / "dist"), WHEELHOUSE=str(tmp_path / "wheelhouse"), PYTHON=sys.executable)
    r = subprocess.run(["bash", str(ROOT / "scripts" / "build_wheel.sh")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (wheel,) = (tmp_path / "wheelhouse").glob("pyweightvc-*.whl")
    assert re.search(r"-manylinux_2_\d+_x86_64\.whl$", wheel.name), wheel.name
    assert list((tmp_path / "dist").glob("pyweightvc-*.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    for lib in ("libx265", "libde265", "libnuma"):
        assert any(re.match(rf"pyweightvc\.libs/{lib}-[0-9a-f]+\.so", n) for n in names), (lib, names)
    for text in ("x265-COPYRIGHT.txt", "libde265-COPYRIGHT.txt", "libnuma-COPYRIGHT.txt"):
        assert any(n.endswith(text) and ".dist-info/" in n for n in names), text
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: GPL-2.0-or-later" in metadata

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    core = next((venv / "lib").glob("python*/site-packages/pyweightvc/_core*.so"))
    ldd = subprocess.run(["ldd", str(core)], capture_output=True, text=True).stdout
    for lib in ("libx265", "libde265"):
        line = next(line for line in ldd.splitlines() if lib in line)
        assert "pyweightvc.libs" in line, line  # resolves to the bundled copy, not the system's
    script = (
        "import numpy as np, pyweightvc as wvc, sys\n"
        "w = np.random.default_rng(0).normal(0, 0.02, (300, 500)).astype(np.float32)\n"
        "b = wvc.encode(w, qp=24); out = wvc.decode(b)\n"
        "assert out.shape == w.shape and np.abs(out - w).max() < np.abs(w).max()\n"
        "assert 'site-packages' in wvc.__file__\n"
        "wvc.save_file({'w': w, 'b': w[0]}, sys.argv[1])\n"
        "print(wvc.lib_info()['x265'])\n"
    )
    # run outside the source tree, with no loader path that could find system copies first
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    r = subprocess.run([str(py), "-c", script, str(tmp_path / "m.wvc")], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [str(venv / "bin" / "pyweightvc"), "info", str(tmp_path / "m.wvc")], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert r.returncode == 0 and "smaller than the input (float32" in r.stdout, r.stderr
