"""The seed papers' published numbers (docs: ../shared/papers.md) beside a
harness run's, as a report section."""

from __future__ import annotations

import math

# JBE 2021, Table 4 (ResNet50 ImageNet): FC layer kB after HEVC per QP; int8 FC
# 2000 kB; top-1 of fp32 75.58, int8 74.83.
RESNET50_FC_KB = {22: 525, 24: 430, 26: 339, 28: 253, 30: 167}
RESNET50_TOP1 = {22: 74.45, 24: 74.05, 26: 73.37, 28: 72.17, 30: 67.83}
RESNET50_MODEL_MB = {22: 22.93, 24: 22.84, 26: 22.75, 28: 22.67, 30: 22.58}
RESNET50 = {"fp32_top1": 75.58, "int8_top1": 74.83, "int8_fc_kb": 2000, "fp32_mb": 97.49}
# Table 3 (VGG16 ImageNet): FC1 MB per QP (fp32 392 MB, so int8 98 MB), model MB, top-1.
VGG16_FC1_MB = {22: 32.9, 24: 28.3, 28: 19.4, 32: 10.6, 36: 4.2}
VGG16_TOP1 = {22: 70.66, 24: 70.59, 28: 70.59, 32: 70.54, 36: 69.74}
VGG16_MODEL_MB = {22: 59, 24: 54, 28: 44, 32: 33, 36: 25}
VGG16 = {"fp32_top1": 71.10, "int8_top1": 70.75, "int8_fc1_mb": 98, "fp32_mb": 528}
# 2020 paper: ResNet50 FC at QP 23, symmetric vs asymmetric int8 + HEVC (bytes).
SYM_ASYM_QP23 = (487_353, 655_094)
# JBE 2021: VGG16 conv filters through HEVC, top-1 (fp32 71.10).
VGG16_CONV_HEVC_TOP1 = {21: 65.77, 23: 59.82}

QPS = (22, 24, 26, 28, 30, 32, 36)


def _rows(results, model, variant):
    return {
        r["knob"]: r
        for r in results["rows"]
        if r["model"] == model and r["status"] == "ok" and r["method"] == "pyweightvc" and r["variant"] == variant
    }


def _qp_head(title: str) -> list[str]:
    return [f"| {title} | " + " | ".join(f"QP {q}" for q in QPS) + " |", "|---|" + "---|" * len(QPS)]


def _qp_row(label: str, cells: dict):
    """A table row over QPS; None (dropped by section) when no cell falls on those QPs."""
    if not any(q in cells for q in QPS):
        return None
    return f"| {label} | " + " | ".join(cells.get(q, "-") for q in QPS) + " |"


def _fid(subject: dict, x: float) -> str:
    """The subject's primary figure as text (a share as percent)."""
    return f"{100 * x:.2f} %" if subject["percent"] else f"{x:.4f}"


