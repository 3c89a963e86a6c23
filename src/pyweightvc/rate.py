"""Choosing the QP for the user.

- Per tensor: :func:`encode_to_target` finds the largest QP whose weight SNR
  reaches ``target_snr_db`` (fewest bytes that meet it), or the smallest QP whose
  bits per weight fit ``target_bpw`` (closest that fits). Bisection over QP 0..51
  with trial encodes of a probe (evenly spaced 32-row blocks of a large tensor,
  same scales), then the full tensor at the chosen QP, checked, and stepped by
  one QP while it misses the target. The result is exact, not estimated: the
  returned blob meets the target.
- Whole model: :func:`save_file_to_size` spends a byte budget across the
  HEVC-coded tensors (:func:`allocate_qps`: Lagrangian rate allocation over
  per-tensor rate-distortion curves); :func:`save_file_for_accuracy` writes the
  smallest file that keeps the user's score, optionally with a searched step
  floor (``min_step``). See docs/rate.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np

from . import _core
from ._arrays import BF16, I8, as_matrix
from .codec import DEFAULT_QP, Decoder, Encoder

PROBE_ELEMENTS = 1 << 18  # trial encodes on about this many weights
PROBE_BLOCK_ROWS = 32
LOSSLESS_RIVAL_QP = 12  # at or below this QP, lossless is tried as well
# Weight SNR gained per extra bit per weight, to compare encodes of unequal SNR:
# the high-rate slope of a uniform quantiser. Real weights through x265 measure
# 4.7-5.9 dB per bit between QP 16 and 36 (rate_ideas.py baselines, docs/rate.md),
# so 6.02 credits a rotation's SNR gain slightly less than it is worth: rotation is
# chosen only where it clearly pays.
DB_PER_BIT = 6.02


class Unreachable(ValueError):
    """The target (weight SNR, bits per weight, file size or score) cannot be met
    with these settings; the message says how far off the nearest reachable point is."""


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
    if m.dtype_code == I8 or _core.rotation_block(m.data.shape[1]) < 2:
        return False
    values = _values(m)
    decoder = Decoder(options.get("threads"))
    _, plain_bpw, plain_snr = _probe_trials(x, m, values, {**options, "rotate": False}, decoder)(qp)
    _, rot_bpw, rot_snr = _probe_trials(x, m, values, {**options, "rotate": True}, decoder)(qp)
    return rot_bpw - (rot_snr - plain_snr) / DB_PER_BIT < plain_bpw


def _check_target(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or not lo < value <= hi:
        raise ValueError(f"{name} must be a number in ({lo:g}, {hi:g}], got {value!r}")
    return float(value)


def encode_to_target(x: Any, target_snr_db: Optional[float] = None, target_bpw: Optional[float] = None,
                     **options: Any) -> tuple[bytes, Choice]:
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
    target = _check_target("target_snr_db", target_snr_db, 0, 200) if want_snr \
        else _check_target("target_bpw", target_bpw, 0, 64)
    m = as_matrix(x)
    values = _values(m)
    decoder = Decoder(options.get("threads"))
    probe = _probe_trials(x, m, values, options, decoder)

    def ok(result) -> bool:
        return result[2] >= target if want_snr else result[1] <= target

    # monotone in QP: SNR falls and size shrinks as QP rises
    lo, hi = -1, 52  # want_snr: ok(lo) holds, ok(hi) fails; otherwise the reverse
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(probe(mid)) == want_snr:
            lo = mid
        else:
            hi = mid
    qp = lo if want_snr else hi
    trials = [(q, r[1], r[2]) for q, r in sorted(probe.results.items())]

    full = probe if probe.values is values else _Trials(values, x, options, decoder)
    step = -1 if want_snr else 1
    while 0 <= qp <= 51 and not ok(full(qp)):
        qp += step

    def lossless():
        blob = Encoder(0, lossless=True, **options).encode(x)
        got = decoder.decode(blob).astype(np.float64).reshape(values.shape)
        return blob, 8 * len(blob) / values.size, _snr_db(values, got)

    if 0 <= qp <= 51:
        blob, bpw, snr = full(qp)
        if qp <= LOSSLESS_RIVAL_QP:
            # near QP 0 lossless coding of the levels can be both smaller and closer
            lblob, lbpw, lsnr = lossless()
            if ok((lblob, lbpw, lsnr)) and (lbpw < bpw if want_snr else lsnr > snr):
                return lblob, Choice(None, lsnr, lbpw, trials)
        return blob, Choice(qp, snr, bpw, trials)
    if want_snr:
        blob, bpw, snr = lossless()
        if snr >= target:
            return blob, Choice(None, snr, bpw, trials)
        raise Unreachable(f"target_snr_db {target:g} dB is above what this tensor's "
                         f"{options.get('bits', 8)}-bit levels reach ({snr:.2f} dB)")
    smallest = full(51)[1]
    raise Unreachable(f"target_bpw {target:g} is below the smallest this tensor codes to "
                     f"({smallest:.3f} bits per weight at QP 51)")


# ---------------------------------------------------------------------------
# whole models: a byte budget spread across tensors

CURVE_QPS = tuple(range(6, 52, 4))  # 6, 10, ..., 50: probe encodes per tensor; QPs between are interpolated
# lossless levels have no QP: their knob is the step, min_step = reference step x 2^(knob / 8),
# from the plan's own max-abs step (knob 0) to 128 times it, probed every quarter octave
# (lossless probes are quick; bytes change fast with the step at the few-level end)
STEPS_PER_OCTAVE = 8
STEP_KNOBS = tuple(range(0, 7 * STEPS_PER_OCTAVE + 1, STEPS_PER_OCTAVE // 4))
SIZE_ROUNDS = 8  # writes of the whole file at most


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
    return Curve(values.size, np.array(knobs, float), np.array([r[1] for r in res]), snr,
                 bool(options.get("rotate", False)), float(step))


def resolve_rotate(x: Any, plan, threads: Optional[int] = None) -> bool:
    """A plan's rotate setting as a decision for this tensor ("auto": rotation_pays
    at the plan's QP, or the default QP when a target or a budget sets the QP)."""
    if plan.rotate != "auto":
        return bool(plan.rotate)
    if plan.lossless:  # no QP to judge at; lossless narrow levels: rotate=True where wanted
        return False
    return rotation_pays(x, DEFAULT_QP if plan.qp is None else plan.qp, preset=plan.preset, threads=threads,
                         **plan.quant_options())


