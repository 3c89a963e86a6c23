"""numcodecs codec ``pyweightvc``: arrays of weights chunk by chunk through
pyweightvc (e.g. as the compressor of a zarr array).

    import numcodecs
    codec = numcodecs.get_codec({"id": "pyweightvc", "qp": 24})

Lossy unless ``lossless=True`` (which still quantises to ``bits``): ``decode``
returns the dequantised values, in the chunk's dtype and shape. Chunks must be
float32, float16 or int8 arrays (raw bytes carry no dtype).
"""

from __future__ import annotations

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray_like, ndarray_copy

from .codec import Decoder, Encoder
from .errors import FormatError
from .settings import DEFAULT_PRESET, DEFAULT_QP


class PyWeightVC(Codec):
    codec_id = "pyweightvc"

    def __init__(
        self,
        qp: int = DEFAULT_QP,
        lossless: bool = False,
        bits: int = 8,
        symmetric: bool = True,
        per_channel: bool = False,
        preset: str = DEFAULT_PRESET,
    ):
        self._encoder = Encoder(qp, lossless=lossless, bits=bits, symmetric=symmetric, per_channel=per_channel, preset=preset)
        self.qp, self.lossless, self.bits = qp, lossless, bits
        self.symmetric, self.per_channel, self.preset = symmetric, per_channel, preset

    def encode(self, buf):
        buf = np.asarray(buf)
        if buf.dtype not in (np.float32, np.float16, np.int8):
            raise TypeError(f"the pyweightvc codec takes float32, float16 or int8 chunks, got {buf.dtype}")
        return self._encoder.encode(buf)

    def decode(self, buf, out=None):
        """The chunk's values; for any content of `buf` only pyweightvc's errors
        (FormatError, DecoderError) are raised."""
        data = ensure_contiguous_ndarray_like(buf).view(np.uint8)
        result = Decoder().decode(np.ascontiguousarray(data))
        if out is not None:
            expected = ensure_contiguous_ndarray_like(out)
            if result.nbytes != expected.nbytes or (
                expected.dtype != object and expected.dtype.itemsize and result.nbytes % expected.dtype.itemsize
            ):
                raise FormatError(
                    f"the chunk decodes to {result.dtype} {result.shape} ({result.nbytes} bytes); out holds {expected.nbytes} bytes"
                )
            return ndarray_copy(result, out)
        return result

    def get_config(self):
        return {
            "id": self.codec_id,
            "qp": self.qp,
            "lossless": self.lossless,
            "bits": self.bits,
            "symmetric": self.symmetric,
            "per_channel": self.per_channel,
            "preset": self.preset,
        }

    def __repr__(self):
        return (
            f"PyWeightVC(qp={self.qp}, lossless={self.lossless}, bits={self.bits}, symmetric={self.symmetric}, "
            f"per_channel={self.per_channel}, preset={self.preset!r})"
        )
