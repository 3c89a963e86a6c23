"""Which tensor of a model takes which path.

With a QP (the paper's pipeline, ``Policy(24)``): 2-D float weights (fully
connected / linear layers, embeddings) go through lossy HEVC at that QP; float
tensors of rank >= 3 (convolution kernels) keep their 8-bit levels exactly
(losslessly coded, ``storage="int8"``); 1-D tensors (biases, norms), tensors under
``min_elements`` and every integer, bool or float64 tensor are stored raw in their
dtype. ``target_snr_db`` / ``target_bpw`` / ``lossless`` choose the matrices' QP
instead.

Without any of them (``Policy()``, the data-free default): the matrices too are
kept as exact levels, of the coarsest step that reaches ``DEFAULT_SNR_DB`` weight
SNR (their 8-bit levels where those reach less). Measured on every kind of model
(docs/results.md): at the weight SNR that keeps transformers, LSTMs and CNNs as
close as plain int8 does, exact levels take fewer bits than lossy HEVC and encode
in a fraction of its time.

One measured departure from the paper: weights are quantised per output channel
(``per_channel=True``; the paper used one scale per tensor, which
``per_channel=False`` restores). Per-tensor scales collapse MiniLM's embeddings
(a few outliers set the scale) and raise the CNNs' output divergence at the same
QP; the default and per-tensor rows of ``pyweightvc bench`` (docs/benchmarks.md)
measure both.

Overrides map a key to settings. A key is a glob on the tensor name
(``"*.embeddings.*"``), a regular expression (``"re:^encoder\\.layer\\.[0-5]\\."``)
or a kind (``"kind:conv"``; kinds: linear, conv, vector, small, other). Kind
overrides apply first, then name patterns in the order given, later ones winning.
Settings: ``storage`` ("hevc", "int8", "raw"), ``qp``, ``lossless``, ``bits``,
``symmetric``, ``per_channel``, ``min_step``, ``preset``, ``target_snr_db``,
``target_bpw``, ``rotate``. Giving ``qp``, ``lossless``, a target or ``rotate`` without
``storage`` means ``storage="hevc"`` (at the policy's QP, or ``DEFAULT_QP`` for the
data-free default). ``storage="int8"`` on a matrix keeps the policy's weight-SNR
target where it has one (the data-free default: ``DEFAULT_SNR_DB``), else its 8-bit
max-abs levels.

``rotate`` (HEVC storage only): False, True, or "auto" — rotate the matrix
(:class:`pyweightvc.codec.Rotation`) where a probe encode says it saves bits at
equal weight SNR (:func:`pyweightvc.rate.rotation_pays`).

``min_step`` (quantised storage): the smallest quantisation step a channel gets
(:class:`pyweightvc.codec.Encoder`); e.g. ``{"kind:conv": {"min_step": 0.003}}``
gives conv kernels one absolute step except where a channel's range needs a
coarser one (docs/rate.md measures it on the ImageNet nets).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

from .settings import DEFAULT_PRESET, DEFAULT_QP, DEFAULT_SNR_DB, STORAGES, check

KINDS = ("linear", "conv", "vector", "small", "other")
SETTING_KEYS = (
    "storage",
    "qp",
    "lossless",
    "bits",
    "symmetric",
    "per_channel",
    "min_step",
    "preset",
    "target_snr_db",
    "target_bpw",
    "rotate",
)
TARGET_KEYS = ("target_snr_db", "target_bpw")
QUANTIZABLE_DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_MIN_ELEMENTS = 1024


@dataclass(frozen=True)
class TensorPlan:
    """How one tensor is stored."""

    storage: str  # "hevc", "int8" or "raw"
    kind: str
    qp: Optional[int] = None  # hevc, lossy
    lossless: bool = False  # hevc
    bits: int = 8
    symmetric: bool = True
    per_channel: bool = False
    preset: str = DEFAULT_PRESET
    target_snr_db: Optional[float] = None  # hevc: choose the QP that reaches this weight SNR
    target_bpw: Optional[float] = None  # hevc: choose the QP that fits these bits per weight
    rotate: Any = False  # hevc: False, True or "auto"
    min_step: float = 0.0  # hevc, int8: smallest quantisation step (0: max-abs scales)

    def quant_options(self) -> dict:
        """The quantiser's settings as keyword arguments of Encoder / quantize; min_step
        only when set, so that entries without it read as before."""
        q: dict[str, Any] = {"bits": self.bits, "symmetric": self.symmetric, "per_channel": self.per_channel}
        if self.min_step:
            q["min_step"] = self.min_step
        return q

    def describe(self) -> str:
        step = f" min_step {self.min_step:g}" if self.min_step else ""
        return self._describe_mode() + step

    def _describe_mode(self) -> str:
        if self.storage == "hevc":
            if self.target_snr_db is not None:
                return f"hevc snr>={self.target_snr_db:g}dB"
            if self.target_bpw is not None:
                return f"hevc bpw<={self.target_bpw:g}"
            how = "hevc lossless" if self.lossless else f"hevc qp {self.qp}"
            return how + ("" if self.rotate is False else " rotated" if self.rotate is True else " rotate=auto")
        if self.storage == "int8" and self.target_snr_db is not None:
            return f"int8 snr>={self.target_snr_db:g}dB"
        return self.storage


def tensor_kind(dtype: str, shape: tuple[int, ...], min_elements: int) -> str:
    numel = 1
    for d in shape:
        numel *= d
    if dtype not in QUANTIZABLE_DTYPES:
        return "other"
    if len(shape) <= 1:
        return "vector"
    if numel < min_elements:
        return "small"
    return "linear" if len(shape) == 2 else "conv"


def _check_settings(key: str, settings: Any) -> dict:
    """Validated settings of one override (`key`), with storage="hevc" implied by a QP,
    lossless, a target or a rotation (a step of the HEVC path)."""
    where = f"policy override {key!r}: "
    if not isinstance(settings, Mapping):
        raise ValueError(f"{where}settings must be a mapping, got {settings!r}")
    unknown = sorted(set(settings) - set(SETTING_KEYS))
    if unknown:
        raise ValueError(f"{where}unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(SETTING_KEYS)}")
    s = {}
    for name, value in settings.items():
        try:
            s[name] = check(name, value)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{where}{exc}") from None
    if s.get("min_step") and s.get("storage") == "raw":
        raise ValueError(f"{where}min_step applies to quantised storage (hevc, int8), not raw")
    if s.get("rotate") and s.get("storage", "hevc") != "hevc":
        raise ValueError(f'{where}rotate applies to storage "hevc" only')
    given = [t for t in TARGET_KEYS if s.get(t) is not None]
    if len(given) > 1 or (given and ("qp" in s or s.get("lossless"))):
        raise ValueError(f"{where}give one of qp, lossless, target_snr_db, target_bpw")
    if ("qp" in s or s.get("lossless") or given or s.get("rotate")) and "storage" not in s:
        s["storage"] = "hevc"
    return s


def _glob(pattern: str) -> Callable[[str], bool]:
    return lambda name: fnmatch.fnmatchcase(name, pattern)


class Policy:
    """Decides a :class:`TensorPlan` per tensor; see the module docstring."""

    # the constructor's settings besides overrides, in order: with_overrides and to_json use them
    FIELDS = ("qp", "lossless", "preset", "min_elements", "conv_storage", "per_channel", "target_snr_db", "target_bpw", "rotate")

    def __init__(
        self,
        qp: Optional[int] = None,
        *,
        lossless: bool = False,
        preset: str = DEFAULT_PRESET,
        min_elements: int = DEFAULT_MIN_ELEMENTS,
        conv_storage: str = "int8",
        per_channel: bool = True,
        target_snr_db: Optional[float] = None,
        target_bpw: Optional[float] = None,
        rotate: Any = False,
        overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
    ):
        self.qp = None if qp is None else check("qp", qp)
        self.lossless = check("lossless", lossless)
        self.preset = check("preset", preset)
        self.per_channel = check("per_channel", per_channel)
        self.target_snr_db = check("target_snr_db", target_snr_db)
        self.target_bpw = check("target_bpw", target_bpw)
        self.rotate = check("rotate", rotate)
        if self.target_snr_db is not None and self.target_bpw is not None:
            raise ValueError("give one of target_snr_db and target_bpw")
        if (self.target_snr_db is not None or self.target_bpw is not None) and self.lossless:
            raise ValueError("a target and lossless exclude each other")
        if self.rotate is not False and self.hevc_choice() is None:
            self.qp = DEFAULT_QP  # rotation is a step of the HEVC path: asking for it asks for that path
        if isinstance(min_elements, bool) or not isinstance(min_elements, int) or min_elements < 0:
            raise ValueError(f"min_elements must be a non-negative integer, got {min_elements!r}")
        self.min_elements = min_elements
        try:
            self.conv_storage = check("storage", conv_storage)
        except ValueError:
            raise ValueError(f"conv_storage must be one of {', '.join(STORAGES)}, got {conv_storage!r}") from None
        self.kind_overrides: list[tuple[str, dict]] = []
        self.name_overrides: list[tuple[str, Callable[[str], Any], dict]] = []
        for key, settings in (overrides or {}).items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"policy override keys must be non-empty strings, got {key!r}")
            s = _check_settings(key, settings)
            if key.startswith("kind:"):
                kind = key[5:]
                if kind not in KINDS:
                    raise ValueError(f"policy override {key!r}: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
                self.kind_overrides.append((kind, s))
            elif key.startswith("re:"):
                try:
                    self.name_overrides.append((key, re.compile(key[3:]).search, s))
                except re.error as exc:
                    raise ValueError(f"policy override {key!r}: bad regular expression: {exc}") from None
            else:
                self.name_overrides.append((key, _glob(key), s))
        self._overrides = dict(overrides or {})

    def settings(self) -> dict:
        """The constructor's arguments that make this policy (overrides included)."""
        return {**{f: getattr(self, f) for f in self.FIELDS}, "overrides": dict(self._overrides)}

    def hevc_choice(self) -> Optional[str]:
        """How the matrices' QP is chosen ("qp", "lossless", "target"), or None for
        the data-free default (matrices kept as levels)."""
        if self.target_snr_db is not None or self.target_bpw is not None:
            return "target"
        return "lossless" if self.lossless else "qp" if self.qp is not None else None

    def _default(self, kind: str) -> TensorPlan:
        if kind == "linear":
            choice = self.hevc_choice()
            if choice is None:
                return TensorPlan("int8", kind, per_channel=self.per_channel, preset=self.preset, target_snr_db=DEFAULT_SNR_DB)
            return TensorPlan(
                "hevc",
                kind,
                qp=self.qp if choice == "qp" else None,
                lossless=self.lossless,
                per_channel=self.per_channel,
                preset=self.preset,
                target_snr_db=self.target_snr_db,
                target_bpw=self.target_bpw,
                rotate=self.rotate,
            )
        if kind == "conv":
            return TensorPlan(
                self.conv_storage, kind, lossless=self.conv_storage == "hevc", per_channel=self.per_channel, preset=self.preset
            )
        return TensorPlan("raw", kind)

    def plan(self, name: str, dtype: str, shape: tuple[int, ...]) -> TensorPlan:
        kind = tensor_kind(dtype, tuple(shape), self.min_elements)
        settings: dict = {}
        for k, s in self.kind_overrides:
            if k == kind:
                settings.update(s)
        for _, match, s in self.name_overrides:
            if match(name):
                settings.update(s)
        plan = self._default(kind)
        if not settings:
            return plan
        storage = settings.get("storage", plan.storage)
        if storage != "raw" and dtype not in QUANTIZABLE_DTYPES:
            raise ValueError(f"tensor {name!r} ({dtype}) can only be stored raw; quantised storage takes {', '.join(QUANTIZABLE_DTYPES)}")
        merged = {k: v for k, v in settings.items() if k != "storage"}
        if "min_step" in merged:
            merged["min_step"] = float(merged["min_step"])
        if storage == "raw":
            if merged.get("min_step"):
                raise ValueError(
                    f"tensor {name!r}: min_step applies to quantised storage (hevc, int8), not raw; "
                    f"match the quantised tensors only, e.g. kind:conv or kind:linear"
                )
            merged["min_step"] = 0.0
        if storage != "hevc":
            if merged.get("rotate"):
                raise ValueError(f'tensor {name!r}: rotate applies to storage "hevc" only, not {storage!r}')
            merged["rotate"] = False
        chooser: dict[str, Any] = {"qp": None, "lossless": False, "target_snr_db": None, "target_bpw": None}
        if storage == "hevc":
            # what sets the QP: the override's own choice, else the plan's if it was
            # HEVC already, else the policy's QP
            if merged.get("qp") is not None or merged.get("lossless") or any(merged.get(t) is not None for t in TARGET_KEYS):
                chooser.update({k: merged[k] for k in chooser if k in merged})
            elif plan.storage == "hevc":
                chooser.update(qp=plan.qp, lossless=plan.lossless, target_snr_db=plan.target_snr_db, target_bpw=plan.target_bpw)
            else:
                chooser["qp"] = DEFAULT_QP if self.qp is None else self.qp
            if chooser["lossless"] or chooser["target_snr_db"] is not None or chooser["target_bpw"] is not None:
                chooser["qp"] = None
        elif storage == "int8":
            # kept levels: a weight-SNR target sets their step (targets.step_for_snr); nothing else applies
            if merged.get("qp") is not None or merged.get("lossless") or merged.get("target_bpw") is not None:
                raise ValueError(
                    f'tensor {name!r}: storage "int8" keeps the levels exactly; of qp, lossless and the targets it takes target_snr_db only'
                )
            chooser["target_snr_db"] = merged.get("target_snr_db", plan.target_snr_db)
        merged.update(chooser)
        return replace(plan, storage=storage, **merged)

    def searchable(self) -> Policy:
        """The base of the searches over QPs (pyweightvc.search): this policy, or, for the
        data-free default, its matrices through lossy HEVC at DEFAULT_QP instead of kept
        as levels (levels have no QP to search)."""
        if self.hevc_choice() is not None:
            return self
        return Policy(**{**self.settings(), "qp": DEFAULT_QP})

    def with_overrides(self, extra: Mapping[str, Mapping[str, Any]]) -> Policy:
        """This policy with more overrides after its own (later ones win)."""
        settings = self.settings()
        return Policy(**{**settings, "overrides": {**settings["overrides"], **extra}})

    def unmatched(self, names: Iterable[str]) -> list[str]:
        """Name patterns that match none of the given tensor names."""
        names = list(names)
        return [key for key, match, _ in self.name_overrides if not any(match(n) for n in names)]

    def to_json(self) -> str:
        return json.dumps(self.settings(), sort_keys=True)
