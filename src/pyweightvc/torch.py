"""PyTorch adapter: state_dicts and modules to .wvc files and back.

torch is imported here only; the rest of pyweightvc works without it.

    from pyweightvc import torch as wvc_torch
    wvc_torch.save_state_dict(model.state_dict(), "m.wvc", qp=24)
    model.load_state_dict(wvc_torch.load_state_dict("m.wvc"))
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Optional

import torch

from .container import load_file, save_file
from .policy import Policy


def save_state_dict(
    state_dict: Mapping[str, "torch.Tensor"],
    path: str,
    qp: int = 24,
    policy: Optional[Policy] = None,
    metadata: Optional[Mapping[str, str]] = None,
    **options: Any,
) -> dict:
    """Compress a state_dict (any dtypes; fp32/fp16/bf16 weights are quantised as
    the policy says, everything else is stored exactly). Tied tensors are stored once.
    Options: threads, progress (see :func:`pyweightvc.save_file`)."""
    for name, t in state_dict.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state_dict entry {name!r} is a {type(t).__name__}, not a tensor")
    return save_file(state_dict, path, qp=qp, policy=policy, metadata=metadata, **options)


def load_state_dict(path: str, device: Any = "cpu", threads: Optional[int] = None) -> "OrderedDict[str, torch.Tensor]":
    """Decode a .wvc file into an OrderedDict of tensors in their stored dtypes and
    key order, ready for ``model.load_state_dict(sd, strict=True)``."""
    tensors = load_file(path, like="torch", threads=threads)
    return OrderedDict((k, v.to(device)) for k, v in tensors.items())


def save_model(model: "torch.nn.Module", path: str, qp: int = 24, **options: Any) -> dict:
    """save_state_dict(model.state_dict(), path, qp, ...)."""
    return save_state_dict(model.state_dict(), path, qp=qp, **options)


def load_model(model: "torch.nn.Module", path: str, strict: bool = True, threads: Optional[int] = None):
    """Load a .wvc file into `model` (on the device of its parameters); returns the model."""
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else "cpu"
    model.load_state_dict(load_state_dict(path, device=device, threads=threads), strict=strict)
    return model