def _cached_curve(cache: Optional[dict], name: str, x: Any, plan, threads: Optional[int]) -> Curve:
    """The tensor's probe curve for the plan's settings (over QPs, or over steps for
    a lossless plan), from the cache when there, as a copy (callers correct curves
    in place)."""
    key = (name, plan.preset, plan.bits, plan.symmetric, plan.per_channel, plan.min_step, plan.rotate,
           plan.lossless)
    curve = cache.get(key) if cache is not None else None
    if curve is None:
        rotate = resolve_rotate(x, plan, threads)
        options = plan.quant_options()
        step = 0.0
        if plan.lossless:  # knob 0: the plan's own steps (its max-abs steps, or its floor where higher)
            step = max(plan.min_step, _median_row_step({name: x}, {name: plan}, [name], {name} if rotate else ()))
            options.pop("min_step", None)
        curve = tensor_curve(x, preset=plan.preset, threads=threads, rotate=rotate, step=step, **options)
        if cache is not None:
            cache[key] = curve
    return Curve(curve.elements, curve.qps.copy(), curve.bpw.copy(), curve.snr_db.copy(), curve.rotate, curve.step)


def allocate_qps(curves: dict, budget_bytes: float, sensitivity: Optional[dict] = None,
                 coarsest: Optional[dict] = None) -> dict:
    """QP per tensor minimising the sum over tensors of sensitivity x relative noise
    energy (elements x 10^(-SNR/10)) with the predicted bytes within the budget:
    every tensor takes the QP where its rate-distortion slope equals one common
    Lagrange multiplier, found by bisection. coarsest: tensor name -> the highest
    QP (knob) it may take."""
    weight = {n: float((sensitivity or {}).get(n, 1.0)) for n in curves}
    table = {}
    for n, c in curves.items():
        grid = c.grid()
        grid = grid[grid <= max(grid[0], (coarsest or {}).get(n, grid[-1]))]
        table[n] = (grid, weight[n] * c.noise_at(grid), c.bytes_at(grid))

    def pick(lam: float) -> tuple[dict, float]:
        chosen, total = {}, 0.0
        for n, (grid, noise, size) in table.items():
            i = int(np.argmin(noise + lam * size))
            chosen[n] = int(grid[i])
            total += size[i]
        return chosen, total

    smallest = sum(size.min() for _, _, size in table.values())
    if smallest > budget_bytes:
        raise Unreachable(f"the coded tensors need at least about {smallest:,.0f} bytes at their coarsest QPs; "
                         f"the budget leaves them {budget_bytes:,.0f}")
    lo, hi = 1e-15, 1e15  # multiplier: small spends bytes freely, large saves them
    if pick(lo)[1] <= budget_bytes:
        return pick(lo)[0]
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if pick(mid)[1] > budget_bytes:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-9:
            break
    return pick(hi)[0]


