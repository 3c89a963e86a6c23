"""Candidates for the data-free default policy, on every kind of model: size and
fidelity of each against plain int8 and int8 + zstd (issue 15).

    python benchmarks/default_policy.py --models minilm,ddddocr --candidates "qp 24;snr 34" [--out results.jsonl]

Candidates, separated by ";": "int8" (the levels coded losslessly: plain
per-channel int8, the fidelity reference), "qp N" (every 2-D weight at QP N, conv
kernels as int8 levels: the old default at N = 24), "snr T" (every quantised
tensor, conv kernels included, through HEVC at the largest QP whose weight SNR
reaches T dB), "step T" (every quantised tensor as exact levels (int8 storage) of the coarsest
step that reaches T dB: pyweightvc.targets.step_for_snr),
"step T, conv int8" and "snr T, conv int8" (the same with conv kernels as int8
levels), "snr T, int8
where short" (2-D matrices through HEVC at T dB, those whose 8-bit levels reach
less than T + 0.5 dB and conv kernels as int8 levels), and "default"
(pyweightvc.Policy() as it is now). "int8 + zstd" is the size of the same
per-channel int8 levels compressed with zstd -19 (scales as float32), the
simplest alternative a user has. Each line of --out is one measurement (JSON).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import zstandard
from pyweightvc_bench import subjects
from pyweightvc_bench.fidelity import weight_snr_db as tensor_snr_db

import pyweightvc as wvc


def int8_snr_db(x, plan) -> float:
    """The weight SNR of the plan's 8-bit levels coded exactly: the most any QP reaches."""
    back = wvc.dequantize(*wvc.quantize(x, **plan.quant_options()))
    return tensor_snr_db(x, np.asarray(back).reshape(np.shape(x)))


def candidate_policy(name: str, weights: dict) -> wvc.Policy:
    if name.startswith("snr ") and name.endswith(", int8 where short"):
        target = float(name[4:].split(",")[0])
        plans = {n: wvc.Policy().plan(n, str(x.dtype), tuple(x.shape)) for n, x in weights.items()}
        short = [n for n, x in weights.items() if plans[n].kind == "linear" and int8_snr_db(x, plans[n]) < target + 0.5]
        return wvc.Policy(target_snr_db=target, overrides={glob.escape(n): {"storage": "int8"} for n in short})
    if name == "default":
        return wvc.Policy()
    if name == "int8":
        return wvc.Policy(lossless=True)
    if name.startswith("qp "):
        return wvc.Policy(int(name[3:]))
    if name.startswith("snr "):
        target = float(name[4:].split(",")[0])
        if name.endswith(", conv int8"):
            return wvc.Policy(target_snr_db=target)
        return wvc.Policy(target_snr_db=target, overrides={"kind:conv": {"storage": "hevc", "target_snr_db": target}})
    if name.startswith("step "):
        target = float(name[5:].split(",")[0])
        kept = {"storage": "int8", "target_snr_db": target}
        if name.endswith(", conv int8"):
            return wvc.Policy(overrides={"kind:linear": kept})
        return wvc.Policy(overrides={"kind:linear": kept, "kind:conv": kept})
    raise ValueError(f"unknown candidate {name!r}")


def int8_zstd_bytes(weights: dict, policy: wvc.Policy) -> int:
    """Per-channel int8 levels + float32 scales, zstd -19, for every tensor the
    policy quantises; the others raw."""
    z = zstandard.ZstdCompressor(level=19)
    total = 0
    for name, x in weights.items():
        plan = policy.plan(name, str(x.dtype), tuple(x.shape))
        if plan.storage == "raw":
            total += x.nbytes
            continue
        levels, scale, _ = wvc.quantize(x, per_channel=True)
        total += len(z.compress(levels.tobytes())) + scale.nbytes
    return total


def weight_snr_db(ref: dict, got: dict, names) -> float:
    signal = sum(float((ref[n].astype(np.float64) ** 2).sum()) for n in names)
    noise = sum(float(((ref[n].astype(np.float64) - np.asarray(got[n], np.float64)) ** 2).sum()) for n in names)
    return 10 * np.log10(signal / noise) if noise else float("inf")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mlp_mnist,cnn_fashion,mobilenet_v2,efficientnet_lite0,minilm,ddddocr")
    ap.add_argument("--candidates", default="int8;qp 24;step 28;step 32;snr 32;default")
    ap.add_argument("--out", help="append one JSON line per measurement to this file")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pyweightvc-default-") as work:
        for model in args.models.split(","):
            subject = subjects.SUBJECTS[model](Path(work))
            weights = subject.weights()
            reference = subject.evaluate(weights)
            zstd_bytes = int8_zstd_bytes(weights, wvc.Policy())
            fp32 = sum(x.nbytes for x in weights.values())
            print(f"\n{model}: fp32 {fp32:,} B, int8 + zstd {zstd_bytes:,} B; fp32 fidelity {reference}", flush=True)
            for name in args.candidates.split(";"):
                path = os.path.join(work, "m.wvc")
                policy = candidate_policy(name.strip(), weights)
                t = time.perf_counter()
                header = wvc.save_file(weights, path, policy=policy)
                seconds = time.perf_counter() - t
                size = os.path.getsize(path)
                back = wvc.load_file(path)
                quantised = [n for n, e in header.items() if e["storage"] in ("hevc", "int8")]
                fid = subject.evaluate(back)
                row = {
                    "model": model,
                    "candidate": name.strip(),
                    "bytes": size,
                    "int8_zstd_bytes": zstd_bytes,
                    "fp32_bytes": fp32,
                    "vs_int8_zstd": size / zstd_bytes,
                    "encode_s": round(seconds, 2),
                    "weight_snr_db": weight_snr_db(weights, back, quantised),
                    "fidelity": fid,
                    "reference": reference,
                }
                print(
                    f"  {name.strip():22s} {size:>12,} B  {size / zstd_bytes:6.3f} x int8+zstd  "
                    f"{seconds:7.1f} s  SNR {row['weight_snr_db']:5.1f} dB  " + "  ".join(f"{k} {v:.4f}" for k, v in fid.items()),
                    flush=True,
                )
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
