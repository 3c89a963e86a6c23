"""Tensors in and out: numpy or torch arrays as the 2-D matrices the native core
reads, without importing torch unless a torch tensor is handed over."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

# dtype codes shared with the native core (quantize.hpp) and the blob header.
F32, F16, BF16, I8 = 1, 2, 3, 4
DTYPE_NAMES = {F32: "float32", F16: "float16", BF16: "bfloat16", I8: "int8"}
_NUMPY_CODES = {np.dtype(np.float32): F32, np.dtype(np.float16): F16, np.dtype(np.int8): I8}

# output types of the native decoder (quantize.hpp OutType)
OUT_LEVELS, OUT_F32, OUT_F16, OUT_BF16 = 0, 1, 2, 3

SUPPORTED = "float32, float16, bfloat16 or int8"
MAX_RANK = 32  # dimensions of a tensor in a blob or a .wvc file
MAX_ELEMENTS = 2**48  # elements of a tensor in a blob or a .wvc file (docs/format.md)


class Matrix(NamedTuple):
    data: np.ndarray  # C-contiguous (rows, cols) view of the raw elements
    dtype_code: int
    shape: tuple[int, ...]


def matrix_dims(shape: tuple[int, ...]) -> tuple[int, int]:
    """The 2-D view of a tensor: rank >= 2 -> (dim0, prod(rest)); rank 1 -> one row."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return 1, shape[0]
    return shape[0], math.prod(shape[1:])


def element_count(shape: Any) -> int:
    """The product of a shape's dimensions, or -1 when it exceeds MAX_ELEMENTS
    (stops multiplying there: a hostile shape's product is never built)."""
    if 0 in shape:
        return 0
    n = 1
    for d in shape:
        n *= d
        if n > MAX_ELEMENTS:
            return -1
    return n


def is_torch_tensor(x: Any) -> bool:
    """Whether x is a torch tensor, without importing torch."""
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def as_matrix(x: Any) -> Matrix:
    """Accepts a numpy array or torch tensor of a supported dtype with at least one
    element; non-contiguous or strided input is copied to a contiguous one."""
    if is_torch_tensor(x):
        import torch

        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        codes = {torch.float32: F32, torch.float16: F16, torch.bfloat16: BF16, torch.int8: I8}
        if t.dtype not in codes:
            raise TypeError(f"unsupported tensor dtype {t.dtype}; expected {SUPPORTED}")
        code = codes[t.dtype]
        arr = t.view(torch.int16).numpy() if code == BF16 else t.numpy()
    elif isinstance(x, (np.ndarray, np.generic)):
        arr = np.asarray(x)
        if arr.dtype.name == "bfloat16":  # ml_dtypes.bfloat16
            code = BF16
            arr = arr.view(np.uint16)
        elif arr.dtype in _NUMPY_CODES:
            code = _NUMPY_CODES[arr.dtype]
        else:
            hint = " (convert with .astype(np.float32))" if arr.dtype.kind == "f" else ""
            raise TypeError(f"unsupported array dtype {arr.dtype}; expected {SUPPORTED}{hint}")
    else:
        raise TypeError(f"expected a numpy array or torch tensor, got {type(x).__module__}.{type(x).__name__}")
    shape = tuple(int(d) for d in arr.shape)
    if arr.size == 0:
        raise ValueError(f"cannot encode an empty tensor (shape {shape})")
    rows, cols = matrix_dims(shape)
    data = np.ascontiguousarray(arr).reshape(rows, cols)
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    return Matrix(data, code, shape)


def allocate_output(shape: tuple[int, ...], dtype_code: int, like: str):
    """The array a decoder writes into, its 2-D raw view and the output type code.

    numpy: float32 and float16 stay, bfloat16 becomes float32, int8 stays int8.
    torch: the original dtype, bfloat16 included (written through an int16 view).
    """
    rows, cols = matrix_dims(shape)
    if like == "numpy":
        np_dtype, out_type = {
            F32: (np.float32, OUT_F32),
            F16: (np.float16, OUT_F16),
            BF16: (np.float32, OUT_F32),
            I8: (np.int8, OUT_LEVELS),
        }[dtype_code]
        result = np.empty(shape, dtype=np_dtype)
        return result, result.reshape(rows, cols), out_type
    if like == "torch":
        import torch

        torch_dtype, out_type = {
            F32: (torch.float32, OUT_F32),
            F16: (torch.float16, OUT_F16),
            BF16: (torch.bfloat16, OUT_BF16),
            I8: (torch.int8, OUT_LEVELS),
        }[dtype_code]
        tensor = torch.empty(shape, dtype=torch_dtype)
        raw = tensor.view(torch.int16) if dtype_code == BF16 else tensor
        return tensor, raw.numpy().reshape(rows, cols), out_type
    raise ValueError(f"like must be 'numpy' or 'torch', got {like!r}")