def save_file_to_size(tensors, path: str, target_bytes: int, policy=None, sensitivity: Optional[dict] = None,
                      metadata: Optional[dict] = None, threads: Optional[int] = None, progress=None,
                      curve_cache: Optional[dict] = None) -> dict:
    """Write a .wvc file of at most `target_bytes` bytes: the policy's lossy HEVC
    tensors get a QP each from :func:`allocate_qps` over their probe curves; the
    file is then written, measured, and the allocation corrected with the real
    sizes until it fits. sensitivity: tensor name -> weight of its relative noise
    (default 1 each). curve_cache: a dict kept between calls on the same tensors and
    policy, so their probe curves are encoded once. Returns the header written;
    the chosen QPs are in its entries (and the target in the metadata)."""
    import os
    import re

    from .container import _storage_key, dtype_name, save_file
    from .policy import Policy

    if isinstance(target_bytes, bool) or not isinstance(target_bytes, (int, np.integer)) or target_bytes <= 0:
        raise ValueError(f"target size must be a positive number of bytes, got {target_bytes!r}")
    policy = policy or Policy()
    seen, coded = set(), []
    for name, x in tensors.items():
        key = _storage_key(x)
        if key is not None and key in seen:
            continue
        seen.add(key)
        plan = policy.plan(name, dtype_name(x), tuple(x.shape))
        if plan.storage == "hevc" and not plan.lossless:
            coded.append((name, plan))
    if not coded:
        raise ValueError("no tensor takes lossy HEVC under this policy: nothing to fit to a size")
    curves = {name: _cached_curve(curve_cache, name, tensors[name], plan, threads) for name, plan in coded}
    if progress:
        for name in curves:
            progress(name)
    meta = {**(metadata or {}), "target_size_bytes": str(int(target_bytes))}
    tmp = f"{path}.sizing{os.getpid()}"
    pattern = {name: "re:^" + re.escape(name) + "$" for name in curves}
    try:
        # round 0 measures the other tensors and the header at the curves' middle QP;
        # later rounds allocate with the real sizes and stop once the file fits
        qps = {name: int(np.median(CURVE_QPS)) for name in curves}
        for attempt in range(SIZE_ROUNDS):
            overrides = {pattern[n]: curves[n].settings(q) for n, q in qps.items()}
            header = save_file(tensors, tmp, policy=policy.with_overrides(overrides), metadata=meta, threads=threads)
            size = os.path.getsize(tmp)
            if attempt > 0 and size <= target_bytes:
                break
            actual = {n: header[n]["data_offsets"][1] - header[n]["data_offsets"][0] for n in curves}
            for n, c in curves.items():  # correct each probe curve by what the full tensor took
                predicted = float(c.bytes_at(np.array(qps[n])))
                if predicted > 0:
                    c.bpw = c.bpw * (actual[n] / predicted)
            fixed = size - sum(actual.values())
            if fixed >= target_bytes:
                raise Unreachable(f"the tensors not coded lossy and the file header alone take {fixed:,} bytes, "
                                 f"over the target of {target_bytes:,}")
            new = allocate_qps(curves, target_bytes - fixed, sensitivity)
            if attempt >= SIZE_ROUNDS // 2 and size > target_bytes:  # corrections did not converge: step up
                new = {n: min(51, max(new[n], qps[n] + 1)) for n in new}
            qps = new
        else:
            raise Unreachable(f"could not fit the model into {target_bytes:,} bytes (the last try took {size:,})")
        os.replace(tmp, path)
        return header
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _qps_for_snr(curve: Curve, target_db: float) -> int:
    """Largest knob (QP or step) whose (interpolated) probe SNR reaches the target."""
    grid = curve.grid()
    snr = np.interp(grid, curve.qps, curve.snr_db)
    ok = grid[snr >= target_db]
    return int(ok.max()) if ok.size else int(grid[0])


