"""The command line as a user meets it: check, summaries, progress, interruption."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import save_file as st_save

from pyweightvc import cli


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pyweightvc", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def small_checkpoint(path):
    rng = np.random.default_rng(0)
    st_save({"fc.weight": (rng.standard_normal((64, 96)) * 0.05).astype(np.float32), "fc.bias": np.zeros(64, np.float32)}, str(path))
    return path


def test_check_verifies_a_good_file_and_refuses_a_damaged_one(tmp_path, capsys):
    src = small_checkpoint(tmp_path / "m.safetensors")
    out = tmp_path / "m.wvc"
    assert cli.main(["compress", str(src), "-o", str(out), "--qp", "24", "--json"]) == 0  # HEVC: pictures to verify
    capsys.readouterr()
    assert cli.main(["check", str(out)]) == 0
    assert "OK (1 file, 2 tensors, every checksum and picture verified)" in capsys.readouterr().out
    data = bytearray(out.read_bytes())
    data[-10] ^= 0x40  # in the last tensor's data
    bad = tmp_path / "bad.wvc"
    bad.write_bytes(bytes(data))
    assert cli.main(["info", str(bad)]) == 0  # info reads the header only
    capsys.readouterr()
    assert cli.main(["check", str(bad)]) == cli.EXIT_CORRUPT
    assert "checksum mismatch" in capsys.readouterr().err
    assert bad.read_bytes() == bytes(data)  # nothing written


def test_summary_of_a_bfloat16_input_is_against_its_own_bytes(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    save_file({"w": torch.randn(256, 512).to(torch.bfloat16) * 0.02}, str(tmp_path / "m.safetensors"))
    r = run("compress", tmp_path / "m.safetensors", "-o", tmp_path / "m.wvc", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["input_bytes"] == 256 * 512 * 2 and s["fp32_bytes"] == 2 * s["input_bytes"]
    assert s["ratio_vs_input"] == pytest.approx(s["input_bytes"] / s["file_bytes"])
    text = run("compress", tmp_path / "m.safetensors", "-o", tmp_path / "m.wvc").stdout
    assert "smaller than the input (bfloat16, 262,144 B)" in text and "vs fp32" in text


def test_a_checkpoint_without_weights_says_so(tmp_path):
    st_save({"steps": np.zeros(0, np.int64), "empty": np.zeros((0, 4), np.float32)}, str(tmp_path / "e.safetensors"))
    r = run("compress", tmp_path / "e.safetensors", "-o", tmp_path / "e.wvc")
    assert r.returncode == 0, r.stderr
    assert "no float weights to compress" in r.stdout and "0.00x" not in r.stdout


def test_progress_counts_weights_to_a_known_total(tmp_path):
    src = small_checkpoint(tmp_path / "m.safetensors")
    # tqdm draws only on a terminal; force it to, as a user's terminal would
    env = {**os.environ, "TQDM_DISABLE": "0", "TQDM_MININTERVAL": "0"}
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tqdm; from pyweightvc import cli; sys.stderr.isatty = lambda: True; sys.exit(cli.main(sys.argv[1:]))",
            "compress",
            str(src),
            "-o",
            str(tmp_path / "m.wvc"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "100%" in r.stderr and "6.21k/6.21k" in r.stderr and "weights/s" in r.stderr


def test_ctrl_c_stops_at_once_and_leaves_nothing(tmp_path):
    """SIGINT during a long compress: exit code 130, one line saying so, no output
    file and no temporary file beside it."""
    rng = np.random.default_rng(1)
    st_save({f"layer{i}.weight": rng.standard_normal((2048, 2048)).astype(np.float32) for i in range(6)}, str(tmp_path / "big.safetensors"))
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyweightvc",
            "compress",
            str(tmp_path / "big.safetensors"),
            "-o",
            str(out / "big.wvc"),
            "--qp",
            "24",
            "--preset",
            "slow",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)  # loading done, encoding under way
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_INTERRUPTED, stderr
    assert stderr.strip().splitlines()[-1] == "pyweightvc compress: interrupted; no partial output left"
    assert "Traceback" not in stderr
    assert os.listdir(out) == []


def test_help_describes_every_argument():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("compress", "decompress", "info", "check"):
        for action in commands[name]._actions:
            if action.dest != "help":
                assert action.help, (name, action.dest)
    assert "Exit codes: 0 success" in parser.epilog and "130 interrupted" in parser.epilog
