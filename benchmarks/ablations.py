"""The measurements behind the default choices, each rerunnable.

    python benchmarks/ablations.py [--sections coders,folder,fuzz]

coders  lossless coders of int8 conv-kernel levels (MobileNetV2, EfficientNet-Lite0):
        deflate-9, xz-9e, zstd-19 (if `zstandard` is installed), HEVC lossless
folder  MiniLM model folder -> compress -> decompress -> sentence-transformers,
        embedding agreement on 300 sentences (QP 12 and 16)
fuzz    7,500 HEVC streams with 1-7 random byte changes, re-signed so every CRC
        passes: counts of DecoderError / decoded, and whether decoded ones equal
        the original decode
"""

from __future__ import annotations

import argparse
import lzma
import os
import sys
import tempfile
import time
import zlib

import numpy as np
import torch
from pyweightvc_bench import fidelity, models
from pyweightvc_bench.data import sentences

import pyweightvc as wvc
from pyweightvc import cli


def coders_section():
    try:
        import zstandard
    except ImportError:
        zstandard = None
        print("zstandard not installed: no zstd column")
    xz = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
    sds = {
        "mobilenet_v2": models.mobilenet_v2_state_dict(),
        "efficientnet_lite0": {
            k: v.numpy() for k, v in torch.load(models.efficientnet_lite0_path(), map_location="cpu", weights_only=True).items()
        },
    }
    coders = {"deflate-9": lambda b: zlib.compress(b, 9), "xz-9e": lambda b: lzma.compress(b, format=lzma.FORMAT_RAW, filters=xz)}
    if zstandard:
        coders["zstd-19"] = lambda b: zstandard.ZstdCompressor(level=19).compress(b)
    print("| model | scales | " + " | ".join(list(coders) + ["HEVC lossless"]) + " |  (bits per weight)")
    for name, sd in sds.items():
        kernels = [v for v in sd.values() if v.dtype == np.float32 and v.ndim >= 3 and v.size >= 1024]
        n = sum(v.size for v in kernels)
        for per_channel in (False, True):
            sizes = dict.fromkeys(list(coders) + ["HEVC lossless"], 0)
            for v in kernels:
                levels = wvc.quantize(v, per_channel=per_channel)[0].tobytes()
                for c, f in coders.items():
                    sizes[c] += len(f(levels))
                sizes["HEVC lossless"] += len(wvc.encode(v, lossless=True, per_channel=per_channel))
            row = " | ".join(f"{8 * b / n:.3f}" for b in sizes.values())
            print(f"| {name} ({n:,} weights) | {'per channel' if per_channel else 'per tensor'} | {row} |")


def folder_section():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import sentence_transformers as st

    text = sentences()
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "minilm")
        import shutil

        shutil.copytree(models.minilm_path().parent, src)
        ref = st.SentenceTransformer(src, device="cpu").encode(text)
        original = os.path.getsize(os.path.join(src, "model.safetensors"))
        for qp in (12, 16):
            out, back = os.path.join(d, f"wvc{qp}"), os.path.join(d, f"back{qp}")
            t = time.perf_counter()
            cli.main(["compress", src, "-o", out, "--qp", str(qp), "--json"])
            t_c = time.perf_counter() - t
            t = time.perf_counter()
            cli.main(["decompress", out, "-o", back, "--json"])
            t_d = time.perf_counter() - t
            size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".wvc"))
            got = st.SentenceTransformer(back, device="cpu").encode(text)
            a = fidelity.embedding_agreement(ref, got)
            print(
                f"QP {qp}: {size:,} B of .wvc for {original:,} B of safetensors ({original / size:.2f}x), "
                f"cosine {a['cosine']:.4f}, NN agreement {100 * a['nn_agreement']:.1f} %, "
                f"compress {t_c:.1f} s, decompress {t_d:.1f} s",
                file=sys.stderr,
            )


def fuzz_section():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from test_errors import _rewrite

    totals = {"DecoderError": 0, "decoded identical": 0, "decoded different": 0}
    for seed in (1, 2, 3, 5, 8):
        rng = np.random.default_rng(seed)
        w = (rng.standard_normal((64, 96)) * 0.1).astype(np.float32)
        blob = wvc.encode(w, qp=24)
        ref = wvc.decode(blob)
        payload = blob[wvc.read_header(blob).payload_offset :]
        for _ in range(1500):
            p = bytearray(payload)
            for _ in range(rng.integers(1, 8)):
                p[rng.integers(0, len(p))] = rng.integers(0, 256)
            try:
                out = wvc.decode(_rewrite(blob, payload=bytes(p)))
            except wvc.DecoderError:
                totals["DecoderError"] += 1
                continue
            totals["decoded identical" if np.array_equal(out, ref) else "decoded different"] += 1
    print(totals)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="coders,folder,fuzz")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    for section in args.sections.split(","):
        print(f"\n## {section}\n", flush=True)
        {"coders": coders_section, "folder": folder_section, "fuzz": fuzz_section}[section]()


if __name__ == "__main__":
    main()
