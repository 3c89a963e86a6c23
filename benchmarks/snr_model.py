"""The noise x265 adds to weight pictures, per QP, as a multiple of HEVC's quantiser
step squared: the table behind pyweightvc.targets.predicted_qp (_QSTEP_NOISE).

    python benchmarks/snr_model.py [--qps 0,8,12,...] [--json out.json]

For real matrices of MobileNetV2, MiniLM and ddddocr (per-channel 8-bit levels,
the default policy's quantiser), encodes at each QP, decodes the levels
(decode_int8) and prints the mean squared level error divided by
Qstep^2 = 2^((QP - 4) / 3) (Qstep = 2^((QP - 4) / 6)): min, median and max over the
matrices, beside the table in pyweightvc.targets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
from pyweightvc_bench import subjects
from pyweightvc_bench.models import minilm_tensors, mobilenet_v2_state_dict

import pyweightvc as wvc
from pyweightvc import targets


def matrices() -> dict[str, np.ndarray]:
    mobilenet = mobilenet_v2_state_dict()
    minilm = minilm_tensors()
    with tempfile.TemporaryDirectory() as work:
        ocr = subjects.SUBJECTS["ddddocr"](Path(work)).weights()
    pick = {
        "mobilenet classifier.1.weight": mobilenet["classifier.1.weight"],
        "mobilenet features.18.0.weight": mobilenet["features.18.0.weight"],
        "mobilenet features.1.conv.0.0.weight": mobilenet["features.1.conv.0.0.weight"],
        "mobilenet features.10.conv.2.weight": mobilenet["features.10.conv.2.weight"],
        "ddddocr 135": ocr["135"],
        "ddddocr 498 (forward)": ocr["498"][0],
        "ddddocr 436": ocr["436"],
    }
    for key in sorted(minilm):
        if key.endswith(("word_embeddings.weight", "layer.0.intermediate.dense.weight", "layer.3.attention.self.query.weight")):
            pick[f"minilm {key}"] = minilm[key]
    return {k: np.ascontiguousarray(v, np.float32).reshape(v.shape[0], -1) for k, v in pick.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qps", default="0,8,12,16,20,24,28,32,36,40,44,48")
    ap.add_argument("--json", help="write every measurement here")
    args = ap.parse_args(argv)
    qps = [int(q) for q in args.qps.split(",")]
    mats = matrices()
    ratios: dict[int, dict[str, float]] = {qp: {} for qp in qps}
    for name, w in mats.items():
        levels, _, _ = wvc.quantize(w, per_channel=True)
        ref = levels.astype(np.float64).reshape(w.shape)
        for qp in qps:
            got = wvc.decode_int8(wvc.encode(w, qp, per_channel=True)).levels.astype(np.float64).reshape(w.shape)
            ratios[qp][name] = float(np.mean((got - ref) ** 2)) / 2 ** ((qp - 4) / 3)
        print(f"{name} {w.shape[0]}x{w.shape[1]}: " + ", ".join(f"QP {q} {ratios[q][name]:.3f}" for q in qps), flush=True)
    table = dict(targets._QSTEP_NOISE)
    print(f"\n{len(mats)} matrices: noise per sample / Qstep^2\n")
    print("| QP | min | median | max | targets._QSTEP_NOISE |")
    print("|---|---|---|---|---|")
    for qp in qps:
        values = list(ratios[qp].values())
        print(f"| {qp} | {min(values):.3f} | {statistics.median(values):.3f} | {max(values):.3f} | {table.get(qp, '')} |")
    if args.json:
        Path(args.json).write_text(json.dumps({str(q): r for q, r in ratios.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
