"""Output checks with built-in probe inputs: how close a compressed model's outputs
stay to the original's, without data of the user's.

- ONNX models: both graphs run in ONNX Runtime on probe inputs made from the
  graph's input types and shapes (:func:`onnx_probe_inputs`).
- Hugging Face folders (``config.json``): both models run in transformers on
  built-in sentences (:func:`probe_sentences`); their token embeddings are compared.
- Plain state_dicts have no graph: :func:`weight_snr` reports each tensor's weight SNR.

The figure a bar is set on (``fidelity``) is the mean cosine similarity between
the original's and the compressed model's outputs over the probe inputs (the
lowest over a model's outputs); each check also reports the worst input, the
relative error and, for class-like outputs, top-1 agreement.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .container import load_file
from .errors import InputError
from .folders import SAFETENSORS_SUFFIX, finish_folder, load_checkpoint, model_shards, read_manifest, source_metadata
from .policy import Policy
from .search import AccuracyResult, save_file_for_accuracy

PROBE_SEED = 0
PROBE_INPUTS = 16  # ONNX: inputs per check
PROBE_SENTENCES = 64  # Hugging Face models: sentences per check
UNKNOWN_DIM = 64  # a symbolic dimension other than the batch takes this size


@dataclass
class OutputCheck:
    """The result of one output check."""

    probe: str  # which probe set was used
    inputs: int
    fidelity: float  # mean output cosine to the original's (lowest over outputs); 1.0 is identical
    worst: float  # the lowest cosine of any single input
    outputs: dict = field(default_factory=dict)  # output name -> its figures

    def text(self) -> str:
        parts = [f"output check on {self.inputs} {self.probe}: cosine to the original {self.fidelity:.5f} (worst input {self.worst:.5f})"]
        for name, o in self.outputs.items():
            extra = f", top-1 agreement {100 * o['top1_agreement']:.1f} %" if "top1_agreement" in o else ""
            parts.append(f"  {name}: cosine {o['cosine']:.5f}, relative error {o['relative_error']:.4g}{extra}")
        return "\n".join(parts)


def compare(reference: np.ndarray, output: np.ndarray) -> dict:
    """Per-input cosine (rows of the flattened arrays), relative error, and top-1
    agreement over the last axis when it looks like class scores (more than one)."""
    a = np.asarray(reference, np.float64).reshape(len(reference), -1)
    b = np.asarray(output, np.float64).reshape(len(output), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(norms > 0, (a * b).sum(1) / np.where(norms > 0, norms, 1), np.where((a == b).all(1), 1.0, 0.0))
    out = {
        "cosine": float(cos.mean()),
        "worst": float(cos.min()),
        "relative_error": float(np.linalg.norm(a - b)) / max(float(np.linalg.norm(a)), 1e-30),
    }
    ref, got = np.asarray(reference), np.asarray(output)
    if ref.ndim >= 2 and ref.shape[-1] > 1 and np.issubdtype(ref.dtype, np.floating):
        out["top1_agreement"] = float((ref.argmax(-1) == got.argmax(-1)).mean())
    return out


def _summary(probe: str, inputs: int, outputs: dict) -> OutputCheck:
    return OutputCheck(probe, inputs, min(o["cosine"] for o in outputs.values()), min(o["worst"] for o in outputs.values()), outputs)


# ---------------------------------------------------------------------------
# ONNX


_ONNX_TO_NUMPY = {1: np.float32, 10: np.float16, 11: np.float64, 6: np.int32, 7: np.int64, 9: np.bool_, 2: np.uint8, 3: np.int8}


def onnx_probe_inputs(model: Any, n: int = PROBE_INPUTS, seed: int = PROBE_SEED) -> tuple[str, list[dict]]:
    """Probe inputs for an ONNX model, one dict per input set: float inputs of rank 4
    with 1 or 3 channels are smooth image-like fields in [0, 1] (random photos are
    not to be had offline); other floats are standard normal; integer inputs (token
    ids) are uniform in 0..999; symbolic dimensions take 1 (batch) or 64. Returns
    (a description of the probe set, the inputs)."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    specs = []
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        t = inp.type.tensor_type
        dtype = _ONNX_TO_NUMPY.get(t.elem_type)
        if dtype is None:
            raise ValueError(f"ONNX input {inp.name!r}: element type {t.elem_type} has no probe inputs")
        dims = [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (1 if i == 0 else UNKNOWN_DIM)
            for i, d in enumerate(t.shape.dim)
        ]
        specs.append((inp.name, dtype, dims))
    kinds = set()
    sets = []
    for _ in range(n):
        feed: dict[str, np.ndarray] = {}
        for name, dtype, dims in specs:
            if np.issubdtype(dtype, np.floating) and len(dims) == 4 and dims[1] in (1, 3):
                feed[name] = _smooth_image(rng, dims).astype(dtype)
                kinds.add("image-like fields")
            elif np.issubdtype(dtype, np.floating):
                feed[name] = rng.standard_normal(dims).astype(dtype)
                kinds.add("normal values")
            elif dtype == np.bool_:
                feed[name] = np.ones(dims, np.bool_)
                kinds.add("true masks")
            else:
                feed[name] = rng.integers(0, 1000, dims).astype(dtype)
                kinds.add("token ids 0..999")
        sets.append(feed)
    return f"probe inputs ({', '.join(sorted(kinds))}; seed {seed})", sets


