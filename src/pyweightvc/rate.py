"""Choosing the QP for the user: one namespace for the per-tensor targets
(:mod:`pyweightvc.targets`) and the whole-file searches (:mod:`pyweightvc.search`),
as ``pyweightvc.rate.<name>``. docs/rate.md is the guide."""

from .errors import Unreachable
from .search import (
    ALLOCATE_GROUP_SHARE,
    ALLOCATE_LOWEST_BUDGET,
    ALLOCATE_MIN_DROP_SHARE,
    ALLOCATE_MIN_SNR_DB,
    ALLOCATE_RESOLUTION,
    ALLOCATE_SPAN_DB,
    SEARCH_SIZE_RESOLUTION,
    SIZE_ROUNDS,
    AccuracyResult,
    AccuracySearch,
    Evaluation,
    allocate_qps,
    save_file_for_accuracy,
    save_file_to_size,
    sensitivity_groups,
)
from .targets import (
    CURVE_QPS,
    DB_PER_BIT,
    LOSSLESS_RIVAL_QP,
    PROBE_BLOCK_ROWS,
    PROBE_ELEMENTS,
    STEP_KNOBS,
    STEPS_PER_OCTAVE,
    Choice,
    Curve,
    encode_to_target,
    median_row_step,
    resolve_rotate,
    rotation_pays,
    tensor_curve,
)

__all__ = [
    "Unreachable", "Choice", "Curve", "AccuracyResult", "AccuracySearch", "Evaluation",
    "encode_to_target", "rotation_pays", "resolve_rotate", "tensor_curve", "median_row_step",
    "allocate_qps", "sensitivity_groups", "save_file_to_size", "save_file_for_accuracy",
    "CURVE_QPS", "DB_PER_BIT", "LOSSLESS_RIVAL_QP", "PROBE_BLOCK_ROWS", "PROBE_ELEMENTS", "STEP_KNOBS",
    "STEPS_PER_OCTAVE", "SIZE_ROUNDS", "SEARCH_SIZE_RESOLUTION", "ALLOCATE_GROUP_SHARE", "ALLOCATE_LOWEST_BUDGET",
    "ALLOCATE_MIN_DROP_SHARE", "ALLOCATE_MIN_SNR_DB", "ALLOCATE_RESOLUTION", "ALLOCATE_SPAN_DB",
]
