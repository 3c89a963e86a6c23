"""An ONNX model the way its users would shrink it, against pyweightvc (issue 16):
ONNX Runtime's own ``quantize_dynamic`` (int8 weights in the graph, activations
quantised at run time), that file zstd -19, and pyweightvc's .wvc of the same
graph; whole files on disk, and the model's fidelity measured on its real inputs.

    python benchmarks/onnx_alternatives.py [--model ddddocr] [--qps 24,30]

ddddocr's text reader (common.onnx, a CNN + LSTM) reads the harness's 300 hard
rendered strings (pyweightvc_bench.subjects.DdddOcr); a pyweightvc file is read
back as floats (``decompress --format float``) into the same graph.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import onnx
import zstandard
from onnxruntime.quantization import QuantType, quantize_dynamic
from pyweightvc_bench import subjects

import pyweightvc as wvc
from pyweightvc import onnx as wvc_onnx


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ddddocr", choices=["ddddocr"])
    ap.add_argument("--qps", default="24,30", help="pyweightvc's matrices through HEVC at these QPs too")
    args = ap.parse_args(argv)
    zstd = zstandard.ZstdCompressor(level=19)
    with tempfile.TemporaryDirectory(prefix="pyweightvc-onnx-") as work:
        subject = subjects.SUBJECTS[args.model](Path(work))
        src = os.path.join(work, "model.onnx")
        onnx.save(subject.model, src)
        print(f"{args.model}: {os.path.getsize(src):,} B fp32 graph; fp32 fidelity {subject.evaluate_graph(Path(src).read_bytes())}")
        print("\n| method | file bytes | vs fp32 graph | exact reads | read agreement |")
        print("|---|---|---|---|---|")

        def row(label: str, size: int, fid: dict) -> None:
            ratio = os.path.getsize(src) / size
            print(f"| {label} | {size:,} | {ratio:.2f}x | {fid['exact_reads']:.4f} | {fid['read_agreement']:.4f} |", flush=True)

        for per_channel in (False, True):
            out = os.path.join(work, f"dynamic-{per_channel}.onnx")
            quantize_dynamic(src, out, per_channel=per_channel, weight_type=QuantType.QInt8)
            raw = Path(out).read_bytes()
            fid = subject.evaluate_graph(raw)
            label = f"ONNX Runtime quantize_dynamic, int8, {'per channel' if per_channel else 'per tensor'}"
            row(label, len(raw), fid)
            row(label + ", zstd -19", len(zstd.compress(raw)), fid)
        for label, kwargs in [("pyweightvc, data-free default", {})] + [
            (f"pyweightvc, HEVC QP {qp}", {"qp": int(qp)}) for qp in args.qps.split(",") if qp
        ]:
            out = os.path.join(work, "model.wvc")
            wvc_onnx.compress(src, out, **kwargs)
            back = wvc_onnx.decompress(out, format="float")
            row(label, os.path.getsize(out), subject.evaluate_graph(back.SerializeToString()))
        print(f"\n(pyweightvc {wvc.__version__}; a .wvc file holds the graph too)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
