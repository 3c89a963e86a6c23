"""Which tensor of a model takes which path.

Default (the paper's pipeline): 2-D float weights (fully connected / linear
layers, embeddings) go through lossy HEVC at the chosen QP; float tensors of rank
>= 3 (convolution kernels) keep their 8-bit levels exactly (deflate-coded,
``storage="int8"``); 1-D tensors (biases, norms), tensors under ``min_elements``
and every integer, bool or float64 tensor are stored raw in their dtype.

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
``target_bpw``, ``rotate``. Giving ``qp``, ``lossless`` or a target without ``storage`` means
``storage="hevc"``.

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
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Mapping, Optional

from .codec import DEFAULT_PRESET, DEFAULT_QP, PRESETS

STORAGES = ("hevc", "int8", "raw")
KINDS = ("linear", "conv", "vector", "small", "other")
SETTING_KEYS = ("storage", "qp", "lossless", "bits", "symmetric", "per_channel", "min_step", "preset",
                "target_snr_db", "target_bpw", "rotate")
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
        q = {"bits": self.bits, "symmetric": self.symmetric, "per_channel": self.per_channel}
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
    if not isinstance(settings, Mapping):
        raise ValueError(f"policy override {key!r}: settings must be a mapping, got {settings!r}")
    unknown = sorted(set(settings) - set(SETTING_KEYS))
    if unknown:
        raise ValueError(
            f"policy override {key!r}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(SETTING_KEYS)}"
        )
    s = dict(settings)
    if "storage" in s and s["storage"] not in STORAGES:
        raise ValueError(f"policy override {key!r}: storage must be one of {', '.join(STORAGES)}, got {s['storage']!r}")
    if "qp" in s and (isinstance(s["qp"], bool) or not isinstance(s["qp"], int) or not 0 <= s["qp"] <= 51):
        raise ValueError(f"policy override {key!r}: qp must be an integer in 0..51, got {s['qp']!r}")
    if "bits" in s and (isinstance(s["bits"], bool) or not isinstance(s["bits"], int) or not 2 <= s["bits"] <= 8):
        raise ValueError(f"policy override {key!r}: bits must be an integer in 2..8, got {s['bits']!r}")
    for flag in ("lossless", "symmetric", "per_channel"):
        if flag in s and not isinstance(s[flag], bool):
            raise ValueError(f"policy override {key!r}: {flag} must be true or false, got {s[flag]!r}")
    if "min_step" in s and (isinstance(s["min_step"], bool) or not isinstance(s["min_step"], (int, float))
                            or not 0 <= s["min_step"] <= 3.0e38):
        raise ValueError(f"policy override {key!r}: min_step must be a finite number >= 0, got {s['min_step']!r}")
    if s.get("min_step") and s.get("storage") == "raw":
        raise ValueError(f"policy override {key!r}: min_step applies to quantised storage (hevc, int8), not raw")
    if "rotate" in s and not (isinstance(s["rotate"], bool) or s["rotate"] == "auto"):
        raise ValueError(f"policy override {key!r}: rotate must be true, false or \"auto\", got {s['rotate']!r}")
    if s.get("rotate") and s.get("storage", "hevc") != "hevc":
        raise ValueError(f"policy override {key!r}: rotate applies to storage \"hevc\" only")
    if "preset" in s and s["preset"] not in PRESETS:
        raise ValueError(f"policy override {key!r}: preset must be one of {', '.join(PRESETS)}, got {s['preset']!r}")
    for t, hi in (("target_snr_db", 200), ("target_bpw", 64)):
        v = s.get(t)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= hi):
            raise ValueError(f"policy override {key!r}: {t} must be a number in (0, {hi}], got {v!r}")
    given = [t for t in TARGET_KEYS if s.get(t) is not None]
    if len(given) > 1 or (given and ("qp" in s or s.get("lossless"))):
        raise ValueError(f"policy override {key!r}: give one of qp, lossless, target_snr_db, target_bpw")
    if ("qp" in s or s.get("lossless") or given) and "storage" not in s:
        s["storage"] = "hevc"
    return s


class Policy:
    """Decides a :class:`TensorPlan` per tensor; see the module docstring."""

    def __init__(
        self,
        qp: int = DEFAULT_QP,
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
        base = _check_settings("<defaults>", {"preset": preset, "target_snr_db": target_snr_db,
                                              "target_bpw": target_bpw, "rotate": rotate})
        base.update(_check_settings("<defaults>", {"qp": qp, "lossless": lossless}))
        if (target_snr_db is not None or target_bpw is not None) and lossless:
            raise ValueError("a target and lossless exclude each other")
        if target_snr_db is not None and target_bpw is not None:
            raise ValueError("give one of target_snr_db and target_bpw")
        self.target_snr_db, self.target_bpw = target_snr_db, target_bpw
        if isinstance(min_elements, bool) or not isinstance(min_elements, int) or min_elements < 0:
            raise ValueError(f"min_elements must be a non-negative integer, got {min_elements!r}")
        if conv_storage not in STORAGES:
            raise ValueError(f"conv_storage must be one of {', '.join(STORAGES)}, got {conv_storage!r}")
        self.qp, self.lossless, self.preset, self.rotate = base["qp"], base["lossless"], base["preset"], rotate
        self.min_elements = min_elements
        self.conv_storage = conv_storage
        if not isinstance(per_channel, bool):
            raise ValueError(f"per_channel must be true or false, got {per_channel!r}")
        self.per_channel = per_channel
        self.kind_overrides: list[tuple[str, dict]] = []
        self.name_overrides: list[tuple[str, Any, dict]] = []
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
                self.name_overrides.append((key, lambda name, pat=key: fnmatch.fnmatchcase(name, pat), s))
        self._overrides = dict(overrides or {})

    def _default(self, kind: str) -> TensorPlan:
        if kind == "linear":
            targeted = self.target_snr_db is not None or self.target_bpw is not None
            return TensorPlan("hevc", kind, qp=None if self.lossless or targeted else self.qp, lossless=self.lossless,
                              per_channel=self.per_channel, preset=self.preset, target_snr_db=self.target_snr_db,
                              target_bpw=self.target_bpw, rotate=self.rotate)
        if kind == "conv":
            return TensorPlan(self.conv_storage, kind, lossless=self.conv_storage == "hevc",
                              per_channel=self.per_channel, preset=self.preset)
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
            raise ValueError(
                f"tensor {name!r} ({dtype}) can only be stored raw; quantised storage takes {', '.join(QUANTIZABLE_DTYPES)}"
            )
        merged = {k: v for k, v in settings.items() if k != "storage"}
        if "min_step" in merged:
            merged["min_step"] = float(merged["min_step"])
        if storage == "raw":
            if merged.get("min_step"):
                raise ValueError(f"tensor {name!r}: min_step applies to quantised storage (hevc, int8), not raw; "
                                 f"match the quantised tensors only, e.g. kind:conv or kind:linear")
            merged["min_step"] = 0.0
        if storage != "hevc":
            if merged.get("rotate"):
                raise ValueError(f"tensor {name!r}: rotate applies to storage \"hevc\" only, not {storage!r}")
            merged["rotate"] = False
        chooser = {"qp": None, "lossless": False, "target_snr_db": None, "target_bpw": None}
        if storage == "hevc":
            # what sets the QP: the override's own choice, else the plan's if it was
            # HEVC already, else the policy's QP
            if merged.get("qp") is not None or merged.get("lossless") or any(merged.get(t) is not None for t in TARGET_KEYS):
                chooser.update({k: merged[k] for k in chooser if k in merged})
            elif plan.storage == "hevc":
                chooser.update(qp=plan.qp, lossless=plan.lossless, target_snr_db=plan.target_snr_db,
                               target_bpw=plan.target_bpw)
            else:
                chooser["qp"] = self.qp
            if chooser["lossless"] or chooser["target_snr_db"] is not None or chooser["target_bpw"] is not None:
                chooser["qp"] = None
        merged.update(chooser)
        return replace(plan, storage=storage, **merged)

    def with_overrides(self, extra: Mapping[str, Mapping[str, Any]]) -> "Policy":
        """This policy with more overrides after its own (later ones win)."""
        return Policy(self.qp, lossless=self.lossless, preset=self.preset, min_elements=self.min_elements,
                      conv_storage=self.conv_storage, per_channel=self.per_channel,
                      target_snr_db=self.target_snr_db, target_bpw=self.target_bpw, rotate=self.rotate,
                      overrides={**self._overrides, **extra})

    def unmatched(self, names: Iterable[str]) -> list[str]:
        """Name patterns that match none of the given tensor names."""
        names = list(names)
        return [key for key, match, _ in self.name_overrides if not any(match(n) for n in names)]

    def to_json(self) -> str:
        return json.dumps(
            {
                "qp": self.qp, "lossless": self.lossless, "preset": self.preset,
                "min_elements": self.min_elements, "conv_storage": self.conv_storage,
                "per_channel": self.per_channel, "target_snr_db": self.target_snr_db, "target_bpw": self.target_bpw,
                "rotate": self.rotate, "overrides": self._overrides,
            },
            sort_keys=True,
        )


def plan_dict(plan: TensorPlan) -> dict:
    return asdict(plan)
