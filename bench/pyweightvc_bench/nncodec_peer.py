"""NNCodec (the reference implementation of MPEG's Neural Network Coding
standard, DeepCABAC inside) as a peer, in a virtual environment of its own.

NNCodec 2.1.3 wants numpy<2 and imports torchvision at import time, which clash
with this environment (numpy 2, a torch without torchvision). The harness
therefore creates a separate virtual environment on demand and drives NNCodec
through a subprocess (_nncodec_driver.py) on the very same tensors, exchanged
as .npz files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .methods import GROUPS, Outcome, Unavailable

# torch 2.14.1 with torchvision 0.29.1 is the pair whose torchvision imports on
# these machines (a CPU-only torch 2.13 has no matching torchvision); pinned so
# pip never picks another multi-GB build.
REQUIREMENTS = ("torch==2.14.1", "torchvision==0.29.1", "numpy<2", "nncodec==2.1.3")
DRIVER = Path(__file__).with_name("_nncodec_driver.py")


def default_venv() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "pyweightvc" / "nncodec-venv"


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def ensure_venv(venv: Path, create: bool, log: Callable[[str], None] = print) -> str:
    """The venv's python, creating the venv when `create` and it is not ready.
    Raises Unavailable saying why NNCodec cannot run."""
    venv = Path(venv)
    python = venv / "bin" / "python"
    marker = venv / "pyweightvc-ready.json"
    if python.exists() and marker.is_file() and json.loads(marker.read_text()) == list(REQUIREMENTS):
        return str(python)
    if not create:
        raise Unavailable(
            f"NNCodec's environment {venv} is not set up (run with --nncodec setup to create it: {' '.join(REQUIREMENTS)}, about 6 GB)"
        )
    log(f"creating NNCodec's environment in {venv}: {' '.join(REQUIREMENTS)} (a few minutes, about 6 GB)")
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
        [str(python), "-c", "import nncodec.nn"],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})
        if proc.returncode != 0:
            raise Unavailable(f"setting up NNCodec failed at `{' '.join(cmd[-3:])}`: {_tail(proc.stderr or proc.stdout)}")
    marker.write_text(json.dumps(list(REQUIREMENTS)))
    return str(python)


def run(
    python: str,
    weights: dict[str, np.ndarray],
    groups: dict[str, str],
    qps: list[int],
    workdir: str,
    repeats: int,
    timeout: Optional[float] = 3600,
) -> dict[int, Outcome]:
    """Code the fc and conv groups with NNCodec at each qp (one bitstream per
    group); small tensors stay raw as with every method."""
    work = Path(workdir) / "nncodec"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    coded = [k for k, g in groups.items() if g != "other"]
    index = {f"t{i}": [groups[k], k] for i, k in enumerate(coded)}
    np.savez(work / "input.npz", **{key: np.asarray(weights[name], np.float32) for key, (_, name) in index.items()})
    (work / "input.json").write_text(json.dumps(index))
    cmd = [python, str(DRIVER), str(work), ",".join(map(str, qps)), str(repeats)]
    try:
        # cwd: NNCodec writes its bitstream files into the working directory
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=work)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"NNCodec did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise Unavailable(f"NNCodec failed (exit {proc.returncode}): {_tail(proc.stderr or proc.stdout)}")
    summary = json.loads((work / "summary.json").read_text())
    other = sum(weights[k].nbytes for k, g in groups.items() if g == "other")
    out = {}
    for qp in qps:
        entry = summary["results"][str(qp)]
        with np.load(work / f"qp{qp}.npz") as z:
            back = dict(weights)
            for key, (_, name) in index.items():
                back[name] = z[key]
        sizes = dict.fromkeys(GROUPS, 0)
        sizes.update({g: e["bytes"] for g, e in entry.items()}, other=other, overhead=0)
        out[qp] = Outcome(back, sizes, sum(e["encode_s"] for e in entry.values()), sum(e["decode_s"] for e in entry.values()))
    shutil.rmtree(work, ignore_errors=True)
    return out


def versions(python: str) -> dict:
    proc = subprocess.run(
        [python, "-c", "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in ('nncodec', 'numpy', 'torch')}))"],
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else {}
