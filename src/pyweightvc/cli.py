"""The ``pyweightvc`` command (also ``python -m pyweightvc``).

    pyweightvc compress IN -o OUT.wvc [--qp 24] [--lossless] [--policy FILE | --override PATTERN=k:v,...]
    pyweightvc decompress IN.wvc -o OUT.pt|OUT.safetensors
    pyweightvc info IN.wvc

Exit codes: 0 success; 1 unexpected failure; 2 bad invocation or unusable input
(missing file, not a checkpoint, a pickle that needs arbitrary code, a bad
policy); 3 a .wvc file that is corrupt or does not decode.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Optional

import numpy as np

from . import __version__
from .codec import DEFAULT_PRESET, DEFAULT_QP, PRESETS
from .container import RAW_DTYPES, _atomic_write, _shape, dtype_name, safe_open, save_file
from .errors import WeightVCError
from .policy import Policy

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_CORRUPT = 0, 1, 2, 3
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin")


class InputError(Exception):
    """An input the command cannot use (exit code 2)."""


# ---------------------------------------------------------------------------
# reading checkpoints


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach") or isinstance(x, np.ndarray)


def load_checkpoint(path: str) -> tuple[dict, str]:
    """Tensors of a PyTorch checkpoint (weights_only) or a .safetensors file, in
    file order; returns (tensors, a note on what was read)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if path.endswith(".safetensors"):
        return _load_safetensors(path), "safetensors"
    if not path.endswith(CHECKPOINT_SUFFIXES):
        raise InputError(f"{path}: unknown checkpoint type; expected {', '.join(CHECKPOINT_SUFFIXES)} or .safetensors")
    try:
        import torch
    except ImportError:
        raise InputError("reading PyTorch checkpoints needs torch: pip install torch") from None
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's weights-only unpickler names the forbidden callable in a GLOBAL line
        forbidden = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if not forbidden:
            raise InputError(f"{path}: not a PyTorch checkpoint (it does not unpickle)") from None
        raise InputError(
            f"{path}: refused: the checkpoint is a pickle that needs arbitrary code to load "
            f"(only tensors and plain containers are read, torch.load(weights_only=True)): {forbidden[0]}"
        ) from None
    except Exception as exc:  # zip, EOF, magic-number errors differ across torch versions
        raise InputError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    return _state_dict_of(obj, path)


def _state_dict_of(obj: Any, path: str) -> tuple[dict, str]:
    if isinstance(obj, dict) and obj and all(_is_tensor(v) for v in obj.values()):
        return dict(obj), "state_dict"
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(_is_tensor(v) for v in inner.values()):
                return dict(inner), f"state_dict under key {key!r}"
        bad = [k for k, v in obj.items() if not _is_tensor(v)][:5]
        raise InputError(f"{path}: not a state_dict: entries {bad} are not tensors")
    raise InputError(f"{path}: not a state_dict but a {type(obj).__name__}")


def _load_safetensors(path: str) -> dict:
    try:
        from safetensors import SafetensorError, safe_open as st_open
    except ImportError:
        raise InputError("reading .safetensors needs safetensors: pip install safetensors") from None
    try:
        import torch  # noqa: F401  (bf16 needs the torch framework)

        framework = "pt"
    except ImportError:
        framework = "np"
    try:
        with st_open(path, framework=framework) as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .safetensors file ({exc})") from None


# ---------------------------------------------------------------------------
# policy options


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
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


