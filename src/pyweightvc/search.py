"""Whole-file searches: the smallest .wvc file that fits a byte budget, or that
keeps a score the user measures, built on the per-tensor curves of
:mod:`pyweightvc.targets`.

- :func:`save_file_to_size` spends a byte budget across the HEVC-coded tensors
  (:func:`allocate_qps`: Lagrangian rate allocation over per-tensor
  rate-distortion curves).
- :func:`save_file_for_accuracy` (an :class:`AccuracySearch`) writes the smallest
  file that keeps the user's score, optionally with QPs spread by each tensor's
  measured effect on the score and a searched step floor (``min_step``).

docs/rate.md explains both and measures them.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ._files import temporary_path
from .container import dtype_name, load_file, save_file, storage_key
from .errors import Unreachable
from .policy import Policy, TensorPlan
from .targets import CURVE_QPS, Curve, median_row_step, resolve_rotate, tensor_curve

SIZE_ROUNDS = 8  # writes of the whole file at most


def _cached_curve(cache: Optional[dict], name: str, x: Any, plan: TensorPlan, threads: Optional[int]) -> Curve:
    """The tensor's probe curve for the plan's settings (over QPs, or over steps for
    a lossless plan), from the cache when there, as a copy (callers correct curves
    in place)."""
    key = (name, plan.preset, plan.bits, plan.symmetric, plan.per_channel, plan.min_step, plan.rotate, plan.lossless)
    curve = cache.get(key) if cache is not None else None
    if curve is None:
        rotate = resolve_rotate(x, plan, threads)
        options = plan.quant_options()
        step = 0.0
        if plan.lossless:  # knob 0: the plan's own steps (its max-abs steps, or its floor where higher)
            step = max(plan.min_step, median_row_step({name: x}, {name: plan}, [name], {name} if rotate else ()))
            options.pop("min_step", None)
        curve = tensor_curve(x, preset=plan.preset, threads=threads, rotate=rotate, step=step, **options)
        if cache is not None:
            cache[key] = curve
    return Curve(curve.elements, curve.qps.copy(), curve.bpw.copy(), curve.snr_db.copy(), curve.rotate, curve.step)


def allocate_qps(curves: dict, budget_bytes: float, sensitivity: Optional[dict] = None, coarsest: Optional[dict] = None) -> dict:
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
        raise Unreachable(
            f"the coded tensors need at least about {smallest:,.0f} bytes at their coarsest QPs; the budget leaves them {budget_bytes:,.0f}"
        )
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


def save_file_to_size(
    tensors: Mapping[str, Any],
    path: str,
    target_bytes: int,
    policy: Optional[Policy] = None,
    sensitivity: Optional[dict] = None,
    metadata: Optional[dict] = None,
    threads: Optional[int] = None,
    progress=None,
    curve_cache: Optional[dict] = None,
) -> dict:
    """Write a .wvc file of at most `target_bytes` bytes: the policy's lossy HEVC
    tensors get a QP each from :func:`allocate_qps` over their probe curves; the
    file is then written, measured, and the allocation corrected with the real
    sizes until it fits. sensitivity: tensor name -> weight of its relative noise
    (default 1 each). curve_cache: a dict kept between calls on the same tensors and
    policy, so their probe curves are encoded once. Returns the header written;
    the chosen QPs are in its entries (and the target in the metadata)."""
    if isinstance(target_bytes, bool) or not isinstance(target_bytes, (int, np.integer)) or target_bytes <= 0:
        raise ValueError(f"target size must be a positive number of bytes, got {target_bytes!r}")
    policy = (policy or Policy()).searchable()
    seen, coded = set(), []
    for name, x in tensors.items():
        key = storage_key(x)
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
    tmp = temporary_path(path, "sizing")
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
                raise Unreachable(
                    f"the tensors not coded lossy and the file header alone take {fixed:,} bytes, over the target of {target_bytes:,}"
                )
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
LEVELS_RESOLUTION_DB = 0.25  # ... and the levels search's when its targets are this close
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


@dataclass
class Evaluation:
    """One file the accuracy search wrote and scored."""

    bytes: int
    score: float
    min_step: float = 0.0
    target_snr_db: Optional[float] = None  # the shared target it was written for
    measured: Optional[list] = None  # measured allocation: the group coded alone
    budget: Optional[float] = None  # measured allocation: the byte budget spread
    knobs: Optional[dict] = None  # measured allocation: tensor -> knob
    levels: bool = False  # the matrices kept as exact levels at target_snr_db (the levels search)


@dataclass
class AccuracyResult:
    """What :func:`save_file_for_accuracy` wrote: the smallest file that kept the score."""

    header: dict  # the header of the file written
    target_snr_db: float  # the shared weight-SNR target it was written for
    qps: dict  # tensor -> QP, or step knob of a lossless tensor (:meth:`Curve.settings`); {} when levels won
    min_step: float  # the searched step floor (0: none)
    score: float  # evaluate() on the decoded file
    baseline: float  # evaluate() on the original tensors
    sensitivity: dict = field(default_factory=dict)  # measured allocation: score drop per unit of noise
    evaluations: list = field(default_factory=list)  # every file written, as :class:`Evaluation`


class AccuracySearch:
    """The smallest .wvc file whose decoded weights keep `evaluate` within `max_drop`
    of its score on the original tensors; see :func:`save_file_for_accuracy` for the
    arguments. Phases: :meth:`shared_target`, then optionally
    :meth:`measured_allocation` and :meth:`step_floor`; :meth:`run` does them all."""

    def __init__(
        self,
        tensors: Mapping[str, Any],
        path: str,
        evaluate: Callable[[Mapping[str, Any]], float],
        max_drop: float,
        policy: Optional[Policy] = None,
        metadata: Optional[dict] = None,
        threads: Optional[int] = None,
        like: str = "numpy",
        snr_range: tuple = (0.0, 48.0),
        resolution_db: float = 0.05,
        curve_cache: Optional[dict] = None,
        search_min_step: Optional[str] = None,
        allocate: str = "shared",
        levels: bool = False,
    ):
        if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not math.isfinite(max_drop) or max_drop < 0:
            raise ValueError(f"max_drop must be a non-negative number, got {max_drop!r}")
        if search_min_step not in (None, "int8", "hevc"):
            raise ValueError(
                f'search_min_step must be None, "int8" or "hevc" (the storage whose tensors get the searched step), got {search_min_step!r}'
            )
        if allocate not in ("shared", "measured"):
            raise ValueError(
                f'allocate must be "shared" (one SNR target for all HEVC tensors) or "measured" '
                f"(targets by each tensor's measured effect on the score), got {allocate!r}"
            )
        self.tensors, self.path, self.evaluate, self.max_drop = tensors, path, evaluate, float(max_drop)
        self.levels_policy = policy or Policy()  # the levels search keeps the policy's other settings
        self.policy = self.levels_policy.searchable()
        self.levels = bool(levels)
        self.threads, self.like, self.snr_range, self.resolution_db = threads, like, snr_range, resolution_db
        self.search_min_step, self.allocate = search_min_step, allocate
        self.plans = {n: self.policy.plan(n, dtype_name(x), tuple(x.shape)) for n, x in tensors.items()}
        coded = [n for n, p in self.plans.items() if p.storage == "hevc"]
        if not coded:
            raise ValueError("no tensor takes HEVC under this policy: nothing to search")
        if search_min_step == "hevc":
            self.floored = [n for n in coded if not self.plans[n].lossless]
        elif search_min_step == "int8":
            self.floored = [n for n, p in self.plans.items() if p.storage == "int8"]
        else:
            self.floored = []
        if search_min_step and not self.floored:
            raise ValueError(
                f"search_min_step={search_min_step!r}: no tensor is stored as "
                f"{'lossy HEVC' if search_min_step == 'hevc' else 'int8 levels'} under this policy"
            )
        self.curve_cache = curve_cache
        self.curves: dict[str, Curve] = {}
        self.coded = coded
        self.metadata = {**(metadata or {}), "max_accuracy_drop": repr(float(max_drop))}
        self.pattern = {n: "re:^" + re.escape(n) + "$" for n in tensors}
        self.trial_path, self.best_path = temporary_path(path, "trial"), temporary_path(path, "best")
        self.baseline = math.nan
        self.evaluations: list[Evaluation] = []
        self.best: dict = {}  # the smallest passing file so far: header, score, bytes, target_snr_db, qps, min_step
        self.sensitivity: dict = {}
        self._tried: dict = {}  # QPs -> (kept the score, bytes): equal QPs write equal files, written once

    # --- writing and scoring one file

    def _qps_for(self, target_db: float) -> dict:
        return {n: _qps_for_snr(c, target_db) for n, c in self.curves.items()}

    def _write_and_score(self, policy: Policy, **note: Any) -> tuple[dict, float]:
        """Write the trial file under `policy`, score it, record the Evaluation."""
        header = save_file(self.tensors, self.trial_path, threads=self.threads, metadata=self.metadata, policy=policy)
        score = float(self.evaluate(load_file(self.trial_path, like=self.like, threads=self.threads)))
        self.evaluations.append(Evaluation(os.path.getsize(self.trial_path), score, **note))
        return header, score

    def _attempt(self, qps: dict, min_step: float = 0.0, **note: Any) -> tuple[dict, float]:
        overrides = {self.pattern[n]: self.curves[n].settings(q) for n, q in qps.items()}
        if min_step:
            for n in self.floored:
                overrides.setdefault(self.pattern[n], {})["min_step"] = min_step
        return self._write_and_score(self.policy.with_overrides(overrides), min_step=min_step, **note)

    def _keep(self, header: dict, score: float, **found: Any) -> bool:
        """Whether the trial keeps the score; it replaces the best file when smaller."""
        if not self.baseline - score <= self.max_drop:  # a NaN score (e.g. overflowing outputs) fails too
            return False
        size = os.path.getsize(self.trial_path)
        if not self.best or size < self.best["bytes"]:
            self.best.update(header=header, score=score, bytes=size, **found)
            os.replace(self.trial_path, self.best_path)
        return True

    def _trial(self, qps: dict, target_db: float, **note: Any) -> tuple[bool, int]:
        key = tuple(sorted(qps.items()))
        if key not in self._tried:
            header, score = self._attempt(qps, target_snr_db=target_db, **note)
            passed = self._keep(header, score, target_snr_db=target_db, qps=qps, min_step=0.0)
            self._tried[key] = passed, self.evaluations[-1].bytes
        return self._tried[key]

    def _shared(self, target_db: float) -> tuple[bool, int]:
        return self._trial(self._qps_for(target_db), target_db)

    def _levels(self, target_db: float) -> tuple[bool, int]:
        """A file with every matrix kept as exact levels of the coarsest step reaching target_db."""
        policy = self.levels_policy.with_overrides({"kind:linear": {"storage": "int8", "target_snr_db": target_db}})
        header, score = self._write_and_score(policy, target_snr_db=target_db, levels=True)
        size = self.evaluations[-1].bytes
        return self._keep(header, score, target_snr_db=target_db, qps={}, min_step=0.0), size

    # --- the phases

    def shared_target(self) -> None:
        """One weight-SNR target for every HEVC tensor, bisected in snr_range until the
        smallest passing and the largest failing file are within 1 % in size (or
        resolution_db apart)."""
        self.curves = {n: _cached_curve(self.curve_cache, n, self.tensors[n], self.plans[n], self.threads) for n in self.coded}
        self.baseline = float(self.evaluate(self.tensors))
        if not math.isfinite(self.baseline):
            raise ValueError(f"evaluate returned {self.baseline} for the uncompressed tensors: a score must be a finite number")
        lo, hi = self.snr_range
        passed, hi_bytes = self._shared(hi)
        if not passed:
            raise Unreachable(
                f"even the finest settings searched ({hi:g} dB per tensor) drop the score by "
                f"{self.baseline - self.evaluations[-1].score:.4g} (> {self.max_drop:g})"
            )
        self._bisect(self._shared, lo, hi, hi_bytes, self.resolution_db)

    @staticmethod
    def _bisect(trial: Callable[[float], tuple[bool, int]], lo: float, hi: float, hi_bytes: int, resolution_db: float) -> None:
        """Given a passing target `hi` (its file hi_bytes long): try `lo`, then bisect
        until the passing and failing targets are resolution_db apart or their files
        within 1 % in size. trial(target) -> (kept the score, bytes) writes each file."""
        passed, lo_bytes = trial(lo)
        while not passed and hi - lo > resolution_db and hi_bytes > (1 + SEARCH_SIZE_RESOLUTION) * lo_bytes:
            mid = (lo + hi) / 2
            ok, size = trial(mid)
            if ok:
                hi, hi_bytes = mid, size
            else:
                lo, lo_bytes = mid, size

    def _measure_sensitivity(self, target: float, at_target: dict) -> dict:
        """Each group alone at the shared target, the others near-lossless: its score
        drop per unit of relative noise energy. Returns the coarsest knob each tensor
        may take."""
        quiet = self._qps_for(self.snr_range[1])
        lowest_db = min(target, max(target - ALLOCATE_SPAN_DB, ALLOCATE_MIN_SNR_DB))
        coarsest = {n: _qps_for_snr(c, lowest_db) for n, c in self.curves.items()}
        min_drop = ALLOCATE_MIN_DROP_SHARE * self.max_drop
        for group in sensitivity_groups(self.curves):
            _, score = self._attempt({**quiet, **{n: at_target[n] for n in group}}, target_snr_db=target, measured=group)
            if self.baseline - score < min_drop:  # no evidence that this group's noise is cheap
                coarsest.update({n: at_target[n] for n in group})
            noise = sum(float(self.curves[n].noise_at(np.array(at_target[n]))) for n in group)
            self.sensitivity.update({n: max(self.baseline - score, min_drop) / noise for n in group})
        return coarsest

    def measured_allocation(self) -> None:
        """Knobs spread by the measured sensitivities (:func:`allocate_qps`), the byte
        budget bisected against the score between 1/2 and 1 times what the shared
        target's knobs take, to within 1 %. Nothing changes with one group."""
        if len(sensitivity_groups(self.curves)) < 2:
            return
        target, at_target = self.best["target_snr_db"], self.best["qps"]
        coarsest = self._measure_sensitivity(target, at_target)
        hi = sum(float(self.curves[n].bytes_at(np.array(q))) for n, q in at_target.items())
        lo = ALLOCATE_LOWEST_BUDGET * hi
        if all(coarsest[n] <= at_target[n] for n in self.curves):
            lo = hi  # no tensor may take fewer bytes than at the shared target: nothing to trade
        while hi / lo > 1 + ALLOCATE_RESOLUTION:
            budget = math.sqrt(lo * hi)
            try:
                qps = allocate_qps(self.curves, budget, self.sensitivity, coarsest)
            except Unreachable:  # below what the curves' coarsest knobs take
                lo = budget
                continue
            if self._trial(qps, target, budget=budget, knobs=dict(qps))[0]:
                hi = budget
            else:
                lo = budget

    def step_floor(self) -> None:
        """With the best file's knobs kept, one shared min_step for the floored tensors,
        raised as far as the score allows: bisection on a log scale between 1/2 and 8
        times the median of their rows' max-abs steps, to within 2^(1/4)."""
        rotated = {n for n in self.floored if n in self.curves and self.curves[n].rotate}
        target, qps = self.best["target_snr_db"], self.best["qps"]
        reference = median_row_step(self.tensors, self.plans, self.floored, rotated)

        def floor(log2_step: float) -> bool:
            step = reference * 2**log2_step
            return self._keep(*self._attempt(qps, step, target_snr_db=target), target_snr_db=target, qps=qps, min_step=step)

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

    def levels_target(self) -> None:
        """The matrices kept as exact levels instead (the data-free default's storage):
        one weight-SNR target for them, bisected like the shared target to within
        LEVELS_RESOLUTION_DB or 1 % in size; the smallest passing file of either kind wins."""
        lo, hi = max(self.snr_range[0], ALLOCATE_MIN_SNR_DB), self.snr_range[1]  # a target must be > 0 dB
        passed, hi_bytes = self._levels(hi)
        if passed:
            self._bisect(self._levels, lo, hi, hi_bytes, LEVELS_RESOLUTION_DB)

    def run(self) -> AccuracyResult:
        """Every phase asked for; the smallest passing file is renamed to `path`."""
        try:
            self.shared_target()
            if self.allocate == "measured":
                self.measured_allocation()
            if self.search_min_step:
                self.step_floor()
            if self.levels:
                self.levels_target()
            os.replace(self.best_path, self.path)
            b = self.best
            return AccuracyResult(
                b["header"], b["target_snr_db"], b["qps"], b["min_step"], b["score"], self.baseline, self.sensitivity, self.evaluations
            )
        finally:
            for p in (self.trial_path, self.best_path):
                if os.path.exists(p):
                    os.remove(p)


