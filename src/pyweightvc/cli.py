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
import re
import sys
import time
from typing import Any, Optional

import numpy as np

from . import __version__
from .codec import DEFAULT_PRESET, DEFAULT_QP, PRESETS
from .container import RAW_DTYPES, _atomic_write, _current_umask, safe_open, save_file
from .errors import WeightVCError
from .policy import Policy

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_CORRUPT = 0, 1, 2, 3
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin")
SAFETENSORS_META_KEY = "safetensors_metadata"  # the source file's own metadata, restored on decompress
FOLDER_MANIFEST = "pyweightvc.json"  # in a compressed model folder: which .wvc is which shard
SAFETENSORS_INDEX = "model.safetensors.index.json"


class InputError(Exception):
    """An input the command cannot use (exit code 2)."""


# ---------------------------------------------------------------------------
# reading checkpoints


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach") or isinstance(x, np.ndarray)


def load_checkpoint(path: str) -> tuple[dict, str, dict]:
    """Tensors of a PyTorch checkpoint (weights_only) or a .safetensors file, in
    file order; returns (tensors, a note on what was read, metadata to keep)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if path.endswith(".safetensors"):
        tensors, st_meta = _load_safetensors(path)
        return tensors, "safetensors", {SAFETENSORS_META_KEY: json.dumps(st_meta or {}, sort_keys=True)}
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
    tensors, note = _state_dict_of(obj, path)
    return tensors, note, {}


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


def _load_safetensors(path: str) -> tuple[dict, dict]:
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
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    except (SafetensorError, OSError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .safetensors file ({exc})") from None


# ---------------------------------------------------------------------------
# policy options


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


_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
               "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str) -> int:
    """'3000000', '3M', '2.5MB', '800k', '1GiB' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else None
    if not m or unit not in _SIZE_UNITS or float(m.group(1)) * _SIZE_UNITS[unit] < 1:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: a number of bytes, optionally with k, M, G, KiB, MiB or GiB")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


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
        allowed = {"qp", "lossless", "preset", "min_elements", "conv_storage", "per_channel", "target_snr_db",
                   "target_bpw", "rotate", "overrides"}
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
    chosen = [flag for flag, v in (("--qp", args.qp), ("--lossless", args.lossless), ("--target-snr", args.target_snr),
                                   ("--target-size", args.target_size)) if v is not None]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} exclude each other: give one way to choose the QP")
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


def _compress_one(src: str, dst: str, policy: Policy, args, bar) -> tuple[dict, str]:
    if src.endswith(".onnx"):
        return _compress_onnx(src, dst, policy, args, bar), "onnx"
    tensors, note, extra_meta = load_checkpoint(src)
    for name in policy.unmatched(tensors):
        print(f"warning: {src}: override pattern {name!r} matches no tensor", file=sys.stderr)
    metadata = {"source": os.path.basename(src), "source_kind": note, **extra_meta}
    if args.target_size is not None:
        from .rate import save_file_to_size

        try:
            header = save_file_to_size(tensors, dst, args.target_size, policy=policy, metadata=metadata,
                                       threads=args.threads, progress=lambda name: bar.update(math.prod(tensors[name].shape)))
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return header, note
    header = save_file(tensors, dst, policy=policy, threads=args.threads, metadata=metadata,
                       progress=lambda name, n: bar.update(n))
    return header, note


def _onnx_module(src: str):
    """pyweightvc.onnx, once the input file is known to exist."""
    try:
        from . import onnx as wvc_onnx
    except ImportError:
        raise InputError("ONNX models need the onnx package: pip install onnx") from None
    if not os.path.isfile(src):
        raise InputError(f"{src}: no such file")
    return wvc_onnx


def _compress_onnx(src: str, dst: str, policy: Policy, args, bar) -> dict:
    wvc_onnx = _onnx_module(src)
    try:
        return wvc_onnx.compress(src, dst, policy=policy, threads=args.threads,
                                 metadata={"source": os.path.basename(src), "source_kind": "onnx"},
                                 progress=lambda name, n: bar.update(n))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _progress_bar(total: int, args, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="w", unit_scale=True, desc=desc, disable=args.json or None, file=sys.stderr)