def build_policy(args) -> Policy:
    kwargs: dict = {}
    if args.policy:
        try:
            with open(args.policy) as f:
                kwargs = json.load(f)
        except OSError as exc:
            raise InputError(f"--policy {args.policy}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"--policy {args.policy}: not JSON ({exc})") from None
        allowed = {"qp", "lossless", "preset", "min_elements", "conv_storage", "conv_per_channel", "overrides"}
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
    try:
        return Policy(**kwargs, overrides=overrides)
    except (ValueError, TypeError) as exc:
        raise InputError(f"bad policy: {exc}") from None


# ---------------------------------------------------------------------------
# commands


def _numel(shape) -> int:
    return math.prod(shape)


def _float_elements(header: dict) -> int:
    return sum(_numel(e["shape"]) for e in header.values()
               if e["storage"] != "alias" and e["dtype"] in ("float32", "float16", "bfloat16", "float64"))


def _summary(header: dict, file_size: int, seconds: float) -> dict:
    stored = [e for e in header.values() if e["storage"] != "alias"]
    original = sum(_numel(e["shape"]) * RAW_DTYPES[e["dtype"]] for e in stored)
    fp32 = sum(_numel(e["shape"]) * (4 if e["dtype"] in ("float16", "bfloat16", "float64", "float32") else RAW_DTYPES[e["dtype"]]) for e in stored)
    int8 = sum(_numel(e["shape"]) * (1 if e["dtype"] in ("float32", "float16", "bfloat16", "float64") else RAW_DTYPES[e["dtype"]]) for e in stored)
    floats = _float_elements(header)
    return {
        "tensors": len(header), "file_bytes": file_size, "original_bytes": original,
        "fp32_bytes": fp32, "int8_bytes": int8,
        "ratio_vs_fp32": fp32 / file_size, "ratio_vs_int8": int8 / file_size,
        "bits_per_weight": 8 * file_size / floats if floats else None, "seconds": round(seconds, 3),
    }


def _print_summary(s: dict, out) -> None:
    bpw = f"{s['bits_per_weight']:.3f} bits per weight, " if s["bits_per_weight"] else ""
    print(f"{s['file_bytes']:,} bytes ({s['tensors']} tensors): {s['ratio_vs_fp32']:.2f}x smaller than fp32 "
          f"({s['fp32_bytes']:,} B), {s['ratio_vs_int8']:.2f}x smaller than int8 ({s['int8_bytes']:,} B), "
          f"{bpw}{s['seconds']:.1f} s", file=out)


def cmd_compress(args) -> dict:
    if args.output is None:
        raise InputError("compress: give the output file with -o OUT.wvc")
    policy = build_policy(args)
    t0 = time.perf_counter()
    tensors, note = load_checkpoint(args.input)
    total = sum(_numel(_shape(t)) for t in tensors.values())
    for name in policy.unmatched(tensors):
        print(f"warning: override pattern {name!r} matches no tensor", file=sys.stderr)
    from tqdm import tqdm

    with tqdm(total=total, unit="w", unit_scale=True, desc="compress", disable=args.json or None,
              file=sys.stderr) as bar:
        header = save_file(tensors, args.output, policy=policy, threads=args.threads,
                           metadata={"source": os.path.basename(args.input), "source_kind": note},
                           progress=lambda name, n: bar.update(n))
    summary = _summary(header, os.path.getsize(args.output), time.perf_counter() - t0)
    summary.update(input=args.input, output=args.output, read=note)
    if not args.json:
        _print_summary(summary, sys.stdout)
    return summary


def cmd_decompress(args) -> dict:
    if args.output is None:
        raise InputError("decompress: give the output file with -o OUT.pt or OUT.safetensors")
    if not args.output.endswith((".pt", ".pth", ".bin", ".safetensors")):
        raise InputError(f"{args.output}: output must end in .pt, .pth, .bin or .safetensors")
    t0 = time.perf_counter()
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None and not args.output.endswith(".safetensors"):
        raise InputError("writing .pt needs torch: pip install torch")
    from .container import load_file

    if not os.path.isfile(args.input):
        raise InputError(f"{args.input}: no such file")
    tensors = load_file(args.input, like="torch" if torch else "numpy", threads=args.threads)
    directory = os.path.dirname(os.path.abspath(args.output))
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(args.output)[1], dir=directory)
    os.close(fd)
    try:
        if args.output.endswith(".safetensors"):
            # safetensors stores no shared tensors: tied ones become copies
            seen, unique = set(), {}
            for k, v in tensors.items():
                unique[k] = v.clone() if torch and id(v) in seen else v
                seen.add(id(v))
            if torch:
                from safetensors.torch import save_file as st_save
            else:
                from safetensors.numpy import save_file as st_save
            st_save(unique, tmp)
        else:
            torch.save(tensors, tmp)
        os.replace(tmp, args.output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    summary = {"input": args.input, "output": args.output, "tensors": len(tensors),
               "output_bytes": os.path.getsize(args.output), "seconds": round(time.perf_counter() - t0, 3)}
    if not args.json:
        print(f"wrote {args.output}: {summary['tensors']} tensors, {summary['output_bytes']:,} bytes, "
              f"{summary['seconds']:.1f} s")
    return summary


def cmd_info(args) -> dict:
    if not os.path.isfile(args.input):
        raise InputError(f"{args.input}: no such file")
    with safe_open(args.input) as f:
        header = {k: f.entry(k) if f._header[k]["storage"] != "alias" else dict(f._header[k]) for k in f.keys()}
        meta = f.metadata()
    rows = []
    for name, e in header.items():
        if e["storage"] == "alias":
            rows.append(dict(tensor=name, shape=e["shape"], dtype=e["dtype"], storage=f"alias of {e['alias_of']}",
                             qp=None, bytes=0, ratio=None))
            continue
        nbytes = e["data_offsets"][1] - e["data_offsets"][0]
        original = _numel(e["shape"]) * RAW_DTYPES[e["dtype"]]
        storage = e["storage"]
        if storage == "hevc":
            storage = "hevc lossless" if e.get("lossless") else "hevc"
        elif storage == "int8":
            storage = f"int8+{e.get('coder')}"
        rows.append(dict(tensor=name, shape=e["shape"], dtype=e["dtype"], storage=storage, qp=e.get("qp"),
                         bytes=nbytes, ratio=original / nbytes if nbytes else None))
    summary = _summary(header, os.path.getsize(args.input), 0.0)
    del summary["seconds"]
    result = {"file": args.input, "metadata": meta, "tensors": rows, "totals": summary}
    if not args.json:
        w = max([len("tensor")] + [len(r["tensor"]) for r in rows])
        print(f"{'tensor':<{w}}  {'shape':>18}  {'dtype':>8}  {'storage':>14}  {'qp':>3}  {'bytes':>11}  {'ratio':>7}")
        for r in rows:
            shape = "x".join(map(str, r["shape"])) or "scalar"
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] else "-"
            qp = "" if r["qp"] is None else r["qp"]
            print(f"{r['tensor']:<{w}}  {shape:>18}  {r['dtype']:>8}  {r['storage']:>14}  {qp:>3}  {r['bytes']:>11,}  {ratio:>7}")
        _print_summary({**summary, "seconds": 0.0}, sys.stdout)
        print(f"written by pyweightvc {meta.get('pyweightvc')} (x265 {meta.get('x265')}, libde265 {meta.get('libde265')})")
    return result


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyweightvc", description="Compress neural-network weights with HEVC.",
                                 epilog="Exit codes: 0 ok, 1 unexpected failure, 2 bad invocation or input, "
                                        "3 corrupt .wvc file.")
    ap.add_argument("--version", action="version", version=f"pyweightvc {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compress", help="checkpoint (.pt/.pth/.bin/.safetensors) -> .wvc")
    c.add_argument("input")
    c.add_argument("-o", "--output")
    c.add_argument("--qp", type=int, default=None, help=f"HEVC QP for linear layers, 0..51 (default {DEFAULT_QP})")
    c.add_argument("--lossless", action="store_const", const=True, default=None,
                   help="code linear layers' int8 levels losslessly")
    c.add_argument("--policy", help="JSON file: {qp, lossless, preset, min_elements, conv_storage, conv_per_channel, overrides}")
    c.add_argument("--override", action="append", metavar="PATTERN=key:value[,key:value]",
                   help="per-tensor settings by glob, re:REGEX or kind:KIND, e.g. 'classifier.*=qp:30' (repeatable)")
    c.add_argument("--preset", choices=PRESETS, default=None, help=f"x265 preset (default {DEFAULT_PRESET})")
    c.add_argument("--threads", type=int, default=None, help="threads per encoder (default: all cores)")
    c.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    c.set_defaults(run=cmd_compress)

    d = sub.add_parser("decompress", help=".wvc -> .pt or .safetensors")
    d.add_argument("input")
    d.add_argument("-o", "--output")
    d.add_argument("--threads", type=int, default=None)
    d.add_argument("--json", action="store_true")
    d.set_defaults(run=cmd_decompress)

    i = sub.add_parser("info", help="table of the tensors in a .wvc file")
    i.add_argument("input")
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=cmd_info)
    return ap


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.run(args)
    except InputError as exc:
        print(f"pyweightvc {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, TypeError) as exc:
        print(f"pyweightvc {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except WeightVCError as exc:
        print(f"pyweightvc {args.command}: error: {args.input}: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
    except OSError as exc:
        print(f"pyweightvc {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
