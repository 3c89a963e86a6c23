"""Many tensors in one file: the .wvc model file (specified in docs/format.md).

Layout like safetensors: an 8-byte little-endian header length, a JSON header
(tensor name -> dtype, shape, storage and its settings, byte offsets, CRC-32;
plus ``__metadata__``), then the data. No pickle. The same tensors and settings
give the same bytes. Reads are lazy: :func:`safe_open` memory-maps the file and
decodes a tensor only when asked.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ._arrays import DTYPE_NAMES, MAX_ELEMENTS, MAX_RANK, allocate_output, element_count, is_torch_tensor, matrix_dims
from ._core import decode_levels, dequantize_levels, encode_levels, max_levels_for_bytes, versions
from ._files import atomic_write, write_chunks
from .codec import Decoder, Encoder, QuantizedTensor, quantize, read_header
from .errors import ContainerError, WeightVCError
from .policy import Policy, TensorPlan
from .settings import PRESETS
from .targets import encode_to_target, resolve_rotate, step_for_snr

FORMAT_NAME = "pyweightvc"
# Version 2: the header starts with a CRC-32 of the rest of it (_CRC_LEAD below);
# version 1 had no header checksum. Both are read.
FORMAT_VERSION = "2"
READABLE_VERSIONS = ("1", "2")
MAX_HEADER_BYTES = 64 * 1024 * 1024
# Limits of the JSON header (docs/format.md, *Limits*): the header nests three deep
# (object -> entry -> shape list); numbers are short (u64 has 20 digits).
MAX_JSON_DEPTH = 8
MAX_INT_CHARS = 20
MAX_FLOAT_CHARS = 32
# deflate codes at most 258 bytes in 2 bits: no zlib stream inflates to more than
# this many times its size (zlib's own bound), so an int8 entry declaring more
# levels than that is refused before inflating
MAX_DEFLATE_RATIO = 1032
# a version-2 header begins with these bytes, then the CRC-32 (8 lowercase hex digits)
# of every header byte after the digits' closing quote, padding included
CRC_KEY = "header_crc32"
_CRC_LEAD = b'{"__metadata__":{"' + CRC_KEY.encode() + b'":"'
_CRC_END = len(_CRC_LEAD) + 8  # the digits' closing quote; the CRC covers what follows it
# dtypes a tensor can have in a .wvc file, with their item sizes
RAW_DTYPES = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
}
# Lossless coders of int8 levels (docs/format.md). "rans": the native core's static
# rANS code with one symbol table per class of rows (rows grouped by mean magnitude),
# 1-19 % smaller than deflate -9 and 1-11 % smaller than zstd -19 on real matrices,
# several times faster to write than deflate (docs/measurements.md); "zlib": deflate -9,
# what earlier versions wrote, still written for small matrices where it is
# smaller (rans's symbol tables cost a few hundred bytes). A "-params" suffix: the
# scales and zero points as a zlib stream of their own, written when that is
# smaller (with a step floor most scales are equal: EfficientNet-Lite0's conv
# scales at min_step 0.003 take 16 KB instead of 83 KB); without it they are raw.
_INT8_CODERS = ("zlib", "zlib-params", "rans", "rans-params")
_RANS_ONLY_ELEMENTS = 1 << 16  # matrices at least this large are not also deflated to compare
_ZLIB_LEVEL = 9


# ---------------------------------------------------------------------------
# tensors in: dtype names and raw bytes of numpy arrays and torch tensors


def dtype_name(x: Any) -> str:
    if is_torch_tensor(x):
        name = str(x.dtype).replace("torch.", "")
    else:
        arr = np.asarray(x)
        name = "bool" if arr.dtype == np.bool_ else arr.dtype.name
    if name not in RAW_DTYPES:
        raise TypeError(f"unsupported tensor dtype {name}; supported: {', '.join(RAW_DTYPES)}")
    return name


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


def _raw_bytes(x: Any) -> bytes:
    if is_torch_tensor(x):
        import torch

        t = x.detach().cpu().contiguous().reshape(-1)
        return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
    arr = np.ascontiguousarray(x)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def storage_key(x: Any):
    """Identity of a tensor's memory, to store tied tensors once."""
    if is_torch_tensor(x):
        if x.numel() == 0:
            return None
        return ("torch", x.untyped_storage().data_ptr(), x.storage_offset(), tuple(x.shape), tuple(x.stride()), x.dtype)
    arr = np.asarray(x)
    if arr.size == 0:
        return None
    return ("numpy", arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.dtype.str)