def _cell(x, fmt="{:.2f}x"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def section(results: dict) -> list[str]:
    subjects = results["subjects"]
    lines = [
        "",
        "## Beside the paper",
        "",
        "The seed papers (../shared/papers.md) measured ResNet50 and VGG16 on the ImageNet validation set. "
        "Neither those checkpoints nor that set can be had offline here, so the rows below set the same "
        "quantities of our models beside theirs: the pipeline is the same (per-tensor symmetric int8, fc "
        "through HEVC at a QP, conv kernels int8 = our `per-tensor` variant), the networks are not.",
        "",
    ]

    # 1. fc ratio vs int8 per QP
    lines += _qp_head("fc layers: ratio vs int8")
    lines.append(_qp_row("paper: ResNet50 FC 2048x1000", {q: _cell(RESNET50["int8_fc_kb"] / kb) for q, kb in RESNET50_FC_KB.items()}))
    lines.append(_qp_row("paper: VGG16 FC1 25088x4096", {q: _cell(VGG16["int8_fc1_mb"] / mb) for q, mb in VGG16_FC1_MB.items()}))
    for model, s in subjects.items():
        for variant in ("per-tensor", "default"):
            rows = _rows(results, model, variant)
            lines.append(_qp_row(f"{model}, {variant}", {q: _cell(s["elements"]["fc"] / r["bytes_fc"]) for q, r in rows.items()}))
    lines += ["", "Ratio = fc weights at one byte each over the coded fc bytes (scales included).", ""]

    # 2. whole model vs fp32
    lines += _qp_head("whole model: ratio vs fp32")
    lines.append(_qp_row("paper: ResNet50", {q: _cell(RESNET50["fp32_mb"] / mb) for q, mb in RESNET50_MODEL_MB.items()}))
    lines.append(_qp_row("paper: VGG16", {q: _cell(VGG16["fp32_mb"] / mb) for q, mb in VGG16_MODEL_MB.items()}))
    for model in subjects:
        for variant in ("per-tensor", "default"):
            rows = _rows(results, model, variant)
            lines.append(_qp_row(f"{model}, {variant}", {q: _cell(r["ratio_vs_fp32"]) for q, r in rows.items()}))
    lines.append("")

    # 3. accuracy change per QP (true accuracy only for the models trained here)
    lines += _qp_head("top-1 / test accuracy change vs fp32, points")
    lines.append(
        _qp_row("paper: ResNet50 (fp32 75.58)", {q: _cell(t - RESNET50["fp32_top1"], "{:+.2f}") for q, t in RESNET50_TOP1.items()})
    )
    lines.append(_qp_row("paper: VGG16 (fp32 71.10)", {q: _cell(t - VGG16["fp32_top1"], "{:+.2f}") for q, t in VGG16_TOP1.items()}))
    for model, s in subjects.items():
        if s["primary"] != "accuracy":
            continue
        ref = s["reference_fidelity"]["accuracy"]
        for variant in ("per-tensor", "default"):
            rows = _rows(results, model, variant)
            lines.append(
                _qp_row(
                    f"{model}, {variant} (fp32 {100 * ref:.2f})",
                    {q: _cell(100 * (r["accuracy"] - ref), "{:+.2f}") for q, r in rows.items()},
                )
            )
    lines += ["", "The pretrained models here have no labelled test set; their agreement and KL per QP are in their sections below.", ""]

    # 4. symmetric vs asymmetric
    lines += [
        "| symmetric vs asymmetric levels | QP | fc bytes, symmetric | fc bytes, asymmetric | asymmetric / symmetric |"
        " fidelity symmetric | fidelity asymmetric |",
        "|---|---|---|---|---|---|---|",
        f"| paper: ResNet50 FC, per tensor | 23 | {SYM_ASYM_QP23[0]:,} | {SYM_ASYM_QP23[1]:,} | "
        f"{SYM_ASYM_QP23[1] / SYM_ASYM_QP23[0]:.2f}x | top-1 73.91 | top-1 74.17 |",
    ]
    for model, s in subjects.items():
        sym, asym = _rows(results, model, "default"), _rows(results, model, "asymmetric")
        for q in sorted(set(sym) & set(asym)):
            a, b = sym[q], asym[q]
            lines.append(
                f"| {model}, per channel | {q} | {a['bytes_fc']:,} | {b['bytes_fc']:,} | "
                f"{b['bytes_fc'] / a['bytes_fc']:.2f}x | {_fid(s, a[s['primary']])} | "
                f"{_fid(s, b[s['primary']])} |"
            )
    lines.append("")

    # 5. conv kernels through HEVC
    lines += [
        "| conv kernels through lossy HEVC | QP | model bytes, conv int8 | model bytes, conv HEVC | "
        "fidelity, conv int8 | fidelity, conv HEVC |",
        "|---|---|---|---|---|---|",
        f"| paper: VGG16 top-1 (int8 70.75) | 21 / 23 | - | - | 70.75 | {VGG16_CONV_HEVC_TOP1[21]} / {VGG16_CONV_HEVC_TOP1[23]} |",
    ]
    for model, s in subjects.items():
        base, conv = _rows(results, model, "default"), _rows(results, model, "conv HEVC")
        for q in sorted(set(base) & set(conv)):
            lines.append(
                f"| {model} ({s['primary_label']}) | {q} | {base[q]['bytes']:,} | {conv[q]['bytes']:,} | "
                f"{_fid(s, base[q][s['primary']])} | {_fid(s, conv[q][s['primary']])} |"
            )
    lines += ["", *reading(results), ""]
    return [line for line in lines if line is not None]


def _span(values) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def reading(results: dict) -> list[str]:
    """Where our numbers agree with the paper's and where not, computed from the run."""
    subjects = results["subjects"]
    out = ["Reading these tables (sentences generated from the numbers above):"]
    fc24 = {m: s["elements"]["fc"] / r[24]["bytes_fc"] for m, s in subjects.items() if 24 in (r := _rows(results, m, "per-tensor"))}
    if fc24:
        paper = (RESNET50["int8_fc_kb"] / RESNET50_FC_KB[24], VGG16["int8_fc1_mb"] / VGG16_FC1_MB[24])
        verdict = (
            "the same range" if min(fc24.values()) <= max(paper) * 1.5 and max(fc24.values()) >= min(paper) / 1.5 else "a different range"
        )
        out.append(
            f"- fc layers at QP 24 with the paper's pipeline: {_span(list(fc24.values()))}x against int8 on our "
            f"models, {paper[0]:.2f}x (ResNet50) and {paper[1]:.2f}x (VGG16) in the paper: {verdict}. How far "
            "one QP shrinks a layer depends on its weight distribution against its largest weight (one scale "
            "per tensor), so it differs between networks."
        )
    for model, s in subjects.items():
        rows = _rows(results, model, "per-tensor")
        if s["primary"] == "accuracy" and rows:
            ref = s["reference_fidelity"]["accuracy"]
            drops = {q: 100 * (ref - r["accuracy"]) for q, r in rows.items() if q in QPS}
            ok = [q for q, d in sorted(drops.items()) if d <= 1.0]
            out.append(
                f"- {model}: test accuracy stays within 1 point of fp32 up to QP {max(ok) if ok else '-'} with "
                f"the paper's pipeline (paper: VGG16 within 1 point up to QP 32, ResNet50 up to QP 22)."
            )
    ratios = []
    for model in subjects:
        sym, asym = _rows(results, model, "default"), _rows(results, model, "asymmetric")
        ratios += [asym[q]["bytes_fc"] / sym[q]["bytes_fc"] for q in set(sym) & set(asym)]
    if ratios:
        agree = "agrees" if min(ratios) > 1 else "does not agree everywhere"
        out.append(
            f"- Asymmetric levels cost {_span(ratios)}x the symmetric fc bytes at the same QP (paper: "
            f"{SYM_ASYM_QP23[1] / SYM_ASYM_QP23[0]:.2f}x): the finding {agree}; an asymmetric zero point "
            "moves the weights' mean off mid-grey and spreads the levels, which costs the intra coder bits."
        )
    conv = []
    for model, s in subjects.items():
        base, hevc = _rows(results, model, "default"), _rows(results, model, "conv HEVC")
        if 24 in base and 24 in hevc:
            k = s["primary"]
            worse = hevc[24][k] < base[24][k] if s["higher_is_better"] else hevc[24][k] > base[24][k]
            conv.append(
                f"{model} {'worse' if worse else 'not worse'} ({base[24][k]:.4g} -> {hevc[24][k]:.4g}, "
                f"{hevc[24]['bytes'] / base[24]['bytes']:.2f}x the bytes)"
            )
    if conv:
        out.append("- Conv kernels through lossy HEVC at QP 24: " + "; ".join(conv) + ". The paper found VGG16 lost 5.3 points at QP 21.")
    out.append(
        "- Not comparable: the paper's networks and ImageNet validation accuracy; our pretrained models are "
        "measured by agreement with their fp32 outputs on photos, our trained ones on real test sets."
    )
    return out
