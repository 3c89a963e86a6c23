"""
pyweightvc native core: quantisation kernels, x265 encoder, libde265 decoder
"""

from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing
import typing_extensions

__all__: list[str] = [
    "Decoder",
    "DecoderError",
    "Encoder",
    "EncoderError",
    "MAX_FRAME_SIDE",
    "MIN_FRAME_SIDE",
    "PRESETS",
    "WeightVCError",
    "compute_params",
    "decode_levels",
    "dequantize_levels",
    "encode_levels",
    "max_levels_for_bytes",
    "quantize_levels",
    "rotate_forward",
    "rotate_inverse",
    "rotation_block",
    "versions",
]

class WeightVCError(RuntimeError):
    pass

class EncoderError(WeightVCError):
    pass

class DecoderError(WeightVCError):
    pass

class Encoder:
    def __init__(
        self,
        qp: typing.SupportsInt | typing.SupportsIndex,
        lossless: bool,
        preset: str,
        threads: typing.SupportsInt | typing.SupportsIndex,
        extra: collections.abc.Sequence[tuple[str, str]],
    ) -> None: ...
    def encode(
        self,
        src: numpy.ndarray,
        dtype_code: typing.SupportsInt | typing.SupportsIndex,
        scale: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        zero_point: typing.Annotated[numpy.typing.ArrayLike, numpy.int32],
        bits: typing.SupportsInt | typing.SupportsIndex,
        symmetric: bool,
        max_frame_side: typing.SupportsInt | typing.SupportsIndex,
        dense: bool = False,
    ) -> tuple[bytes, tuple[int, int, int, int]]:
        """
        Quantise src (2-D) into pictures and encode; returns (stream, (tile_h, tile_w, frame_h, frame_w)).
        """
    def options(
        self, frame_w: typing.SupportsInt | typing.SupportsIndex, frame_h: typing.SupportsInt | typing.SupportsIndex
    ) -> list[tuple[str, str]]: ...

class Decoder:
    def __init__(self, threads: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def decode(
        self,
        stream: typing_extensions.Buffer,
        layout: tuple,
        scale: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        zero_point: typing.Annotated[numpy.typing.ArrayLike, numpy.int32],
        bits: typing.SupportsInt | typing.SupportsIndex,
        symmetric: bool,
        out: numpy.ndarray,
        out_type: typing.SupportsInt | typing.SupportsIndex,
        dense: bool = False,
    ) -> None:
        """
        Decode stream into out (levels or values); layout is (rows, cols, tile_h, tile_w, frame_h, frame_w).
        """
    @property
    def threads(self) -> int: ...

def compute_params(
    src: numpy.ndarray,
    dtype_code: typing.SupportsInt | typing.SupportsIndex,
    bits: typing.SupportsInt | typing.SupportsIndex,
    symmetric: bool,
    per_channel: bool,
    threads: typing.SupportsInt | typing.SupportsIndex = 0,
    min_step: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> tuple:
    """
    Scales and zero points of src (2-D); returns (scale, zero_point, symmetric).
    """

def decode_levels(
    stream: typing_extensions.Buffer,
    rows: typing.SupportsInt | typing.SupportsIndex,
    cols: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.int8]:
    """
    Exactly rows x cols int8 levels from a rans level stream; DecoderError when it is not one.
    """

def dequantize_levels(
    levels: typing.Annotated[numpy.typing.ArrayLike, numpy.int8],
    scale: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    zero_point: typing.Annotated[numpy.typing.ArrayLike, numpy.int32],
    bits: typing.SupportsInt | typing.SupportsIndex,
    symmetric: bool,
    out: numpy.ndarray,
    out_type: typing.SupportsInt | typing.SupportsIndex,
    threads: typing.SupportsInt | typing.SupportsIndex = 0,
) -> None: ...
def encode_levels(levels: typing.Annotated[numpy.typing.ArrayLike, numpy.int8]) -> bytes:
    """
    The rans level stream of a 2-D int8 matrix (docs/format.md).
    """

def max_levels_for_bytes(size: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    The most levels a rans level stream of that many bytes can hold.
    """

def quantize_levels(
    src: numpy.ndarray,
    dtype_code: typing.SupportsInt | typing.SupportsIndex,
    scale: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    zero_point: typing.Annotated[numpy.typing.ArrayLike, numpy.int32],
    bits: typing.SupportsInt | typing.SupportsIndex,
    symmetric: bool,
    threads: typing.SupportsInt | typing.SupportsIndex = 0,
) -> numpy.typing.NDArray[numpy.int8]: ...
def rotate_forward(
    src: numpy.ndarray,
    dtype_code: typing.SupportsInt | typing.SupportsIndex,
    block: typing.SupportsInt | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
    threads: typing.SupportsInt | typing.SupportsIndex = 0,
) -> numpy.typing.NDArray[numpy.float32]:
    """
    src (2-D, any float dtype) rotated: a new float32 matrix.
    """

def rotate_inverse(
    data: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    block: typing.SupportsInt | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
    threads: typing.SupportsInt | typing.SupportsIndex = 0,
) -> None:
    """
    Undo rotate_forward in place on a float32 matrix.
    """

def rotation_block(cols: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    Largest power of two dividing cols: the Hadamard block of a rotation.
    """

def versions() -> dict: ...

MAX_FRAME_SIDE: int = 16384
MIN_FRAME_SIDE: int = 16
PRESETS: tuple = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