# ---------------------------------------------------------------------------
# writing


@dataclass
class _Encoded:
    entry: dict
    data: bytes


def warn_non_finite(name: str, x: Any) -> None:
    """Raw storage keeps NaN and Inf bit for bit (masks hold -inf on purpose), but a
    weight that is not finite is usually a broken checkpoint: say so, like the
    quantised path, which refuses them."""
    if dtype_name(x) not in ("float32", "float16", "bfloat16", "float64"):
        return
    values = x.detach().cpu().float().numpy() if is_torch_tensor(x) else np.asarray(x)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        warnings.warn(
            f"tensor {name!r}: {bad.size} non-finite value(s), the first {values.flat[bad[0]]} at flat index "
            f"{bad[0]}; stored raw, exactly as given",
            stacklevel=3,
        )


def _encode_tensor(x: Any, plan: TensorPlan, threads: Optional[int]) -> _Encoded:
    dtype = dtype_name(x)
    shape = _shape(x)
    entry: dict = {"dtype": dtype, "shape": list(shape), "storage": plan.storage}
    if plan.storage == "raw":
        return _Encoded(entry, _raw_bytes(x))
    quant = plan.quant_options()
    if plan.storage == "hevc":
        if resolve_rotate(x, plan, threads):
            quant["rotate"] = True  # recorded only when rotated: other entries read as before
        if plan.target_snr_db is not None or plan.target_bpw is not None:
            blob, choice = encode_to_target(
                x, target_snr_db=plan.target_snr_db, target_bpw=plan.target_bpw, preset=plan.preset, threads=threads, **quant
            )
            target = {"target_snr_db": plan.target_snr_db} if plan.target_snr_db is not None else {"target_bpw": plan.target_bpw}
            # the QP the search chose is recorded like a fixed one, with the target beside it
            entry.update({"qp": choice.qp, "lossless": choice.qp is None, "preset": plan.preset, **quant, **target})
            return _Encoded(entry, blob)
        enc = Encoder(plan.qp if plan.qp is not None else 0, lossless=plan.lossless, preset=plan.preset, threads=threads, **quant)
        entry.update({"qp": plan.qp, "lossless": plan.lossless, "preset": plan.preset, **quant})
        return _Encoded(entry, enc.encode(x))
    # int8: the levels kept exactly, losslessly coded; scales and zero points first
    if plan.target_snr_db is not None:  # the coarsest step that keeps the target
        quant["min_step"] = max(plan.min_step, step_for_snr(x, plan.target_snr_db, threads=threads, **quant))
        entry["target_snr_db"] = plan.target_snr_db
    levels, scale, zero_point = quantize(x, threads=threads, **quant)
    zp = b"" if plan.symmetric else zero_point.astype("<i4").tobytes()  # symmetric: all zero
    params = scale.astype("<f4").tobytes() + zp
    deflated = zlib.compress(params, _ZLIB_LEVEL)
    # a few distinct scales deflate to less than their raw bytes; many do not
    params_coded = len(deflated) < len(params)
    coder, coded = _code_levels(levels)
    entry.update({**quant, "coder": coder + "-params" if params_coded else coder, "params": int(scale.size)})
    return _Encoded(entry, (deflated if params_coded else params) + coded)


def _code_levels(levels: np.ndarray) -> tuple[str, bytes]:
    """The levels' coder and bytes: rans, or deflate where that is smaller."""
    ranged = encode_levels(levels.reshape(matrix_dims(levels.shape)))
    if levels.size >= _RANS_ONLY_ELEMENTS:
        return "rans", ranged
    deflated = zlib.compress(levels.tobytes(), _ZLIB_LEVEL)
    return ("zlib", deflated) if len(deflated) < len(ranged) else ("rans", ranged)


