"""pyweightvc against the simplest strong alternative and against NNCodec, per
matrix at equal weight SNR (issue 16).

    python benchmarks/baseline_matrices.py [--targets 15,20,25,30] [--matrices NAME,...] [--json out.json]

For each real matrix and weight-SNR target, bits per weight of:

- pyweightvc HEVC: ``encode(w, target_snr_db=T)`` (per tensor, and with
  ``per_channel=True``), interpolated to exactly T between the chosen QP and the
  next coarser one (both encoded in full; log-linear in bits);
- pyweightvc levels: the matrix written to a .wvc file as exact levels at T
  (``Policy`` override ``storage="int8", target_snr_db=T``: the same step as the
  baseline's, the levels rans-coded), the entry's stored bytes (scales included);
- requantised + zstd: the same floats requantised with the coarsest step that
  reaches T (``pyweightvc.targets.step_for_snr``; per channel: that step as every
  channel's floor, ``min_step``), the int8 levels zstd -19, the float32 scales
  added (zstd -19 too where that is smaller);
- NNCodec 2.1.3 (DeepCABAC with dependent quantisation, in its own environment:
  ``pyweightvc bench --nncodec setup`` creates it), swept over its qp and
  interpolated to T the same way. It has one quantiser (no per-tensor/per-channel
  choice), so it stands beside both rows;
- the order-0 entropy of the baseline's levels: no coder of independent levels
  does better; only choosing the levels by rate and distortion together (NNCodec's
  dependent quantisation) gets below it.

"vs baseline" is the smaller of pyweightvc's two over the baseline's minus 1
(negative: smaller);
"unreachable": the 8-bit levels (max-abs scales) do not reach that SNR.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import zstandard
from core_bench import bpw_at_snr  # benchmarks/ is on sys.path when this script runs
from pyweightvc_bench import nncodec_peer, subjects
from pyweightvc_bench.fidelity import weight_snr_db
from pyweightvc_bench.methods import Unavailable
from pyweightvc_bench.models import minilm_tensors, mobilenet_v2_state_dict

import pyweightvc as wvc
from pyweightvc.errors import Unreachable
from pyweightvc.targets import encode_to_target, step_for_snr

NNCODEC_QPS = list(range(-46, -11, 2))


def matrices() -> dict[str, np.ndarray]:
    mobilenet = mobilenet_v2_state_dict()
    minilm = minilm_tensors()
    word = next(k for k in minilm if k.endswith("word_embeddings.weight"))
    ffn = next(k for k in minilm if k.endswith("layer.0.intermediate.dense.weight"))
    with tempfile.TemporaryDirectory() as work:
        ocr = subjects.SUBJECTS["ddddocr"](Path(work)).weights()
    return {
        "MobileNetV2 classifier.1.weight": mobilenet["classifier.1.weight"],
        "MobileNetV2 features.18.0.weight (1x1 conv)": mobilenet["features.18.0.weight"].reshape(1280, -1),
        f"MiniLM {ffn}": minilm[ffn],
        f"MiniLM {word}": minilm[word],
        "ddddocr classifier '135'": ocr["135"],
        "ddddocr LSTM '498' (forward)": np.ascontiguousarray(ocr["498"][0]),
    }


def pyweightvc_bpw(w: np.ndarray, target: float, per_channel: bool) -> float:
    """nan where the 8-bit levels cannot reach the target."""
    try:
        _, choice = encode_to_target(w, target_snr_db=target, per_channel=per_channel)
    except Unreachable:
        return float("nan")
    if choice.qp is None or choice.qp == 51:
        return choice.bits_per_weight
    coarser = wvc.encode(w, choice.qp + 1, per_channel=per_channel)
    points = [(choice.bits_per_weight, choice.snr_db), (8 * len(coarser) / w.size, weight_snr_db(w, wvc.decode(coarser)))]
    return bpw_at_snr(points, target)


def pyweightvc_levels_bpw(w: np.ndarray, target: float, per_channel: bool) -> float:
    """The stored bytes of the matrix as a .wvc int8 entry at the target; nan where
    the 8-bit levels cannot reach it."""
    policy = wvc.Policy(per_channel=per_channel, overrides={"w": {"storage": "int8", "target_snr_db": target}})
    with tempfile.TemporaryDirectory() as work:
        path = str(Path(work) / "m.wvc")
        wvc.save_file({"w": w}, path, policy=policy)
        with wvc.safe_open(path) as f:
            begin, end = f.entry("w")["data_offsets"]
            snr = weight_snr_db(w, f.get_tensor("w"))
    return 8 * (end - begin) / w.size if snr >= target else float("nan")


def requantised_zstd_bpw(w: np.ndarray, target: float, per_channel: bool) -> tuple[float, float, float]:
    """(bits per weight, the SNR reached: at most 1 % of the step above the target,
    the levels' order-0 entropy in bits per weight: what any coder of independent
    levels needs); nan bits where the 8-bit levels cannot reach the target."""
    step = step_for_snr(w, target, per_channel=per_channel)
    levels, scale, zero_point = wvc.quantize(w, per_channel=per_channel, min_step=step)
    snr = weight_snr_db(w, wvc.dequantize(levels, scale, zero_point))
    zstd = zstandard.ZstdCompressor(level=19)
    scales = np.asarray(scale, "<f4").tobytes()  # per channel with a step floor most are equal: zstd them too
    coded = len(zstd.compress(levels.tobytes())) + min(len(scales), len(zstd.compress(scales)))
    p = np.bincount(levels.astype(np.int16).ravel() + 128, minlength=256) / levels.size
    entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
    return (8 * coded / w.size if snr >= target else float("nan")), snr, entropy


def nncodec_points(python: str, name: str, w: np.ndarray) -> list[tuple[float, float]]:
    with tempfile.TemporaryDirectory() as work:
        out = nncodec_peer.run(python, {name: w}, {name: "fc"}, NNCODEC_QPS, work, repeats=1)
    return [(8 * o.group_bytes["fc"] / w.size, weight_snr_db(w, o.weights[name])) for o in out.values()]


def _cell(bpw: float) -> str:
    return f"{bpw:.3f}" if bpw == bpw else "unreachable"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="15,20,25,30")
    ap.add_argument("--matrices", help="comma-separated substrings of the matrices' names (default: all six)")
    ap.add_argument("--json", help="write every measurement here")
    args = ap.parse_args(argv)
    targets = [float(t) for t in args.targets.split(",")]
    try:
        nnc_python = nncodec_peer.ensure_venv(nncodec_peer.default_venv(), create=False)
    except Unavailable as exc:
        nnc_python = None
        print(f"NNCodec not run: {exc}")
    rows = []
    for name, w in matrices().items():
        if args.matrices and not any(s in name for s in args.matrices.split(",")):
            continue
        w = np.ascontiguousarray(w, np.float32)
        nnc = nncodec_points(nnc_python, name, w) if nnc_python else []
        print(f"\n### {name} {w.shape[0]}x{w.shape[1]}\n")
        print(
            "| weight SNR | quantiser | pyweightvc HEVC | pyweightvc levels | requantised + zstd | its levels' entropy "
            "| vs baseline | NNCodec |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for target in targets:
            nnc_bpw = bpw_at_snr(nnc, target) if nnc else float("nan")
            for per_channel in (False, True):
                hevc = pyweightvc_bpw(w, target, per_channel)
                exact = pyweightvc_levels_bpw(w, target, per_channel)
                ours = float(np.nanmin([hevc, exact])) if hevc == hevc or exact == exact else float("nan")
                base, base_snr, entropy = requantised_zstd_bpw(w, target, per_channel)
                row = {
                    "matrix": name,
                    "target_db": target,
                    "per_channel": per_channel,
                    "pyweightvc_bpw": ours,
                    "pyweightvc_hevc_bpw": hevc,
                    "pyweightvc_levels_bpw": exact,
                    "baseline_bpw": base,
                    "baseline_snr_db": base_snr,
                    "levels_entropy_bpw": entropy,
                    "nncodec_bpw": nnc_bpw,
                }
                rows.append(row)
                vs = f"{100 * (ours / base - 1):+.1f} %" if ours == ours and base == base else "-"
                levels = f"{entropy:.3f}" if base == base else "-"
                print(
                    f"| {target:g} dB | {'per channel' if per_channel else 'per tensor'} | {_cell(hevc)} | {_cell(exact)} "
                    f"| {_cell(base)} | {levels} "
                    f"| {vs} | {_cell(nnc_bpw) if nnc else 'not run'} |",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps({"nncodec_qps": NNCODEC_QPS, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
