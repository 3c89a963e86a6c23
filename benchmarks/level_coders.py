"""What exact levels cost with each lossless coder, and how far below them any coder
could go (issue 16): the levels of the coarsest per-channel step floor that reaches
a weight SNR (what the data-free default and requantised + zstd store), in bits
per weight, on the six real matrices of baseline_matrices.py.

    python benchmarks/level_coders.py [--targets 20,30,33,36] [--matrices NAME,...]
    python benchmarks/level_coders.py --speed [--targets 20,36] [--matrices NAME,...]

--speed prints instead how fast rans, deflate -9 and zstd -19 write and read the
same levels (millions of levels a second on one core, median of 3; zstd -19's
writing once), all in the same run.

Columns: the levels' order-0 entropy (no coder of independent levels does
better with one table); rans (the .wvc int8 storage since it replaced deflate:
pyweightvc._core.encode_levels, one table per class of rows), zstd -19,
deflate -9 (the int8 storage before), xz -9e and HEVC's lossless mode (the int8
matrix as one picture sample per level) on the same levels (float32 scales not
included); and H - 0.2546, the approximate
Shannon lower bound of the weights at the same mean squared error: a uniform
quantiser's levels at high rate cost 0.5 log2(2 pi e / 12) = 0.2546 bits more
than the rate-distortion function of the same source (memoryless), so no
method at this SNR - dependent quantisation, trellis or vector quantisation
included - gets much below it without modelling dependencies between weights;
and "row model", the ideal code length of the levels under a discretised
Gaussian with each row's own RMS (what an adaptive coder conditioned on the row
could reach; the RMS values themselves not counted): the one dependency found
worth measuring, rows of unequal spread.
"""

from __future__ import annotations

import argparse
import lzma
import math
import zlib

import numpy as np
import zstandard
from baseline_matrices import matrices  # benchmarks/ is on sys.path when this script runs
from core_bench import median_time
from narrow_levels import entropy_bits

import pyweightvc as wvc
from pyweightvc._core import decode_levels, encode_levels
from pyweightvc.targets import step_for_snr

SPACE_FILLING_BITS = 0.5 * math.log2(2 * math.pi * math.e / 12)


def row_model_bits(levels: np.ndarray) -> float:
    """Mean ideal code length of the levels under a discretised Gaussian per row."""
    from scipy.stats import norm

    k = levels.reshape(levels.shape[0], -1).astype(np.float64)
    rms = np.maximum(np.sqrt((k * k).mean(axis=1, keepdims=True)), 1e-3)
    p = norm.cdf((k + 0.5) / rms) - norm.cdf((k - 0.5) / rms)
    return float(-np.log2(np.maximum(p, 1e-300)).mean())


def print_speed(name: str, target: float, levels: np.ndarray) -> None:
    raw = levels.tobytes()
    zstd, unzstd = zstandard.ZstdCompressor(level=19), zstandard.ZstdDecompressor()
    ranged, deflated, zstded = encode_levels(levels), zlib.compress(raw, 9), zstd.compress(raw)
    coders = {
        "rans": (lambda: encode_levels(levels), lambda: decode_levels(ranged, *levels.shape), 3),
        "deflate -9": (lambda: zlib.compress(raw, 9), lambda: zlib.decompress(deflated), 3),
        "zstd -19": (lambda: zstd.compress(raw), lambda: unzstd.decompress(zstded), 1),
    }
    cells = []
    for write, read, repeats in coders.values():
        cells.append(f"{levels.size / median_time(write, repeats) / 1e6:.0f} / {levels.size / median_time(read, 3) / 1e6:.0f}")
    print(f"| {name} | {target:g} dB | " + " | ".join(cells) + " |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="20,30,33,36")
    ap.add_argument("--matrices", help="comma-separated substrings of the matrices' names (default: all six)")
    ap.add_argument("--speed", action="store_true", help="how fast each coder writes and reads, instead of sizes")
    args = ap.parse_args(argv)
    zstd = zstandard.ZstdCompressor(level=19)
    if args.speed:
        print("| matrix | weight SNR | rans write / read | deflate -9 | zstd -19 |\n|---|---|---|---|---|")
    else:
        print(
            "| matrix | weight SNR | entropy | rans | zstd -19 | deflate -9 | xz -9e | HEVC lossless | rans over zstd "
            "| deflate over zstd | HEVC over zstd | entropy - 0.2546 | row model |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, w in matrices().items():
        if args.matrices and not any(s in name for s in args.matrices.split(",")):
            continue
        w = np.ascontiguousarray(w, np.float32)
        for target in (float(t) for t in args.targets.split(",")):
            step = step_for_snr(w, target, per_channel=True)
            levels, _, _ = wvc.quantize(w, per_channel=True, min_step=step)
            if args.speed:
                print_speed(name, target, levels)
                continue
            raw = levels.tobytes()
            h = entropy_bits(levels)
            z, d = 8 * len(zstd.compress(raw)) / w.size, 8 * len(zlib.compress(raw, 9)) / w.size
            r = 8 * len(encode_levels(levels)) / w.size
            x = 8 * len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)) / w.size
            hevc = 8 * len(wvc.encode(levels, lossless=True)) / w.size  # int8 input: the levels as they are
            reached = "" if step else " (8-bit levels reach less)"
            print(
                f"| {name} | {target:g} dB{reached} | {h:.3f} | {r:.3f} | {z:.3f} | {d:.3f} | {x:.3f} | {hevc:.3f} "
                f"| {100 * (r / z - 1):+.1f} % | {100 * (d / z - 1):+.1f} % "
                f"| {100 * (hevc / z - 1):+.1f} % | {h - SPACE_FILLING_BITS:.3f} | {row_model_bits(levels):.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