SEARCH_SIZE_RESOLUTION = 0.01  # the shared target's bisection stops when passing and failing sizes are this close
ALLOCATE_GROUP_SHARE = 0.1  # an HEVC tensor with this share of the HEVC weights is measured on its own
ALLOCATE_LOWEST_BUDGET = 0.5  # the allocation's budget is searched down to this share of the shared target's
ALLOCATE_RESOLUTION = 0.01  # ... to within 1 %
# a group whose measured drop is below this share of max_drop counts as dropping that much:
# a drop lost in the score's noise is no evidence that the group's noise is free
ALLOCATE_MIN_DROP_SHARE = 0.05
# the noise model (score drop proportional to noise energy) is not trusted further than this
# below the SNR it was measured at; a group whose drop was lost in the noise is not coarsened at all
ALLOCATE_SPAN_DB = 12.0
# ... nor below this SNR: at 0 dB a matrix is all zeros, and a drop measured at a few dB says
# nothing about that point (the MNIST MLP's hidden 1024 x 1024 matrix, measured cheapest at
# 2.25 dB, was zeroed without it: docs/rate.md)
ALLOCATE_MIN_SNR_DB = 1.0


def sensitivity_groups(curves: Mapping[str, Curve], share: float = ALLOCATE_GROUP_SHARE) -> list:
    """Lists of tensor names measured together by the measured allocation: each
    tensor holding at least `share` of the weights on its own (largest first), the
    others as one group."""
    total = sum(c.elements for c in curves.values())
    alone = sorted((n for n, c in curves.items() if c.elements >= share * total), key=lambda n: -curves[n].elements)
    rest = [n for n in curves if n not in alone]
    return [[n] for n in alone] + ([rest] if rest else [])


