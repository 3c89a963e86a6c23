"""Exception hierarchy: everything pyweightvc raises for codec or file problems
derives from :class:`WeightVCError`; bad arguments raise ``ValueError`` /
``TypeError`` naming the allowed values."""

from ._core import DecoderError, EncoderError, WeightVCError


class FormatError(WeightVCError):
    """An encoded tensor is truncated, corrupted or not a pyweightvc blob."""


class ContainerError(WeightVCError):
    """A .wvc model file is malformed, inconsistent or hostile."""


__all__ = ["WeightVCError", "EncoderError", "DecoderError", "FormatError", "ContainerError"]