def _header_bytes(header: dict) -> bytes:
    """The JSON header as written: the checksum field first, fixed separators,
    spaces to a multiple of 8 bytes, then the CRC-32 of what follows the field."""
    meta = {CRC_KEY: "0" * 8, **header["__metadata__"]}
    blob = json.dumps({**header, "__metadata__": meta}, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # keep the data 8-byte aligned
    assert blob.startswith(_CRC_LEAD)
    return blob[: len(_CRC_LEAD)] + b"%08x" % zlib.crc32(blob[_CRC_END + 1 :]) + blob[_CRC_END:]


def library_metadata() -> dict:
    v = versions()
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pyweightvc": v["pyweightvc"],
        "x265": v["x265"],
        "libde265": v["libde265"],
    }


def save_file(
    tensors: Mapping[str, Any],
    path: str,
    qp: Optional[int] = None,
    policy: Optional[Policy] = None,
    metadata: Optional[Mapping[str, str]] = None,
    *,
    threads: Optional[int] = None,
    progress: Optional[Callable[[str, int], None]] = None,
) -> dict:
    """Compress a dict of tensors (numpy arrays or torch tensors) into a .wvc file.

    policy: a :class:`Policy` (default: ``Policy(qp)``; without a qp, the data-free default
    that keeps matrices as levels at ``DEFAULT_SNR_DB``). metadata: str -> str, kept
    in ``__metadata__``. progress(name, elements) is called after each tensor.
    Returns the header that was written (without ``__metadata__``).
    """
    if policy is None:
        policy = Policy(qp)
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a mapping of name -> tensor, got {type(tensors).__name__}")
    user_meta = check_metadata(metadata)

    names = list(tensors)
    for name in names:
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensor names must be non-empty strings other than '__metadata__', got {name!r}")
    plans: dict[str, TensorPlan] = {}
    aliases: dict[str, str] = {}
    first_of: dict[Any, str] = {}
    for name in names:
        x = tensors[name]
        if not (is_torch_tensor(x) or isinstance(x, (np.ndarray, np.generic))):
            raise TypeError(f"tensor {name!r}: expected a numpy array or torch tensor, got {type(x).__name__}")
        key = storage_key(x)
        if key is not None and key in first_of:
            aliases[name] = first_of[key]
            continue
        if key is not None:
            first_of[key] = name
        plans[name] = policy.plan(name, dtype_name(x), _shape(x))
        if plans[name].storage == "raw":
            warn_non_finite(name, x)

    def work(name: str) -> tuple[dict, bytes]:
        enc = encode_tensor(name, tensors[name], plans[name], threads)
        if progress:
            progress(name, math.prod(_shape(tensors[name])))
        return enc

    if progress:
        for name in aliases:  # stored once, under the first name
            progress(name, math.prod(_shape(tensors[name])))
    # Large tensors already use every core inside x265; threads across tensors
    # keep the cores busy on the many small ones.
    pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
    try:
        encoded = dict(zip(plans, pool.map(work, list(plans))))
    except BaseException:
        # Ctrl-C or a failed tensor: start no more tensors (one being encoded finishes
        # in its thread); waiting for it here would hold the caller for its whole encode
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()

    for name in aliases:
        x = tensors[name]
        encoded[name] = ({"dtype": dtype_name(x), "shape": list(_shape(x)), "storage": "alias", "alias_of": aliases[name]}, b"")
    return write_file(path, [(name, *encoded[name]) for name in names], policy, user_meta)


def check_metadata(metadata: Optional[Mapping[str, str]]) -> dict:
    """The user's metadata as a dict, checked: str -> str, no key pyweightvc writes itself."""
    user_meta = dict(metadata or {})
    for k, v in user_meta.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata must map str to str, got {k!r}: {v!r}")
    reserved = set(user_meta) & set(library_metadata()) | ({"policy", CRC_KEY} & set(user_meta))
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} are reserved for pyweightvc")
    return user_meta