def save_file_for_accuracy(
    tensors: Mapping[str, Any],
    path: str,
    evaluate: Callable[[Mapping[str, Any]], float],
    max_drop: float,
    policy: Optional[Policy] = None,
    metadata: Optional[dict] = None,
    threads: Optional[int] = None,
    like: str = "numpy",
    snr_range: tuple = (0.0, 48.0),
    resolution_db: float = 0.05,
    curve_cache: Optional[dict] = None,
    search_min_step: Optional[str] = None,
    allocate: str = "shared",
    levels: bool = False,
) -> AccuracyResult:
    """Write the smallest .wvc file (searching one weight-SNR target shared by the
    HEVC tensors) whose decoded weights keep `evaluate` within `max_drop` of its
    score on the original tensors. evaluate(state) -> score, higher is better;
    state maps names to arrays (like="numpy") or torch tensors (like="torch"), as
    load_file returns them. The target is bisected in `snr_range` until the
    smallest passing and the largest failing file are within 1 % in size (or
    `resolution_db` apart). Each step writes a file, loads and evaluates it; the
    settings come from probe curves, computed once: a QP for a lossy tensor, a step
    (``min_step``, from the plan's own max-abs step up to 128 times it) for one whose
    levels the policy codes losslessly. curve_cache as for save_file_to_size.

    allocate: "shared" (one SNR for every HEVC tensor) or "measured": after the
    shared search, every HEVC tensor holding at least 10 % of their weights (the
    others together: :func:`sensitivity_groups`) is coded alone at the shared
    target, the others near-lossless, and its score drop per unit of relative
    noise energy is its sensitivity; :func:`allocate_qps` then spreads a byte
    budget by those sensitivities (one evaluation per group, about 6 more). No
    tensor goes more than 12 dB below the shared target or below 1 dB (at 0 dB a
    matrix is all zeros, far from where its drop was measured), nor below the
    target at all when its group's drop was under 5 % of max_drop (no evidence
    that its noise is cheap).

    search_min_step: a storage, "int8" (the tensors stored as levels: the conv
    kernels by default) or "hevc" (the lossy HEVC tensors); then, with the knobs
    kept, one shared ``min_step`` for those tensors is raised as far as the score
    allows (about 6 more evaluations).

    levels: then also files with every matrix kept as exact levels (storage int8,
    what the data-free default stores), one weight-SNR target for them bisected in
    snr_range (about 8 more evaluations, no x265); the smaller passing file of
    either kind is written (AccuracyResult.qps is {} when the levels won).

    Returns an :class:`AccuracyResult`; :class:`pyweightvc.errors.Unreachable` when
    even the finest settings miss the bar."""
    return AccuracySearch(
        tensors,
        path,
        evaluate,
        max_drop,
        policy=policy,
        metadata=metadata,
        threads=threads,
        like=like,
        snr_range=snr_range,
        resolution_db=resolution_db,
        curve_cache=curve_cache,
        search_min_step=search_min_step,
        allocate=allocate,
        levels=levels,
    ).run()
