"""Every user-facing setting, defined once: its default, its allowed values and its
help text. :class:`pyweightvc.Encoder`, :class:`pyweightvc.Policy` and the command
line validate through :func:`check`, so a setting means the same everywhere and
its error message names the same range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ._core import MAX_FRAME_SIDE, MIN_FRAME_SIDE
from ._core import PRESETS as _NATIVE_PRESETS

DEFAULT_QP = 24
# The data-free default of a model (Policy() without a QP or target): each matrix kept
# as levels of the coarsest step that reaches this weight SNR. Chosen by its effect on
# every kind of model against plain int8 (docs/results.md, benchmarks/default_policy.py).
DEFAULT_SNR_DB = 36.0
DEFAULT_PRESET = "fast"  # same size as "medium" within 0.05 % on weight pictures, faster
# Frames of at most 2048 x 2048 samples; see docs/format.md and
# benchmarks/core_bench.py for the measurement behind the default.
DEFAULT_MAX_FRAME_SIDE = 2048
PRESETS: tuple[str, ...] = tuple(_NATIVE_PRESETS)
STORAGES = ("hevc", "int8", "raw")
MAX_THREADS = 256


@dataclass(frozen=True)
class Setting:
    """One setting: ``check(value)`` returns the value in its canonical type or
    raises ValueError / TypeError naming what is allowed."""

    name: str
    default: Any
    help: str
    check: Callable[[Any], Any]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _integer(name: str, lo: int, hi: int, none_means: Optional[str] = None) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v is None and none_means:
            return None
        if not _is_int(v) or not lo <= v <= hi:
            allowed = f"None ({none_means}) or an integer in {lo}..{hi}" if none_means else f"an integer in {lo}..{hi}"
            raise ValueError(f"{name} must be {allowed}, got {v!r}")
        return int(v)

    return check


def _number(name: str, lo: float, hi: float, *, open_low: bool, none_ok: bool = False) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v is None and none_ok:
            return None
        if not _is_number(v) or not math.isfinite(v) or not (lo < v if open_low else lo <= v) or v > hi:
            allowed = f"a number in ({lo:g}, {hi:g}]" if open_low else f"a finite number >= {lo:g}"
            raise ValueError(f"{name} must be {allowed}, got {v!r}")
        return float(v)

    return check


def _flag(name: str) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool (True or False), got {v!r}")
        return bool(v)

    return check


def _choice(name: str, allowed: tuple) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if not isinstance(v, str) or v not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {v!r}")
        return v

    return check


def _rotate(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if v == "auto":
        return "auto"
    raise TypeError(f'rotate must be True, False or "auto", got {v!r}')


_ALL = (
    Setting(
        "qp",
        DEFAULT_QP,
        "HEVC quantiser 0..51: lower is larger and closer (a policy without one keeps its matrices as levels)",
        _integer("qp", 0, 51),
    ),
    Setting("lossless", False, "code the integer levels exactly", _flag("lossless")),
    Setting("bits", 8, "quantiser width 2..8", _integer("bits", 2, 8)),
    Setting("symmetric", True, "zero point 0 (the paper's choice; codes far better)", _flag("symmetric")),
    Setting("per_channel", False, "one scale per output channel (axis 0)", _flag("per_channel")),
    Setting(
        "min_step", 0.0, "smallest quantisation step any channel gets (0: max-abs scales)", _number("min_step", 0.0, 3.0e38, open_low=False)
    ),
    Setting("preset", DEFAULT_PRESET, "x265 preset", _choice("preset", PRESETS)),
    Setting("threads", None, "threads per native call (None: all cores)", _integer("threads", 1, MAX_THREADS, none_means="all cores")),
    Setting(
        "max_frame_side",
        DEFAULT_MAX_FRAME_SIDE,
        "matrices are cut into frames no larger than this per side",
        _integer("max_frame_side", int(MIN_FRAME_SIDE), int(MAX_FRAME_SIDE)),
    ),
    Setting(
        "rotate",
        False,
        'rotate the rows before quantising (seeded Hadamard): True, False or "auto" '
        "(a policy decides per tensor where a probe encode says it saves bits)",
        _rotate,
    ),
    Setting("rotation_seed", 0, "seed of the rotation's random signs", _integer("rotation_seed", 0, 2**64 - 1)),
    Setting(
        "target_snr_db",
        None,
        "instead of a QP: the weight SNR (dB) the decoded tensor must reach",
        _number("target_snr_db", 0.0, 200.0, open_low=True, none_ok=True),
    ),
    Setting(
        "target_bpw",
        None,
        "instead of a QP: bits per weight the tensor must fit in",
        _number("target_bpw", 0.0, 64.0, open_low=True, none_ok=True),
    ),
    Setting("storage", "hevc", "how a tensor is stored: hevc, int8 (exact levels, losslessly coded) or raw", _choice("storage", STORAGES)),
)
SETTINGS: dict[str, Setting] = {s.name: s for s in _ALL}


def check(name: str, value: Any) -> Any:
    """The value of setting `name` in its canonical type; ValueError / TypeError
    naming the allowed values otherwise."""
    return SETTINGS[name].check(value)


def native_threads(threads: Optional[int]) -> int:
    """The thread count the native core takes: 0 for all cores."""
    value = check("threads", threads)
    return 0 if value is None else value


__all__ = [
    "SETTINGS",
    "Setting",
    "check",
    "native_threads",
    "DEFAULT_QP",
    "DEFAULT_PRESET",
    "DEFAULT_MAX_FRAME_SIDE",
    "PRESETS",
    "STORAGES",
]
