"""One tensor at a target instead of a QP, and the per-tensor measurements the
whole-file searches (:mod:`pyweightvc.search`) build on.

- :func:`encode_to_target` finds the largest QP whose weight SNR reaches
  ``target_snr_db`` (fewest bytes that meet it), or the smallest QP whose bits per
  weight fit ``target_bpw`` (closest that fits). Bisection over QP 0..51 with trial
  encodes of a probe (evenly spaced 32-row blocks of a large tensor, same scales),
  then the full tensor at the chosen QP, checked, and stepped by one QP while it
  misses the target. The result is exact, not estimated: the blob meets the target.
- :func:`tensor_curve`: a tensor's probe rate-distortion curve over QPs (or, for
  levels coded losslessly, over quantisation steps).
- :func:`rotation_pays` / :func:`resolve_rotate`: whether rotating a matrix saves
  bits at equal weight SNR.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ._arrays import BF16, F32, I8, OUT_F32, as_matrix
from ._core import compute_params, dequantize_levels, quantize_levels, rotate_forward, rotation_block
from .codec import Decoder, Encoder
from .errors import Unreachable
from .policy import TensorPlan
from .settings import DEFAULT_QP, check

PROBE_ELEMENTS = 1 << 18  # trial encodes on about this many weights
PROBE_BLOCK_ROWS = 32
LOSSLESS_RIVAL_QP = 12  # at or below this QP, lossless is tried as well ...
# ... unless the lossy blob takes less than this share of the levels' entropy per
# weight (lossless HEVC coding of the levels takes about their entropy or more)
LOSSLESS_ENTROPY_SHARE = 0.9
# Weight SNR gained per extra bit per weight, to compare encodes of unequal SNR:
# the high-rate slope of a uniform quantiser. Real weights through x265 measure
# 4.7-5.9 dB per bit between QP 16 and 36 (rate_ideas.py baselines, docs/rate.md),
# so 6.02 credits a rotation's SNR gain slightly less than it is worth: rotation is
# chosen only where it clearly pays.
DB_PER_BIT = 6.02


@dataclass
class Choice:
    """What the search settled on, and what it cost."""

    qp: Optional[int]  # None: lossless
    snr_db: float
    bits_per_weight: float
    trials: list = field(default_factory=list)  # (qp, bits per weight, snr dB) of the probe encodes


def _values(m) -> np.ndarray:
    """The matrix's values as float64 (bfloat16 widened), for SNR."""
    if m.dtype_code == BF16:
        return (m.data.astype(np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return m.data.astype(np.float64)


def _snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    noise = float(((ref - got) ** 2).sum())
    signal = float((ref * ref).sum())
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def _probe(values: np.ndarray) -> np.ndarray:
    """Evenly spaced blocks of rows (the block containing the largest weight among
    them, so a per-tensor scale is the same as the full tensor's)."""
    rows, cols = values.shape
    if rows * cols <= PROBE_ELEMENTS or rows <= 2 * PROBE_BLOCK_ROWS:
        return values
    n_blocks = max(1, min(rows // PROBE_BLOCK_ROWS, PROBE_ELEMENTS // (PROBE_BLOCK_ROWS * cols) or 1))
    starts = set(np.linspace(0, rows - PROBE_BLOCK_ROWS, n_blocks).astype(int).tolist())
    peak_row = int(np.unravel_index(np.argmax(np.abs(values)), values.shape)[0])
    starts.add(min(peak_row // PROBE_BLOCK_ROWS * PROBE_BLOCK_ROWS, rows - PROBE_BLOCK_ROWS))
    return np.concatenate([values[s : s + PROBE_BLOCK_ROWS] for s in sorted(starts)])


class _Trials:
    """Encodes one matrix at any QP, remembering every result."""

    def __init__(self, values: np.ndarray, source: Any, options: dict, decoder: Decoder):
        self.values, self.source, self.options, self.decoder = values, source, options, decoder
        self.results: dict = {}

    def __call__(self, qp: int):
        if qp not in self.results:
            blob = Encoder(qp, **self.options).encode(self.source)
            got = self.decoder.decode(blob).astype(np.float64).reshape(self.values.shape)
            self.results[qp] = (blob, 8 * len(blob) / self.values.size, _snr_db(self.values, got))
        return self.results[qp]


def _probe_trials(x: Any, m, values: np.ndarray, options: dict, decoder: Decoder) -> _Trials:
    """Trial encodes on the probe rows; int8 input is coded as its levels (a float
    probe would be scaled anew), so it is tried whole."""
    probe_values = values if m.dtype_code == I8 else _probe(values)
    source = x if probe_values is values else probe_values.astype(np.float32)
    return _Trials(probe_values, source, options, decoder)


def rotation_pays(x: Any, qp: int = DEFAULT_QP, **options: Any) -> bool:
    """Whether rotating `x` (Encoder(rotate=True)) saves bits at equal weight SNR.

    One probe encode each way at `qp` (options as for :class:`Encoder`); the rotated
    encode's bits are corrected for its SNR difference at DB_PER_BIT dB per bit
    (a rotation changes the SNR a QP gives, since it changes the peak-to-rms
    ratio the scale is set by). Matrices with an odd number of columns and int8
    input cannot be rotated: False.
    """
    m = as_matrix(x)
    if m.dtype_code == I8 or rotation_block(m.data.shape[1]) < 2:
        return False
    values = _values(m)
    decoder = Decoder(options.get("threads"))
    _, plain_bpw, plain_snr = _probe_trials(x, m, values, {**options, "rotate": False}, decoder)(qp)
    _, rot_bpw, rot_snr = _probe_trials(x, m, values, {**options, "rotate": True}, decoder)(qp)
    return rot_bpw - (rot_snr - plain_snr) / DB_PER_BIT < plain_bpw


# HEVC noise power per 8-bit picture sample, as a multiple of the quantiser step
# squared (Qstep = 2^((QP - 4) / 6)), per QP: on ten real weight matrices (MobileNetV2,
# MiniLM, ddddocr; 32 x 9 to 30522 x 384) it measured 0.062-0.105 between QP 8 and 40
# (benchmarks/snr_model.py, docs/measurements.md); the table holds about the upper
# values, so predictions err towards finer QPs.
_QSTEP_NOISE = (
    (0, 0.10),
    (8, 0.097),
    (12, 0.08),
    (16, 0.091),
    (20, 0.088),
    (24, 0.086),
    (28, 0.087),
    (32, 0.093),
    (36, 0.10),
    (40, 0.106),
    (51, 0.12),
)


def predicted_snr_db(m, qps: np.ndarray, **options: Any) -> np.ndarray:
    """Weight SNR the noise model predicts for the matrix `m` (as_matrix) at each QP:
    the 8-bit levels' own rounding noise (computed exactly) plus the codec's,
    _QSTEP_NOISE x Qstep^2 per sample in each row's scale. Only for 8-bit levels;
    rotate=True: of the rotated matrix (the same SNR, as the rotation is orthogonal)."""
    data, code = m.data, m.dtype_code
    threads = int(options.get("threads") or 0)
    if options.get("rotate"):
        data, code = rotate_forward(data, code, rotation_block(data.shape[1]), 0, threads), F32
        values = data.astype(np.float64)
    else:
        values = _values(m)
    scale, zero_point, symmetric = compute_params(
        data, code, 8, options.get("symmetric", True), options.get("per_channel", False), threads, float(options.get("min_step", 0.0))
    )
    levels = quantize_levels(data, code, scale, zero_point, 8, symmetric, threads)
    back = np.empty(data.shape, np.float32)
    dequantize_levels(levels, scale, zero_point, 8, symmetric, back, OUT_F32, threads)
    signal = float(np.square(values).sum())
    int8_noise = float(np.square(values - back).sum())
    rows, cols = data.shape
    sample_scale2 = float(np.square(scale.astype(np.float64)).sum()) * (cols if scale.size == rows else rows * cols)
    k = np.interp(qps, [q for q, _ in _QSTEP_NOISE], [v for _, v in _QSTEP_NOISE])
    noise = int8_noise + sample_scale2 * k * 2.0 ** ((np.asarray(qps, np.float64) - 4) / 3)
    return 10 * np.log10(signal / noise)


def predicted_qp(m, target_snr_db: float, **options: Any) -> int:
    """The largest QP whose predicted weight SNR reaches the target (0 if none; 24
    where the model does not apply: levels narrower than 8 bits, int8 input)."""
    if options.get("bits", 8) != 8 or m.dtype_code == I8:
        return DEFAULT_QP
    qps = np.arange(52)
    good = qps[predicted_snr_db(m, qps, **options) >= target_snr_db]
    return int(good.max()) if good.size else 0


def step_for_snr(x: Any, target_snr_db: float, **options: Any) -> float:
    """The largest smallest-step (``min_step``) whose levels still reach the target
    weight SNR when kept exactly (storage "int8", or HEVC lossless): levels of one
    step are the cheapest to code for a given noise (their noise is step^2 / 12 per
    weight). Rows whose max-abs step is coarser keep it. 0.0 when even the max-abs
    steps miss the target (the plain levels are then the closest). Bisection on the
    quantisation SNR itself: no encode. options: bits, symmetric, per_channel, threads."""
    target = check("target_snr_db", target_snr_db)
    m = as_matrix(x)
    values = _values(m)
    signal = float(np.square(values).sum())
    threads = int(options.get("threads") or 0)
    bits = options.get("bits", 8)
    symmetric, per_channel = options.get("symmetric", True), options.get("per_channel", False)

    def snr(step: float) -> float:
        scale, zero_point, sym = compute_params(m.data, m.dtype_code, bits, symmetric, per_channel, threads, step)
        levels = quantize_levels(m.data, m.dtype_code, scale, zero_point, bits, sym, threads)
        back = np.empty(m.data.shape, np.float32)
        dequantize_levels(levels, scale, zero_point, bits, sym, back, OUT_F32, threads)
        noise = float(np.square(values - back).sum())
        return math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal else -math.inf

    if signal == 0 or snr(0.0) < target:
        return 0.0
    # uniform-noise estimate, then bisection on a log scale to 1 % of the step
    guess = math.sqrt(12 * signal / values.size * 10 ** (-target / 10))
    lo, hi = guess / 4, guess * 4
    while snr(lo) < target:
        lo /= 4
    while snr(hi) >= target:
        lo, hi = hi, hi * 4
    while hi / lo > 1.01:
        mid = math.sqrt(lo * hi)
        if snr(mid) >= target:
            lo = mid
        else:
            hi = mid
    return float(np.float32(lo))


def _level_entropy(m, options: dict) -> float:
    """Entropy in bits of the tensor's 8-bit levels (of its bits-wide ones if set)."""
    if m.dtype_code == I8:
        levels = m.data
    else:
        data, code = m.data, m.dtype_code
        threads = int(options.get("threads") or 0)
        if options.get("rotate"):
            data, code = rotate_forward(data, code, rotation_block(data.shape[1]), 0, threads), F32
        bits = options.get("bits", 8)
        scale, zero_point, symmetric = compute_params(
            data,
            code,
            bits,
            options.get("symmetric", True),
            options.get("per_channel", False),
            threads,
            float(options.get("min_step", 0.0)),
        )
        levels = quantize_levels(data, code, scale, zero_point, bits, symmetric, threads)
    counts = np.bincount(levels.reshape(-1).view(np.uint8), minlength=256)
    p = counts[counts > 0] / levels.size
    return float(-(p * np.log2(p)).sum())


def _bracket(passes, start: int) -> tuple[int, int]:
    """(lo, hi) with passes(lo) (or lo = -1) and not passes(hi) (or hi = 52), hi - lo
    small, found from `start` with steps doubling away from it."""
    step = 1
    if passes(start):
        lo = start
        while lo < 51:
            q = min(lo + step, 51)
            if not passes(q):
                return lo, q
            lo, step = q, 2 * step
        return 51, 52
    hi = start
    while hi > 0:
        q = max(hi - step, 0)
        if passes(q):
            return q, hi
        hi, step = q, 2 * step
    return -1, 0


def encode_to_target(
    x: Any, target_snr_db: Optional[float] = None, target_bpw: Optional[float] = None, **options: Any
) -> tuple[bytes, Choice]:
    """Encode `x` at the QP that meets one target; returns (blob, Choice).

    target_snr_db: weight SNR in dB the decoded tensor must reach (largest such QP).
    target_bpw: bits per weight (whole blob, header included) it must fit in
    (smallest such QP). Other options as for :class:`Encoder` (not qp/lossless).
    If even QP 0 misses an SNR target, the 8-bit levels are coded losslessly when
    they reach it; otherwise ValueError says what the tensor can reach.
    """
    if (target_snr_db is None) == (target_bpw is None):
        raise ValueError("give exactly one of target_snr_db and target_bpw")
    for key in ("qp", "lossless"):
        if key in options:
            raise ValueError(f"{key} cannot be combined with a target: the target chooses the QP")
    want_snr = target_snr_db is not None
    target = check("target_snr_db", target_snr_db) if want_snr else check("target_bpw", target_bpw)
    m = as_matrix(x)
    values = _values(m)
    decoder = Decoder(options.get("threads"))
    probe = _probe_trials(x, m, values, options, decoder)

    def ok(result) -> bool:
        return result[2] >= target if want_snr else result[1] <= target

    def passes(qp: int) -> bool:  # monotone: true up to the boundary QP, false past it
        return ok(probe(qp)) == want_snr

    # start where the noise model puts the boundary, bracket it by doubling steps,
    # then bisect: about two probe encodes where the model is right
    start = predicted_qp(m, target, **options) if want_snr else 26
    lo, hi = _bracket(passes, start)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            lo = mid
        else:
            hi = mid
    qp = lo if want_snr else hi
    trials = [(q, r[1], r[2]) for q, r in sorted(probe.results.items())]

    full = probe if probe.values is values else _Trials(values, x, options, decoder)
    step = -1 if want_snr else 1
    while 0 <= qp <= 51 and not ok(full(qp)):
        qp += step
    if full is not probe:
        # the probe rows are a sample: the QP past the boundary it found may still meet
        # the target on the whole tensor (MiniLM's FFN: 15.1 dB at the QP it rejected)
        while 0 <= qp - step <= 51 and ok(full(qp - step)):
            qp -= step

    def lossless():
        blob = Encoder(0, lossless=True, **options).encode(x)
        got = decoder.decode(blob).astype(np.float64).reshape(values.shape)
        return blob, 8 * len(blob) / values.size, _snr_db(values, got)

    if 0 <= qp <= 51:
        blob, bpw, snr = full(qp)
        if qp <= LOSSLESS_RIVAL_QP and bpw > LOSSLESS_ENTROPY_SHARE * _level_entropy(m, options):
            # near QP 0 lossless coding of the levels can be both smaller and closer
            lblob, lbpw, lsnr = lossless()
            if ok((lblob, lbpw, lsnr)) and (lbpw < bpw if want_snr else lsnr > snr):
                return lblob, Choice(None, lsnr, lbpw, trials)
        return blob, Choice(qp, snr, bpw, trials)
    if want_snr:
        blob, bpw, snr = lossless()
        if snr >= target:
            return blob, Choice(None, snr, bpw, trials)
        raise Unreachable(
            f"target_snr_db {target:g} dB is above what this tensor's {options.get('bits', 8)}-bit levels reach ({snr:.2f} dB)"
        )
    smallest = full(51)[1]
    raise Unreachable(f"target_bpw {target:g} is below the smallest this tensor codes to ({smallest:.3f} bits per weight at QP 51)")


# ---------------------------------------------------------------------------
# rate-distortion curves: what the whole-file searches spread bytes with

CURVE_QPS = tuple(range(6, 52, 4))  # 6, 10, ..., 50: probe encodes per tensor; QPs between are interpolated
# lossless levels have no QP: their knob is the step, min_step = reference step x 2^(knob / 8),
# from the plan's own max-abs step (knob 0) to 128 times it, probed every quarter octave
# (lossless probes are quick; bytes change fast with the step at the few-level end)
STEPS_PER_OCTAVE = 8
STEP_KNOBS = tuple(range(0, 7 * STEPS_PER_OCTAVE + 1, STEPS_PER_OCTAVE // 4))


@dataclass
class Curve:
    """A tensor's probe rate-distortion curve: bits per weight and weight SNR per
    knob, a QP or, for levels coded losslessly (``step`` > 0), a step index. Higher
    knobs take fewer bytes either way."""

    elements: int
    qps: np.ndarray  # the knobs
    bpw: np.ndarray
    snr_db: np.ndarray
    rotate: bool = False  # the curve is of the rotated matrix
    step: float = 0.0  # > 0: lossless levels, knob k is min_step = step x 2^(k / STEPS_PER_OCTAVE)

    def settings(self, knob: int) -> dict:
        """The policy settings that code the tensor at this knob."""
        if self.step:
            return {"min_step": self.step * 2 ** (knob / STEPS_PER_OCTAVE), "rotate": self.rotate}
        return {"qp": int(knob), "rotate": self.rotate}

    def grid(self) -> np.ndarray:
        return np.arange(int(self.qps[0]), int(self.qps[-1]) + 1)

    def bytes_at(self, qp: np.ndarray) -> np.ndarray:
        return np.interp(qp, self.qps, self.bpw) * self.elements / 8

    def noise_at(self, qp: np.ndarray) -> np.ndarray:
        """Relative noise energy: elements x noise power / signal power."""
        return self.elements * 10 ** (-np.interp(qp, self.qps, self.snr_db) / 10)


def tensor_curve(x: Any, qps=CURVE_QPS, step: float = 0.0, **options: Any) -> Curve:
    """Probe encodes of `x` at each QP (options as for :class:`Encoder`); with
    `step` > 0, of its levels coded losslessly at min_step = step x 2^(k/8) for
    each k in STEP_KNOBS instead."""
    m = as_matrix(x)
    values = _values(m)
    decoder = Decoder(options.get("threads"))
    if step:
        knobs = STEP_KNOBS
        res = []
        for k in knobs:
            at_step = {**options, "lossless": True, "min_step": step * 2 ** (k / STEPS_PER_OCTAVE)}
            res.append(_probe_trials(x, m, values, at_step, decoder)(0))
    else:
        knobs = qps
        trials = _probe_trials(x, m, values, options, decoder)
        res = [trials(q) for q in knobs]
    snr = np.array([min(r[2], 99.0) for r in res])  # lossless-exact probes would be inf
    return Curve(values.size, np.array(knobs, float), np.array([r[1] for r in res]), snr, bool(options.get("rotate", False)), float(step))


def resolve_rotate(x: Any, plan: TensorPlan, threads: Optional[int] = None) -> bool:
    """A plan's rotate setting as a decision for this tensor ("auto": rotation_pays
    at the plan's QP, or the default QP when a target or a budget sets the QP)."""
    if plan.rotate != "auto":
        return bool(plan.rotate)
    if plan.lossless:  # no QP to judge at; lossless narrow levels: rotate=True where wanted
        return False
    return rotation_pays(x, DEFAULT_QP if plan.qp is None else plan.qp, preset=plan.preset, threads=threads, **plan.quant_options())


def median_row_step(
    tensors: Mapping[str, Any], plans: Mapping[str, TensorPlan], names: Iterable[str], rotated: Iterable[str] = frozenset()
) -> float:
    """Median over the weights of the named tensors of their row's max-abs step
    (max|row| / qmax, qmax from the tensor's plan in `plans`), the scale a weight
    gets without min_step (of the rotated matrix for the names in `rotated`)."""
    steps, counts = [], []
    rotated = set(rotated)
    for n in names:
        plan = plans[n]
        m = as_matrix(tensors[n])
        if n in rotated:  # the container's rotation: seed 0
            values = np.asarray(rotate_forward(m.data, m.dtype_code, rotation_block(m.data.shape[1]), 0, 1))
        else:
            values = _values(m)
        amax = np.abs(values).max(axis=1) if plan.per_channel else np.array([np.abs(values).max()])
        steps.append(amax / (2 ** (plan.bits - 1) - 1))
        counts.append(np.full(len(amax), values.shape[1] if plan.per_channel else values.size))
    all_steps, all_counts = np.concatenate(steps), np.concatenate(counts)
    order = np.argsort(all_steps)
    cum = np.cumsum(all_counts[order])
    return float(all_steps[order][np.searchsorted(cum, cum[-1] / 2)])


def encode(
    x: Any, qp: Optional[int] = None, *, target_snr_db: Optional[float] = None, target_bpw: Optional[float] = None, **options: Any
) -> bytes:
    """Quantise and encode one tensor (``pyweightvc.encode``); see :class:`pyweightvc.Encoder`
    for the options.

    qp: default 24. Instead of a QP, a target: target_snr_db (the weight SNR the
    decoded tensor must reach; the largest such QP is chosen) or target_bpw (bits
    per weight the blob must fit in; the smallest such QP): :func:`encode_to_target`.
    """
    if target_snr_db is None and target_bpw is None:
        return Encoder(DEFAULT_QP if qp is None else qp, **options).encode(x)
    if qp is not None:
        raise ValueError("give qp or a target (target_snr_db / target_bpw), not both")
    return encode_to_target(x, target_snr_db=target_snr_db, target_bpw=target_bpw, **options)[0]