def _smooth_image(rng: np.random.Generator, dims: list) -> np.ndarray:
    """Random smooth fields (a few low-frequency waves per channel plus fine noise), in [0, 1]."""
    n, c, h, w = dims
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.empty(dims, np.float64)
    for i in range(n):
        for j in range(c):
            f = sum(
                rng.uniform(0.2, 1)
                * np.sin(2 * math.pi * (rng.uniform(0.5, 4) * x + rng.uniform(0.5, 4) * y) + rng.uniform(0, 2 * math.pi))
                for _ in range(3)
            )
            out[i, j] = f + 0.1 * rng.standard_normal((h, w))
    lo, hi = out.min(), out.max()
    return (out - lo) / (hi - lo) if hi > lo else np.zeros(dims)


class OnnxProbe:
    """The original model's outputs on the probe inputs, computed once; :meth:`check`
    runs a rebuilt model on the same inputs."""

    def __init__(self, original: Any, n: int = PROBE_INPUTS, seed: int = PROBE_SEED):
        self.description, self.inputs = onnx_probe_inputs(original, n, seed)
        self.names, self.reference = self._run(original)

    @staticmethod
    def _session(model: Any):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def _run(self, model: Any) -> tuple[list, list]:
        session = self._session(model)
        names = [o.name for o in session.get_outputs()]
        runs = [session.run(None, feed) for feed in self.inputs]
        return names, [np.concatenate([np.asarray(r[i]) for r in runs]) for i in range(len(names))]

    def check(self, model: Any) -> OutputCheck:
        _, outputs = self._run(model)
        figures = {name: compare(ref, out) for name, ref, out in zip(self.names, self.reference, outputs)}
        return _summary(self.description, len(self.inputs), figures)


def check_onnx(original: Any, compressed_wvc: str, format: str = "float") -> OutputCheck:
    """Run the original ONNX model (path or ModelProto) and the one rebuilt from a
    .wvc file on the same probe inputs and compare their outputs."""
    from . import onnx as wvc_onnx

    return OnnxProbe(wvc_onnx.load(original)).check(wvc_onnx.decompress(compressed_wvc, format=format))


# ---------------------------------------------------------------------------
# Hugging Face folders


def probe_sentences(n: int = PROBE_SENTENCES) -> list[str]:
    """English sentences made at run time from the first lines of standard-library
    docstrings (deterministic for a Python version; nothing is shipped)."""
    import argparse
    import collections
    import json
    import logging
    import pathlib
    import statistics
    import string
    import textwrap
    import zipfile

    out: list[str] = []
    seen: set = set()
    for module in (collections, json, logging, pathlib, statistics, string, textwrap, zipfile, argparse, os, math):
        for _, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            line = (doc or "").strip().split("\n")[0].strip()
            if 30 <= len(line) <= 200 and line[0].isupper() and line.endswith(".") and line not in seen:
                seen.add(line)
                out.append(line)
                if len(out) == n:
                    return out
    return out


def is_transformers_folder(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "config.json"))


class FolderProbe:
    """A Hugging Face model folder's token embeddings (last hidden state) on the
    probe sentences, computed once; :meth:`check` runs the same model with other
    weights (a state dict, as pyweightvc.load_file(like="torch") gives)."""

    def __init__(self, folder: str, n: int = PROBE_SENTENCES):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.model = AutoModel.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        self.sentences = probe_sentences(n)
        self.batch = tokenizer(self.sentences, padding=True, truncation=True, max_length=64, return_tensors="pt")
        self.original = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.reference = self._embed()

    def _embed(self) -> np.ndarray:
        with self.torch.no_grad():
            hidden = self.model(**self.batch).last_hidden_state
        mask = self.batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(1) / mask.sum(1)).double().numpy()  # mean over each sentence's tokens

    def check(self, state: Mapping[str, Any]) -> OutputCheck:
        own = self.model.state_dict()
        renamed = {_match_key(k, own): v for k, v in state.items()}
        try:
            self.model.load_state_dict({k: self.torch.as_tensor(v) for k, v in renamed.items() if k is not None}, strict=False)
            got = self._embed()
        finally:
            self.model.load_state_dict(self.original)
        figures = {"sentence embedding": compare(self.reference, got)}
        return _summary(f"built-in sentences (mean-pooled last hidden state, {self.model.config.model_type})", len(self.sentences), figures)


def _match_key(key: str, own: Mapping[str, Any]) -> Optional[str]:
    """A checkpoint key as the loaded model names it (with or without the base
    model's prefix, e.g. "bert.")."""
    if key in own:
        return key
    for k in own:
        if k.endswith("." + key) or key.endswith("." + k):
            return k
    return None


