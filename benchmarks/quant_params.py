"""What the quantisation parameters (one float32 scale per output channel) cost,
and the median row step the min_step search starts from.

    python benchmarks/quant_params.py [--models efficientnet_lite0,mobilenet_v2,minilm]

For each model, the tensors one storage path holds under the default policy:
int8 (the conv kernels: their scales go into the .wvc entry, deflated when that
is smaller, coder "zlib-params") for the ImageNet nets, hevc (the scales sit
raw in each blob's header) for MiniLM. Printed per min_step: channels, weights,
the scales' raw bytes and bits per weight, the bytes deflate (level 9) makes of
them tensor by tensor, as float32 (what a "zlib-params" entry stores) and as
float16; and the weight-weighted median of the rows'
max-abs steps (pyweightvc.rate's reference for search_min_step).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zlib
from pathlib import Path

from pyweightvc_bench import subjects

import pyweightvc as wvc
from pyweightvc import rate

STORAGE = {"efficientnet_lite0": "int8", "mobilenet_v2": "int8", "minilm": "hevc"}
MIN_STEPS = (0.0, 0.002, 0.003)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(STORAGE))
    args = ap.parse_args(argv)
    models = args.models.split(",")
    if set(models) - set(STORAGE):
        ap.error(f"models: choose from {', '.join(STORAGE)}")
    print("| model | storage | min_step | channels | weights | scales raw B | bits/weight | deflated f32 B | deflated f16 B |")
    print("|---|---|---|---|---|---|---|---|---|")
    medians = {}
    policy = wvc.Policy(wvc.DEFAULT_QP)  # the matrices through HEVC, as when this was measured
    with tempfile.TemporaryDirectory(prefix="pyweightvc-params-") as work:
        for model in models:
            weights = subjects.SUBJECTS[model](Path(work)).weights()
            names = [n for n, x in weights.items() if policy.plan(n, str(x.dtype), tuple(x.shape)).storage == STORAGE[model]]
            n_weights = sum(weights[n].size for n in names)
            plans = {n: policy.plan(n, str(weights[n].dtype), tuple(weights[n].shape)) for n in names}
            medians[model] = rate.median_row_step(weights, plans, names)
            for step in MIN_STEPS:
                per_tensor = [wvc.quantize(weights[n], per_channel=True, min_step=step)[1] for n in names]
                raw = sum(s.size * 4 for s in per_tensor)
                f32, f16 = (sum(len(zlib.compress(s.astype(t).tobytes(), 9)) for s in per_tensor) for t in ("<f4", "<f2"))
                print(
                    f"| {model} | {STORAGE[model]} | {step:g} | {raw // 4:,} | {n_weights:,} | {raw:,} | "
                    f"{8 * raw / n_weights:.3f} | {f32:,} | {f16:,} |",
                    flush=True,
                )
    print()
    for model, median in medians.items():
        print(f"{model}: weight-weighted median of the rows' max-abs steps {median:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
