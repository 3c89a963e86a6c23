"""Ideas to make weight pictures cheaper to code, each measured on real fc
tensors as bits per weight at equal weight SNR against the current default.

    python benchmarks/rate_ideas.py [--ideas all|name,name] [--qps 16,20,24,28,32,36] [--json out.json]
                                    [--harness-cache DIR]

--harness-cache: a benchmark run's cache folder (OUT/cache of `pyweightvc bench`);
the fc matrices of the MNIST MLP and Fashion CNN trained there join the tensors.

For every tensor and idea, the tensor is transformed (rows reordered, rotated,
clipped, ...), encoded with pyweightvc's defaults (symmetric, per output channel,
preset fast) at each QP, decoded, transformed back, and its weight SNR taken
against the original. "delta bpw" is the mean difference in bits per weight at
equal SNR over the SNR range both curves cover (a BD-rate in bits): negative
means the idea saves bits. Side information the idea would have to store (a
permutation, a seed) is added to its size.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from pyweightvc_bench import models

import pyweightvc as wvc

QPS = (16, 20, 24, 28, 32, 36)


def real_tensors(harness_cache=None) -> dict[str, np.ndarray]:
    import torch

    mnv2 = models.mobilenet_v2_state_dict()
    eff = torch.load(models.efficientnet_lite0_path(), map_location="cpu", weights_only=True)
    lm = models.minilm_tensors()
    out = {
        "mobilenet_v2 classifier 1000x1280": mnv2["classifier.1.weight"],
        "efficientnet_lite0 _fc 1000x1280": eff["_fc.weight"].numpy(),
        "mobilenet_v2 1x1 conv 1280x320": mnv2["features.18.0.weight"].reshape(1280, -1),
    }
    for key in (
        "encoder.layer.0.intermediate.dense.weight",
        "encoder.layer.3.output.dense.weight",
        "encoder.layer.5.attention.self.query.weight",
    ):
        out[f"minilm {key.split('encoder.')[1]} {'x'.join(map(str, lm[key].shape))}"] = lm[key]
    emb = lm["embeddings.word_embeddings.weight"]
    out["minilm word embeddings rows 0-4095 4096x384"] = emb[:4096]
    if harness_cache:
        from pathlib import Path

        from safetensors.numpy import load_file

        for path in sorted(Path(harness_cache).glob("*.safetensors")):
            for key, w in load_file(str(path)).items():
                if w.ndim == 2 and w.size >= 100_000:
                    out[f"{path.stem.split('-')[0]} {key} {'x'.join(map(str, w.shape))}"] = w
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def snr_db(ref, got) -> float:
    err = float(((ref.astype(np.float64) - got) ** 2).sum())
    return float("inf") if err == 0 else 10 * np.log10(float((ref.astype(np.float64) ** 2).sum()) / err)


# --- ideas: forward(w) -> (w', side_bytes, inverse(w'') -> w) ---------------------------


def identity(w):
    return w, 0, lambda x: x


def _permute_rows(w, order):
    inv = np.argsort(order)
    return np.ascontiguousarray(w[order]), 2 * len(order), lambda x: x[inv]


def rows_by_norm(w):
    return _permute_rows(w, np.argsort(np.linalg.norm(w, axis=1), kind="stable"))


def rows_by_mean(w):
    return _permute_rows(w, np.argsort(w.mean(axis=1), kind="stable"))


def rows_by_pc(w):
    """Order rows along the first principal component of the (normalised) rows."""
    x = w / (np.linalg.norm(w, axis=1, keepdims=True) + 1e-12)
    x = x - x.mean(0)
    u = np.linalg.svd(x, full_matrices=False)[0][:, 0]
    return _permute_rows(w, np.argsort(u, kind="stable"))


def rows_greedy_chain(w):
    """Nearest-neighbour chain over rows (cosine of scaled rows): each next row is
    the most similar unused one, so vertical neighbours in the picture correlate."""
    x = w / (np.abs(w).max(axis=1, keepdims=True) + 1e-12)
    sim = x @ x.T
    n = len(w)
    order, used = [int(np.argmax(np.linalg.norm(x, axis=1)))], np.zeros(n, bool)
    used[order[0]] = True
    for _ in range(n - 1):
        s = np.where(used, -np.inf, sim[order[-1]])
        nxt = int(np.argmax(s))
        used[nxt] = True
        order.append(nxt)
    return _permute_rows(w, np.array(order))


def cols_greedy_chain(w):
    """The same along columns (permuting the inputs: in a chain of layers the
    previous layer's outputs can absorb it, so nothing would need storing)."""
    wt, side, inv = rows_greedy_chain(np.ascontiguousarray(w.T))
    return np.ascontiguousarray(wt.T), side, lambda x: inv(np.ascontiguousarray(x.T)).T


def random_rotation(w, seed=0):
    """Random orthogonal rotation of the input dimension (as LLM.265 / QuIP# do):
    W' = W Q; after decoding W = W' Q^T. Only the seed is stored."""
    n = w.shape[1]
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    q = q * np.sign(np.diag(r))
    return np.ascontiguousarray((w.astype(np.float64) @ q).astype(np.float32)), 8, lambda x: x.astype(np.float64) @ q.T


def clip(fraction):
    def idea(w):
        m = np.abs(w).max(axis=1, keepdims=True) * fraction
        return np.clip(w, -m, m), 0, lambda x: x

    idea.__name__ = f"clip_{fraction:g}"
    return idea


# name -> (transform, encoder options)
IDEAS = {
    f.__name__: (f, {})
    for f in (
        identity,
        rows_by_norm,
        rows_by_mean,
        rows_by_pc,
        rows_greedy_chain,
        cols_greedy_chain,
        random_rotation,
        clip(0.8),
        clip(0.6),
        clip(0.4),
    )
}
# encoder settings at equal weight SNR (x265 options on top of pyweightvc's own)
ENCODER_SETTINGS = {
    "preset slow": {"preset": "slow"},
    "preset ultrafast": {"preset": "ultrafast"},
    "tu-intra-depth 4": {"x265_params": {"tu-intra-depth": 4}},
    "rdoq-level 1": {"x265_params": {"rdoq-level": 1}},
    "rd 6": {"x265_params": {"rd": 6}},
    "nr-intra 200": {"x265_params": {"nr-intra": 200}},
    "no strong-intra-smoothing": {"x265_params": {"strong-intra-smoothing": 0}},
    "ctu 32": {"x265_params": {"ctu": 32}},
    "tskip": {"x265_params": {"tskip": 1}},
}
IDEAS.update({name: (identity, options) for name, options in ENCODER_SETTINGS.items()})
# pyweightvc's own rotation (Encoder(rotate=True): seeded block Hadamard, in the blob)
IDEAS["rotate"] = (identity, {"rotate": True})


def curve(w, idea, qps):
    transform, options = idea
    x, side, inverse = transform(w)
    points = []
    for qp in qps:
        blob = wvc.encode(x, qp=qp, per_channel=True, **options)
        back = inverse(wvc.decode(blob).astype(np.float64))
        points.append((8 * (len(blob) + side) / w.size, snr_db(w, back)))
    return points


def bd_bits(base, test) -> float:
    """Mean bpw difference at equal SNR over the common SNR range (piecewise linear)."""
    b = sorted(base, key=lambda p: p[1])
    t = sorted(test, key=lambda p: p[1])
    lo = max(b[0][1], t[0][1])
    hi = min(b[-1][1], t[-1][1])
    if hi <= lo:
        return float("nan")
    grid = np.linspace(lo, hi, 50)
    return float(np.mean(np.interp(grid, [p[1] for p in t], [p[0] for p in t]) - np.interp(grid, [p[1] for p in b], [p[0] for p in b])))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ideas", default="all")
    ap.add_argument("--qps", default=",".join(map(str, QPS)))
    ap.add_argument("--json")
    ap.add_argument("--harness-cache")
    args = ap.parse_args(argv)
    qps = [int(q) for q in args.qps.split(",")]
    ideas = list(IDEAS) if args.ideas == "all" else ["identity"] + [i for i in args.ideas.split(",") if i != "identity"]
    results = {}
    for name, w in real_tensors(args.harness_cache).items():
        base = curve(w, IDEAS["identity"], qps)
        results[name] = {"identity": base}
        print(f"\n{name}: baseline " + ", ".join(f"QP {q}: {b:.3f} bpw / {s:.2f} dB" for q, (b, s) in zip(qps, base)), flush=True)
        for idea in ideas[1:]:
            pts = curve(w, IDEAS[idea], qps)
            results[name][idea] = pts
            print(
                f"  {idea:18s} delta bpw at equal SNR {bd_bits(base, pts):+.3f}   " + ", ".join(f"{b:.2f}/{s:.1f}" for b, s in pts),
                flush=True,
            )
    print("\n| tensor | " + " | ".join(ideas[1:]) + " |")
    print("|---|" + "---|" * (len(ideas) - 1))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{bd_bits(r['identity'], r[i]):+.3f}" for i in ideas[1:]) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"qps": qps, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
