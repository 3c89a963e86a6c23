"""PyTorch adapter: state_dicts and modules to .wvc files and back.

torch is imported here only; the rest of pyweightvc works without it.

    from pyweightvc import torch as wvc_torch
    wvc_torch.save_state_dict(model.state_dict(), "m.wvc", qp=24)
    model.load_state_dict(wvc_torch.load_state_dict("m.wvc"))
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Optional

import torch

from .container import dtype_name, load_file, save_file
from .policy import Policy


def save_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    path: str,
    qp: Optional[int] = None,
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


def load_state_dict(path: str, device: Any = "cpu", threads: Optional[int] = None) -> OrderedDict[str, torch.Tensor]:
    """Decode a .wvc file into an OrderedDict of tensors in their stored dtypes and
    key order, ready for ``model.load_state_dict(sd, strict=True)``."""
    tensors = load_file(path, like="torch", threads=threads)
    return OrderedDict((k, v.to(device)) for k, v in tensors.items())


def save_model(model: torch.nn.Module, path: str, qp: Optional[int] = None, **options: Any) -> dict:
    """save_state_dict(model.state_dict(), path, qp, ...)."""
    return save_state_dict(model.state_dict(), path, qp=qp, **options)


def load_model(model: torch.nn.Module, path: str, strict: bool = True, threads: Optional[int] = None):
    """Load a .wvc file into `model` (on the device of its parameters); returns the model."""
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else "cpu"
    model.load_state_dict(load_state_dict(path, device=device, threads=threads), strict=strict)
    return model


def output_sensitivity(model: torch.nn.Module, inputs: Any, policy: Optional[Policy] = None, noise_db: float = 20.0, seed: int = 0) -> dict:
    """How much each lossy-coded weight tensor's noise moves the model's output, on
    a calibration batch: for each tensor the policy codes with lossy HEVC, Gaussian
    noise at `noise_db` weight SNR is added to it alone and the relative output
    change mean((y' - y)^2) / mean(y^2) measured. Returned per tensor name as a
    weight for :func:`pyweightvc.rate.save_file_to_size` (``sensitivity=``):
    output change per unit of relative noise energy, elements x 10^(-SNR/10).
    inputs: a tensor or a tuple of positional arguments; the first tensor the
    model returns is compared. The model's weights are restored afterwards."""
    policy = (policy or Policy()).searchable()
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    gen = torch.Generator().manual_seed(seed)

    def output():
        y = model(*args)
        while isinstance(y, (tuple, list)):
            y = y[0]
        if isinstance(y, Mapping):
            y = next(iter(y.values()))
        return y.detach().double()

    was_training = model.training
    model.eval()
    out = {}
    try:
        with torch.no_grad():
            ref = output()
            power = float((ref * ref).mean())
            for name, p in model.named_parameters():
                plan = policy.plan(name, dtype_name(p), tuple(p.shape))
                if plan.storage != "hevc" or plan.lossless:
                    continue
                saved = p.detach().clone()
                rms = float(saved.double().pow(2).mean().sqrt())
                noise = torch.randn(p.shape, generator=gen, dtype=torch.float64) * rms * 10 ** (-noise_db / 20)
                p.add_(noise.to(p.dtype).to(p.device))
                try:
                    change = float(((output() - ref) ** 2).mean()) / power if power > 0 else 0.0
                finally:
                    p.copy_(saved)
                out[name] = change / (p.numel() * 10 ** (-noise_db / 10))
    finally:
        model.train(was_training)
    return out