def cmd_compress(args) -> dict:
    if args.output is None:
        raise InputError("compress: give the output with -o OUT.wvc (or -o OUT_FOLDER for a model folder)")
    policy = build_policy(args)
    if args.target_size is not None and (os.path.isdir(args.input) or args.input.endswith(".onnx")):
        raise InputError("--target-size works on one checkpoint file (.pt/.pth/.bin/.safetensors)")
    if os.path.isdir(args.input):
        return _compress_folder(args, policy)
    t0 = time.perf_counter()
    with _progress_bar(0, args, "compress") as bar:
        header, note = _compress_one(args.input, args.output, policy, args, bar)
    summary = _summary(header, os.path.getsize(args.output), time.perf_counter() - t0)
    summary.update(input=args.input, output=args.output, read=note)
    if not args.json:
        _print_summary(summary, sys.stdout)
    return summary


def _model_shards(folder: str) -> list[str]:
    """The .safetensors files of a model folder: those its index names, or all."""
    index = os.path.join(folder, SAFETENSORS_INDEX)
    if os.path.isfile(index):
        try:
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{index}: not a safetensors index ({exc})") from None
        missing = [s for s in shards if not os.path.isfile(os.path.join(folder, s)) or os.sep in s]
        if missing:
            raise InputError(f"{index} names shards that are not in the folder: {missing}")
        return shards
    shards = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
    if not shards:
        raise InputError(f"{folder}: a folder to compress must hold .safetensors files")
    return shards


def _copy_other_files(src: str, dst: str, skip) -> None:
    import shutil

    for name in sorted(os.listdir(src)):
        if skip(name):
            continue
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if os.path.isdir(s):
            shutil.copytree(s, d, dirs_exist_ok=True)
        else:
            shutil.copy2(s, d)


def _compress_folder(args, policy: Policy) -> dict:
    """A model folder (sharded or not): each .safetensors shard becomes a .wvc, one
    shard in memory at a time; every other file (index, config, tokenizer) is copied."""
    src, out = args.input, args.output
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"{out}: exists and is not a folder")
    if os.path.abspath(src) == os.path.abspath(out):
        raise InputError("the output folder must differ from the input folder")
    shards = _model_shards(src)
    from safetensors import safe_open as st_open

    total = 0
    for shard in shards:
        with st_open(os.path.join(src, shard), framework="np") as f:
            total += sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    manifest, headers, size = {}, {}, 0
    with _progress_bar(total, args, "compress") as bar:
        for shard in shards:
            target = shard[: -len(".safetensors")] + ".wvc"
            header, _ = _compress_one(os.path.join(src, shard), os.path.join(out, target), policy, args, bar)
            manifest[target] = shard
            headers.update({f"{shard}:{k}": v for k, v in header.items()})
            size += os.path.getsize(os.path.join(out, target))
    _copy_other_files(src, out, skip=lambda n: n in shards or n == FOLDER_MANIFEST)
    _atomic_write(os.path.join(out, FOLDER_MANIFEST),
                  [json.dumps({"format": "pyweightvc-folder", "version": 1, "shards": manifest}, indent=1).encode()])
    summary = _summary(headers, size, time.perf_counter() - t0)
    summary.update(input=src, output=out, shards=len(shards))
    if not args.json:
        _print_summary(summary, sys.stdout)
    return summary


def _write_atomically(dst: str, write) -> None:
    """write(tmp) into a temporary file beside dst, then rename it over dst."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(dst)[1], dir=os.path.dirname(os.path.abspath(dst)))
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_checkpoint(src: str, dst: str, threads) -> int:
    """Decode one .wvc file into a .pt or .safetensors file (atomically)."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None and not dst.endswith(".safetensors"):
        raise InputError("writing .pt needs torch: pip install torch")
    from .container import load_file

    if not os.path.isfile(src):
        raise InputError(f"{src}: no such file")
    with safe_open(src) as f:
        st_meta = f.metadata().get(SAFETENSORS_META_KEY)
    tensors = load_file(src, like="torch" if torch else "numpy", threads=threads)
    def write(tmp: str) -> None:
        if dst.endswith(".safetensors"):
            # safetensors stores no shared tensors: tied ones become copies
            seen, unique = set(), {}
            for k, v in tensors.items():
                unique[k] = v.clone() if torch and id(v) in seen else v
                seen.add(id(v))
            if torch:
                from safetensors.torch import save_file as st_save
            else:
                from safetensors.numpy import save_file as st_save
            st_save(unique, tmp, metadata=json.loads(st_meta) if st_meta else {"format": "pt"})
        else:
            torch.save(tensors, tmp)

    _write_atomically(dst, write)
    return len(tensors)


