"""The ``pyweightvc`` command (also ``python -m pyweightvc``): parse, call, print.

    pyweightvc compress IN -o OUT.wvc [--qp N | --lossless | --target-snr DB] [--policy FILE | --override PATTERN=k:v,...]
    pyweightvc compress FOLDER -o OUT_FOLDER [--workers N] [--scheduler local|tcp://host:8786] [--resume]
    pyweightvc decompress IN.wvc -o OUT.pt|OUT.safetensors|OUT.onnx
    pyweightvc info IN.wvc
    pyweightvc check IN.wvc|FOLDER

Other distributions add commands through the entry-point group
``pyweightvc.commands`` (the benchmark harness adds ``bench``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from importlib.metadata import entry_points
from typing import Any, Optional

from . import __version__, fidelity, folders
from .container import RAW_DTYPES, load_file, safe_open
from .errors import ContainerError, DecoderError, EncoderError, FormatError, InputError, Unreachable, WeightVCError
from .policy import Policy
from .settings import DEFAULT_PRESET, DEFAULT_SNR_DB, PRESETS, check

# Exit codes (also in the README and `pyweightvc --help`)
EXIT_OK = 0
EXIT_FAILURE = 1  # an unexpected failure: a bug, please report it
EXIT_BAD_INPUT = 2  # bad invocation or an input that cannot be used (missing, not a model, bad policy, unmet target)
EXIT_CORRUPT = 3  # a .wvc file that is corrupt or does not decode
EXIT_ENCODER = 4  # the HEVC encoder failed
EXIT_IO = 5  # a file could not be read or written (permissions, disk full)
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "unexpected failure (a bug: please report it)",
    EXIT_BAD_INPUT: "bad invocation or unusable input",
    EXIT_CORRUPT: "a .wvc file is corrupt or does not decode",
    EXIT_ENCODER: "the HEVC encoder failed",
    EXIT_IO: "a file could not be read or written",
    EXIT_INTERRUPTED: "interrupted",
}
WVC_SUFFIX = ".wvc"
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")


# ---------------------------------------------------------------------------
# options


def _setting(name: str, convert):
    """An argparse type checking one setting against its single definition."""

    def parse(text: str) -> Any:
        try:
            return check(name, convert(text))
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(str(exc).replace(f"{name} must", "must")) from None

    return parse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def parse_override(spec: str) -> tuple[str, dict]:
    """'PATTERN=key:value[,key:value]' -> (pattern, settings)."""
    pattern, sep, settings = spec.rpartition("=")
    if not sep or not pattern or not settings:
        raise InputError(f"--override {spec!r}: expected PATTERN=key:value[,key:value], e.g. 'classifier.*=qp:30'")
    out = {}
    for item in settings.split(","):
        key, colon, value = item.partition(":")
        if not colon or not key.strip():
            raise InputError(f"--override {spec!r}: setting {item!r} is not key:value")
        out[key.strip()] = _parse_value(value.strip())
    return pattern, out


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def parse_size(text: str) -> int:
    """'3000000', '3M', '2.5MB', '800k', '1GiB' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else None
    if not m or unit not in _SIZE_UNITS or float(m.group(1)) * _SIZE_UNITS[unit] < 1:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: a number of bytes, optionally with k, M, G, KiB, MiB or GiB")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def build_policy(args: argparse.Namespace) -> Policy:
    kwargs: dict = {}
    if args.policy:
        try:
            with open(args.policy) as f:
                kwargs = json.load(f)
        except OSError as exc:
            raise InputError(f"--policy {args.policy}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"--policy {args.policy}: not JSON ({exc})") from None
        allowed = set(Policy.FIELDS) | {"overrides"}
        if not isinstance(kwargs, dict) or set(kwargs) - allowed:
            extra = sorted(set(kwargs) - allowed) if isinstance(kwargs, dict) else kwargs
            raise InputError(f"--policy {args.policy}: unknown keys {extra}; allowed: {', '.join(sorted(allowed))}")
    overrides = dict(kwargs.pop("overrides", {}) or {})
    for spec in args.override or []:
        pattern, settings = parse_override(spec)
        overrides[pattern] = settings
    for key in ("qp", "lossless", "preset"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    if args.target_snr is not None:
        kwargs["target_snr_db"] = args.target_snr
    if args.rotate is not None:
        kwargs["rotate"] = {"off": False, "on": True, "auto": "auto"}[args.rotate]
    chosen = [
        flag
        for flag, v in (
            ("--qp", args.qp),
            ("--lossless", args.lossless),
            ("--target-snr", args.target_snr),
            ("--target-size", args.target_size),
            ("--target-fidelity", getattr(args, "target_fidelity", None)),
        )
        if v is not None
    ]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} exclude each other: give one way to choose the QP")
    try:
        return Policy(**kwargs, overrides=overrides)
    except (ValueError, TypeError) as exc:
        source = f"--policy {args.policy}" if args.policy else "options"
        raise InputError(f"bad {source}: {exc}") from None


# ---------------------------------------------------------------------------
# summaries


def _bytes_as(header: dict, dtype_bytes) -> int:
    """Bytes of the stored tensors with float elements at dtype_bytes each (None: their own)."""
    total = 0
    for e in header.values():
        if e["storage"] == "alias":
            continue
        size = RAW_DTYPES[e["dtype"]] if dtype_bytes is None or e["dtype"] not in FLOAT_DTYPES else dtype_bytes
        total += math.prod(e["shape"]) * size
    return total


def summarize(header: dict, file_size: int) -> dict:
    """Sizes of a written file against its input's own bytes and the fp32 and int8
    forms of the same weights."""
    floats = sum(math.prod(e["shape"]) for e in header.values() if e["storage"] != "alias" and e["dtype"] in FLOAT_DTYPES)
    input_bytes, fp32, int8 = _bytes_as(header, None), _bytes_as(header, 4), _bytes_as(header, 1)

    def ratio(reference: int) -> Optional[float]:
        return reference / file_size if reference and file_size else None

    dtypes = sorted({e["dtype"] for e in header.values() if e["storage"] != "alias" and e["dtype"] in FLOAT_DTYPES})
    return {
        "tensors": len(header),
        "weights": floats,
        "weight_dtypes": dtypes,
        "file_bytes": file_size,
        "input_bytes": input_bytes,
        "fp32_bytes": fp32,
        "int8_bytes": int8,
        "ratio_vs_input": ratio(input_bytes),
        "ratio_vs_fp32": ratio(fp32),
        "ratio_vs_int8": ratio(int8),
        "bits_per_weight": 8 * file_size / floats if floats else None,
    }


def _summary_line(s: dict) -> str:
    if not s["weights"]:
        return f"{s['file_bytes']:,} bytes ({s['tensors']} tensors, no float weights to compress)"
    own = "/".join(s["weight_dtypes"]) or "input"
    parts = [f"{s['ratio_vs_input']:.2f}x smaller than the input ({own}, {s['input_bytes']:,} B)"]
    if s["weight_dtypes"] != ["float32"]:
        parts.append(f"{s['ratio_vs_fp32']:.2f}x vs fp32")
    parts.append(f"{s['ratio_vs_int8']:.2f}x vs int8")
    return (
        f"{s['file_bytes']:,} bytes ({s['tensors']} tensors, {s['weights']:,} weights): "
        + ", ".join(parts)
        + f"; {s['bits_per_weight']:.3f} bits per weight"
    )


def _progress_bar(total: int, args: argparse.Namespace, desc: str):
    from tqdm import tqdm

    # the unit is one weight (tensor element); the bar moves as each tensor finishes
    return tqdm(
        total=total or None,
        unit=" weights",
        unit_scale=True,
        desc=desc,
        file=sys.stderr,
        disable=True if args.json else None,
        dynamic_ncols=True,
    )


# ---------------------------------------------------------------------------
# commands


def _onnx_module():
    try:
        from . import onnx as wvc_onnx
    except ImportError:
        raise InputError("ONNX models need the onnx package: pip install 'pyweightvc[onnx]'") from None
    return wvc_onnx


def _need_input(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or folder")


def cmd_compress(args: argparse.Namespace) -> dict:
    policy = build_policy(args)
    _need_input(args.input)
    folder = os.path.isdir(args.input)
    if not folder and not args.output.endswith(WVC_SUFFIX):
        raise InputError(
            f"-o {args.output}: compress writes a .wvc file; name it OUT{WVC_SUFFIX} (decompress writes .pt, .safetensors and .onnx)"
        )
    if args.target_size is not None and (folder or args.input.endswith(".onnx")):
        raise InputError("--target-size works on one checkpoint file (.pt/.pth/.bin/.safetensors)")
    spread = [
        flag
        for flag, given in (("--scheduler", args.scheduler is not None), ("--resume", args.resume), ("--workers", (args.workers or 1) > 1))
        if given
    ]
    if spread and not folder:
        raise InputError(f"{', '.join(spread)}: for a model folder (one file is coded in this process)")
    t0 = time.perf_counter()
    extra: dict[str, Any]
    if args.target_fidelity is not None:
        header, size, extra = _compress_for_fidelity(args, policy, folder)
    elif folder:
        with _progress_bar(folders.folder_elements(args.input), args, "compress") as bar:
            result = folders.compress_folder(
                args.input,
                args.output,
                policy,
                threads=args.threads,
                progress=lambda name, n: bar.update(n),
                workers=args.workers,
                scheduler=args.scheduler,
                resume=args.resume,
            )
        header, size, extra = result.headers, result.bytes, {"shards": len(result.shards)}
    elif args.input.endswith(".onnx"):
        wvc_onnx = _onnx_module()
        model = wvc_onnx.load(args.input)
        with _progress_bar(wvc_onnx.float_elements(model), args, "compress") as bar:
            header = wvc_onnx.compress(
                model,
                args.output,
                policy=policy,
                threads=args.threads,
                metadata={"source": os.path.basename(args.input), "source_kind": "onnx"},
                progress=lambda name, n: bar.update(n),
            )
        header = {k: e for k, e in header.items() if k != wvc_onnx.MODEL_KEY}
        size, extra = os.path.getsize(args.output), {"read": "onnx"}
    else:
        ckpt = folders.load_checkpoint(args.input)
        for pattern in policy.unmatched(ckpt.tensors):
            print(f"warning: {args.input}: override pattern {pattern!r} matches no tensor", file=sys.stderr)
        total = sum(math.prod(t.shape) for t in ckpt.tensors.values())
        with _progress_bar(total, args, "compress") as bar:
            header = folders.compress_checkpoint(
                args.input,
                args.output,
                policy,
                threads=args.threads,
                target_size=args.target_size,
                checkpoint=ckpt,
                progress=lambda name, n: bar.update(n),
            )
        size, extra = os.path.getsize(args.output), {"read": ckpt.kind}
    summary: dict[str, Any] = {
        "input": args.input,
        "output": args.output,
        **summarize(header, size),
        **extra,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if not args.json:
        print(f"wrote {args.output}: {_summary_line(summary)}; {summary['seconds']:.1f} s")
    if args.check and "output_check" not in summary:
        summary["output_check"] = _output_check(args.input, args.output, args)
    return summary


def _compress_for_fidelity(args: argparse.Namespace, policy: Policy, folder: bool) -> tuple[dict, int, dict]:
    if folder:
        result = fidelity.compress_folder_for_fidelity(args.input, args.output, args.target_fidelity, policy, threads=args.threads)
        size = sum(os.path.getsize(os.path.join(args.output, w)) for w in folders.read_manifest(args.output))
    elif args.input.endswith(".onnx"):
        _onnx_module()
        result = fidelity.compress_onnx_for_fidelity(
            args.input,
            args.output,
            args.target_fidelity,
            policy,
            metadata={"source": os.path.basename(args.input), "source_kind": "onnx"},
            threads=args.threads,
        )
        size = os.path.getsize(args.output)
    else:
        raise InputError(
            "--target-fidelity needs a model with a graph to run: an .onnx file or a Hugging Face "
            "model folder (config.json and one .safetensors shard)"
        )
    header = {k: e for k, e in result.search.header.items() if k != "__onnx_model__"}
    if not args.json:
        print(result.check.text())
    return (
        header,
        size,
        {
            "output_check": _check_dict(result.check),
            "search": {"evaluations": len(result.search.evaluations), "target_snr_db": result.search.target_snr_db},
        },
    )


def _check_dict(check: fidelity.OutputCheck) -> dict:
    return {"probe": check.probe, "inputs": check.inputs, "fidelity": check.fidelity, "worst": check.worst, "outputs": check.outputs}


def _output_check(source: str, compressed: str, args: argparse.Namespace) -> dict:
    """Compare the compressed model's outputs with the source's where a graph can be run;
    a plain checkpoint gets its weight SNR per tensor."""
    if source.endswith(".onnx"):
        _onnx_module()
        result = fidelity.check_onnx(source, compressed)
    elif os.path.isdir(source) and fidelity.is_transformers_folder(source):
        try:
            result = fidelity.check_folder(source, compressed)
        except ImportError:
            return _weight_check(source, compressed, args, "transformers is not installed (pip install transformers)")
        except (ValueError, OSError, KeyError) as exc:  # a config.json transformers cannot build a model from
            return _weight_check(source, compressed, args, f"transformers cannot load the folder ({exc})")
    else:
        return _weight_check(source, compressed, args, "a checkpoint without a graph")
    if not args.json:
        print(result.text())
    return _check_dict(result)


def _weight_check(source: str, compressed: str, args: argparse.Namespace, why: str) -> dict:
    if os.path.isdir(source):
        original: dict = {}
        for shard in folders.model_shards(source):
            original.update({f"{shard}:{k}": v for k, v in folders.load_checkpoint(os.path.join(source, shard)).tensors.items()})
        decoded: dict = {}
        for wvc_name, shard in folders.read_manifest(compressed).items():
            decoded.update({f"{shard}:{k}": v for k, v in load_file(os.path.join(compressed, wvc_name)).items()})
    else:
        original, decoded = folders.load_checkpoint(source).tensors, load_file(compressed)
    snr = {k: v for k, v in fidelity.weight_snr(original, decoded).items() if math.isfinite(v)}
    result = {"probe": f"none: {why} (weight SNR per tensor only)", "weight_snr_db": snr}
    if not args.json:
        worst = min(snr, key=lambda k: snr[k]) if snr else None
        print(
            f"no output check possible: {why}; weight SNR of the quantised tensors: "
            + (f"lowest {snr[worst]:.1f} dB ({worst}), median {sorted(snr.values())[len(snr) // 2]:.1f} dB" if worst else "all exact")
        )
    return result


def cmd_decompress(args: argparse.Namespace) -> dict:
    _need_input(args.input)
    t0 = time.perf_counter()
    what = "tensors"
    if os.path.isdir(args.input):
        count, size = folders.decompress_folder(args.input, args.output, args.threads)
    elif args.output.endswith(".onnx"):
        wvc_onnx = _onnx_module()
        model = wvc_onnx.decompress(args.input, format=args.format)
        wvc_onnx.save(model, args.output)
        count, size, what = len(model.graph.initializer), os.path.getsize(args.output), "initializers"
    else:
        count = folders.decompress_checkpoint(args.input, args.output, args.threads)
        size = os.path.getsize(args.output)
    summary: dict[str, Any] = {
        "input": args.input,
        "output": args.output,
        what: count,
        "output_bytes": size,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if not args.json:
        print(f"wrote {args.output}: {count} {what}, {size:,} bytes, {summary['seconds']:.1f} s")
    return summary


def _storage_label(e: dict) -> str:
    storage = e["storage"]
    if storage == "hevc":
        return ("hevc lossless" if e.get("lossless") else "hevc") + (" rotated" if e.get("rotate") else "")
    if storage == "int8":
        return f"int8+{e.get('coder')}"
    return storage


def cmd_info(args: argparse.Namespace) -> dict:
    if not os.path.isfile(args.input):
        raise InputError(f"{args.input}: no such file")
    with safe_open(args.input) as f:
        header = {k: f.written_entry(k) for k in f.keys()}
        meta = f.metadata()
    rows = []
    for name, e in header.items():
        if e["storage"] == "alias":
            rows.append(
                dict(tensor=name, shape=e["shape"], dtype=e["dtype"], storage=f"alias of {e['alias_of']}", qp=None, bytes=0, ratio=None)
            )
            continue
        nbytes = e["data_offsets"][1] - e["data_offsets"][0]
        original = math.prod(e["shape"]) * RAW_DTYPES[e["dtype"]]
        rows.append(
            dict(
                tensor=name,
                shape=e["shape"],
                dtype=e["dtype"],
                storage=_storage_label(e),
                qp=e.get("qp"),
                bytes=nbytes,
                ratio=original / nbytes if nbytes else None,
            )
        )
    summary = summarize(header, os.path.getsize(args.input))
    result = {"file": args.input, "metadata": meta, "tensors": rows, "totals": summary}
    if not args.json:
        w = max([len("tensor")] + [len(r["tensor"]) for r in rows])
        print(f"{'tensor':<{w}}  {'shape':>18}  {'dtype':>8}  {'storage':>14}  {'qp':>3}  {'bytes':>11}  {'ratio':>7}")
        for r in rows:
            shape = "x".join(map(str, r["shape"])) or "scalar"
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] else "-"
            qp = "" if r["qp"] is None else r["qp"]
            print(f"{r['tensor']:<{w}}  {shape:>18}  {r['dtype']:>8}  {r['storage']:>14}  {qp:>3}  {r['bytes']:>11,}  {ratio:>7}")
        print(_summary_line(summary))
        print(
            f"written by pyweightvc {meta.get('pyweightvc')} (x265 {meta.get('x265')}, libde265 {meta.get('libde265')}); "
            f"`pyweightvc check` verifies the data"
        )
    return result


def _check_file(path: str, bar) -> dict:
    """Decode every tensor of one .wvc file (checksums, headers, every picture)."""
    with safe_open(path) as f:
        names = [n for n in f.keys() if f.stored_name(n) == n]
        for name in names:
            f.get_tensor(name)
            bar.update(math.prod(f.entry(name)["shape"]))
        return {"file": path, "tensors": len(f.keys())}


def cmd_check(args: argparse.Namespace) -> dict:
    _need_input(args.input)
    if os.path.isdir(args.input):
        paths = [os.path.join(args.input, name) for name in folders.read_manifest(args.input)]
    else:
        paths = [args.input]
    total = 0
    for p in paths:
        with safe_open(p) as f:
            total += sum(math.prod(f.entry(n)["shape"]) for n in f.keys() if f.stored_name(n) == n)
    with _progress_bar(total, args, "check") as bar:
        checked = [_check_file(p, bar) for p in paths]
    result: dict[str, Any] = {"input": args.input, "files": checked, "ok": True}
    if not args.json:
        tensors = sum(c["tensors"] for c in checked)
        print(
            f"{args.input}: OK ({len(checked)} file{'s' if len(checked) > 1 else ''}, {tensors} tensors, "
            f"every checksum and picture verified)"
        )
    if args.against:
        _need_input(args.against)
        result["output_check"] = _output_check(args.against, args.input, args)
    return result


# ---------------------------------------------------------------------------
# the parser


def _plugin_commands() -> dict:
    """Commands other distributions add (group pyweightvc.commands): name -> command object."""
    return {ep.name: ep for ep in entry_points(group="pyweightvc.commands")}


def build_parser() -> argparse.ArgumentParser:
    codes = "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())
    ap = argparse.ArgumentParser(
        prog="pyweightvc",
        description="Compress neural-network weights: exact levels at a safe weight SNR by default, HEVC with --qp or a target.",
        epilog=f"Exit codes: {codes}.",
    )
    ap.add_argument("--version", action="version", version=f"pyweightvc {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compress", help="checkpoint (.pt/.pth/.bin/.safetensors/.onnx or a model folder) -> .wvc")
    c.add_argument(
        "input",
        help="a .pt/.pth/.bin/.safetensors checkpoint, an .onnx model, or a folder of "
        ".safetensors shards (e.g. a Hugging Face model folder)",
    )
    c.add_argument("-o", "--output", required=True, help="the .wvc file to write (for a folder input: the folder to write)")
    c.add_argument(
        "--qp",
        type=_setting("qp", int),
        default=None,
        help="HEVC QP for linear layers, 0..51: lower is larger and closer (default: no QP; linear layers "
        f"kept as exact levels of the coarsest step that reaches {DEFAULT_SNR_DB:g} dB weight SNR)",
    )
    c.add_argument("--lossless", action="store_const", const=True, default=None, help="code linear layers' int8 levels losslessly")
    c.add_argument(
        "--target-snr",
        type=_setting("target_snr_db", float),
        metavar="DB",
        help="instead of a QP: each linear layer gets the largest QP whose weight SNR reaches DB",
    )
    c.add_argument(
        "--target-size",
        type=parse_size,
        metavar="SIZE",
        help="instead of a QP: the whole file fits in SIZE bytes (suffixes k, M, G, KiB, MiB, GiB); "
        "QPs are allocated across layers by their rate-distortion curves (one checkpoint file only)",
    )
    c.add_argument(
        "--target-fidelity",
        type=float,
        metavar="COSINE",
        help="instead of a QP: the smallest file whose outputs on built-in probe inputs keep this mean "
        "cosine to the original's, e.g. 0.999 (an .onnx model or a Hugging Face folder)",
    )
    c.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip the output check after compressing (it runs the original and the compressed model "
        "on built-in probe inputs where a graph can be run)",
    )
    c.add_argument(
        "--rotate",
        choices=("off", "on", "auto"),
        default=None,
        help="rotate linear weight matrices before quantising (seeded Hadamard): on, off, or auto = "
        "where a probe encode says it saves bits (default: off); rotation is a step of the HEVC path, "
        "so without --qp or a target the matrices go through HEVC at QP 24",
    )
    c.add_argument("--policy", help=f"JSON file with the settings of pyweightvc.Policy: {{{', '.join(Policy.FIELDS)}, overrides}}")
    c.add_argument(
        "--override",
        action="append",
        metavar="PATTERN=key:value[,key:value]",
        help="per-tensor settings by glob, re:REGEX or kind:KIND, e.g. 'classifier.*=qp:30' (repeatable)",
    )
    c.add_argument("--preset", choices=PRESETS, default=None, help=f"x265 preset of the tensors coded with HEVC (default {DEFAULT_PRESET})")
    c.add_argument(
        "--threads",
        type=_setting("threads", int),
        default=None,
        help="threads per encoder (default: all cores in one process, 1 per task on a cluster)",
    )
    c.add_argument(
        "--workers",
        type=_positive,
        default=None,
        metavar="N",
        help="model folders: tensors coded by N worker processes at once (default: every core; "
        "1: in this process, one tensor at a time); more than 1 needs pyweightvc[distributed]",
    )
    c.add_argument(
        "--scheduler",
        metavar="local|ADDRESS",
        default=None,
        help="model folders: 'local' for a Dask LocalCluster of --workers processes, or the address "
        "of a running Dask scheduler (tcp://host:8786; its workers read the input folder at "
        "the same path)",
    )
    c.add_argument(
        "--resume",
        action="store_true",
        help="model folders: keep the .wvc shards already in the output folder that verify (same "
        "source and settings, every checksum) and code only the others",
    )
    c.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    c.set_defaults(run=cmd_compress)

    d = sub.add_parser("decompress", help=".wvc -> .pt, .safetensors or .onnx (or a folder back)")
    d.add_argument("input", help="a .wvc file, or a folder written by compress")
    d.add_argument(
        "-o",
        "--output",
        required=True,
        help="OUT.pt, OUT.pth, OUT.bin, OUT.safetensors, OUT.onnx (for a .wvc made from ONNX), or a folder for a folder input",
    )
    d.add_argument(
        "--format",
        choices=("float", "qdq"),
        default="float",
        help="ONNX output: float weights, or int8 weights behind DequantizeLinear (qdq)",
    )
    d.add_argument("--threads", type=_setting("threads", int), default=None, help="decoder threads (default: all cores)")
    d.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    d.set_defaults(run=cmd_decompress)

    i = sub.add_parser("info", help="table of the tensors in a .wvc file (reads the header only)")
    i.add_argument("input", help="a .wvc file")
    i.add_argument("--json", action="store_true", help="print the table as JSON")
    i.set_defaults(run=cmd_info)

    k = sub.add_parser("check", help="verify a .wvc file or folder: every checksum and picture, nothing written")
    k.add_argument("input", help="a .wvc file, or a folder written by compress")
    k.add_argument(
        "--against",
        metavar="SOURCE",
        help="also compare with the model it was made from: outputs on built-in probe inputs for an "
        ".onnx file or a Hugging Face folder, weight SNR per tensor for a checkpoint",
    )
    k.add_argument("--json", action="store_true", help="print the result as JSON")
    k.set_defaults(run=cmd_check)

    plugins = _plugin_commands()
    for name, ep in plugins.items():
        command = ep.load()
        p = sub.add_parser(name, help=command.help)
        command.add_arguments(p)
        p.set_defaults(run=command.run, json=False)
    if "bench" not in plugins:
        b = sub.add_parser("bench", help="the benchmark harness (a separate distribution: not installed)")
        b.add_argument("rest", nargs=argparse.REMAINDER)
        b.set_defaults(run=_bench_missing, json=False)
    return ap


def _bench_missing(args: argparse.Namespace) -> int:
    raise InputError("the benchmark harness is not installed; from a pyweightvc checkout: pip install ./bench (scripts/setup.sh does it)")


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"pyweightvc {args.command}: error: {message}", file=sys.stderr)
    return code


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.run(args)
    except KeyboardInterrupt:
        # Outputs are written to temporary files renamed when complete, and those are
        # removed on the way here: nothing partial is left. Encoder threads still busy
        # with a tensor would hold a normal exit for its whole encode: leave at once.
        print(f"pyweightvc {args.command}: interrupted; no partial output left", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    except (InputError, Unreachable, ValueError) as exc:
        return _fail(args, str(exc), EXIT_BAD_INPUT)
    except (FormatError, ContainerError, DecoderError) as exc:
        return _fail(args, f"{args.input}: {exc}", EXIT_CORRUPT)
    except EncoderError as exc:
        return _fail(args, f"encoder: {exc}", EXIT_ENCODER)
    except WeightVCError as exc:
        return _fail(args, str(exc), EXIT_FAILURE)
    except OSError as exc:
        return _fail(args, f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), EXIT_IO)
    if isinstance(result, int):  # a plugin command's own exit code
        return result
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
