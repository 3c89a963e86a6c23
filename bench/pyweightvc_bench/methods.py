"""The compression methods the harness compares, all on the same tensors.

Tensors fall into three groups (pyweightvc's policy decides, see policy.py):
``fc`` (2-D float weights: fully connected layers, embeddings), ``conv`` (float
weights of rank >= 3) and ``other`` (biases, norms, small and non-float tensors).
``other`` is stored raw (float32 bytes) by every method. What each method does
with the two weight groups:

=============  ===============================  ==================================
method         fc                               conv
=============  ===============================  ==================================
pyweightvc     HEVC at a QP (x265 -> libde265)  int8 levels, deflate (the default)
               (a real .wvc file on disk)       or HEVC (the "conv HEVC" ablation)
int8           8-bit levels + scales, no coding same
zstd           int8 levels, zstd level 22       same
xz             int8 levels, xz preset 9e        same
jpeg           int8 levels as one JPEG picture  int8 levels, deflate (as pyweightvc)
               per matrix (Pillow, quality q)
nncodec        NNCodec 2.1.3 (DeepCABAC) at qp  NNCodec at the same qp
requant        levels of the coarsest step that int8 levels, zstd -19
               reaches a weight SNR, zstd -19
gguf           the gguf package's quantiser of  Q8_0 (F16 where rows are not a
               one type (Q4_0 ... Q8_0, MXFP4)  multiple of 32 long)
=============  ===============================  ==================================

int8, zstd, xz and jpeg quantise exactly like pyweightvc's default (symmetric,
one scale per output channel), so they code the very same levels. Sizes of
pyweightvc are whole .wvc files (header included); the peers' are the sum of
their coded payloads plus 4 bytes per scale (no container).

requant is the simplest strong alternative to a codec (issue 16): each fc
tensor requantised with the coarsest step that still reaches the target weight
SNR (pyweightvc.targets.step_for_snr, per channel: that step as every channel's
floor), its levels zstd -19; swept over the SNR like pyweightvc's QP. Its conv
kernels are treated as pyweightvc's default treats them (8-bit levels per
channel), so the two differ in the fc coder alone. gguf is what llama.cpp users
ship: blocks of 32 weights along each row with their own scale (true bits per
weight, block scales included: 4.25 to 8.5), no entropy coding; tensors whose
rows cannot be cut into blocks of 32 stay float16, as llama.cpp leaves them.
"""

from __future__ import annotations

import io
import lzma
import os
import statistics
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import pyweightvc as wvc
from pyweightvc import rate
from pyweightvc.policy import DEFAULT_MIN_ELEMENTS, tensor_kind

GROUPS = ("fc", "conv", "other")
_KIND_GROUP = {"linear": "fc", "conv": "conv"}


def tensor_groups(weights: dict[str, np.ndarray], min_elements: int = DEFAULT_MIN_ELEMENTS) -> dict[str, str]:
    """name -> "fc" | "conv" | "other", by pyweightvc's tensor kinds."""
    return {k: _KIND_GROUP.get(tensor_kind(str(v.dtype), tuple(v.shape), min_elements), "other") for k, v in weights.items()}


@dataclass
class Setting:
    method: str  # family: pyweightvc, int8, zstd, xz, jpeg, nncodec
    variant: str  # e.g. "default", "per-tensor", "asymmetric", "conv HEVC", "lossless"
    label: str  # e.g. "QP 24", "quality 50", "qp -32"
    knob: Optional[float] = None  # the swept number (QP, quality, NNCodec qp) for plots
    options: dict = field(default_factory=dict)


@dataclass
class Outcome:
    weights: dict[str, np.ndarray]  # every tensor, reconstructed
    group_bytes: dict[str, int]  # stored bytes per group, plus "overhead" (container header)
    encode_s: float
    decode_s: float
    chosen: str = ""  # what a search chose (the accuracy search: weight-SNR target, min_step)

    @property
    def total_bytes(self) -> int:
        return sum(self.group_bytes.values())


class Unavailable(Exception):
    """A peer that cannot run here; the message says why and lands in the report."""