def encode_tensor(name: str, x: Any, plan: TensorPlan, threads: Optional[int] = None) -> tuple[dict, bytes]:
    """One tensor as :func:`save_file` stores it under `plan`: its header entry
    (without data_offsets and crc32, which :func:`write_file` adds) and its data.
    Errors name the tensor."""
    try:
        enc = _encode_tensor(x, plan, threads)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"tensor {name!r}: {exc}") from exc
    return enc.entry, enc.data


def write_file(path: str, parts: Sequence[tuple[str, dict, bytes]], policy: Policy, metadata: Optional[Mapping[str, str]] = None) -> dict:
    """Write a .wvc file atomically from encoded tensors in file order: (name, entry,
    data) as :func:`encode_tensor` returns them, or an alias entry (``storage="alias"``,
    ``alias_of``) with no data. The same parts give the same bytes as :func:`save_file`
    with the same policy and metadata. Returns the header written."""
    user_meta = check_metadata(metadata)
    header: dict = {}
    offset = 0
    for name, entry, data in parts:
        e = dict(entry)
        if e["storage"] != "alias":
            e["data_offsets"] = [offset, offset + len(data)]
            e["crc32"] = zlib.crc32(data)
            offset += len(data)
        header[name] = e
    meta = {**library_metadata(), "policy": policy.to_json(), **user_meta}
    blob = _header_bytes({"__metadata__": meta, **header})
    if len(blob) > MAX_HEADER_BYTES:
        raise ValueError(f"header of {len(blob)} bytes exceeds the {MAX_HEADER_BYTES}-byte limit")
    chunks = [data for _, entry, data in parts if entry["storage"] != "alias"]
    atomic_write(path, write_chunks([struct.pack("<Q", len(blob)), blob] + chunks))
    return header


# ---------------------------------------------------------------------------
# reading


