"""The fuzz harness (fuzz/wvcfuzz.py): its corpus of inputs that once escaped as
ValueError, TypeError, RecursionError or MemoryError, and a short run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pyweightvc as wvc
from common import DATA
from pyweightvc.numcodecs import PyWeightVC

ROOT = Path(__file__).parent.parent
CORPUS = sorted((DATA / "fuzz_corpus").iterdir())


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_is_refused_with_pyweightvc_errors(path):
    data = path.read_bytes()
    if path.suffix == ".wvc":
        with pytest.raises(wvc.ContainerError):
            wvc.load_file(str(path))
        return
    with pytest.raises(wvc.FormatError):
        wvc.decode(data)
    with pytest.raises(wvc.FormatError):
        wvc.decode_int8(data)
    with pytest.raises(wvc.FormatError):
        PyWeightVC().decode(data, out=np.empty((48, 80), np.float32))


@pytest.mark.fuzz
def test_short_fuzz_run(tmp_path):
    """About half a minute of every target (PYWEIGHTVC_FUZZ_SECONDS to change it), in a
    child process under an address-space cap: nothing but WeightVCError, no
    nondeterministic decode, no MemoryError, no silent change from a .wvc header edit."""
    seconds = os.environ.get("PYWEIGHTVC_FUZZ_SECONDS", "30")
    # The child imports the installed package, as the tests do: src/ holds no built _core.
    run = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "wvcfuzz.py"), "--seconds", seconds, "--seed", "0", "--out", str(tmp_path / "findings")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.stdout.strip(), f"the fuzz run printed no summary (exit {run.returncode}):\n{run.stderr[-3000:]}"
    summary = json.loads(run.stdout)
    targets = summary["targets"]
    assert set(targets) == {"blob-header", "blob-payload", "numcodecs", "wvc-header", "wvc-json", "wvc-text", "wvc-data"}
    for name, counts in targets.items():
        assert counts["inputs"] > 0 and counts.get("refused", 0) > 0, name
        for bad in ("exception", "nondeterministic", "memory", "silent"):
            assert counts.get(bad, 0) == 0, (name, bad, list((tmp_path / "findings").glob("*.json")))
    assert run.returncode == 0
