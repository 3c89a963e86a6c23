"""Conv kernels below 8 bits: whole-model size and output fidelity when the
convolution kernels are quantised more coarsely or coded with lossy HEVC.

    python benchmarks/conv_kernels.py [--model efficientnet_lite0] [--fc-qp 28]

The fc matrix stays at the default policy's HEVC QP (--fc-qp); the conv kernels
take each setting below; the file is written, reloaded and judged by the
benchmark harness's subject (KL divergence and top-1 agreement with fp32 on its
320 photo crops). Also printed: the conv group's weight SNR and, for levels
stored as int8, their order-0 entropy (a bound for any lossless coder that codes
them one by one); the min_step settings floor every channel's step (the narrow
channels share one absolute step; docs/rate.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from pyweightvc_bench import methods, subjects

import pyweightvc as wvc

CONV_SETTINGS = {
    "int8 levels, per channel (default)": {},
    "7-bit levels, per channel": {"storage": "int8", "bits": 7},
    "6-bit levels, per channel": {"storage": "int8", "bits": 6},
    "8-bit levels, per channel, min_step 0.002": {"storage": "int8", "min_step": 0.002},
    "8-bit levels, per channel, min_step 0.003": {"storage": "int8", "min_step": 0.003},
    "8-bit levels, per channel, min_step 0.004": {"storage": "int8", "min_step": 0.004},
    "8-bit levels, per channel, min_step 0.006": {"storage": "int8", "min_step": 0.006},
    "8-bit levels, per tensor": {"storage": "int8", "per_channel": False},
    "7-bit levels, per tensor": {"storage": "int8", "bits": 7, "per_channel": False},
    "6-bit levels, per tensor": {"storage": "int8", "bits": 6, "per_channel": False},
    "HEVC, target SNR 36 dB": {"storage": "hevc", "target_snr_db": 36},
    "HEVC, target SNR 32 dB": {"storage": "hevc", "target_snr_db": 32},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0", choices=("efficientnet_lite0", "mobilenet_v2"))
    ap.add_argument("--fc-qp", type=int, default=28)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pyweightvc-conv-") as work:
        subject = subjects.SUBJECTS[args.model](Path(work))
        ref = subject.weights()
        conv = [k for k, g in methods.tensor_groups(ref).items() if g == "conv"]
        signal = sum(float((ref[k].astype(np.float64) ** 2).sum()) for k in conv)
        n_conv = sum(ref[k].size for k in conv)
        print(f"{args.model}: {len(conv)} conv kernels, {n_conv:,} weights; fc at QP {args.fc_qp}\n")
        print("| conv kernels | model bytes | conv bits/weight | levels' entropy | conv SNR dB | KL divergence | top-1 agreement |")
        print("|---|---|---|---|---|---|---|")
        path = os.path.join(work, "m.wvc")
        for label, conv_settings in CONV_SETTINGS.items():
            policy = wvc.Policy(args.fc_qp, overrides={"kind:conv": conv_settings} if conv_settings else None)
            header = wvc.save_file(ref, path, policy=policy)
            got = wvc.load_file(path)
            conv_bytes = sum(header[k]["data_offsets"][1] - header[k]["data_offsets"][0] for k in conv)
            noise = sum(float(((ref[k].astype(np.float64) - got[k]) ** 2).sum()) for k in conv)
            entropy = "–"
            if all(header[k]["storage"] == "int8" for k in conv):
                with wvc.safe_open(path) as f:
                    levels = np.concatenate([f.get_int8(k).levels.ravel() for k in conv])
                p = np.bincount(levels.astype(np.int64) + 128, minlength=256) / levels.size
                p = p[p > 0]
                entropy = f"{-(p * np.log2(p)).sum():.2f}"
            fid = subject.evaluate(got)
            print(
                f"| {label} | {os.path.getsize(path):,} | {8 * conv_bytes / n_conv:.2f} | {entropy} | "
                f"{10 * np.log10(signal / noise):.2f} | {fid['kl_divergence']:.4f} | "
                f"{100 * fid['top1_agreement']:.1f} % |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
