"""pyweightvc: compress trained neural-network weights with a video codec.

Weights are quantised to 8-bit (or narrower) integers, laid out as monochrome
pictures and coded with HEVC (libx265); libde265 decodes them back.

    >>> import pyweightvc as wvc
    >>> blob = wvc.encode(w, qp=24)
    >>> w2 = wvc.decode(blob)
"""

from . import rate
from ._core import versions as _versions
from .codec import Decoder, Encoder, QuantizedTensor, decode, decode_int8, dequantize, lib_info, quantize, read_header
from .container import load_file, safe_open, save_file
from .errors import ContainerError, DecoderError, EncoderError, FormatError, InputError, WeightVCError
from .folders import compress_folder, decompress_folder
from .policy import Policy
from .settings import DEFAULT_PRESET, DEFAULT_QP, DEFAULT_SNR_DB
from .targets import encode

__version__ = _versions()["pyweightvc"]

__all__ = [
    "Encoder",
    "Decoder",
    "QuantizedTensor",
    "encode",
    "decode",
    "decode_int8",
    "quantize",
    "dequantize",
    "read_header",
    "lib_info",
    "save_file",
    "load_file",
    "safe_open",
    "compress_folder",
    "decompress_folder",
    "Policy",
    "rate",
    "WeightVCError",
    "EncoderError",
    "DecoderError",
    "FormatError",
    "ContainerError",
    "InputError",
    "DEFAULT_QP",
    "DEFAULT_SNR_DB",
    "DEFAULT_PRESET",
    "__version__",
]
