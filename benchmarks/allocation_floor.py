"""How low the measured allocation may take a tensor: the MNIST MLP's narrow
lossless levels (rotated, one scale per tensor, up to 4 bits, the harness's
`low-bit lossless, accuracy search, rotated, measured allocation`) searched with
the floor pyweightvc.rate.ALLOCATE_MIN_SNR_DB set to each value given.

    python benchmarks/allocation_floor.py [--floors 0,1,3] [--cache DIR]

The shared target of this search lands near 2 dB, where a score's drop says
little about what zeroing a matrix costs. Printed per floor: the file's bytes,
its test accuracy against the bar (fp32 - 0.5 points; the search's score), its
accuracy on MNIST's 10,000 validation images (which no search sees) beside
fp32's, the step knob chosen per matrix, and every allocation the budget
bisection tried (bytes, test accuracy). About 30 s per floor after the MLP is
trained (10 s; cached in DIR).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pyweightvc as wvc
from pyweightvc import rate
from pyweightvc.bench import data, subjects


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--floors", default="0,1,3", help="comma-separated SNR floors in dB")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pyweightvc-bench-cache")
    args = ap.parse_args(argv)
    subject = subjects.MlpMnist(args.cache)
    weights = subject.weights()
    max_drop = subject.max_drop(subject.evaluate(weights))
    policy = wvc.Policy(lossless=True, per_channel=False, rotate=True, overrides={"kind:linear": {"bits": 4}})
    import torch

    mnist = data.mnist()
    x_val, y_val = torch.from_numpy(mnist["x_val"]), torch.from_numpy(mnist["y_val"])
    print(f"bar: test accuracy >= {subject.match_threshold:.4f}; fp32 validation accuracy "
          f"{subject.accuracy(weights, x_val, y_val):.4f}")
    default = rate.ALLOCATE_MIN_SNR_DB
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "mlp.wvc")
        for floor in (float(f) for f in args.floors.split(",")):
            rate.ALLOCATE_MIN_SNR_DB = floor
            try:
                found = rate.save_file_for_accuracy(weights, path, subject.score, max_drop, policy=policy,
                                                    allocate="measured")
            finally:
                rate.ALLOCATE_MIN_SNR_DB = default
            validation = subject.accuracy(wvc.load_file(path), x_val, y_val)
            print(f"floor {floor:g} dB: {os.path.getsize(path):,} B, test accuracy {found['score']:.4f}, validation "
                  f"{validation:.4f}, shared target {found['target_snr_db']:.2f} dB, step knobs {found['qps']}")
            for e in found["evaluations"]:
                if "budget" in e:
                    print(f"    budget {e['budget']:>9,.0f}: {e['bytes']:>9,d} B, accuracy {e['score']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