def median_time(fn: Callable, repeats: int):
    """(median seconds, last result) over `repeats` calls."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def _raw_other(weights, groups) -> int:
    return sum(weights[k].nbytes for k, g in groups.items() if g == "other")


# ---------------------------------------------------------------------------
# pyweightvc itself, through real .wvc files


def pyweightvc_policy(setting: Setting) -> wvc.Policy:
    o = setting.options
    if o.get("data_free"):  # what `pyweightvc compress` does without options
        return wvc.Policy()
    if o.get("target_snr_db") is not None:
        return wvc.Policy(target_snr_db=o["target_snr_db"], per_channel=o.get("per_channel", True), rotate=o.get("rotate", False))
    lossless = o.get("lossless", False)
    linear: dict = {}
    conv: dict = {}
    if not o.get("symmetric", True):
        linear["symmetric"] = conv["symmetric"] = False
    if o.get("bits"):  # narrower levels for the fc group (conv kernels keep 8 bits)
        linear["bits"] = o["bits"]
    if o.get("conv_hevc"):
        conv.update(storage="hevc", lossless=lossless, **({} if lossless else {"qp": o["qp"]}))
    if o.get("conv_min_step"):  # one absolute step for the conv kernels' narrow channels
        conv["min_step"] = o["conv_min_step"]
    overrides = {key: s for key, s in (("kind:linear", linear), ("kind:conv", conv)) if s}
    return wvc.Policy(
        o.get("qp", wvc.DEFAULT_QP),
        lossless=lossless,
        per_channel=o.get("per_channel", True),
        preset=o.get("preset", wvc.DEFAULT_PRESET),
        rotate=o.get("rotate", False),
        overrides=overrides or None,
    )


def run_pyweightvc(setting: Setting, weights, groups, workdir: str, repeats: int, context: dict) -> Outcome:
    """Options beyond the policy's: "size_of_qp" (fit the file into the size the
    default variant took at that QP: rate.save_file_to_size), "accuracy" (the
    smallest file within the subject's matched-fidelity bar:
    rate.save_file_for_accuracy with context["score"] and context["max_drop"]; with
    "search_min_step" ("int8" or "hevc"), the min_step of the tensors of that storage
    searched after the QPs; with "allocate": "measured", the QPs spread by each large
    tensor's measured effect on the score).
    Settings that search (targets, sizes, accuracy) are timed once: their encode
    time is the search's. Probe curves are shared between them (context["curves"])."""
    policy = pyweightvc_policy(setting)
    o = setting.options
    path = os.path.join(workdir, "model.wvc")
    chosen: list = []
    if "size_of_qp" in o:
        target = context["default_bytes"][o["size_of_qp"]]
        write, repeats = (
            (lambda: rate.save_file_to_size(weights, path, target, policy=policy, curve_cache=context.setdefault("curves", {}))),
            1,
        )
    elif o.get("accuracy"):

        def write():
            found = rate.save_file_for_accuracy(
                weights,
                path,
                context["score"],
                context["max_drop"],
                policy=policy,
                curve_cache=context.setdefault("curves", {}),
                search_min_step=o.get("search_min_step"),
                allocate=o.get("allocate", "shared"),
            )
            steps = sorted(
                {e["min_step"] for e in found.header.values() if isinstance(e, dict) and e.get("lossless") and e.get("min_step")}
            )
            chosen.append(
                f"{found.target_snr_db:.2f} dB"
                + (f", min_step {found.min_step:.3g}" if found.min_step else "")
                + (
                    ", steps " + "/".join(f"{v:.3g}" for v in steps)
                    if steps
                    else ", QPs " + "/".join(map(str, sorted(set(found.qps.values()))))
                    if found.sensitivity
                    else ""
                )
            )
            return found.header

        repeats = 1
    elif o.get("target_snr_db") is not None:
        write, repeats = (lambda: wvc.save_file(weights, path, policy=policy)), 1
    else:
        write = lambda: wvc.save_file(weights, path, policy=policy)  # noqa: E731
    encode_s, header = median_time(write, repeats)
    decode_s, back = median_time(lambda: wvc.load_file(path), repeats)
    sizes = dict.fromkeys(GROUPS, 0)
    for name, e in header.items():
        if "data_offsets" in e:
            sizes[groups[name]] += e["data_offsets"][1] - e["data_offsets"][0]
    sizes["overhead"] = os.path.getsize(path) - sum(sizes.values())
    if setting.variant == "default" and "qp" in o:
        context.setdefault("default_bytes", {})[o["qp"]] = os.path.getsize(path)
    os.remove(path)
    return Outcome(back, sizes, encode_s, decode_s, chosen[-1] if chosen else "")


# ---------------------------------------------------------------------------
# int8 levels with general-purpose coders, and JPEG


def _quantised(weights, groups):
    """The levels pyweightvc's default policy would code (symmetric, per channel)."""
    out = {}
    for k, g in groups.items():
        if g != "other":
            levels, scale, _ = wvc.quantize(weights[k], per_channel=True)
            out[k] = (levels, scale)
    return out


def _jpeg_encode(levels: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    pixels = levels.reshape(levels.shape[0], -1).view(np.uint8) ^ 0x80  # offset binary, as in the HEVC path
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), mode="L").save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _jpeg_decode(data: bytes, shape) -> np.ndarray:
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.uint8)
    return (pixels ^ 0x80).view(np.int8).reshape(shape)


