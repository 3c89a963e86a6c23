"""Compress real trained weight matrices and print a short report.

    python -m pyweightvc.bench.demo [--qp 24] [--preset medium] [--lossless]

Uses MobileNetV2's ImageNet classifier (1000 x 1280) and MiniLM's word
embeddings (30522 x 384), which ship inside packages from the package index.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import pyweightvc as wvc
from pyweightvc.bench.models import real_matrices


def snr_db(w: np.ndarray, w2: np.ndarray) -> float:
    w = np.asarray(w, np.float64)
    err = ((w - np.asarray(w2, np.float64)) ** 2).sum()
    return float("inf") if err == 0 else float(10 * np.log10((w**2).sum() / err))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qp", type=int, default=wvc.codec.DEFAULT_QP)
    ap.add_argument("--preset", default=wvc.codec.DEFAULT_PRESET, choices=wvc.codec.PRESETS)
    ap.add_argument("--lossless", action="store_true")
    args = ap.parse_args(argv)
    info = wvc.lib_info()
    setting = "lossless" if args.lossless else f"QP {args.qp}"
    print(f"pyweightvc {info['pyweightvc']} (x265 {info['x265']}, libde265 {info['libde265']}), "
          f"{setting}, preset {args.preset}, per-tensor symmetric int8\n")
    encoder = wvc.Encoder(args.qp, lossless=args.lossless, preset=args.preset)
    decoder = wvc.Decoder()
    header = f"{'matrix':42s} {'shape':>12s} {'fp32':>10s} {'encoded':>10s} {'vs fp32':>8s} {'vs int8':>8s} {'bits/w':>7s} {'SNR dB':>7s} {'int8 dB':>7s} {'enc s':>6s} {'dec s':>6s}"
    print(header)
    print("-" * len(header))
    for name, w in real_matrices().items():
        t0 = time.perf_counter()
        blob = encoder.encode(w)
        t1 = time.perf_counter()
        back = decoder.decode(blob)
        t2 = time.perf_counter()
        q, s, z = wvc.quantize(w)
        shape = "x".join(map(str, w.shape))
        print(f"{name:42s} {shape:>12s} {w.nbytes:>10,d} {len(blob):>10,d} {w.nbytes / len(blob):>7.1f}x "
              f"{w.size / len(blob):>7.2f}x {8 * len(blob) / w.size:>7.3f} {snr_db(w, back):>7.2f} "
              f"{snr_db(w, wvc.dequantize(q, s, z)):>7.2f} {t1 - t0:>6.2f} {t2 - t1:>6.2f}")
    print("\nSNR: weight signal-to-noise ratio of the decoded weights against the fp32 originals;"
          "\nint8 dB: the same for plain int8 quantisation (the ceiling HEVC coding approaches).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
