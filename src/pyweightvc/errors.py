"""Every exception pyweightvc defines.

Problems with a codec, a file or an input model derive from :class:`WeightVCError`;
bad arguments raise ``ValueError`` / ``TypeError`` naming the allowed values.
"""

from ._core import DecoderError, EncoderError, WeightVCError


class FormatError(WeightVCError):
    """An encoded tensor is truncated, corrupted or not a pyweightvc blob."""


class ContainerError(WeightVCError):
    """A .wvc model file is malformed, inconsistent or hostile."""


class InputError(WeightVCError, ValueError):
    """An input model pyweightvc cannot use: not a checkpoint, a pickle that needs
    arbitrary code, a folder without weights."""


class Unreachable(ValueError):
    """A target (weight SNR, bits per weight, file size or score) cannot be met with
    these settings; the message says how far off the nearest reachable point is."""


__all__ = ["WeightVCError", "EncoderError", "DecoderError", "FormatError", "ContainerError", "InputError", "Unreachable"]