def _fail(name: str, problem: str) -> ContainerError:
    return ContainerError(f"tensor {name!r}: {problem}")


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)  # an unterminated one runs to the end
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def _json_depth(text: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (outside strings), in
    time linear in its size and without recursion."""
    skeleton = _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    if not skeleton:
        return 0
    b = np.frombuffer(skeleton, np.uint8)
    return int(np.cumsum(np.where((b == ord("[")) | (b == ord("{")), 1, -1)).max())


def _json_int(text: str) -> int:
    if len(text) > MAX_INT_CHARS:
        raise ContainerError(f"header holds an integer of {len(text)} digits (at most {MAX_INT_CHARS})")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if len(text) > MAX_FLOAT_CHARS or not math.isfinite(value):
        raise ContainerError(f"header holds the number {text[:40]!r}: at most {MAX_FLOAT_CHARS} characters, finite")
    return value


def _json_constant(text: str) -> Any:
    raise ContainerError(f"header holds {text}, which is not JSON")


def _json_object(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        for k, _ in pairs:
            if k in seen:
                raise ContainerError(f"header holds the key {k!r} twice in one object")
            seen.add(k)
    return out


def load_json(raw: Any) -> Any:
    """JSON from a file (the header, or JSON kept in its metadata), parsed within
    limits: depth, number sizes, no NaN or Infinity, no repeated keys. Anything
    else raises ContainerError."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    depth = _json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise ContainerError(f"not a .wvc file: header nests {depth} deep (at most {MAX_JSON_DEPTH})")
    try:
        return json.loads(
            raw.decode("utf-8"), parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant, object_pairs_hook=_json_object
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContainerError(f"not a .wvc file: header is not JSON ({exc})") from None
    except RecursionError:  # not reached after the depth check; kept as a guard
        raise ContainerError("not a .wvc file: header nests too deep") from None


def _parse_header(buf, file_size: int) -> tuple[dict, dict, int]:
    if file_size < 8:
        raise ContainerError(f"not a .wvc file: {file_size} bytes, too short for a header")
    (n,) = struct.unpack_from("<Q", buf, 0)
    if n > MAX_HEADER_BYTES:
        raise ContainerError(f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
    if 8 + n > file_size:
        raise ContainerError(f"truncated file: header needs {8 + n} bytes, file has {file_size}")
    raw = bytes(buf[8 : 8 + n])
    # a header with the checksum field is checked before its JSON is parsed
    signed = raw.startswith(_CRC_LEAD) and raw[_CRC_END : _CRC_END + 1] == b'"'
    if signed and raw[len(_CRC_LEAD) : _CRC_END] != b"%08x" % zlib.crc32(raw[_CRC_END + 1 :]):
        raise ContainerError("corrupted header: header checksum mismatch")
    header = load_json(raw)
    if not isinstance(header, dict):
        raise ContainerError("not a .wvc file: header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ContainerError("__metadata__ must map strings to strings")
    if meta.get("format") != FORMAT_NAME:
        raise ContainerError("not a .wvc file: __metadata__ lacks format=pyweightvc")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ContainerError(f"unsupported .wvc format version {version!r} (this build reads {', '.join(READABLE_VERSIONS)})")
    if (version != "1") != signed or (version == "1" and CRC_KEY in meta):
        raise ContainerError(
            f"corrupted header: a version-{version} header {'has no' if version == '1' else 'starts with its'} {CRC_KEY} field"
        )
    data_start = 8 + n
    data_size = file_size - data_start
    spans = []
    for name, e in header.items():
        _check_entry(name, e, data_size)
        if e["storage"] != "alias":
            spans.append((*e["data_offsets"], name))
    for name, e in header.items():
        if e["storage"] == "alias":
            target = header.get(e["alias_of"])
            if not isinstance(target, dict) or target.get("storage") == "alias":
                raise _fail(name, f"alias_of {e['alias_of']!r} does not name a stored tensor")
            if target["shape"] != e["shape"] or target["dtype"] != e["dtype"]:
                raise _fail(name, "alias has another shape or dtype than its target")
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise _fail(n1, f"data {b1}..{e1} overlaps tensor {n0!r} ({b0}..{e0})")
    return header, meta, data_start


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


# the type of every optional field an entry of a quantised storage may carry
_QUANT_FIELDS: dict[str, Callable[[Any], bool]] = {
    "symmetric": lambda v: isinstance(v, bool),
    "per_channel": lambda v: isinstance(v, bool),
    "lossless": lambda v: isinstance(v, bool),
    "rotate": lambda v: isinstance(v, bool),
    "qp": lambda v: v is None or (_is_int(v) and 0 <= v <= 51),
    "preset": lambda v: v in PRESETS,
    "min_step": _is_number,
    "target_snr_db": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "target_bpw": _is_number,
}


def _check_entry(name: str, e: Any, data_size: int) -> None:
    if not isinstance(e, dict):
        raise _fail(name, "entry is not a JSON object")
    dtype, shape, storage = e.get("dtype"), e.get("shape"), e.get("storage")
    if not isinstance(dtype, str) or dtype not in RAW_DTYPES:
        raise _fail(name, f"unknown dtype {dtype!r}")
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_int(d) and 0 <= d < 2**48 for d in shape):
        raise _fail(name, f"bad shape {shape!r}")
    numel = element_count(shape)
    if numel < 0:
        raise _fail(name, f"shape {shape!r} has more than {MAX_ELEMENTS} elements")
    if not isinstance(storage, str) or storage not in ("hevc", "int8", "raw", "alias"):
        raise _fail(name, f"unknown storage {storage!r}")
    if storage == "alias":
        if not isinstance(e.get("alias_of"), str):
            raise _fail(name, f"alias_of {e.get('alias_of')!r} does not name a stored tensor")
        return
    offsets = e.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_size
    ):
        raise _fail(name, f"data_offsets {offsets!r} outside the {data_size}-byte data section")
    if not _is_int(e.get("crc32")) or not 0 <= e["crc32"] < 2**32:
        raise _fail(name, f"bad crc32 {e.get('crc32')!r}")
    size = offsets[1] - offsets[0]
    if storage == "raw":
        if size != numel * RAW_DTYPES[dtype]:
            raise _fail(name, f"{size} data bytes for {numel} elements of {dtype}")
        return
    if dtype not in ("float32", "float16", "bfloat16"):
        raise _fail(name, f"storage {storage} cannot hold {dtype}")
    if numel == 0:
        raise _fail(name, "empty tensor in quantised storage")
    bits = e.get("bits")
    if not (_is_int(bits) and bits in range(2, 9)):
        raise _fail(name, f"bad bits {bits!r}")
    for key, ok in _QUANT_FIELDS.items():
        if key in e and not ok(e[key]):
            raise _fail(name, f"bad {key} {e[key]!r}")
    if storage == "int8":
        _check_int8_entry(name, e, shape, numel, size)


def _check_int8_entry(name: str, e: dict, shape: list, numel: int, size: int) -> None:
    params = e.get("params")
    rows, _ = matrix_dims(tuple(shape))
    if e.get("coder") not in _INT8_CODERS:
        raise _fail(name, f"unknown coder {e.get('coder')!r}")
    if not isinstance(e.get("symmetric"), bool):
        raise _fail(name, "missing symmetric flag")
    per_channel = e.get("per_channel")
    if (
        not _is_int(params)
        or params not in (1, rows)
        or (per_channel is not None and params != (rows if per_channel else 1))
        or (not e["coder"].endswith("-params") and size < (4 if e["symmetric"] else 8) * params)
    ):
        raise _fail(name, f"bad quantisation parameter count {params!r}")
    _check_level_count(name, e["coder"], numel, size)


def _check_level_count(name: str, coder: str, numel: int, size: int) -> None:
    """Refuses, before decoding, more levels than `size` bytes of the coder can hold."""
    if coder.startswith("zlib") and numel > MAX_DEFLATE_RATIO * size:
        raise _fail(name, f"{numel} levels cannot come out of {size} bytes of deflate data (at most {MAX_DEFLATE_RATIO} a byte)")
    if coder.startswith("rans") and numel > max_levels_for_bytes(size):
        raise _fail(name, f"{numel} levels cannot come out of {size} bytes of rans data (at most {max_levels_for_bytes(size)})")


def _inflate(name: str, what: str, data, size: int) -> tuple[bytes, bytes]:
    """One zlib stream at the start of `data` that must inflate to exactly `size`
    bytes; returns them and the bytes after the stream. Bounded: a hostile stream
    cannot inflate past `size`."""
    try:
        d = zlib.decompressobj()
        raw = d.decompress(data, size + 1)
    except zlib.error as exc:
        raise _fail(name, f"zlib data of the {what} does not decode: {exc}") from None
    if len(raw) != size or not d.eof:
        raise _fail(name, f"zlib data of the {what} holds {len(raw)} or more bytes, {size} expected")
    return raw, d.unused_data


class WvcFile:
    """A .wvc file opened for lazy reads; use :func:`safe_open`."""

    def __init__(self, path: str, threads: Optional[int] = None):
        self.path = os.fspath(path)
        self._threads = threads
        self._view: Optional[memoryview] = None
        self._map: Any = None
        self._file: Any = open(self.path, "rb")
        try:
            size = os.fstat(self._file.fileno()).st_size
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            self._view = memoryview(self._map)
            self._header, self._meta, self._data_start = _parse_header(self._view, size)
        except BaseException:
            self.close()
            raise
        self.decoded_count = 0  # tensors decoded through this handle (observable laziness)

    # context manager and cleanup
    def __enter__(self) -> WvcFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        view = getattr(self, "_view", None)
        if view is not None:
            view.release()
            self._view = None
        m = getattr(self, "_map", None)
        if isinstance(m, mmap.mmap):
            m.close()
        self._map = None
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()
            self._file = None

    # the header
    def keys(self) -> list[str]:
        return list(self._header)

    def metadata(self) -> dict:
        return dict(self._meta)

    def entry(self, name: str) -> dict:
        """The header entry of the tensor stored under `name` (dtype, shape, storage,
        settings, offsets): for an alias, its target's entry."""
        return dict(self._stored(name)[1])

    def written_entry(self, name: str) -> dict:
        """The header entry as written: an alias's entry is ``storage="alias"`` with
        ``alias_of`` naming the stored tensor."""
        self._stored(name)
        return dict(self._header[name])

    def stored_name(self, name: str) -> str:
        """The name whose data `name` reads: itself, or an alias's target."""
        return self._stored(name)[0]

    def checksums_ok(self) -> bool:
        """Whether every stored tensor's data matches its CRC-32 (nothing is decoded
        or copied: the check reads the file's memory map)."""
        if self._view is None:
            raise ValueError("the file is closed")
        for e in self._header.values():
            if e["storage"] == "alias":
                continue
            b, end = e["data_offsets"]
            with self._view[self._data_start + b : self._data_start + end] as view:
                if zlib.crc32(view) != e["crc32"]:
                    return False
        return True

    def _stored(self, name: str) -> tuple[str, dict]:
        if self._view is None:
            raise ValueError("the file is closed")
        if name not in self._header:
            raise KeyError(f"no tensor named {name!r} in {self.path}")
        e = self._header[name]
        if e["storage"] == "alias":
            name, e = e["alias_of"], self._header[e["alias_of"]]
        return name, e

    def _data(self, name: str, e: dict) -> bytes:
        assert self._view is not None  # _stored() checked that the file is open
        b, end = e["data_offsets"]
        # A copy of the (compressed) bytes: no view into the map outlives this call,
        # so close() can always unmap.
        with self._view[self._data_start + b : self._data_start + end] as view:
            data = bytes(view)
        if zlib.crc32(data) != e["crc32"]:
            raise _fail(name, "checksum mismatch: the data is corrupted")
        return data

    def _check_blob(self, name: str, e: dict, data) -> Any:
        try:
            h = read_header(data)
        except WeightVCError as exc:
            raise _fail(name, f"bad HEVC blob: {exc}") from None
        if list(h.shape) != e["shape"] or h.dtype != e["dtype"]:
            raise _fail(name, f"blob holds {h.dtype} {list(h.shape)}, header says {e['dtype']} {e['shape']}")
        # the entry's settings, where it records them, are the blob's
        said = {
            "bits": h.bits,
            "symmetric": h.symmetric,
            "per_channel": h.per_channel,
            "lossless": h.lossless,
            "qp": h.qp,
            "preset": h.preset,
            "rotate": h.rotation is not None,
        }
        for key, value in said.items():
            if e.get(key, False if key == "rotate" else value) != value:
                raise _fail(name, f"the entry says {key}={e[key]!r}, its blob {value!r}")
        return h

    def _int8_parts(self, name: str, e: dict, data) -> QuantizedTensor:
        n = e["params"]
        symmetric = bool(e["symmetric"])
        params_size = (4 if symmetric else 8) * n
        if e["coder"].endswith("-params"):
            params, coded = _inflate(name, "quantisation parameters", data, params_size)
        else:
            params, coded = bytes(data[:params_size]), data[params_size:]
        scale = np.frombuffer(params[: 4 * n], "<f4").astype(np.float32)
        zero_point = np.zeros(n, np.int32) if symmetric else np.frombuffer(params[4 * n :], "<i4").astype(np.int32)
        # the parameters are checked before the levels are inflated (bounded by their size)
        bits = e["bits"]
        qmax = (1 << (bits - 1)) - 1
        qmin = -qmax if symmetric else -qmax - 1
        with np.errstate(divide="ignore", over="ignore"):
            good = np.isfinite(scale) & (scale > 0) & np.isfinite(np.float32(1) / scale)
        if not good.all():
            raise _fail(name, f"scale {float(scale[np.argmin(good)])!r} is not finite and positive with a finite inverse")
        if ((zero_point < qmin) | (zero_point > qmax)).any():
            raise _fail(name, f"a zero point is outside {qmin}..{qmax} for {bits} bits")
        numel = math.prod(e["shape"])
        _check_level_count(name, e["coder"], numel, len(coded))
        if e["coder"].startswith("rans"):
            try:
                levels = decode_levels(coded, *matrix_dims(tuple(e["shape"]))).reshape(e["shape"])
            except WeightVCError as exc:
                raise _fail(name, str(exc)) from None
        else:
            raw, rest = _inflate(name, "levels", coded, numel)
            if rest:
                raise _fail(name, f"{len(rest)} bytes after the levels' zlib stream")
            levels = np.frombuffer(raw, np.int8).reshape(e["shape"])
        if levels.size and (levels.min() < qmin or levels.max() > qmax):
            raise _fail(name, f"levels outside {qmin}..{qmax} for {bits} bits")
        return QuantizedTensor(levels, scale, zero_point, bits, symmetric)

    def get_tensor(self, name: str, like: str = "numpy"):
        """Decode one tensor (only that one). like="numpy" (bfloat16 comes back as
        float32) or "torch" (the stored dtype, bfloat16 included)."""
        name, e = self._stored(name)
        data = self._data(name, e)
        self.decoded_count += 1
        shape, dtype = tuple(e["shape"]), e["dtype"]
        if e["storage"] == "raw":
            if dtype == "bool" and data.translate(None, b"\x00\x01"):
                raise _fail(name, "a bool byte other than 0 or 1")
            return _raw_to_array(data, dtype, shape, like)
        code = {v: k for k, v in DTYPE_NAMES.items()}[dtype]
        if e["storage"] == "hevc":
            self._check_blob(name, e, data)
            try:
                return Decoder(self._threads).decode(data, like=like)
            except WeightVCError as exc:
                raise _fail(name, str(exc)) from exc
        qt = self._int8_parts(name, e, data)
        try:
            result, out2d, out_type = allocate_output(shape, code, like)
            rows, cols = matrix_dims(shape)
            dequantize_levels(qt.levels.reshape(rows, cols), qt.scale, qt.zero_point, 8, False, out2d, out_type, 0)
        except ValueError as exc:
            raise _fail(name, str(exc)) from None
        return result

    def get_int8(self, name: str) -> QuantizedTensor:
        """The integer levels and quantisation parameters of a quantised tensor."""
        name, e = self._stored(name)
        if e["storage"] == "raw":
            raise ValueError(f"tensor {name!r} is stored raw ({e['dtype']}); it has no integer levels")
        data = self._data(name, e)
        self.decoded_count += 1
        if e["storage"] == "hevc":
            self._check_blob(name, e, data)
            try:
                return Decoder(self._threads).decode_int8(data)
            except WeightVCError as exc:
                raise _fail(name, str(exc)) from exc
        return self._int8_parts(name, e, data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._header)

    def __len__(self) -> int:
        return len(self._header)


def _raw_to_array(data: bytes, dtype: str, shape: tuple[int, ...], like: str):
    if like == "torch":
        import torch

        tdtype = getattr(torch, dtype)
        if not data:
            return torch.empty(shape, dtype=tdtype)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(tdtype).reshape(shape)
    if like != "numpy":
        raise ValueError(f"like must be 'numpy' or 'torch', got {like!r}")
    if dtype == "bfloat16":
        bits = np.frombuffer(data, "<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    np_dtype = np.dtype(np.bool_ if dtype == "bool" else dtype).newbyteorder("<")
    return np.frombuffer(data, np_dtype).astype(np_dtype.newbyteorder("="), copy=True).reshape(shape)


def safe_open(path: str, threads: Optional[int] = None) -> WvcFile:
    """Open a .wvc file for lazy reads: ``with safe_open(p) as f: f.get_tensor(name)``."""
    return WvcFile(path, threads)


def load_file(path: str, like: str = "numpy", threads: Optional[int] = None) -> dict:
    """Decode every tensor of a .wvc file, in parallel across tensors, in file order.
    Tied tensors come back as one object under each name."""
    with safe_open(path, threads=threads) as f:
        names = f.keys()
        stored = {n: f.stored_name(n) for n in names}
        unique = list(dict.fromkeys(stored.values()))
        workers = threads or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=min(workers, 8)) as pool:
            decoded = dict(zip(unique, pool.map(lambda n: f.get_tensor(n, like=like), unique)))
        return {n: decoded[stored[n]] for n in names}
