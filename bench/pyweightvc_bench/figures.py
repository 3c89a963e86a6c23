"""PNG figures of a harness run (matplotlib, a dependency of pyweightvc-bench)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

# one colour per method family, one line style per pyweightvc variant
COLOURS = {
    "pyweightvc": "tab:blue",
    "nncodec": "tab:red",
    "requant": "tab:orange",
    "gguf": "tab:olive",
    "jpeg": "tab:green",
    "zstd": "tab:purple",
    "xz": "tab:brown",
    "int8": "black",
}
STYLES = {
    "default": "-",
    "data-free default": "none",
    "per-tensor": "--",
    "asymmetric": ":",
    "conv HEVC": "-.",
    "lossless": "none",
    "target SNR": (0, (5, 1)),
    "sized": (0, (1, 1)),
    "accuracy search": "none",
    "accuracy search, conv HEVC": "none",
    "rotated": (0, (3, 1, 1, 1)),
    "accuracy search, rotated": "none",
    "low-bit lossless": (0, (2, 2)),
    "low-bit lossless, per-tensor": (0, (4, 1, 1, 1, 1, 1)),
    "low-bit lossless, per-tensor, rotated": (0, (8, 2)),
    "conv min-step 0.002": (0, (6, 2, 1, 2)),
    "conv min-step 0.003": (0, (6, 2, 1, 2, 1, 2)),
    "accuracy search, rotated, conv min-step": "none",
    "accuracy search, rotated, min-step": "none",
    "accuracy search, rotated, measured allocation": "none",
    "low-bit lossless, accuracy search": "none",
    "low-bit lossless, accuracy search, rotated": "none",
    "low-bit lossless, accuracy search, rotated, measured allocation": "none",
}
QP_VARIANTS = ("default", "per-tensor", "asymmetric", "conv HEVC", "rotated")
MARKERS = {"pyweightvc": "o", "nncodec": "s", "requant": "v", "gguf": "*", "jpeg": "^", "zstd": "P", "xz": "X", "int8": "D"}
VARIANT_MARKERS = {
    "default": "o",
    "data-free default": "H",
    "per-tensor": "v",
    "asymmetric": "<",
    "conv HEVC": ">",
    "lossless": "*",
    "target SNR": "d",
    "sized": "h",
    "accuracy search": "p",
    "accuracy search, conv HEVC": "P",
    "rotated": "s",
    "accuracy search, rotated": "X",
    "low-bit lossless": "1",
    "low-bit lossless, per-tensor": "2",
    "low-bit lossless, per-tensor, rotated": "3",
    "conv min-step 0.002": "4",
    "conv min-step 0.003": "8",
    "accuracy search, rotated, conv min-step": "H",
    "accuracy search, rotated, min-step": "x",
    "accuracy search, rotated, measured allocation": "+",
    "low-bit lossless, accuracy search": "|",
    "low-bit lossless, accuracy search, rotated": "_",
    "low-bit lossless, accuracy search, rotated, measured allocation": ".",
}


def _marker(method: str, variant: str) -> str:
    return VARIANT_MARKERS[variant] if method == "pyweightvc" else MARKERS[method]


def _plt():
    try:
        import matplotlib
    except ImportError as exc:
        raise ModuleNotFoundError("figures need matplotlib (a dependency of pyweightvc-bench): pip install matplotlib") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(rows):
    """(method, variant) -> rows, in a stable order."""
    out: dict = {}
    for r in rows:
        out.setdefault((r["method"], r["variant"]), []).append(r)
    return out


def _label(method: str, variant: str) -> str:
    from .report import METHOD_NAMES

    return METHOD_NAMES[method] + ("" if variant == "default" else f", {variant}")


def _metric_axis(s: dict) -> tuple[str, float]:
    unit = " (%)" if s["percent"] else ""
    better = "higher is better" if s["higher_is_better"] else "lower is better"
    return f"{s['primary_label']}{unit}, {better}", (100 if s["percent"] else 1)


def rate_fidelity(plt, results, model, path: Path) -> None:
    from .report import ok_rows

    s = results["subjects"][model]
    key = s["primary"]
    ylabel, scale = _metric_axis(s)
    fig, ax = plt.subplots(figsize=(8, 5))
    for (method, variant), rows in _series(ok_rows(results, model)).items():
        rows = sorted(rows, key=lambda r: r["bytes"])
        x = [r["bytes"] / 1e6 for r in rows]
        y = [r[key] * scale for r in rows]
        ax.plot(
            x,
            y,
            linestyle=STYLES.get(variant, "-") if len(rows) > 1 else "none",
            marker=_marker(method, variant),
            color=COLOURS[method],
            label=_label(method, variant),
            markersize=5,
        )
    ref = s["reference_fidelity"][key] * scale
    ax.axvline(s["fp32_bytes"] / 1e6, color="grey", linewidth=0.8, linestyle=":", label="fp32 size")
    if s["higher_is_better"]:  # (a divergence from fp32 is 0 there: no line on a log axis)
        ax.axhline(ref, color="grey", linewidth=0.8, label="fp32 fidelity")
    bar = s["match_threshold"] * scale
    ax.axhline(bar, color="tab:orange", linewidth=0.8, linestyle="--", label="matched-fidelity bar")
    ax.set_xscale("log")
    ax.set_xlabel("stored model size (MB, log scale)")
    ax.set_ylabel(ylabel)
    if not s["higher_is_better"]:
        ax.set_yscale("log")
    ax.set_title(f"{model}: size against fidelity, every method")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def against_qp(plt, results, model, path: Path) -> None:
    from .report import ok_rows

    s = results["subjects"][model]
    key = s["primary"]
    ylabel, scale = _metric_axis(s)
    rows = [r for r in ok_rows(results, model) if r["method"] == "pyweightvc" and r["variant"] in QP_VARIANTS]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for (_, variant), rs in _series(rows).items():
        rs = sorted(rs, key=lambda r: r["knob"])
        qp = [r["knob"] for r in rs]
        a1.plot(qp, [r["bytes"] / 1e6 for r in rs], marker="o", linestyle=STYLES[variant], label=variant)
        a2.plot(qp, [r[key] * scale for r in rs], marker="o", linestyle=STYLES[variant], label=variant)
    a1.axhline(s["int8_bytes"] / 1e6, color="black", linewidth=0.8, linestyle=":", label="int8, no coding")
    if s["higher_is_better"]:
        a2.axhline(s["reference_fidelity"][key] * scale, color="grey", linewidth=0.8, label="fp32")
    a1.set_xlabel("QP")
    a1.set_ylabel("stored model size (MB)")
    a1.set_title(f"{model}: size against QP")
    a2.set_xlabel("QP")
    a2.set_ylabel(ylabel)
    if not s["higher_is_better"]:
        a2.set_yscale("log")
    a2.set_title(f"{model}: fidelity against QP")
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fc_snr(plt, results, model, path: Path) -> None:
    from .report import ok_rows

    fig, ax = plt.subplots(figsize=(7, 4.5))
    rows = [
        r
        for r in ok_rows(results, model)
        if r["variant"] in ("default", "per-tensor", "target SNR", "sized") and math.isfinite(r["snr_fc_db"])
    ]
    for (method, variant), rs in _series(rows).items():
        rs = sorted(rs, key=lambda r: r["bpw_fc"])
        ax.plot(
            [r["bpw_fc"] for r in rs],
            [r["snr_fc_db"] for r in rs],
            marker=_marker(method, variant),
            color=COLOURS[method],
            linestyle=STYLES[variant] if len(rs) > 1 else "none",
            label=_label(method, variant),
            markersize=5,
        )
    ax.set_xlabel("bits per weight of the fc group")
    ax.set_ylabel("weight SNR of the fc group (dB)")
    ax.set_title(f"{model}: fc tensors, rate against weight SNR")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def throughput(plt, results, path: Path) -> None:
    """Median encode / decode throughput of each method's default settings, per model."""
    from .report import METHOD_ORDER, ok_rows

    models = list(results["subjects"])
    methods = [m for m in METHOD_ORDER if any(r["method"] == m for r in ok_rows(results))]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    width = 0.8 / max(1, len(methods))
    for ax, key, title in ((axes[0], "encode_mweights_per_s", "encode"), (axes[1], "decode_mweights_per_s", "decode")):
        for i, method in enumerate(methods):
            values = []
            for model in models:
                v = [r[key] for r in ok_rows(results, model) if r["method"] == method and r["variant"] == "default"]
                values.append(statistics.median(v) if v else 0)
            ax.bar(
                [m + (i - (len(methods) - 1) / 2) * width for m in range(len(models))], values, width, color=COLOURS[method], label=method
            )
        ax.set_xticks(range(len(models)), models, rotation=20, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("million weights per second (log scale)")
        ax.set_title(f"{title} throughput, whole model (median over settings)")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_all(results: dict, folder: Path) -> dict:
    """Draw every figure into `folder`; returns {(model, kind) or "throughput": file name}."""
    plt = _plt()
    made = {}
    for model in results["subjects"]:
        for kind, draw in (("rate", rate_fidelity), ("qp", against_qp), ("snr", fc_snr)):
            name = f"{model}-{kind}.png"
            draw(plt, results, model, folder / name)
            made[(model, kind)] = name
    throughput(plt, results, folder / "throughput.png")
    made["throughput"] = "throughput.png"
    return made