def _coders(setting: Setting):
    """(encode bytes->bytes or levels->bytes, decode) per group for a level coder."""
    name, o = setting.method, setting.options
    deflate = (lambda lv: zlib.compress(lv.tobytes(), 9), lambda d, shape: np.frombuffer(zlib.decompress(d), np.int8).reshape(shape))
    if name == "int8":
        ident = (lambda lv: lv.tobytes(), lambda d, shape: np.frombuffer(d, np.int8).reshape(shape))
        return {"fc": ident, "conv": ident}
    if name == "zstd":
        import zstandard

        comp, decomp = zstandard.ZstdCompressor(level=22), zstandard.ZstdDecompressor()
        z = (lambda lv: comp.compress(lv.tobytes()), lambda d, shape: np.frombuffer(decomp.decompress(d), np.int8).reshape(shape))
        return {"fc": z, "conv": z}
    if name == "xz":
        x = (
            lambda lv: lzma.compress(lv.tobytes(), preset=9 | lzma.PRESET_EXTREME),
            lambda d, shape: np.frombuffer(lzma.decompress(d), np.int8).reshape(shape),
        )
        return {"fc": x, "conv": x}
    if name == "jpeg":
        return {"fc": (lambda lv: _jpeg_encode(lv, o["quality"]), _jpeg_decode), "conv": deflate}
    raise ValueError(f"no level coder named {name!r}")


def _timed(encode: Callable, decode: Callable, weights, groups, repeats: int, stored_bytes: Callable) -> Outcome:
    """A peer's outcome: encode() -> {name: coded item}, decode(coded) -> every tensor,
    each timed (median of `repeats`); stored_bytes(item) counts a coded item."""
    encode_s, coded = median_time(encode, repeats)
    decode_s, back = median_time(lambda: decode(coded), repeats)
    sizes = dict.fromkeys(GROUPS, 0)
    sizes["other"] = _raw_other(weights, groups)
    for k, item in coded.items():
        sizes[groups[k]] += stored_bytes(item)
    sizes["overhead"] = 0
    return Outcome(back, sizes, encode_s, decode_s)


def run_level_coder(setting: Setting, weights, groups, workdir: str, repeats: int, context: dict) -> Outcome:
    coders = _coders(setting)

    def encode():
        q = _quantised(weights, groups)
        return {k: (coders[groups[k]][0](lv), scale) for k, (lv, scale) in q.items()}

    def decode(coded):
        out = dict(weights)
        for k, (data, scale) in coded.items():
            levels = coders[groups[k]][1](data, weights[k].shape)
            out[k] = wvc.dequantize(levels, scale)
        return out

    return _timed(encode, decode, weights, groups, repeats, lambda item: len(item[0]) + item[1].nbytes)


def _zstd19():
    import zstandard

    return zstandard.ZstdCompressor(level=19), zstandard.ZstdDecompressor()


