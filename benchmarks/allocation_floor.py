"""How low the measured allocation may take a tensor, and what it chose per
matrix: a small trained net searched by pyweightvc.rate.save_file_for_accuracy(
allocate="measured") with the floor pyweightvc.search.ALLOCATE_MIN_SNR_DB set to
each value given.

    python benchmarks/allocation_floor.py [--model mlp_mnist|cnn_fashion] [--lossy]
                                          [--floors 0,1,3] [--cache DIR]

By default the fc matrices are narrow lossless levels (rotated, one scale per
tensor, up to 4 bits: the harness's `low-bit lossless, accuracy search, rotated,
measured allocation`); with --lossy they go through lossy HEVC with
Policy(rotate="auto") (`accuracy search, rotated, measured allocation`). The
MLP's lossless search lands its shared target near 2 dB, where a score's drop
says little about what zeroing a matrix costs. Printed per floor: the file's
bytes, its test accuracy (the search's score) against the bar (fp32 - 0.5
points), for the MLP its accuracy on MNIST's 10,000 validation images (which no
search sees) beside fp32's, each matrix's shape and setting as its .wvc entry
records it (QP, or min_step of lossless levels), and every allocation the budget
bisection tried (bytes, test accuracy, the knob per matrix: a QP, or k for
min_step = 4-bit max-abs step x 2^(k/8)). 10-80 s per floor after the net is
trained (MLP 10 s, CNN about 2 min; cached in DIR).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from pyweightvc_bench import data, subjects

import pyweightvc as wvc
from pyweightvc import rate, search

MODELS = {"mlp_mnist": subjects.MlpMnist, "cnn_fashion": subjects.CnnFashion}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), default="mlp_mnist")
    ap.add_argument("--lossy", action="store_true", help="lossy HEVC fc matrices instead of lossless levels")
    ap.add_argument("--floors", default="0,1,3", help="comma-separated SNR floors in dB")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pyweightvc-bench-cache")
    args = ap.parse_args(argv)
    import torch

    subject = MODELS[args.model](args.cache)
    weights = subject.weights()
    max_drop = subject.max_drop(subject.evaluate(weights))
    if args.lossy:
        policy = wvc.Policy(rotate="auto")
    else:
        policy = wvc.Policy(lossless=True, per_channel=False, rotate=True, overrides={"kind:linear": {"bits": 4}})
    validation = None
    line = f"bar: test accuracy >= {subject.match_threshold:.4f}"
    if args.model == "mlp_mnist":  # MNIST has a validation split; Fashion-MNIST has none
        mnist = data.mnist()
        validation = torch.from_numpy(mnist["x_val"]), torch.from_numpy(mnist["y_val"])
        line += f"; fp32 validation accuracy {subject.accuracy(weights, *validation):.4f}"
    print(line)
    default = search.ALLOCATE_MIN_SNR_DB
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "model.wvc")
        for floor in (float(f) for f in args.floors.split(",")):
            search.ALLOCATE_MIN_SNR_DB = floor
            try:
                found = rate.save_file_for_accuracy(weights, path, subject.score, max_drop, policy=policy, allocate="measured")
            finally:
                search.ALLOCATE_MIN_SNR_DB = default
            held = "" if validation is None else f", validation {subject.accuracy(wvc.load_file(path), *validation):.4f}"
            print(
                f"floor {floor:g} dB: {os.path.getsize(path):,} B, test accuracy {found.score:.4f}{held}, "
                f"shared target {found.target_snr_db:.2f} dB"
            )
            with wvc.safe_open(path) as f:
                for name in found.qps:
                    e = f.entry(name)
                    setting = f"min_step {e['min_step']:.4g}" if e.get("lossless") else f"QP {e['qp']}"
                    print(f"    {name} {'x'.join(map(str, e['shape']))}: {setting}")
            for e in found.evaluations:
                if e.budget is not None:
                    print(f"    budget {e.budget:>9,.0f}: {e.bytes:>9,d} B, accuracy {e.score:.4f}, knobs {e.knobs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
