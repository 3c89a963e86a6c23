"""ONNX models through pyweightvc, next to ONNX Runtime's own int8 quantisation.

    python benchmarks/onnx_bench.py [--qps 22,24,28,32] [--json out.json]

Models: ddddocr's common.onnx (CNN + LSTM text reader) — accuracy is the share of
rendered strings read exactly (case-insensitive); MobileNetV2 exported from its
PyTorch weights — top-1 agreement with the original ONNX model on 160 crops of
real photos. Per variant: file size, accuracy, inference time for the fixed
batch (median of 3, one ONNX Runtime session with default settings) and peak
resident memory of a fresh process that loads the model and runs a few inputs
(VmHWM; ru_maxrss would carry over the parent's peak through fork and exec).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

QPS = [22, 24, 28, 32]
ALPHABET = "abcdefghjkmnpqrtuy23456789"  # no letters whose case or shape reads ambiguously


def ddddocr_model() -> str:
    import ddddocr

    return os.path.join(os.path.dirname(ddddocr.__file__), "common.onnx")


def ocr_inputs(n: int = 300):
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(0)
    font = ImageFont.load_default(size=36)
    out = []
    for _ in range(n):
        s = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(4, 6)))
        img = Image.new("RGB", (40 + 24 * len(s), 64), "white")
        ImageDraw.Draw(img).text((16, 10), s, fill="black", font=font)
        out.append((s, img))
    return out


def run_ocr(model_path: str, inputs, repeats: int = 3) -> tuple[float, float]:
    import ddddocr
    from ddddocr.models import model_loader

    # ddddocr loads its bundled common.onnx; have it load the variant instead
    # (and only the variant, so the peak memory is the variant's).
    original = model_loader.ModelLoader.load_model
    model_loader.ModelLoader.load_model = lambda self, p: original(self, model_path if p.endswith("common.onnx") else p)
    try:
        ocr = ddddocr.DdddOcr(beta=True, show_ad=False)
    finally:
        model_loader.ModelLoader.load_model = original
    times, reads = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        reads = [ocr.classification(img) for _, img in inputs]
        times.append(time.perf_counter() - t)
    exact = float(np.mean([r.lower() == s for (s, _), r in zip(inputs, reads)]))
    return exact, statistics.median(times)


def mobilenet_onnx(path: str) -> None:
    import torch
    from pyweightvc_bench import nets

    net = nets.pretrained("mobilenet_v2")
    torch.onnx.export(
        net,
        torch.zeros(1, 3, 224, 224),
        path,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def photo_batch() -> np.ndarray:
    from pyweightvc_bench import nets, photos

    return photos.batch(*nets.CLASSIFIERS["mobilenet_v2"][1:], per_photo=8).numpy()


def run_classifier(model_path: str, x: np.ndarray, repeats: int = 3) -> tuple[np.ndarray, float]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = np.concatenate([sess.run(None, {"input": x[i : i + 32]})[0] for i in range(0, len(x), 32)])
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def peak_memory_mb(kind: str, model_path: str) -> float:
    """Peak RSS of a fresh process that loads the model and runs a few inputs once
    (20 strings / 32 crops: more inputs grow ONNX Runtime's arena for every model
    alike and hide the model's own share)."""
    code = (
        "import sys\n"
        "sys.path.insert(0, %r)\n"
        "import onnx_bench as b\n"
        "if %r == 'ocr':\n"
        "    b.run_ocr(%r, b.ocr_inputs(20), repeats=1)\n"
        "else:\n"
        "    b.run_classifier(%r, b.photo_batch()[:32], repeats=1)\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    ) % (os.path.dirname(os.path.abspath(__file__)), kind, model_path, model_path)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(r.stdout.strip().splitlines()[-1]) / 1024


def variants(src: str, workdir: str, qps) -> list[tuple[str, str, int]]:
    """(label, runnable .onnx path, stored bytes) for every method."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from pyweightvc import onnx as wvc_onnx

    name = os.path.splitext(os.path.basename(src))[0]
    out = [("original fp32", src, os.path.getsize(src))]
    dyn = os.path.join(workdir, f"{name}-ort-int8.onnx")
    quantize_dynamic(src, dyn, weight_type=QuantType.QInt8)
    out.append(("ONNX Runtime quantize_dynamic int8", dyn, os.path.getsize(dyn)))
    for qp in qps:
        wvc = os.path.join(workdir, f"{name}-qp{qp}.wvc")
        wvc_onnx.compress(src, wvc, qp=qp)
        for fmt in ("float", "qdq"):
            path = os.path.join(workdir, f"{name}-qp{qp}-{fmt}.onnx")
            wvc_onnx.save(wvc_onnx.decompress(wvc, format=fmt), path)
            label = f"pyweightvc QP {qp}: .wvc ({os.path.getsize(wvc):,} B) -> {fmt} .onnx"
            out.append((label, path, os.path.getsize(wvc) if fmt == "float" else os.path.getsize(path)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qps", default=",".join(map(str, QPS)))
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    qps = [int(q) for q in args.qps.split(",")]
    import onnxruntime

    import pyweightvc as wvc

    info = wvc.lib_info()
    print(f"pyweightvc {info['pyweightvc']}, onnxruntime {onnxruntime.__version__}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n")
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        inputs = ocr_inputs()
        for label, path, size in variants(ddddocr_model(), workdir, qps):
            exact, seconds = run_ocr(path, inputs)
            results.append(
                dict(model="ddddocr", variant=label, bytes=size, accuracy=exact, seconds=seconds, peak_mb=peak_memory_mb("ocr", path))
            )
            print(results[-1], file=sys.stderr, flush=True)
        mnv2 = os.path.join(workdir, "mobilenet_v2.onnx")
        mobilenet_onnx(mnv2)
        x = photo_batch()
        ref = None
        for label, path, size in variants(mnv2, workdir, qps):
            out, seconds = run_classifier(path, x)
            ref = out if ref is None else ref
            results.append(
                dict(
                    model="mobilenet_v2",
                    variant=label,
                    bytes=size,
                    accuracy=float((out.argmax(1) == ref.argmax(1)).mean()),
                    seconds=seconds,
                    peak_mb=peak_memory_mb("classifier", path),
                )
            )
            print(results[-1], file=sys.stderr, flush=True)
    print("| model | variant | stored bytes | accuracy | batch time s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for r in results:
        acc = f"{100 * r['accuracy']:.1f} % " + ("exact reads" if r["model"] == "ddddocr" else "top-1 agreement")
        print(f"| {r['model']} | {r['variant']} | {r['bytes']:,} | {acc} | {r['seconds']:.2f} | {r['peak_mb']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
