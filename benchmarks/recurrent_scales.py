"""Weight SNR of a recurrent layer's 8-bit levels with one scale per direction (the
ONNX layout [directions, gate rows, inputs] read as a matrix of `directions` rows)
against one scale per gate row (what pyweightvc.onnx stores since 2026-12-08).

    python benchmarks/recurrent_scales.py

On ddddocr's two bidirectional LSTM weight tensors (pyweightvc_bench.subjects.DdddOcr).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pyweightvc_bench import subjects
from pyweightvc_bench.fidelity import weight_snr_db

import pyweightvc as wvc


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        weights = subjects.SUBJECTS["ddddocr"](Path(work)).weights()
    print("| tensor | shape | one scale per direction | one scale per gate row |\n|---|---|---|---|")
    for name, w in weights.items():
        if w.ndim != 3:
            continue
        rows = w.reshape(-1, w.shape[-1])
        per_direction = weight_snr_db(w, wvc.dequantize(*wvc.quantize(w, per_channel=True)))
        per_row = weight_snr_db(rows, wvc.dequantize(*wvc.quantize(rows, per_channel=True)))
        print(f"| {name} | {list(w.shape)} | {per_direction:.1f} dB | {per_row:.1f} dB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