def _write_onnx(src: str, dst: str, fmt: str) -> tuple[int, int]:
    wvc_onnx = _onnx_module(src)
    try:
        model = wvc_onnx.decompress(src, format=fmt)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    # a side file for models over 2 GB gets its final name directly
    _write_atomically(dst, lambda tmp: wvc_onnx.save(model, tmp, data_location=os.path.basename(dst) + ".data"))
    return len(model.graph.initializer), os.path.getsize(dst)


def cmd_decompress(args) -> dict:
    if args.output is None:
        raise InputError("decompress: give the output with -o OUT.pt, OUT.safetensors or OUT_FOLDER")
    t0 = time.perf_counter()
    if os.path.isdir(args.input):
        manifest_path = os.path.join(args.input, FOLDER_MANIFEST)
        try:
            with open(manifest_path) as f:
                shards = json.load(f)["shards"]
            assert isinstance(shards, dict)
        except (OSError, ValueError, KeyError, AssertionError) as exc:
            raise InputError(f"{args.input}: not a folder written by pyweightvc compress ({exc})") from None
        os.makedirs(args.output, exist_ok=True)
        count = 0
        for wvc_name, st_name in shards.items():
            if os.sep in wvc_name or os.sep in st_name or not st_name.endswith(".safetensors"):
                raise InputError(f"{manifest_path}: bad shard entry {wvc_name!r}: {st_name!r}")
            count += _write_checkpoint(os.path.join(args.input, wvc_name), os.path.join(args.output, st_name), args.threads)
        _copy_other_files(args.input, args.output, skip=lambda n: n in shards or n == FOLDER_MANIFEST)
        size = sum(os.path.getsize(os.path.join(args.output, s)) for s in shards.values())
    elif args.output.endswith(".onnx"):
        count, size = _write_onnx(args.input, args.output, args.format)
    else:
        if not args.output.endswith((".pt", ".pth", ".bin", ".safetensors")):
            raise InputError(f"{args.output}: output must end in .pt, .pth, .bin, .safetensors or .onnx")
        count = _write_checkpoint(args.input, args.output, args.threads)
        size = os.path.getsize(args.output)
    summary = {"input": args.input, "output": args.output, "tensors": count, "output_bytes": size,
               "seconds": round(time.perf_counter() - t0, 3)}
    if not args.json:
        print(f"wrote {args.output}: {count} tensors, {size:,} bytes, {summary['seconds']:.1f} s")
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
            storage = ("hevc lossless" if e.get("lossless") else "hevc") + (" rotated" if e.get("rotate") else "")
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

    c = sub.add_parser("compress", help="checkpoint (.pt/.pth/.bin/.safetensors/.onnx or a model folder) -> .wvc")
    c.add_argument("input")
    c.add_argument("-o", "--output")
    c.add_argument("--qp", type=int, default=None, help=f"HEVC QP for linear layers, 0..51 (default {DEFAULT_QP})")
    c.add_argument("--lossless", action="store_const", const=True, default=None,
                   help="code linear layers' int8 levels losslessly")
    c.add_argument("--target-snr", type=float, metavar="DB",
                   help="instead of a QP: each linear layer gets the largest QP whose weight SNR reaches DB")
    c.add_argument("--target-size", type=parse_size, metavar="SIZE",
                   help="instead of a QP: the whole file fits in SIZE bytes (suffixes k, M, G, KiB, MiB, GiB); "
                        "QPs are allocated across layers by their rate-distortion curves (one checkpoint file only)")
    c.add_argument("--rotate", choices=("off", "on", "auto"), default=None,
                   help="rotate linear weight matrices before quantising (seeded Hadamard): on, off, or auto = "
                        "where a probe encode says it saves bits (default: the policy's)")
    c.add_argument("--policy", help="JSON file: {qp, lossless, preset, min_elements, conv_storage, per_channel, "
                   "target_snr_db, target_bpw, rotate, overrides}")
    c.add_argument("--override", action="append", metavar="PATTERN=key:value[,key:value]",
                   help="per-tensor settings by glob, re:REGEX or kind:KIND, e.g. 'classifier.*=qp:30' (repeatable)")
    c.add_argument("--preset", choices=PRESETS, default=None, help=f"x265 preset (default {DEFAULT_PRESET})")
    c.add_argument("--threads", type=int, default=None, help="threads per encoder (default: all cores)")
    c.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    c.set_defaults(run=cmd_compress)

    d = sub.add_parser("decompress", help=".wvc -> .pt, .safetensors or .onnx (or a folder back)")
    d.add_argument("input")
    d.add_argument("-o", "--output")
    d.add_argument("--format", choices=("float", "qdq"), default="float",
                   help="ONNX output: float weights, or int8 weights behind DequantizeLinear (qdq)")
    d.add_argument("--threads", type=int, default=None)
    d.add_argument("--json", action="store_true")
    d.set_defaults(run=cmd_decompress)

    i = sub.add_parser("info", help="table of the tensors in a .wvc file")
    i.add_argument("input")
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=cmd_info)

    b = sub.add_parser("bench", help="benchmark suites: size against fidelity next to the alternatives")
    b.add_argument("--suite", choices=("quick", "full"), default="quick",
                   help="quick: the MNIST MLP and a few settings (a minute or two); full: every model (docs/benchmarks.md)")
    b.add_argument("-o", "--out", default="bench-results", help="output folder (default bench-results)")
    b.add_argument("--models", help="comma-separated subset: mlp_mnist, cnn_fashion, mobilenet_v2, efficientnet_lite0, minilm")
    b.add_argument("--repeats", type=int, default=None, help="timing repeats, median taken (default: 1 quick, 3 full)")
    b.add_argument("--nncodec", choices=("setup", "auto", "off"), default="setup",
                   help="setup: create NNCodec's own virtual environment when missing (about 6 GB, a few minutes); "
                        "auto: use it only if present; off: do not run NNCodec (default setup)")
    b.add_argument("--nncodec-venv", help="where NNCodec's environment lives (default ~/.cache/pyweightvc/nncodec-venv)")
    b.add_argument("--publish", metavar="MARKDOWN", help="also write the report there (e.g. docs/benchmarks.md), "
                   "figures in a folder of the same name")
    b.add_argument("--variant", action="append", metavar="NAME",
                   help="run only this variant's settings (repeatable), e.g. --variant rotated")
    b.add_argument("--update", action="store_true",
                   help="merge into the results already in --out: rows measured now replace the same rows")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(run=cmd_bench, json=False)
    return ap


def cmd_bench(args) -> None:
    from pathlib import Path

    try:
        from .bench import harness

        suite = harness.SUITES[args.suite]
        models = args.models.split(",") if args.models else None
        harness.run(suite, Path(args.out), models=models, repeats=args.repeats, nncodec=args.nncodec,
                    nncodec_venv=Path(args.nncodec_venv) if args.nncodec_venv else None, progress=not args.no_progress,
                    variants=args.variant, update=args.update)
        if args.publish:
            harness.publish(Path(args.out), Path(args.publish))
    except ModuleNotFoundError as exc:
        raise InputError(f"{exc} (the benchmark needs: pip install 'pyweightvc[bench]')") from None
    print(f"results in {args.out}: results.json, results.csv, report.md, figures/"
          + (f"; report also in {args.publish}" if args.publish else ""))


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
        print(f"pyweightvc {args.command}: error: {getattr(args, 'input', '')}: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
    except OSError as exc:
        print(f"pyweightvc {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