def run_requantised(setting: Setting, weights, groups, workdir: str, repeats: int, context: dict) -> Outcome:
    """fc tensors at the coarsest per-channel step floor reaching options["target_snr_db"]
    (8-bit max-abs levels where even those miss it), conv kernels as 8-bit levels; zstd -19."""
    from pyweightvc.targets import step_for_snr

    comp, decomp = _zstd19()
    target = setting.options["target_snr_db"]

    def encode():
        coded = {}
        for k, g in groups.items():
            if g != "other":
                step = step_for_snr(weights[k], target, per_channel=True) if g == "fc" else 0.0
                levels, scale, _ = wvc.quantize(weights[k], per_channel=True, min_step=step)
                coded[k] = (comp.compress(levels.tobytes()), scale)
        return coded

    def decode(coded):
        out = dict(weights)
        for k, (data, scale) in coded.items():
            out[k] = wvc.dequantize(np.frombuffer(decomp.decompress(data), np.int8).reshape(weights[k].shape), scale)
        return out

    return _timed(encode, decode, weights, groups, repeats, lambda item: len(item[0]) + item[1].nbytes)


GGUF_BLOCK = 32  # every type swept here (Q4_0 ... Q8_0, MXFP4) cuts rows into blocks of 32


def _gguf_type(name: str):
    try:
        from gguf import GGMLQuantizationType
    except ImportError as exc:
        raise Unavailable("the gguf package is not installed (pip install gguf)") from exc
    try:
        return GGMLQuantizationType[name]
    except KeyError:
        raise Unavailable(f"this gguf package has no type {name} (gguf >= 0.19 has it)") from None


def run_gguf(setting: Setting, weights, groups, workdir: str, repeats: int, context: dict) -> Outcome:
    """fc tensors in the setting's GGUF type, conv kernels in Q8_0; a tensor whose rows
    (its last axes flattened after the first) are not a multiple of 32 long is float16."""
    types = {"fc": _gguf_type(setting.options["type"]), "conv": _gguf_type("Q8_0")}
    from gguf import quants

    def rows(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=np.float32)

    def encode():
        coded = {}
        for k, g in groups.items():
            if g != "other":
                m = rows(weights[k])
                coded[k] = (types[g], quants.quantize(m, types[g])) if m.shape[1] % GGUF_BLOCK == 0 else (None, m.astype(np.float16))
        return coded

    def decode(coded):
        out = dict(weights)
        for k, (qtype, data) in coded.items():
            flat = data.astype(np.float32) if qtype is None else quants.dequantize(data, qtype)
            out[k] = flat.reshape(weights[k].shape).astype(weights[k].dtype)
        return out

    return _timed(encode, decode, weights, groups, repeats, lambda item: item[1].nbytes)


RUNNERS = {
    "pyweightvc": run_pyweightvc,
    "int8": run_level_coder,
    "zstd": run_level_coder,
    "xz": run_level_coder,
    "jpeg": run_level_coder,
    "requant": run_requantised,
    "gguf": run_gguf,
}


def run_settings(
    settings: list[Setting],
    weights,
    groups,
    workdir: str,
    repeats: int,
    context: dict,
    nncodec_python: Optional[str] = None,
    nncodec_error: Optional[str] = None,
) -> Iterator[tuple[Setting, Optional[Outcome], Optional[str]]]:
    """(setting, outcome, None) or (setting, None, reason it could not run), in
    order (a "size_of_qp" setting needs its default QP run before it).
    context: "score" and "max_drop" for the accuracy search; filled with
    "default_bytes" per QP as the default variant runs."""
    from . import nncodec_peer

    nnc = [s for s in settings if s.method == "nncodec"]
    for s in settings:
        if s.method != "nncodec":
            try:
                outcome = RUNNERS[s.method](s, weights, groups, workdir, repeats, context)
            except rate.Unreachable as exc:  # a search that cannot keep the bar with this setting
                yield s, None, f"unreachable: {exc}"
                continue
            except Unavailable as exc:  # a peer's package missing here
                yield s, None, str(exc)
                continue
            yield s, outcome, None
    if not nnc:
        return
    if nncodec_python is None:
        for s in nnc:
            yield s, None, nncodec_error or "NNCodec environment not available"
        return
    try:
        results = nncodec_peer.run(nncodec_python, weights, groups, [int(s.knob) for s in nnc], workdir, repeats)
    except Unavailable as exc:
        for s in nnc:
            yield s, None, str(exc)
        return
    for s in nnc:
        yield s, results[int(s.knob)], None
