"""Narrow integer levels coded losslessly: what the dense samples of format
version 2 cost against the spread samples of version 1, deflate and the
levels' order-0 entropy, in bits per weight.

    python benchmarks/narrow_levels.py --harness-cache DIR [--bits 3,4,5,6] [--per-channel]

DIR: a benchmark run's cache folder (OUT/cache of `pyweightvc bench`), whose
trained MNIST MLP and Fashion CNN supply the matrices. Version 1's spread
samples (128 + q * 2^(8-b)) are reproduced by coding the int8 matrix q * 2^(8-b)
losslessly, which HEVC sees as exactly those samples. Also printed: whether
`rotate="auto"` would rotate each matrix at QP 24 and 36 (pyweightvc.rate.rotation_pays).
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np

import pyweightvc as wvc
from pyweightvc import rate


def entropy_bits(levels: np.ndarray) -> float:
    p = np.bincount(levels.ravel().astype(np.int64) + 128, minlength=256) / levels.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--harness-cache", required=True)
    ap.add_argument("--bits", default="3,4,5,6")
    ap.add_argument("--per-channel", action="store_true", help="one scale per row (default: per tensor)")
    args = ap.parse_args(argv)
    from safetensors.numpy import load_file

    matrices = {}
    for path in sorted(Path(args.harness_cache).glob("*.safetensors")):
        for key, w in load_file(str(path)).items():
            if w.ndim == 2 and w.size >= 100_000:
                matrices[f"{path.stem.split('-')[0]} {key} {'x'.join(map(str, w.shape))}"] = w
    if not matrices:
        print(f"no matrices in {args.harness_cache}: run `pyweightvc bench` first", file=sys.stderr)
        return 2
    print("| matrix | rotate=auto at QP 24 / 36 | bits | dense (v2) | spread (v1) | deflate -9 | entropy |")
    print("|---|---|---|---|---|---|---|")
    for name, w in matrices.items():
        rot = " / ".join("yes" if rate.rotation_pays(w, q, per_channel=args.per_channel) else "no" for q in (24, 36))
        for bits in (int(b) for b in args.bits.split(",")):
            levels, _, _ = wvc.quantize(w, bits=bits, per_channel=args.per_channel)
            dense = wvc.encode(w, lossless=True, bits=bits, per_channel=args.per_channel)
            assert wvc.read_header(dense).dense
            spread = wvc.encode((levels.astype(np.int16) << (8 - bits)).astype(np.int8), lossless=True)
            bpw = [8 * n / w.size for n in (len(dense), len(spread), len(zlib.compress(levels.tobytes(), 9)))]
            print(f"| {name} | {rot} | {bits} | {bpw[0]:.3f} | {bpw[1]:.3f} | {bpw[2]:.3f} | {entropy_bits(levels):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