def check_folder(original: str, compressed: str) -> OutputCheck:
    """A model folder against the folder pyweightvc compressed it into."""
    state: dict = {}
    for wvc_name in read_manifest(compressed):
        state.update(load_file(os.path.join(compressed, wvc_name), like="torch"))
    return FolderProbe(original).check(state)


# ---------------------------------------------------------------------------
# tensors only


def weight_snr(original: Mapping[str, Any], decoded: Mapping[str, Any]) -> dict:
    """Weight SNR in dB of each float tensor (inf where exact)."""
    out = {}
    for name, x in original.items():
        ref = _as_float64(x)
        if ref is None:
            continue
        noise = float(np.square(ref - _as_float64(decoded[name])).sum())
        signal = float(np.square(ref).sum())
        out[name] = math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal else -math.inf
    return out


def _as_float64(x: Any) -> Optional[np.ndarray]:
    if hasattr(x, "detach"):
        if not x.is_floating_point():
            return None
        return x.detach().cpu().double().numpy()
    arr = np.asarray(x)
    return arr.astype(np.float64) if arr.dtype.kind == "f" else None


# ---------------------------------------------------------------------------
# the smallest file whose outputs stay within a bar


@dataclass
class FidelityResult:
    """What a target-fidelity compress wrote and measured."""

    search: AccuracyResult
    check: OutputCheck  # the output check of the file written


def compress_onnx_for_fidelity(
    original: Any,
    path: str,
    target_fidelity: float,
    policy: Optional[Policy] = None,
    metadata: Optional[dict] = None,
    threads: Optional[int] = None,
) -> FidelityResult:
    """The smallest .wvc file of an ONNX model whose outputs on the probe inputs keep
    a mean cosine of at least `target_fidelity` to the original's (the accuracy
    search of pyweightvc.search driven by the output check)."""
    import onnx

    from . import onnx as wvc_onnx

    model = wvc_onnx.load(original)
    policy = policy or Policy()
    tensors, places, _ = wvc_onnx.extract(model, policy.searchable())
    probe = OnnxProbe(model)
    skeleton = tensors[wvc_onnx.MODEL_KEY].tobytes()

    def check(state: Mapping[str, Any]) -> OutputCheck:
        model = onnx.ModelProto()
        model.ParseFromString(skeleton)
        return probe.check(wvc_onnx.rebuild(model, places, lambda key: state[key]))

    result = _search(tensors, path, check, target_fidelity, policy, {**wvc_onnx.places_metadata(places), **(metadata or {})}, threads)
    return FidelityResult(result, check(load_file(path)))


def compress_folder_for_fidelity(
    src: str, dst: str, target_fidelity: float, policy: Optional[Policy] = None, threads: Optional[int] = None
) -> FidelityResult:
    """The same for a Hugging Face model folder of one .safetensors shard: the
    smallest shard whose model keeps the built-in sentences' embeddings at a mean
    cosine of at least `target_fidelity`."""
    shards = model_shards(src)
    if len(shards) != 1 or not is_transformers_folder(src):
        raise InputError(f"{src}: --target-fidelity takes a model folder with config.json and one .safetensors shard ({len(shards)} here)")
    probe = FolderProbe(src)
    shard = shards[0]
    target = shard[: -len(SAFETENSORS_SUFFIX)] + ".wvc"
    ckpt = load_checkpoint(os.path.join(src, shard))
    os.makedirs(dst, exist_ok=True)
    metadata = source_metadata(shard, ckpt.kind, ckpt.metadata)
    result = _search(
        ckpt.tensors,
        os.path.join(dst, target),
        probe.check,
        target_fidelity,
        policy or Policy(),
        metadata,
        threads,
        like="torch",
    )
    finish_folder(src, dst, {target: shard})
    return FidelityResult(result, probe.check(load_file(os.path.join(dst, target), like="torch")))


def _search(
    tensors: Mapping[str, Any],
    path: str,
    check: Callable[[Any], OutputCheck],
    target_fidelity: float,
    policy: Policy,
    metadata: dict,
    threads: Optional[int],
    like: str = "numpy",
) -> AccuracyResult:
    """The accuracy search with the output check as its score; given the data-free
    default (no QP or target), exact levels are searched beside HEVC and the smaller
    file kept."""
    if isinstance(target_fidelity, bool) or not isinstance(target_fidelity, (int, float)) or not 0 < target_fidelity <= 1:
        raise ValueError(f"target_fidelity must be a cosine in (0, 1], got {target_fidelity!r}")
    return save_file_for_accuracy(
        tensors,
        path,
        lambda state: check(state).fidelity,
        1.0 - target_fidelity,
        policy=policy,
        metadata={**metadata, "target_fidelity": repr(target_fidelity)},
        threads=threads,
        like=like,
        levels=policy.hevc_choice() is None,
    )
