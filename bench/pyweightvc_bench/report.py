"""The harness's Markdown report and figures, from its results dict."""

from __future__ import annotations

import math
import os
from pathlib import Path

from . import figures, paper

METHOD_ORDER = ("pyweightvc", "nncodec", "requant", "gguf", "jpeg", "zstd", "xz", "int8")
METHOD_NAMES = {
    "pyweightvc": "pyweightvc (HEVC)",
    "nncodec": "NNCodec 2.1.3",
    "requant": "requantised + zstd-19",
    "gguf": "GGUF (gguf package)",
    "jpeg": "JPEG (Pillow)",
    "zstd": "int8 + zstd-22",
    "xz": "int8 + xz-9e",
    "int8": "int8 only",
}


def fmt_metric(value, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.2f} %" if percent else f"{value:.4f}"


def fmt_num(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "exact"
    return f"{x:.{digits}f}"


def _knob(row) -> float:
    k = row.get("knob")
    return -math.inf if k is None or (isinstance(k, float) and math.isnan(k)) else k


def _setting(row) -> str:
    """The setting's label, with what a search chose for it when it did."""
    return row["setting"] + (f" ({row['chosen']})" if row.get("chosen") else "")


def ok_rows(results, model=None):
    return [r for r in results["rows"] if r["status"] == "ok" and (model is None or r["model"] == model)]


def best_at_match(results, model: str, method: str):
    """The smallest ok row of `method` whose primary fidelity meets the model's bar."""
    s = results["subjects"][model]
    key, hib, bar = s["primary"], s["higher_is_better"], s["match_threshold"]
    rows = [r for r in ok_rows(results, model) if r["method"] == method and (r[key] >= bar if hib else r[key] <= bar)]
    return min(rows, key=lambda r: r["bytes"]) if rows else None


def headline(results) -> list[str]:
    lines = [
        "| model | matched fidelity | method | setting | model bytes | vs fp32 | vs pyweightvc | bits/weight (fc / conv) | fidelity |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, s in results["subjects"].items():
        mine = best_at_match(results, model, "pyweightvc")
        for method in METHOD_ORDER:
            r = best_at_match(results, model, method)
            not_run = [x for x in results["rows"] if x["model"] == model and x["method"] == method and x["status"] != "ok"]
            if r is None:
                measured = any(x["model"] == model and x["method"] == method for x in results["rows"])
                why = (
                    f"not run: {not_run[0]['reason']}"
                    if not_run
                    else "no setting reached the bar"
                    if measured
                    else "not measured in this run"
                )
                lines.append(f"| {model} | {s['match']} | {METHOD_NAMES[method]} | {why} | | | | | |")
                continue
            versus = f"{r['bytes'] / mine['bytes']:.2f}x" if mine else "-"
            lines.append(
                f"| {model} | {s['match']} | {METHOD_NAMES[method]} | {r['variant']}, {_setting(r)} | {r['bytes']:,} | "
                f"{r['ratio_vs_fp32']:.2f}x | {versus} | {fmt_num(r['bpw_fc'], 2)} / {fmt_num(r['bpw_conv'], 2)} | "
                f"{fmt_metric(r[s['primary']], s['percent'])} |"
            )
    return lines


def model_table(results, model: str) -> list[str]:
    s = results["subjects"][model]
    metrics = s["metrics"]
    head = (
        "| method | variant | setting | bytes | vs fp32 | vs int8 | bits/w fc | bits/w conv | SNR fc dB | "
        + " | ".join(m["label"] for m in metrics)
        + " | encode s | decode s |"
    )
    lines = [head, "|" + "---|" * (11 + len(metrics))]
    ref = s["reference_fidelity"]
    lines.append(
        f"| fp32 | reference | - | {s['fp32_bytes']:,} | 1.00x | {s['fp32_bytes'] / s['int8_bytes']:.2f}x | 32 | 32 "
        f"| exact | " + " | ".join(fmt_metric(ref.get(m["key"]), m["percent"]) for m in metrics) + " | - | - |"
    )
    rows = [r for r in results["rows"] if r["model"] == model]
    rows.sort(key=lambda r: (METHOD_ORDER.index(r["method"]), r["variant"] != "default", r["variant"], _knob(r)))
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['method']} | {r['variant']} | {r['setting']} | not run: {r['reason']} |" + " |" * (7 + len(metrics)))
            continue
        lines.append(
            f"| {r['method']} | {r['variant']} | {_setting(r)} | {r['bytes']:,} | {r['ratio_vs_fp32']:.2f}x | "
            f"{r['ratio_vs_int8']:.2f}x | {fmt_num(r['bpw_fc'])} | {fmt_num(r['bpw_conv'])} | {fmt_num(r['snr_fc_db'], 2)} | "
            + " | ".join(fmt_metric(r.get(m["key"]), m["percent"]) for m in metrics)
            + f" | {r['encode_s']:.2f} | {r['decode_s']:.2f} |"
        )
    return lines


def write(results: dict, path: Path, figure_dir: Path) -> None:
    path, figure_dir = Path(path), Path(figure_dir)
    figure_dir.mkdir(parents=True, exist_ok=True)
    made = figures.draw_all(results, figure_dir)
    rel = os.path.relpath(figure_dir, path.parent)
    meta = results["meta"]
    v = meta["versions"]
    nnc = meta.get("nncodec_env") or {}
    out = [
        "<!-- Generated by pyweightvc_bench.report from a run's results.json: do not edit by hand; re-run and publish. -->",
        "# Benchmarks",
        "",
        f"Generated by `pyweightvc bench --suite {meta['suite']}"
        # a run without --variant records None, which results.json reads back as nan
        + "".join(f' --variant "{name}"' for name in (meta.get("variants") if isinstance(meta.get("variants"), list) else ()))
        + f"` on {meta['date']} in {meta['seconds'] / 60:.1f} min "
        f"({meta['repeats']} repeat(s) per timing, median). Every number and figure on this page comes from that run"
        + (" and the updates listed below" if meta.get("updates") else "")
        + "; "
        "the raw measurements are in the run's results.json / results.csv.",
        "",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, {meta['machine']['memory']}; {meta['machine']['system']}.",
        "Versions: "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + ("; NNCodec's own environment: " + ", ".join(f"{k} {val}" for k, val in nnc.items()) if nnc else "")
        + ".",
        f"Seeds: {', '.join(f'{k} {val}' for k, val in meta['seeds'].items())}.",
        *[
            f"Updated on {u['date']} by `pyweightvc bench --update` (variants: "
            f"{', '.join(f'`{v}`' for v in u['variants']) if u['variants'] else 'all'}; models: {', '.join(u['models'])}; "
            f"{u['seconds'] / 60:.1f} min of the total): those rows replace or join the first run's."
            for u in meta.get("updates", [])
        ],
        *(
            [f"Rows of variants the suite has dropped since are left out: {', '.join(f'`{v}`' for v in meta['dropped'])}."]
            if meta.get("dropped")
            else []
        ),
        "",
        "## How to read it",
        "",
        "- Tensors fall into groups by pyweightvc's policy: **fc** (2-D float weights: fully connected layers, "
        "embeddings), **conv** (float weights of rank >= 3) and **other** (biases, norms, tensors under 1024 "
        "elements), which every method stores raw.",
        "- **pyweightvc**: a real .wvc file (header included). `default` = fc through HEVC at the QP (symmetric, one "
        "scale per output channel, conv kernels as deflated int8 levels); `data-free default` = what `pyweightvc "
        "compress` does without options (`Policy()`: fc kept as exact levels of the coarsest step that reaches "
        "pyweightvc.DEFAULT_SNR_DB weight SNR, conv kernels as int8 levels); `per-tensor` = the "
        "paper's exact pipeline (one scale per tensor); `asymmetric` = asymmetric levels; `conv HEVC` = conv kernels "
        "through lossy HEVC at the same QP too; `lossless` = HEVC lossless.",
        "- **int8 only**, **zstd**, **xz** code the same 8-bit levels as pyweightvc's default (4 bytes per output-channel "
        "scale added); **JPEG** codes each fc matrix's levels as one grey picture at one quality (conv kernels as "
        "pyweightvc's default); **NNCodec** codes fc and conv floats itself (DeepCABAC) at its qp, in its own "
        "virtual environment on the same tensors. Peers' sizes are payloads without a container.",
        "- **requantised + zstd-19** (the simplest strong alternative): each fc tensor requantised with the coarsest "
        "step that reaches the setting's weight SNR (one step floor for every output channel), its levels zstd -19; "
        "conv kernels as pyweightvc's default (8-bit levels per channel), so only the fc coder differs. **GGUF**: "
        "the gguf package's own quantiser of that type on the fc tensors (blocks of 32 along each row with their "
        "scales, no entropy coding; its true bits per weight), conv kernels Q8_0, tensors whose rows are not a "
        "multiple of 32 long float16, as llama.cpp does.",
        "- Bits per weight: stored bytes x 8 over the weights of the group. Weight SNR: 10 log10(sum w^2 / sum (w - w')^2) "
        "over the fc group. Times: whole-model encode and decode in seconds (pyweightvc uses all cores; zstd, xz, "
        "JPEG and NNCodec one).",
        "- QP chosen by pyweightvc (pyweightvc.rate, docs/rate.md): `target SNR` = every fc tensor at the largest QP "
        "reaching that weight SNR; `sized` = the file fitted to the size the default variant took at that QP, QPs "
        "allocated across tensors; `accuracy search` = the smallest file whose fidelity clears the bar below (conv "
        "kernels searched too in `accuracy search, conv HEVC`). They are timed once and their encode time is the whole "
        "search; probe curves are computed once per model and reused by its later searches. In brackets after an "
        "accuracy search's setting: the weight-SNR target it kept (and the min_step, where it searched one).",
        '- Rotation (`Policy(rotate="auto")`, docs/rate.md): `rotated` / `accuracy search, rotated` are `default` / '
        "`accuracy search` with every fc matrix rotated (seeded Hadamard) where a probe encode says it saves bits at "
        "equal weight SNR.",
        "- `low-bit lossless` / `low-bit lossless, per-tensor`: fc weights quantised to 3-7 bits (the setting), one "
        "scale per output channel / per tensor, and the levels coded losslessly by HEVC as dense samples: the "
        "error is the scalar quantiser's alone and HEVC serves as the entropy coder; `low-bit lossless, "
        "per-tensor, rotated`: every fc matrix rotated first (`rotate=True`).",
        "- Step floor (`min_step`, docs/rate.md): `conv min-step 0.002` / `0.003` = `default` with every conv "
        "kernel's per-channel step at least that value; `accuracy search, rotated, conv min-step` / `..., min-step` "
        "= `accuracy search, rotated`, then one floor for the conv kernels / the fc matrices searched against the "
        'bar with the QPs kept (`search_min_step="int8"` / `"hevc"`).',
        "- `accuracy search, rotated, measured allocation` = `accuracy search, rotated`, then each fc matrix holding "
        "10 % of the fc weights (the others together) coded alone at the kept target to measure the score's "
        "sensitivity to it, and the QPs spread by those sensitivities in a byte budget searched against the bar "
        '(`allocate="measured"`); in brackets, the QPs it chose.',
        "- `low-bit lossless, accuracy search` / `..., rotated`: fc levels coded losslessly (one scale per tensor, "
        "levels up to 4 bits, rotated first in the second), their quantisation step searched against the bar from "
        "the 4-bit max-abs step up (`save_file_for_accuracy` with a lossless policy), in `..., rotated, measured "
        "allocation` then spread by measured sensitivity as above; in brackets, the steps chosen.",
        "- Matched fidelity (headline): the smallest setting of each method whose fidelity clears the model's bar.",
        "",
        "## Headline: smallest model at matched fidelity",
        "",
        *headline(results),
        "",
    ]
    if "throughput" in made:
        out += ["![encode and decode throughput](" + f"{rel}/{made['throughput']})", ""]
    out += paper.section(results)
    for model, s in results["subjects"].items():
        e = s["elements"]
        out += [
            "",
            f"## {model}: {s['title']}",
            "",
            f"fp32 {s['fp32_bytes']:,} bytes; int8 {s['int8_bytes']:,} bytes; weights: fc {e['fc']:,}, conv {e['conv']:,}, "
            f"other {e['other']:,} ({s['tensors']['fc']} / {s['tensors']['conv']} / {s['tensors']['other']} tensors). "
            f"Fidelity: {', '.join(m['label'] for m in s['metrics'])}; matched fidelity: {s['match']}."
            + (
                f" Trained in {s['train_seconds']:.0f} s."
                if isinstance(s.get("train_seconds"), float) and not math.isnan(s["train_seconds"])
                else ""
            )
            + f" Measured in {s['seconds'] / 60:.1f} min.",
            "",
        ]
        for kind, caption in (
            ("rate", "rate-fidelity"),
            ("qp", "size and fidelity against QP"),
            ("snr", "fc group: bits per weight against weight SNR"),
        ):
            if (model, kind) in made:
                out.append(f"![{model} {caption}]({rel}/{made[(model, kind)]})")
        out += ["", *model_table(results, model)]
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text("\n".join(out) + "\n")
    os.replace(tmp, path)
