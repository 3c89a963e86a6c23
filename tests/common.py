"""Shared helpers of the test suite (numcodecs style): round trips with a
tolerance tied to the quantisation step, and decoding of committed fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import pyweightvc as wvc

DATA = Path(__file__).parent / "data"


def reference_quantize(w: np.ndarray, bits: int = 8, symmetric: bool = True, per_channel: bool = False, min_step: float = 0.0):
    """The documented quantisation formula written with numpy (float32 arithmetic)."""
    w = np.asarray(w, dtype=np.float32)
    rows = w.shape[0] if w.ndim >= 2 else 1
    m = w.reshape(rows, -1) if per_channel else w.reshape(1, -1)
    qmax = 2 ** (bits - 1) - 1
    qmin = -qmax if symmetric else -(2 ** (bits - 1))
    if symmetric:
        amax = np.abs(m.astype(np.float64)).max(axis=1)
        scale = np.where(amax > 0, np.maximum((amax / qmax).astype(np.float32), np.float32(min_step)), 1.0)
        scale = scale.astype(np.float32)
        zp = np.zeros(len(scale), np.int32)
    else:
        lo = np.minimum(m.astype(np.float64).min(axis=1), 0.0)
        hi = np.maximum(m.astype(np.float64).max(axis=1), 0.0)
        scale = np.where(hi > lo, np.maximum(((hi - lo) / (qmax - qmin)).astype(np.float32), np.float32(min_step)), 1.0).astype(np.float32)
        scale = np.maximum(scale, np.finfo(np.float32).tiny)
        zp = np.clip(qmin - np.round(lo / scale.astype(np.float64)), qmin, qmax).astype(np.int32)
    scale = np.maximum(scale, np.finfo(np.float32).tiny)
    inv = (np.float32(1.0) / scale)[:, None]
    x = np.clip(m * inv, (qmin - zp)[:, None].astype(np.float32), (qmax - zp)[:, None].astype(np.float32))
    q = (np.rint(x).astype(np.int32) + zp[:, None]).astype(np.int8)
    return q.reshape(w.shape), scale, zp


def snr_db(w: np.ndarray, w2: np.ndarray) -> float:
    w = np.asarray(w, dtype=np.float64)
    err = ((w - np.asarray(w2, dtype=np.float64)) ** 2).sum()
    return float("inf") if err == 0 else float(10 * np.log10((w**2).sum() / err))


def hevc_qstep(qp: int) -> float:
    """HEVC's quantiser step size at a QP, in sample units."""
    return 2.0 ** ((qp - 4) / 6)


def check_encode_decode(w, qp: int | None = 24, **options) -> bytes:
    """Encode w, decode it, and check shape, dtype and the error bound:

    - lossless (qp None): decoded values equal dequantize(quantize(w)) exactly;
    - lossy: the RMS error of the integer levels stays below half the HEVC
      quantiser step at that QP (plus the one-level rounding of narrow bit widths),
      and every value stays inside the quantiser's range.
    Returns the blob.
    """
    lossless = qp is None
    blob = wvc.encode(w, **({"lossless": True} if lossless else {"qp": qp}), **options)
    header = wvc.read_header(blob)
    out = wvc.decode(blob)
    arr = np.asarray(w)
    assert out.shape == arr.shape
    levels = wvc.decode_int8(blob)
    bits = options.get("bits", 8)
    symmetric = options.get("symmetric", True)
    per_channel = options.get("per_channel", False)
    q_ref, s_ref, z_ref = wvc.quantize(w, bits=bits, symmetric=symmetric, per_channel=per_channel)
    np.testing.assert_array_equal(header.scale, s_ref)
    np.testing.assert_array_equal(header.zero_point, z_ref)
    np.testing.assert_array_equal(out, wvc.dequantize(levels.levels, levels.scale, levels.zero_point, dtype=out.dtype))
    if lossless:
        np.testing.assert_array_equal(levels.levels, q_ref)
    else:
        step = 2 ** (8 - bits)
        err = (levels.levels.astype(np.float64) - q_ref) * step  # in sample units
        rms = float(np.sqrt((err**2).mean()))
        assert rms <= hevc_qstep(qp) / 2 + step, f"RMS sample error {rms:.2f} at QP {qp}"
        qmax = 2 ** (bits - 1) - 1
        qmin = -qmax if symmetric else -(2 ** (bits - 1))
        assert levels.levels.min() >= qmin and levels.levels.max() <= qmax
    return blob


def check_backwards_compatibility(name: str) -> None:
    """Decode a committed fixture blob and compare with the committed decoded values."""
    blob = (DATA / f"{name}.wvct").read_bytes()
    meta = json.loads((DATA / f"{name}.json").read_text())
    expected = np.load(DATA / f"{name}.expected.npy")
    out = wvc.decode(blob)
    assert str(out.dtype) == meta["decoded_dtype"]
    assert list(out.shape) == meta["shape"]
    np.testing.assert_array_equal(out, expected)
