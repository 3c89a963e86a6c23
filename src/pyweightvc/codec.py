"""One tensor: quantisation parameters, the self-describing blob header, and the
encode/decode orchestration around the native core. The byte layout is
specified in docs/format.md."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import numpy as np

from ._arrays import (
    DTYPE_NAMES,
    F32,
    I8,
    MAX_ELEMENTS,
    MAX_RANK,
    OUT_F32,
    OUT_LEVELS,
    allocate_output,
    as_matrix,
    element_count,
    matrix_dims,
)
from ._core import (
    MAX_FRAME_SIDE,
    MIN_FRAME_SIDE,
    compute_params,
    dequantize_levels,
    quantize_levels,
    rotate_forward,
    rotate_inverse,
    rotation_block,
    versions,
)
from ._core import Decoder as NativeDecoder
from ._core import Encoder as NativeEncoder
from .errors import EncoderError, FormatError
from .settings import DEFAULT_MAX_FRAME_SIDE, DEFAULT_PRESET, DEFAULT_QP, PRESETS, check, native_threads

MAGIC = b"WVCT"
# Version 2 adds the rotation section and dense samples; blobs using neither are
# written as version 1, byte for byte what earlier releases wrote.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_EXTRA_OPTIONS_BYTES = 4096
# Limits a reader enforces before allocating anything (docs/format.md, *Limits*).
MAX_TILES_PER_SIDE = 65535
MIN_PICTURE_BYTES = 16  # a slice and its hash SEI cannot take fewer (x265 writes about 100)
# x265 never codes more than about 4,700 samples a byte (a 64 x 64 block of equal
# samples costs it 7 bits): more elements than this per payload byte are refused
MAX_ELEMENTS_PER_PAYLOAD_BYTE = 16384

_FLAG_SYMMETRIC = 1
_FLAG_PER_CHANNEL = 2
_FLAG_LOSSLESS = 4
_FLAG_DENSE = 8  # version 2: samples 128 + q (lossless, bits < 8), not spread over the 8-bit range
_FLAGS_V1 = _FLAG_SYMMETRIC | _FLAG_PER_CHANNEL | _FLAG_LOSSLESS
_QP_LOSSLESS = 255

# magic, version, dtype, bits, flags, qp, preset, rank, tile_h, tile_w, frame_h, frame_w
_FIXED = struct.Struct("<4sHBBBBBBIIII")
_TRAILER = struct.Struct("<QII")  # payload length, payload crc32, header crc32
_ROTATION = struct.Struct("<BIQ")  # version 2: kind (0: none, 1: Hadamard), block, seed
_ROTATION_NONE, _ROTATION_HADAMARD = 0, 1


class Rotation(NamedTuple):
    """A seeded orthogonal rotation of the matrix rows: values = decoded · H · D
    (block-diagonal normalised Hadamard H of `block` columns, random signs D from
    `seed`); see docs/format.md."""

    block: int
    seed: int

    def undo(self, matrix: np.ndarray, threads: Optional[int] = None) -> np.ndarray:
        """Rotate a float32 (rows, cols) matrix back, in place; returns it."""
        rotate_inverse(matrix, self.block, self.seed, native_threads(threads))
        return matrix

    def apply(self, matrix: np.ndarray, threads: Optional[int] = None) -> np.ndarray:
        """The forward rotation of a (rows, cols) float matrix, as a new float32 matrix:
        e.g. an input batch x turned into x·D·H so that rotated weights apply to it
        (W x = (W D H)(x D H)ᵀ with the rows of x as vectors)."""
        m = as_matrix(np.asarray(matrix))
        return rotate_forward(m.data, m.dtype_code, self.block, self.seed, native_threads(threads))


class QuantizedTensor(NamedTuple):
    """Integer levels and the parameters that turn them back into values:
    ``value = scale * (levels - zero_point)``, scale and zero point per tensor
    (shape (1,)) or per output channel along axis 0 (shape (C,))."""

    levels: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    bits: int
    symmetric: bool
    rotation: Optional[Rotation] = None  # levels are of the rotated matrix


@dataclass(frozen=True)
class BlobHeader:
    """Everything the header of an encoded tensor says."""

    dtype_code: int
    shape: tuple[int, ...]
    bits: int
    symmetric: bool
    per_channel: bool
    lossless: bool
    dense: bool
    qp: Optional[int]
    preset: str
    tile: tuple[int, int]
    frame: tuple[int, int]
    scale: np.ndarray
    zero_point: np.ndarray
    x265_options: str
    rotation: Optional[Rotation]
    payload_offset: int
    payload_size: int
    payload_crc32: int

    @property
    def dtype(self) -> str:
        return DTYPE_NAMES[self.dtype_code]

    @property
    def layout(self) -> tuple[int, int, int, int, int, int]:
        rows, cols = matrix_dims(self.shape)
        return (rows, cols, *self.tile, *self.frame)


def _check_quant_args(bits: int, symmetric: bool, per_channel: bool, min_step: float = 0.0) -> None:
    for name, value in (("bits", bits), ("symmetric", symmetric), ("per_channel", per_channel), ("min_step", min_step)):
        check(name, value)


def _pack_header(
    *,
    dtype_code: int,
    shape: tuple[int, ...],
    bits: int,
    symmetric: bool,
    per_channel: bool,
    lossless: bool,
    dense: bool,
    qp: int,
    preset: str,
    geometry: tuple[int, int, int, int],
    scale: np.ndarray,
    zero_point: np.ndarray,
    x265_options: str,
    rotation: Optional[Rotation],
    payload: bytes,
) -> bytes:
    flags = (
        (_FLAG_SYMMETRIC if symmetric else 0)
        | (_FLAG_PER_CHANNEL if per_channel else 0)
        | (_FLAG_LOSSLESS if lossless else 0)
        | (_FLAG_DENSE if dense else 0)
    )
    options = x265_options.encode("utf-8")
    version = 1 if rotation is None and not dense else 2
    parts = [
        _FIXED.pack(
            MAGIC,
            version,
            dtype_code,
            bits,
            flags,
            _QP_LOSSLESS if lossless else qp,
            PRESETS.index(preset),
            len(shape),
            *geometry,
        ),
        struct.pack(f"<{len(shape)}Q", *shape),
        struct.pack("<I", scale.size),
        scale.astype("<f4").tobytes(),
        b"" if symmetric else zero_point.astype("<i4").tobytes(),  # symmetric: all zero
        struct.pack("<H", len(options)),
        options,
        b""
        if version == 1
        else _ROTATION.pack(_ROTATION_NONE, 0, 0)
        if rotation is None
        else _ROTATION.pack(_ROTATION_HADAMARD, rotation.block, rotation.seed),
    ]
    head = b"".join(parts)
    head += struct.pack("<QI", len(payload), zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head))


def _check_quantiser(
    dtype_code: int, bits: int, flags: int, qp: int, rows: int, scale: np.ndarray, zero_point: np.ndarray, rotation: Optional[Rotation]
) -> None:
    """The quantiser fields of a header, against the rules of docs/format.md."""
    symmetric, per_channel = bool(flags & _FLAG_SYMMETRIC), bool(flags & _FLAG_PER_CHANNEL)
    lossless, dense = bool(flags & _FLAG_LOSSLESS), bool(flags & _FLAG_DENSE)
    if lossless != (qp == _QP_LOSSLESS):
        raise FormatError(f"corrupted header: qp {qp} with the lossless flag {'set' if lossless else 'clear'}")
    if dense and not (lossless and bits < 8):
        raise FormatError(f"corrupted header: dense samples need lossless coding and bits < 8 (bits {bits})")
    if scale.size != (rows if per_channel else 1):
        raise FormatError(
            f"corrupted header: {scale.size} quantisation parameters for "
            f"{'per-channel' if per_channel else 'per-tensor'} quantisation of {rows} rows"
        )
    with np.errstate(divide="ignore", over="ignore"):
        good = np.isfinite(scale) & (scale > 0) & np.isfinite(np.float32(1) / scale)
    if not good.all():
        i = int(np.argmin(good))
        raise FormatError(f"corrupted header: scale[{i}] = {float(scale[i])!r} is not finite and positive with a finite inverse")
    qmax = (1 << (bits - 1)) - 1
    qmin = -qmax if symmetric else -qmax - 1
    bad = (zero_point < qmin) | (zero_point > qmax)
    if bad.any():
        i = int(np.argmax(bad))
        raise FormatError(f"corrupted header: zero_point[{i}] = {zero_point[i]} is outside {qmin}..{qmax} for {bits} bits")
    if dtype_code == I8 and (bits != 8 or symmetric or per_channel or dense or rotation is not None or scale[0] != 1 or zero_point[0] != 0):
        raise FormatError(
            "corrupted header: int8 levels must be stored as they are (8 bits, asymmetric, per tensor, scale 1, zero point 0, not rotated)"
        )


def _check_layout(rows: int, cols: int, geometry: list, payload_size: int) -> None:
    """The frame layout: the tiles and frames a writer makes for this matrix (docs/format.md,
    *Layout*), and a payload large enough for its pictures and elements."""
    tile_h, tile_w, frame_h, frame_w = geometry
    grid = []
    for n, tile, frame, side in ((rows, tile_h, frame_h, "rows"), (cols, tile_w, frame_w, "columns")):
        count = -(-n // tile) if tile else 0
        if (
            not 1 <= tile <= min(n, MAX_FRAME_SIDE)
            or tile != -(-n // count)
            or frame != max(tile, MIN_FRAME_SIDE)
            or count > MAX_TILES_PER_SIDE
        ):
            raise FormatError(f"corrupted header: tiles of {tile} and frames of {frame} do not cut {n} {side} as a writer does")
        grid.append(count)
    pictures = grid[0] * grid[1]
    if payload_size < MIN_PICTURE_BYTES * pictures:
        raise FormatError(f"corrupted header: {payload_size} payload bytes cannot hold {pictures} pictures")
    if rows * cols > MAX_ELEMENTS_PER_PAYLOAD_BYTE * payload_size:
        raise FormatError(
            f"corrupted header: {rows * cols} elements in {payload_size} payload bytes (at most {MAX_ELEMENTS_PER_PAYLOAD_BYTE} a byte)"
        )


def read_header(blob: Any) -> BlobHeader:
    """Parse and check the header of an encoded tensor (without decoding)."""
    view = memoryview(blob).cast("B")
    n = len(view)

    def need(offset: int, size: int, what: str) -> None:
        if offset + size > n:
            raise FormatError(f"truncated blob: {what} needs bytes {offset}..{offset + size}, blob has {n}")

    need(0, _FIXED.size, "fixed header")
    magic, version, dtype_code, bits, flags, qp, preset_idx, rank, *geometry = _FIXED.unpack_from(view, 0)
    if magic != MAGIC:
        raise FormatError(f"not a pyweightvc tensor blob (magic {bytes(magic)!r}, expected {MAGIC!r})")
    if version not in READABLE_VERSIONS:
        raise FormatError(f"unsupported format version {version} (this build reads {', '.join(map(str, READABLE_VERSIONS))})")
    pos = _FIXED.size
    if rank > MAX_RANK:
        raise FormatError(f"corrupted header: rank {rank} exceeds {MAX_RANK}")
    need(pos, 8 * rank + 4, "shape")
    shape = struct.unpack_from(f"<{rank}Q", view, pos)
    pos += 8 * rank
    (n_params,) = struct.unpack_from("<I", view, pos)
    pos += 4
    if n_params not in (1, matrix_dims(shape)[0]):
        raise FormatError(f"corrupted header: {n_params} quantisation parameters for {matrix_dims(shape)[0]} rows")
    param_bytes = 4 * n_params if flags & _FLAG_SYMMETRIC else 8 * n_params
    need(pos, param_bytes + 2, "quantisation parameters")
    scale = np.frombuffer(view, dtype="<f4", count=n_params, offset=pos).astype(np.float32)
    if flags & _FLAG_SYMMETRIC:
        zero_point = np.zeros(n_params, np.int32)
    else:
        zero_point = np.frombuffer(view, dtype="<i4", count=n_params, offset=pos + 4 * n_params).astype(np.int32)
    pos += param_bytes
    (n_options,) = struct.unpack_from("<H", view, pos)
    pos += 2
    if n_options > MAX_EXTRA_OPTIONS_BYTES:
        raise FormatError("corrupted header: x265 option string too long")
    rotation_size = _ROTATION.size if version >= 2 else 0
    need(pos, n_options + rotation_size + _TRAILER.size, "header trailer")
    options = bytes(view[pos : pos + n_options])
    pos += n_options
    rotation_fields = None
    if rotation_size:
        rotation_fields = _ROTATION.unpack_from(view, pos)
        pos += rotation_size
    payload_size, payload_crc, header_crc = _TRAILER.unpack_from(view, pos)
    if zlib.crc32(view[: pos + 12]) != header_crc:
        raise FormatError("corrupted header: header checksum mismatch")
    pos += _TRAILER.size
    # Fields below are covered by the header checksum; these checks catch blobs
    # written by a faulty or hostile producer, before anything is allocated.
    if dtype_code not in DTYPE_NAMES:
        raise FormatError(f"corrupted header: unknown dtype code {dtype_code}")
    known_flags = _FLAGS_V1 if version == 1 else _FLAGS_V1 | _FLAG_DENSE
    if flags & ~known_flags:
        raise FormatError(f"corrupted header: unknown flags {flags:#x} for version {version}")
    if not 2 <= bits <= 8 or preset_idx >= len(PRESETS) or not (qp <= 51 or qp == _QP_LOSSLESS):
        raise FormatError("corrupted header: bits, preset or qp out of range")
    if 0 in shape:
        raise FormatError("corrupted header: empty shape")
    if element_count(shape) < 0:
        raise FormatError(f"corrupted header: shape {list(shape)} has more than {MAX_ELEMENTS} elements")
    rows, cols = matrix_dims(shape)
    rotation: Optional[Rotation] = None
    if rotation_fields is not None:
        kind, block, seed = rotation_fields
        if kind == _ROTATION_NONE and block == 0 and seed == 0:
            rotation = None
        elif kind != _ROTATION_HADAMARD or block < 2 or block & (block - 1) or cols % block:
            raise FormatError(f"corrupted header: rotation kind {kind} with block {block} for {cols} columns")
        else:
            rotation = Rotation(block, seed)
    if n - pos != payload_size:
        raise FormatError(f"truncated or padded blob: header announces {payload_size} payload bytes, {n - pos} present")
    _check_quantiser(dtype_code, bits, flags, qp, rows, scale, zero_point, rotation)
    _check_layout(rows, cols, geometry, payload_size)
    try:
        options_text = options.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError("corrupted header: x265 options are not UTF-8") from exc
    return BlobHeader(
        dtype_code=dtype_code,
        shape=tuple(int(d) for d in shape),
        bits=bits,
        symmetric=bool(flags & _FLAG_SYMMETRIC),
        per_channel=bool(flags & _FLAG_PER_CHANNEL),
        lossless=bool(flags & _FLAG_LOSSLESS),
        dense=bool(flags & _FLAG_DENSE),
        qp=None if qp == _QP_LOSSLESS else qp,
        preset=PRESETS[preset_idx],
        tile=(geometry[0], geometry[1]),
        frame=(geometry[2], geometry[3]),
        scale=scale,
        zero_point=zero_point,
        x265_options=options_text,
        rotation=rotation,
        payload_offset=pos,
        payload_size=payload_size,
        payload_crc32=payload_crc,
    )


class Encoder:
    """A reusable encoder: settings are checked once (against x265 too) and
    shared by every tensor it encodes. Thread-safe.

    qp: 0..51 (lower = larger and closer); lossless: code the integer levels exactly.
    bits: 2..8 quantiser width; symmetric: zero point 0 (default, the paper's choice);
    per_channel: one scale per output channel (axis 0).
    min_step: the smallest scale (quantisation step) any channel gets; finer
    max-abs scales are raised to it, so narrow channels share one absolute step
    (0: plain max-abs scales). Measured on conv kernels in docs/rate.md.
    preset: an x265 preset name; threads: None for all cores.
    max_frame_side: tiles of at most this many samples per side are coded as frames.
    x265_params: extra x265 options (name -> value) for experiments; recorded in the blob.
    rotate: rotate the rows (seeded Hadamard, :class:`Rotation`) before quantising: it
    spreads outlier columns over their neighbours and saves bits on such matrices
    (docs/rate.md has the measurements); needs an even number of columns. The
    decoded values are rotated back; the integer levels stay rotated.
    rotation_seed: the seed of the rotation's random signs (stored in the blob).
    """

    def __init__(
        self,
        qp: int = DEFAULT_QP,
        *,
        lossless: bool = False,
        bits: int = 8,
        symmetric: bool = True,
        per_channel: bool = False,
        preset: str = DEFAULT_PRESET,
        threads: Optional[int] = None,
        max_frame_side: int = DEFAULT_MAX_FRAME_SIDE,
        x265_params: Optional[Mapping[str, Any]] = None,
        rotate: bool = False,
        rotation_seed: int = 0,
        min_step: float = 0.0,
    ):
        self.qp = check("qp", qp)
        self.lossless = check("lossless", lossless)
        self.bits = check("bits", bits)
        self.symmetric = check("symmetric", symmetric)
        self.per_channel = check("per_channel", per_channel)
        self.min_step = check("min_step", min_step)
        self.preset = check("preset", preset)
        self.threads = native_threads(threads)
        self.max_frame_side = check("max_frame_side", max_frame_side)
        self.rotate = check("rotate", rotate)
        if self.rotate == "auto":
            raise TypeError('rotate="auto" is a Policy setting (decided per tensor); an Encoder takes True or False')
        self.rotation_seed = check("rotation_seed", rotation_seed)
        extra = [(str(k), str(v)) for k, v in (x265_params or {}).items()]
        for k, v in extra:
            if "," in k + v or "=" in k:
                raise ValueError(f"x265 option {k}={v} must not contain ',' (or '=' in its name)")
        self.x265_options = ",".join(f"{k}={v}" for k, v in extra)
        if len(self.x265_options.encode()) > MAX_EXTRA_OPTIONS_BYTES:
            raise ValueError(f"x265_params take more than {MAX_EXTRA_OPTIONS_BYTES} bytes")
        self._native = NativeEncoder(self.qp, self.lossless, preset, self.threads, extra)

    def encode(self, x: Any) -> bytes:
        """Quantise and encode one tensor (numpy array or torch tensor); returns the blob."""
        m = as_matrix(x)
        if m.dtype_code == I8 and (self.bits != 8 or self.per_channel or self.min_step):
            raise ValueError("int8 input is taken as 8-bit levels as is: use bits=8, per_channel=False, min_step=0")
        rotation, data, data_code = None, m.data, m.dtype_code
        if self.rotate:
            if m.dtype_code == I8:
                raise ValueError("int8 input is taken as levels as is and cannot be rotated: use rotate=False")
            block = rotation_block(m.data.shape[1])
            if block < 2:
                raise ValueError(
                    f"rotate needs an even number of columns; this tensor's matrix view "
                    f"{m.data.shape[0]} x {m.data.shape[1]} has an odd number"
                )
            rotation = Rotation(block, self.rotation_seed)
            data, data_code = rotate_forward(m.data, m.dtype_code, block, rotation.seed, self.threads), F32
        scale, zero_point, symmetric = compute_params(
            data, data_code, self.bits, self.symmetric, self.per_channel, self.threads, self.min_step
        )
        # lossless coding keeps narrow levels packed (no codec error to absorb): 2-3x fewer bits
        dense = self.lossless and self.bits < 8
        payload, geometry = self._native.encode(data, data_code, scale, zero_point, self.bits, symmetric, self.max_frame_side, dense)
        header = _pack_header(
            dtype_code=m.dtype_code,
            shape=m.shape,
            bits=self.bits,
            symmetric=symmetric,
            per_channel=self.per_channel and m.dtype_code != I8,
            lossless=self.lossless,
            dense=dense,
            qp=self.qp,
            preset=self.preset,
            geometry=geometry,
            scale=scale,
            zero_point=zero_point,
            x265_options=self.x265_options,
            rotation=rotation,
            payload=payload,
        )
        try:  # never write a blob that readers refuse (e.g. past a limit through exotic x265_params)
            read_header(header + payload)
        except FormatError as exc:
            raise EncoderError(f"the encoded blob breaks the format's limits: {exc}") from None
        return header + payload

    def __repr__(self) -> str:
        mode = "lossless" if self.lossless else f"qp={self.qp}"
        return (
            f"Encoder({mode}, bits={self.bits}, symmetric={self.symmetric}, "
            f"per_channel={self.per_channel}, min_step={self.min_step:g}, preset={self.preset!r}, "
            f"rotate={self.rotate})"
        )


class Decoder:
    """A reusable decoder: keeps one libde265 context and its worker threads.
    Calls on one Decoder are serialised; use one Decoder per thread for parallelism."""

    def __init__(self, threads: Optional[int] = None):
        self._native = NativeDecoder(native_threads(threads))

    @property
    def threads(self) -> int:
        return self._native.threads

    @staticmethod
    def _header(blob: Any) -> BlobHeader:
        """The checked header, and the payload checked against its CRC, before any allocation."""
        header = read_header(blob)
        if zlib.crc32(memoryview(blob).cast("B")[header.payload_offset :]) != header.payload_crc32:
            raise FormatError("corrupted blob: payload checksum mismatch")
        return header

    def _run(self, blob: Any, header: BlobHeader, out2d: np.ndarray, out_type: int) -> None:
        payload = memoryview(blob).cast("B")[header.payload_offset :]
        try:
            self._native.decode(
                payload,
                header.layout,
                header.scale,
                header.zero_point,
                header.bits,
                header.symmetric,
                out2d,
                out_type,
                header.dense,
            )
        except ValueError as exc:  # read_header checks what the core checks: not reached by any header
            raise FormatError(f"corrupted header: the decoder refuses its fields ({exc})") from None

    def decode(self, blob: Any, like: str = "numpy"):
        """Decode a blob to values with the original shape.

        like="numpy": float32 / float16 as encoded, bfloat16 as float32, int8 as int8.
        like="torch": a CPU torch.Tensor with the original dtype (bfloat16 included).
        """
        header = self._header(blob)
        result, out2d, out_type = allocate_output(header.shape, header.dtype_code, like)
        if header.rotation is None:
            self._run(blob, header, out2d, out_type)
            return result
        # rotated: float32 values first, rotated back, then the output dtype
        values = out2d if out_type == OUT_F32 else np.empty(out2d.shape, np.float32)
        self._run(blob, header, values, OUT_F32)
        header.rotation.undo(values, self.threads)
        if values is not out2d:
            if like == "torch":
                import torch

                result.copy_(torch.from_numpy(values).reshape(result.shape))
            else:
                out2d[...] = values
        return result

    def decode_int8(self, blob: Any) -> QuantizedTensor:
        """Decode to the integer levels (int8, original shape) and their parameters."""
        header = self._header(blob)
        levels = np.empty(header.shape, dtype=np.int8)
        self._run(blob, header, levels.reshape(matrix_dims(header.shape)), OUT_LEVELS)
        return QuantizedTensor(levels, header.scale, header.zero_point, header.bits, header.symmetric, header.rotation)


def encode(x: Any, qp: int = DEFAULT_QP, **options: Any) -> bytes:
    """Quantise and encode one tensor at a QP; see :class:`Encoder` for the options.
    (``pyweightvc.encode`` also takes a target instead of a QP: :mod:`pyweightvc.targets`.)"""
    return Encoder(qp, **options).encode(x)


def decode(blob: Any, like: str = "numpy", threads: Optional[int] = None):
    """Decode a blob from :func:`encode`; see :meth:`Decoder.decode`."""
    return Decoder(threads).decode(blob, like=like)


def decode_int8(blob: Any, threads: Optional[int] = None) -> QuantizedTensor:
    """The decoded integer levels and quantisation parameters, for integer inference."""
    return Decoder(threads).decode_int8(blob)


def quantize(
    x: Any,
    symmetric: bool = True,
    per_channel: bool = False,
    bits: int = 8,
    threads: Optional[int] = None,
    min_step: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantise to integer levels: returns (levels int8 with x's shape, scale float32,
    zero_point int32), with value = scale * (levels - zero_point) and the
    parameters of shape (1,) per tensor or (C,) per output channel (axis 0).
    Rounding is half to even after multiplying by 1/scale (see docs/format.md).
    min_step: the smallest scale any channel gets (see :class:`Encoder`)."""
    _check_quant_args(bits, symmetric, per_channel, min_step)
    nthreads = native_threads(threads)
    m = as_matrix(x)
    if m.dtype_code == I8:
        raise TypeError("input is already int8: nothing to quantise")
    scale, zero_point, symmetric = compute_params(m.data, m.dtype_code, bits, symmetric, per_channel, nthreads, float(min_step))
    levels = quantize_levels(m.data, m.dtype_code, scale, zero_point, bits, symmetric, nthreads)
    return levels.reshape(m.shape), scale, zero_point


def dequantize(levels: np.ndarray, scale: Any, zero_point: Any = 0, dtype: Any = np.float32, threads: Optional[int] = None) -> np.ndarray:
    """Values from levels: scale * (levels - zero_point), per tensor or per channel
    (axis 0); dtype float32 (default) or float16."""
    levels = np.asarray(levels)
    if levels.dtype != np.int8:
        raise TypeError(f"levels must be int8, got {levels.dtype}")
    if levels.size == 0:
        raise ValueError("levels is empty")
    scale = np.atleast_1d(np.asarray(scale, dtype=np.float32)).ravel()
    zero_point = np.atleast_1d(np.asarray(zero_point))
    if zero_point.size == 1 and scale.size > 1:
        zero_point = np.full(scale.shape, zero_point.item())
    if not np.all(np.isin(zero_point, np.arange(-128, 128))):
        raise ValueError("zero_point values must be integers in -128..127")
    zero_point = zero_point.astype(np.int32).ravel()
    out_types = {np.dtype(np.float32): 1, np.dtype(np.float16): 2}
    if np.dtype(dtype) not in out_types:
        raise TypeError(f"dtype must be float32 or float16, got {np.dtype(dtype)}")
    shape = levels.shape
    rows, cols = matrix_dims(shape)
    out = np.empty(shape, dtype=dtype)
    dequantize_levels(
        np.ascontiguousarray(levels).reshape(rows, cols),
        scale,
        zero_point,
        8,
        False,
        out.reshape(rows, cols),
        out_types[np.dtype(dtype)],
        native_threads(threads),
    )
    return out


def lib_info() -> dict:
    """Versions of pyweightvc and the linked codec libraries, and the defaults."""
    info = dict(versions())
    info.update(
        format_version=FORMAT_VERSION,
        default_preset=DEFAULT_PRESET,
        default_qp=DEFAULT_QP,
        default_max_frame_side=DEFAULT_MAX_FRAME_SIDE,
        x265_options=NativeEncoder(DEFAULT_QP, False, DEFAULT_PRESET, 0, []).options(1024, 1024),
    )
    return info


__all__ = [
    "Encoder",
    "Decoder",
    "QuantizedTensor",
    "Rotation",
    "BlobHeader",
    "encode",
    "decode",
    "decode_int8",
    "quantize",
    "dequantize",
    "read_header",
    "lib_info",
]