def save_file_for_accuracy(tensors, path: str, evaluate: Callable[[Mapping[str, Any]], float], max_drop: float,
                           policy=None, metadata: Optional[dict] = None, threads: Optional[int] = None,
                           like: str = "numpy", snr_range: tuple = (0.0, 48.0), resolution_db: float = 0.05,
                           curve_cache: Optional[dict] = None, search_min_step: Optional[str] = None,
                           allocate: str = "shared") -> dict:
    """Write the smallest .wvc file (searching one weight-SNR target shared by the
    HEVC tensors) whose decoded weights keep `evaluate` within `max_drop` of its
    score on the original tensors. evaluate(state) -> score, higher is better;
    state maps names to arrays (like="numpy") or torch tensors (like="torch"), as
    load_file returns them. The target is bisected in `snr_range` until the
    smallest passing and the largest failing file are within 1 % in size (or
    `resolution_db` apart). Each step writes a file, loads and evaluates it; the
    settings come from probe curves, computed once: a QP for a lossy tensor, a step
    (``min_step``, from the plan's own max-abs step up to 128 times it) for one whose
    levels the policy codes losslessly. Returns {"header", "target_snr_db", "qps"
    (tensor -> QP, or step knob of a lossless tensor: :meth:`Curve.settings`),
    "min_step", "sensitivity", "score", "baseline", "evaluations": one dict per file
    written, with its bytes and score, and "measured" (the group coded alone) or
    "budget" and "knobs" (an allocation) where the measured allocation wrote it}.
    curve_cache as for save_file_to_size.

    allocate: "shared" (one SNR for every HEVC tensor) or "measured": after the
    shared search, every HEVC tensor holding at least 10 % of their weights (the
    others together: :func:`sensitivity_groups`) is coded alone at the shared
    target, the others near-lossless, and its score drop per unit of relative
    noise energy is its sensitivity; :func:`allocate_qps` then spreads a byte
    budget by those sensitivities, and the budget is bisected against the score
    between 1/2 and 1 times what the shared target's QPs take, to within 1 %
    (one evaluation per group, about 6 more). No tensor goes more than 12 dB below
    the shared target or below 1 dB (at 0 dB a matrix is all zeros, far from where
    its drop was measured), nor below the target at all when
    its group's drop was under 5 % of max_drop (no evidence that its noise is
    cheap). Nothing changes with one group.

    search_min_step: a storage, "int8" (the tensors stored as levels: the conv
    kernels by default) or "hevc" (the lossy HEVC tensors); then, with the QPs
    kept, one shared ``min_step`` for those tensors is raised as far as the score
    allows: bisection on a log scale between 1/2 and 8 times the median of their
    rows' max-abs steps, to within 2^(1/4) (about 6 more evaluations)."""
    import os
    import re

    from .container import load_file, save_file
    from .policy import Policy

    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not math.isfinite(max_drop) \
            or max_drop < 0:
        raise ValueError(f"max_drop must be a non-negative number, got {max_drop!r}")
    policy = policy or Policy()
    if search_min_step not in (None, "int8", "hevc"):
        raise ValueError(f"search_min_step must be None, \"int8\" or \"hevc\" (the storage whose tensors get "
                         f"the searched step), got {search_min_step!r}")
    if allocate not in ("shared", "measured"):
        raise ValueError(f"allocate must be \"shared\" (one SNR target for all HEVC tensors) or \"measured\" "
                         f"(targets by each tensor's measured effect on the score), got {allocate!r}")
    plans = {n: policy.plan(n, _dtype(x), tuple(x.shape)) for n, x in tensors.items()}
    coded = [n for n, p in plans.items() if p.storage == "hevc"]
    if not coded:
        raise ValueError("no tensor takes HEVC under this policy: nothing to search")
    if search_min_step == "hevc":
        floored = [n for n in coded if not plans[n].lossless]
    else:
        floored = [n for n, p in plans.items() if p.storage == "int8"] if search_min_step else []
    if search_min_step and not floored:
        raise ValueError(f"search_min_step={search_min_step!r}: no tensor is stored as "
                         f"{'lossy HEVC' if search_min_step == 'hevc' else 'int8 levels'} under this policy")
    curves = {n: _cached_curve(curve_cache, n, tensors[n], plans[n], threads) for n in coded}
    baseline = float(evaluate(tensors))
    pattern = {n: "re:^" + re.escape(n) + "$" for n in tensors}
    trial_path, best_path = f"{path}.trial{os.getpid()}", f"{path}.best{os.getpid()}"
    meta = {**(metadata or {}), "max_accuracy_drop": repr(float(max_drop))}
    log: list = []

    def qps_for(target_db: float) -> dict:
        return {n: _qps_for_snr(c, target_db) for n, c in curves.items()}

    def attempt(qps: dict, min_step: float = 0.0, **note):
        overrides = {pattern[n]: curves[n].settings(q) for n, q in qps.items()}
        if min_step:
            for n in floored:
                overrides.setdefault(pattern[n], {})["min_step"] = min_step
        header = save_file(tensors, trial_path, threads=threads, metadata=meta, policy=policy.with_overrides(overrides))
        score = float(evaluate(load_file(trial_path, like=like, threads=threads)))
        log.append({"target_snr_db": None, **note, "min_step": min_step, "bytes": os.path.getsize(trial_path),
                    "score": score})
        return header, score

    def keep(header, score, **found) -> bool:
        """Whether the trial keeps the score; it replaces the best file when smaller."""
        if baseline - score > max_drop:
            return False
        size = os.path.getsize(trial_path)
        if not best or size < best["bytes"]:
            best.update(header=header, score=score, bytes=size, **found)
            os.replace(trial_path, best_path)
        return True

    tried: dict = {}  # QPs -> (kept the score, bytes): equal QPs write equal files, written once

    def trial(qps: dict, target_db: float, **note) -> tuple[bool, int]:
        key = tuple(sorted(qps.items()))
        if key not in tried:
            passed = keep(*attempt(qps, target_snr_db=target_db, **note), target_snr_db=target_db, qps=qps,
                          min_step=0.0)
            tried[key] = passed, log[-1]["bytes"]
        return tried[key]

    def shared(target_db: float) -> tuple[bool, int]:
        return trial(qps_for(target_db), target_db)

    best: dict = {}
    sensitivity: dict = {}
    try:
        lo, hi = snr_range
        passed, hi_bytes = shared(hi)
        if not passed:
            raise Unreachable(f"even the finest settings searched ({hi:g} dB per tensor) drop the score by "
                             f"{baseline - log[-1]['score']:.4g} (> {max_drop:g})")
        passed, lo_bytes = shared(lo)
        if not passed:
            # until the passing and the failing file are within SEARCH_SIZE_RESOLUTION of each other
            while hi - lo > resolution_db and hi_bytes > (1 + SEARCH_SIZE_RESOLUTION) * lo_bytes:
                mid = (lo + hi) / 2
                passed, size = shared(mid)
                if passed:
                    hi, hi_bytes = mid, size
                else:
                    lo, lo_bytes = mid, size
        groups = sensitivity_groups(curves) if allocate == "measured" else []
        if len(groups) > 1:
            target, at_target, quiet = best["target_snr_db"], best["qps"], qps_for(snr_range[1])
            lowest_db = min(target, max(target - ALLOCATE_SPAN_DB, ALLOCATE_MIN_SNR_DB))
            coarsest = {n: _qps_for_snr(c, lowest_db) for n, c in curves.items()}
            for group in groups:  # each group alone at the shared target, the others near-lossless
                _, score = attempt({**quiet, **{n: at_target[n] for n in group}}, target_snr_db=target,
                                   measured=group)
                min_drop = ALLOCATE_MIN_DROP_SHARE * max_drop
                if baseline - score < min_drop:
                    coarsest.update({n: at_target[n] for n in group})
                noise = sum(float(curves[n].noise_at(np.array(at_target[n]))) for n in group)
                sensitivity.update({n: max(baseline - score, min_drop) / noise for n in group})
            hi = sum(float(curves[n].bytes_at(np.array(q))) for n, q in at_target.items())
            lo = ALLOCATE_LOWEST_BUDGET * hi
            if all(coarsest[n] <= at_target[n] for n in curves):
                lo = hi  # no tensor may take fewer bytes than at the shared target: nothing to trade
            while hi / lo > 1 + ALLOCATE_RESOLUTION:
                budget = math.sqrt(lo * hi)
                try:
                    qps = allocate_qps(curves, budget, sensitivity, coarsest)
                except Unreachable:  # below what the curves' coarsest QPs take
                    lo = budget
                    continue
                if trial(qps, target, budget=budget, knobs=dict(qps))[0]:
                    hi = budget
                else:
                    lo = budget
        if search_min_step:
            rotated = {n for n in floored if n in curves and curves[n].rotate}
            target, qps = best["target_snr_db"], best["qps"]
            reference = _median_row_step(tensors, plans, floored, rotated)

            def floor(log2_step: float) -> bool:
                step = reference * 2**log2_step
                return keep(*attempt(qps, step, target_snr_db=target), target_snr_db=target, qps=qps, min_step=step)

            lo, hi = -1.0, 3.0  # log2 of the step over the reference
            if not floor(lo):
                hi = lo  # even half the median step costs too much: keep max-abs scales
            elif floor(hi):
                lo = hi
            while hi - lo > 0.25:
                mid = (lo + hi) / 2
                if floor(mid):
                    lo = mid
                else:
                    hi = mid
        os.replace(best_path, path)
        return {"header": best["header"], "target_snr_db": best["target_snr_db"], "qps": best["qps"],
                "min_step": best["min_step"], "sensitivity": sensitivity, "score": best["score"],
                "baseline": baseline, "evaluations": log}
    finally:
        for p in (trial_path, best_path):
            if os.path.exists(p):
                os.remove(p)


def _median_row_step(tensors, plans, names, rotated=frozenset()) -> float:
    """Median over the weights of the named tensors of their row's max-abs step
    (max|row| / qmax, qmax from the tensor's plan in `plans`), the scale a weight
    gets without min_step (of the rotated matrix for the names in `rotated`)."""
    steps, counts = [], []
    for n in names:
        plan = plans[n]
        m = as_matrix(tensors[n])
        if n in rotated:  # the container's rotation: seed 0
            block = _core.rotation_block(m.data.shape[1])
            m = np.asarray(_core.rotate_forward(m.data, m.dtype_code, block, 0, 1))
        else:
            m = _values(m)
        amax = np.abs(m).max(axis=1) if plan.per_channel else np.array([np.abs(m).max()])
        steps.append(amax / (2 ** (plan.bits - 1) - 1))
        counts.append(np.full(len(amax), m.shape[1] if plan.per_channel else m.size))
    steps, counts = np.concatenate(steps), np.concatenate(counts)
    order = np.argsort(steps)
    cum = np.cumsum(counts[order])
    return float(steps[order][np.searchsorted(cum, cum[-1] / 2)])


def _dtype(x: Any) -> str:
    from .container import dtype_name

    return dtype_name(x)
