"""The benchmark harness: named suites of models x methods x settings, every
measurement written to an output folder (results.json, results.csv, report.md,
figures/*.png).

    pyweightvc bench [--suite quick|full] [--out DIR] [--models a,b] [--repeats N]
                     [--nncodec auto|setup|off] [--publish docs/benchmarks.md]
                     [--variant NAME ... --update]

(``pyweightvc-bench`` takes the same arguments; cli.py defines them.)

``quick`` checks the whole harness end to end in a minute or two (the MNIST
MLP, a few settings); ``full`` is the documented run behind docs/benchmarks.md.

NNCodec, a peer, runs in a virtual environment of its own (about 6 GB:
nncodec_peer.py). By default (``auto``) it runs only if that environment is
already set up, and is otherwise reported as not run; ``--nncodec setup``
creates the environment when missing, ``--nncodec off`` leaves NNCodec out.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

import pyweightvc as wvc

from . import methods, nncodec_peer, subjects
from .methods import GROUPS, Setting

PAPER_QPS = (22, 24, 26, 28, 30, 32, 36)
# the paper's QPs, and beyond until every model loses fidelity
QPS = PAPER_QPS + (40, 44)
# MiniLM's embeddings need finer steps before the cosine reaches 0.99
MINILM_QPS = (8, 12, 16, 20, 24, 28)
CONV_HEVC_QPS = (16, 20, 24, 28)
TARGET_SNRS = (14, 18, 22, 26, 30, 34)  # dB, every lossy tensor
JPEG_QUALITIES = (5, 10, 20, 30, 40, 50, 70, 90, 95)
NNCODEC_QPS = tuple(range(-40, -17, 2))
# the small trained nets keep their accuracy at coarser NNCodec steps still
NNCODEC_COARSE_QPS = (-16, -14, -12)
# absolute smallest steps for conv kernels (Policy override kind:conv min_step), and
# the fc QPs they are paired with; the ImageNet nets' conv weights are ~0.03-0.04 median |w|
CONV_MIN_STEPS = (0.002, 0.003)
CONV_MIN_STEP_QPS = (24, 28, 32)
# requantised + zstd: fc weight SNRs from where the small nets still work to near 8-bit levels
REQUANT_SNRS = (1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 34)
# the gguf package's quantisers (0.19 quantises no K-quant), and their bits per weight
GGUF_TYPES = {"MXFP4": 4.25, "Q4_0": 4.5, "Q4_1": 5.0, "Q5_0": 5.5, "Q5_1": 6.0, "Q8_0": 8.5}


@dataclass(frozen=True)
class Suite:
    name: str
    models: tuple[str, ...]
    repeats: int
    quick: bool

    def settings(self, model: str, has_conv: bool) -> list[Setting]:
        qps = MINILM_QPS if model == "minilm" else QPS
        conv_qps = CONV_HEVC_QPS
        if self.quick:
            qps = conv_qps = (24, 36)
        s = [_pwvc("default", qp) for qp in qps]
        s.append(
            Setting("pyweightvc", "data-free default", f"levels at {wvc.DEFAULT_SNR_DB:g} dB", wvc.DEFAULT_SNR_DB, {"data_free": True})
        )
        s.append(Setting("pyweightvc", "lossless", "lossless", None, {"lossless": True}))
        # per tensor: the paper's QPs; it collapses MiniLM, which three points show
        tensor_qps = PAPER_QPS if model != "minilm" else (12, 20, 28)
        s += [_pwvc("per-tensor", qp, per_channel=False) for qp in (tensor_qps[:1] if self.quick else tensor_qps)]
        s += [_pwvc("asymmetric", qp, symmetric=False) for qp in (qps[:1] if self.quick else qps[1:4:2])]
        # narrow levels coded losslessly (dense samples): scalar quantisation, HEVC as the entropy coder
        low_bits = (4, 5, 6, 7) if model == "minilm" else (3, 4, 5, 6)
        for variant, per_channel, rotate in (
            ("low-bit lossless", True, False),
            ("low-bit lossless, per-tensor", False, False),
            ("low-bit lossless, per-tensor, rotated", False, True),
        ):
            s += [
                Setting("pyweightvc", variant, f"{b} bits", b, {"lossless": True, "bits": b, "per_channel": per_channel, "rotate": rotate})
                for b in (low_bits[:1] if self.quick else low_bits)
            ]
        # rotation (Policy(rotate="auto")): each fc matrix rotated where a probe says it saves bits
        # (per-tensor scales with "auto" were measured once: no rotation on the classifiers, cosine
        # 0.790 -> 0.798 for 0.4 % more bytes on MiniLM at QP 12, nothing at the bar; not a variant of its own)
        s += [_pwvc("rotated", qp, rotate="auto") for qp in (qps[:1] if self.quick else qps)]
        if has_conv:
            s += [_pwvc("conv HEVC", qp, conv_hevc=True) for qp in conv_qps]
        # QP chosen for the user (pyweightvc.rate): per-tensor SNR targets, the default
        # variant's sizes spent by allocation across tensors, and the smallest file
        # that keeps the matched-fidelity bar
        minilm = model == "minilm"  # the slowest to encode: fewer search points
        s += [
            Setting("pyweightvc", "target SNR", f"SNR {t} dB", t, {"target_snr_db": t})
            for t in ((22,) if self.quick else TARGET_SNRS[::2] if minilm else TARGET_SNRS)
        ]
        s += [
            Setting("pyweightvc", "sized", f"size of QP {q}", q, {"size_of_qp": q})
            for q in ((36,) if self.quick else (16, 24) if minilm else (24, 28, 32, 36))
        ]
        s.append(Setting("pyweightvc", "accuracy search", "matched-fidelity bar", None, {"accuracy": True}))
        if not self.quick:
            s.append(Setting("pyweightvc", "accuracy search, rotated", "matched-fidelity bar", None, {"accuracy": True, "rotate": "auto"}))
        if has_conv:  # conv kernels searched too, through lossy HEVC
            s.append(
                Setting(
                    "pyweightvc",
                    "accuracy search, conv HEVC",
                    "matched-fidelity bar",
                    None,
                    {"accuracy": True, "conv_hevc": True, "qp": 24},
                )
            )
        if has_conv:  # conv kernels' 8-bit levels with one absolute step floor (min_step)
            for step in CONV_MIN_STEPS[:1] if self.quick else CONV_MIN_STEPS:
                s += [_pwvc(f"conv min-step {step:g}", qp, conv_min_step=step) for qp in (qps[:1] if self.quick else CONV_MIN_STEP_QPS)]
            if not self.quick:  # the step chosen for the user, after the fc QPs
                s.append(
                    Setting(
                        "pyweightvc",
                        "accuracy search, rotated, conv min-step",
                        "matched-fidelity bar",
                        None,
                        {"accuracy": True, "rotate": "auto", "search_min_step": "int8"},
                    )
                )
        if not self.quick:  # narrow lossless levels with their step searched (from 4-bit max-abs steps up)
            s += [
                Setting(
                    "pyweightvc",
                    variant,
                    "matched-fidelity bar",
                    None,
                    {"accuracy": True, "lossless": True, "bits": 4, "per_channel": False, "rotate": rotate, "allocate": allocate},
                )
                for variant, rotate, allocate in (
                    ("low-bit lossless, accuracy search", False, "shared"),
                    ("low-bit lossless, accuracy search, rotated", True, "shared"),
                    ("low-bit lossless, accuracy search, rotated, measured allocation", True, "measured"),
                )
            ]
        if not self.quick:  # QPs spread by the score's measured sensitivity to each large tensor
            s.append(
                Setting(
                    "pyweightvc",
                    "accuracy search, rotated, measured allocation",
                    "matched-fidelity bar",
                    None,
                    {"accuracy": True, "rotate": "auto", "allocate": "measured"},
                )
            )
        if not self.quick:  # one step floor for the lossy HEVC tensors, chosen after their QPs
            s.append(
                Setting(
                    "pyweightvc",
                    "accuracy search, rotated, min-step",
                    "matched-fidelity bar",
                    None,
                    {"accuracy": True, "rotate": "auto", "search_min_step": "hevc"},
                )
            )
        s += [Setting(m, "default", "8-bit levels") for m in ("int8", "zstd", "xz")]
        s += [Setting("requant", "SNR sweep", f"SNR {t} dB", t, {"target_snr_db": t}) for t in ((22,) if self.quick else REQUANT_SNRS)]
        s += [Setting("gguf", "types", t, b, {"type": t}) for t, b in GGUF_TYPES.items() if not self.quick or t == "Q4_0"]
        s += [Setting("jpeg", "default", f"quality {q}", q, {"quality": q}) for q in ((50,) if self.quick else JPEG_QUALITIES)]
        nnc_qps = NNCODEC_QPS + (NNCODEC_COARSE_QPS if model in ("mlp_mnist", "cnn_fashion") else ())
        s += [Setting("nncodec", "default", f"qp {q}", q) for q in ((-32,) if self.quick else nnc_qps)]
        return s


def _pwvc(variant: str, qp: int, **options) -> Setting:
    return Setting("pyweightvc", variant, f"QP {qp}", qp, {"qp": qp, **options})


SUITES = {
    "quick": Suite("quick", ("mlp_mnist",), repeats=1, quick=True),
    "full": Suite("full", ("mlp_mnist", "cnn_fashion", "mobilenet_v2", "efficientnet_lite0", "minilm"), repeats=3, quick=False),
}


def _group_stats(weights, groups):
    elements = dict.fromkeys(GROUPS, 0)
    for k, g in groups.items():
        elements[g] += weights[k].size
    return elements


def _snr(ref, got, names) -> float:
    signal = noise = 0.0
    for k in names:
        r = np.asarray(ref[k], np.float64)
        signal += float((r * r).sum())
        noise += float(((r - np.asarray(got[k], np.float64)) ** 2).sum())
    if not names:
        return float("nan")
    return float("inf") if noise == 0 else 10 * math.log10(signal / noise)


def measure_row(model: str, setting: Setting, outcome: methods.Outcome, ref: dict, groups: dict, sizes: dict, fid: dict) -> dict:
    """One result row: sizes, ratios, bits per weight, weight SNR, times, fidelity."""
    e = sizes["elements"]
    b = outcome.group_bytes
    total = outcome.total_bytes
    coded = e["fc"] + e["conv"]
    row = {
        "model": model,
        "method": setting.method,
        "variant": setting.variant,
        "setting": setting.label,
        "knob": setting.knob,
        "status": "ok",
        "reason": "",
        "chosen": outcome.chosen,
        "bytes": total,
        "bytes_fc": b["fc"],
        "bytes_conv": b["conv"],
        "bytes_other": b["other"],
        "bytes_overhead": b.get("overhead", 0),
        "ratio_vs_fp32": sizes["fp32"] / total,
        "ratio_vs_int8": sizes["int8"] / total,
        "bpw_model": 8 * total / (coded + e["other"]),
        "bpw_fc": 8 * b["fc"] / e["fc"] if e["fc"] else float("nan"),
        "bpw_conv": 8 * b["conv"] / e["conv"] if e["conv"] else float("nan"),
        "bpw_weights": 8 * (b["fc"] + b["conv"]) / coded if coded else float("nan"),
        "snr_fc_db": _snr(ref, outcome.weights, [k for k, g in groups.items() if g == "fc"]),
        "snr_weights_db": _snr(ref, outcome.weights, [k for k, g in groups.items() if g != "other"]),
        "encode_s": outcome.encode_s,
        "decode_s": outcome.decode_s,
        "encode_mweights_per_s": coded / outcome.encode_s / 1e6 if outcome.encode_s else float("nan"),
        "decode_mweights_per_s": coded / outcome.decode_s / 1e6 if outcome.decode_s else float("nan"),
    }
    row.update(fid)
    return row


def model_sizes(weights, groups) -> dict:
    """fp32 bytes (as given), int8 bytes (levels + one float32 scale per row for
    the weight groups, other tensors raw) and elements per group."""
    int8 = 0
    for k, g in groups.items():
        w = weights[k]
        int8 += w.nbytes if g == "other" else w.size + 4 * w.shape[0]
    return {"fp32": sum(w.nbytes for w in weights.values()), "int8": int8, "elements": _group_stats(weights, groups)}


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "torch", "zstandard", "pillow", "matplotlib", "sentence-transformers", "safetensors"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    info = wvc.lib_info()
    out.update(pyweightvc=info["pyweightvc"], x265=info["x265"], libde265=info["libde265"])
    return out


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    mem = ""
    try:
        mem = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "system": platform.platform()}


def _row_key(row: dict) -> tuple:
    return row["model"], row["method"], row["variant"], row["setting"]


def _current_rows(results: dict, suite: Suite) -> list:
    """The rows of settings the suite still has (a variant dropped since is left out)."""
    current = {
        (m, s.method, s.variant, s.label) for m, sub in results["subjects"].items() for s in suite.settings(m, sub["elements"]["conv"] > 0)
    }
    return [r for r in results["rows"] if _row_key(r) in current]


def merge_results(old: dict, new: dict, suite: Suite) -> dict:
    """`old` with the rows `new` measured put in place of (or beside) its own, and
    without rows of settings the suite no longer has; model times add up, and the
    update is listed in the meta."""
    fresh = {_row_key(r) for r in new["rows"]}
    current = _current_rows(old, suite)
    kept = [r for r in current if _row_key(r) not in fresh]
    merged = {**old, "rows": kept + new["rows"]}
    dropped = {r["variant"] for r in old["rows"]} - {r["variant"] for r in current}
    merged["subjects"] = dict(old["subjects"])
    for name, sub in new["subjects"].items():
        before = old["subjects"].get(name)
        merged["subjects"][name] = {**sub, "seconds": (before or {}).get("seconds", 0) + sub.get("seconds", 0)} if before else sub
    meta = dict(old["meta"])
    meta["seconds"] = old["meta"]["seconds"] + new["meta"].get("seconds", 0)
    if dropped or old["meta"].get("dropped"):
        meta["dropped"] = sorted(set(old["meta"].get("dropped", [])) | dropped)
    meta["updates"] = old["meta"].get("updates", []) + [
        {
            "date": new["meta"]["date"],
            "models": list(new["subjects"]),
            "variants": new["meta"].get("variants"),
            "seconds": new["meta"].get("seconds", 0),
            "versions": new["meta"]["versions"],
        }
    ]
    merged["meta"] = meta
    return merged


def run(
    suite: Suite,
    out: Path,
    models: Optional[list[str]] = None,
    repeats: Optional[int] = None,
    nncodec: str = "auto",
    nncodec_venv: Optional[Path] = None,
    progress: bool = True,
    variants: Optional[list[str]] = None,
    update: bool = False,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> dict:
    """Run a suite; returns (and writes to `out`) every measurement.

    variants: run only the settings of these variants ("rotated", "default", ...;
    a peer's variant is "default" too, so give e.g. ["rotated"] to re-measure one
    pyweightvc variant alone). update: merge into the results already in `out`
    (rows measured now replace the same rows there) instead of starting anew.
    nncodec: "auto" runs NNCodec if its environment (nncodec_venv, default
    nncodec_peer.default_venv()) is ready, "setup" creates it when missing (about
    6 GB), "off" leaves NNCodec out; where it does not run, its rows say why.
    """
    from tqdm import tqdm

    known = {s.variant for s in suite.settings("minilm", True) + suite.settings("mlp_mnist", True)}
    if variants and set(variants) - known:
        raise ValueError(f"unknown variant(s) {', '.join(sorted(set(variants) - known))}; known: {', '.join(sorted(known))}")
    if variants and "sized" in variants and "default" not in variants:
        raise ValueError("the sized variant fits the default variant's file sizes: run --variant default too")
    previous = None
    if update:
        if not (Path(out) / "results.json").exists():
            raise ValueError(f"--update needs an earlier run's results.json in {out}")
        previous = load_results(Path(out) / "results.json")
    models = list(models or suite.models)
    unknown = sorted(set(models) - set(subjects.SUBJECTS))
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(subjects.SUBJECTS)}")
    if nncodec not in ("setup", "auto", "off"):
        raise ValueError(f"nncodec must be setup, auto or off, got {nncodec!r}")
    repeats = suite.repeats if repeats is None else repeats
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    nnc_python, nnc_error, nnc_versions = None, None, {}
    if nncodec == "off":
        nnc_error = "NNCodec disabled (--nncodec off)"
    else:
        try:
            nnc_python = nncodec_peer.ensure_venv(nncodec_venv or nncodec_peer.default_venv(), nncodec == "setup", log)
            nnc_versions = nncodec_peer.versions(nnc_python)
        except methods.Unavailable as exc:
            nnc_error = str(exc)
            log(f"NNCodec will not run: {nnc_error}")

    results = {
        "meta": {
            "suite": suite.name,
            "repeats": repeats,
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "variants": variants,
            "machine": machine(),
            "versions": versions(),
            "nncodec_env": nnc_versions,
            "seeds": {"training": subjects.TrainedClassifier.seed, "photo crops": 0},
        },
        "subjects": {},
        "rows": [],
    }
    for name in models:
        t_model = time.perf_counter()
        subject = subjects.SUBJECTS[name](out / "cache", log=log)
        ref = subject.weights()
        groups = methods.tensor_groups(ref)
        sizes = model_sizes(ref, groups)
        reference_fidelity = subject.evaluate(ref)
        results["subjects"][name] = {
            "title": subject.title,
            "primary": subject.primary.key,
            "primary_label": subject.primary.label,
            "higher_is_better": subject.primary.higher_is_better,
            "percent": subject.primary.percent,
            "metrics": [asdict(m) for m in subject.metrics],
            "match": subject.match_text(),
            "match_threshold": subject.match_threshold,
            "fp32_bytes": sizes["fp32"],
            "int8_bytes": sizes["int8"],
            "elements": sizes["elements"],
            "reference_fidelity": reference_fidelity,
            "train_seconds": getattr(subject, "train_seconds", None),
            "tensors": {g: sum(1 for v in groups.values() if v == g) for g in GROUPS},
        }
        settings = suite.settings(name, sizes["elements"]["conv"] > 0)
        if variants:
            settings = [s for s in settings if s.variant in variants]
        context = {"score": subject.score, "max_drop": subject.max_drop(reference_fidelity)}
        bar = tqdm(total=len(settings), desc=name, unit="setting", disable=not progress, file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="pyweightvc-bench-") as work:
            for setting, outcome, reason in methods.run_settings(settings, ref, groups, work, repeats, context, nnc_python, nnc_error):
                bar.set_postfix_str(f"{setting.method} {setting.variant} {setting.label}")
                if outcome is None:
                    results["rows"].append(
                        {
                            "model": name,
                            "method": setting.method,
                            "variant": setting.variant,
                            "setting": setting.label,
                            "knob": setting.knob,
                            "status": "not run",
                            "reason": reason,
                        }
                    )
                else:
                    fid = subject.evaluate(outcome.weights)
                    results["rows"].append(measure_row(name, setting, outcome, ref, groups, sizes, fid))
                bar.update()
        bar.close()
        results["subjects"][name]["seconds"] = time.perf_counter() - t_model
        del subject
        # after every model, so a long run that stops late keeps what it measured
        results["meta"]["seconds"] = time.time() - started
        write_outputs(results if previous is None else merge_results(previous, results, suite), out)
    return results if previous is None else merge_results(previous, results, suite)


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outputs(results: dict, out: Path) -> None:
    import csv
    import io

    from . import report

    _atomic_text(out / "results.json", json.dumps(_json_safe(results), indent=1))
    columns: list[str] = []
    for row in results["rows"]:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(results["rows"])
    _atomic_text(out / "results.csv", buf.getvalue())
    report.write(results, out / "report.md", out / "figures")


def load_results(path: Path) -> dict:
    """results.json back, with the non-finite numbers restored."""

    def restore(x):
        if x == "inf":
            return float("inf")
        if x == "-inf":
            return float("-inf")
        if isinstance(x, dict):
            return {k: restore(v) for k, v in x.items()}
        if isinstance(x, list):
            return [restore(v) for v in x]
        return float("nan") if x is None else x

    return restore(json.loads(Path(path).read_text()))


def publish(out: Path, target: Path) -> None:
    """Write the report of the run in `out` as `target` (docs/benchmarks.md), its
    figures next to it in <target stem>/ (rows of settings the suite has dropped
    since the run are left out)."""
    from . import report

    results = load_results(out / "results.json")
    kept = _current_rows(results, SUITES[results["meta"]["suite"]])
    dropped = {r["variant"] for r in results["rows"]} - {r["variant"] for r in kept}
    results["meta"]["dropped"] = sorted(set(results["meta"].get("dropped", [])) | dropped)
    results["rows"] = kept
    figures = target.parent / target.stem
    shutil.rmtree(figures, ignore_errors=True)
    report.write(results, target, figures)
