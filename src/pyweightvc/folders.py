"""Checkpoint files and Hugging Face model folders in and out.

- :func:`load_checkpoint`: the tensors of a PyTorch checkpoint (read with
  ``torch.load(weights_only=True)``) or a .safetensors file.
- :func:`compress_checkpoint` / :func:`decompress_checkpoint`: one such file to a
  .wvc file and back (.pt, .pth, .bin or .safetensors).
- :func:`compress_folder` / :func:`decompress_folder`: a model folder of
  .safetensors shards; each shard becomes a .wvc file, every other file (config,
  tokenizer, index) is copied, and a manifest ``pyweightvc.json`` says which .wvc
  file is which shard (specified in docs/format.md).
"""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import shutil
import struct
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ._arrays import is_torch_tensor
from ._files import atomic_write
from .container import RAW_DTYPES, dtype_name, load_file, safe_open, save_file
from .distributed import (
    SAFETENSORS_DTYPES,
    ShardJob,
    compress_shards,
    local_cores,
    open_safetensors,
    shard_tensors,
    tensor_framework,
)
from .errors import InputError, WeightVCError
from .policy import Policy
from .search import save_file_to_size

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
# a .wvc made from a .safetensors file keeps that file's own metadata under this key
SAFETENSORS_META_KEY = "safetensors_metadata"
FOLDER_MANIFEST = "pyweightvc.json"
MANIFEST_FORMAT, MANIFEST_VERSION = "pyweightvc-folder", 1
SAFETENSORS_INDEX = "model.safetensors.index.json"

Progress = Optional[Callable[[str, int], None]]  # (tensor name, its elements), after each tensor


@dataclass
class Checkpoint:
    tensors: dict  # name -> torch tensor or numpy array, in file order
    kind: str  # what was read: "state_dict", "state_dict under key 'model'", "safetensors"
    metadata: dict  # str -> str to keep in the .wvc file


@dataclass
class FolderResult:
    headers: dict  # "shard:tensor" -> header entry
    bytes: int  # of the .wvc files
    shards: dict  # .wvc file -> the .safetensors shard it holds


def load_checkpoint(path: str) -> Checkpoint:
    """The tensors of a PyTorch checkpoint (.pt, .pth, .bin; weights only, no
    arbitrary code) or a .safetensors file. InputError says why a file is unusable."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if path.endswith(SAFETENSORS_SUFFIX):
        tensors, st_meta = _load_safetensors(path)
        return Checkpoint(_supported(tensors, path), "safetensors", _safetensors_metadata(st_meta))
    if not path.endswith(CHECKPOINT_SUFFIXES):
        raise InputError(f"{path}: unknown checkpoint type; expected {', '.join(CHECKPOINT_SUFFIXES)} or {SAFETENSORS_SUFFIX}")
    try:
        import torch
    except ImportError:
        raise InputError("reading PyTorch checkpoints needs torch: pip install torch") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's weights-only unpickler names the forbidden callable in a GLOBAL line
        forbidden = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if not forbidden:
            raise InputError(f"{path}: not a PyTorch checkpoint (it does not unpickle)") from None
        raise InputError(
            f"{path}: refused: the checkpoint is a pickle that needs arbitrary code to load "
            f"(only tensors and plain containers are read, torch.load(weights_only=True)): {forbidden[0]}"
        ) from None
    except Exception:  # zip, EOF, magic-number errors differ across torch versions
        raise InputError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle that torch.load can read)") from None
    tensors, kind = _state_dict_of(obj, path)
    return Checkpoint(_supported(tensors, path), kind, {})


def _supported(tensors: dict, path: str) -> dict:
    for name, x in tensors.items():
        try:
            dtype_name(x)
        except TypeError as exc:
            raise InputError(f"{path}: tensor {name!r}: {exc}") from None
    return tensors


def _is_tensor(x: Any) -> bool:
    return is_torch_tensor(x) or isinstance(x, np.ndarray)


def _state_dict_of(obj: Any, path: str) -> tuple[dict, str]:
    if isinstance(obj, dict) and obj and all(_is_tensor(v) for v in obj.values()):
        return dict(obj), "state_dict"
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(_is_tensor(v) for v in inner.values()):
                return dict(inner), f"state_dict under key {key!r}"
        bad = [k for k, v in obj.items() if not _is_tensor(v)][:5]
        raise InputError(f"{path}: not a state_dict: entries {bad} are not tensors")
    raise InputError(f"{path}: not a state_dict but a {type(obj).__name__}")


def source_metadata(path: str, kind: str, extra: dict) -> dict:
    """The .wvc metadata of a file made from the checkpoint at `path` (its name and
    kind, docs/format.md), with the checkpoint's own `extra`."""
    return {"source": os.path.basename(path), "source_kind": kind, **extra}


def _safetensors_metadata(st_meta: Optional[dict]) -> dict:
    """A safetensors file's own metadata, kept for decompress to write back."""
    return {SAFETENSORS_META_KEY: json.dumps(st_meta or {}, sort_keys=True)}


def _load_safetensors(path: str) -> tuple[dict, dict]:
    with open_safetensors(path, tensor_framework()) as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def checkpoint_elements(path: str) -> int:
    """Elements in a .safetensors file, from its header alone."""
    from safetensors import safe_open as st_open

    with st_open(path, framework="np") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def compress_checkpoint(
    src: str,
    dst: str,
    policy: Optional[Policy] = None,
    *,
    threads: Optional[int] = None,
    target_size: Optional[int] = None,
    progress: Progress = None,
    checkpoint: Optional[Checkpoint] = None,
) -> dict:
    """One checkpoint file (or an already loaded `checkpoint`) to a .wvc file; with
    `target_size`, the file fits in that many bytes (:func:`pyweightvc.search.save_file_to_size`).
    Returns the header written."""
    ckpt = checkpoint or load_checkpoint(src)
    metadata = source_metadata(src, ckpt.kind, ckpt.metadata)
    if target_size is not None:

        def each(name: str) -> None:
            if progress:
                progress(name, math.prod(ckpt.tensors[name].shape))

        return save_file_to_size(ckpt.tensors, dst, target_size, policy=policy, metadata=metadata, threads=threads, progress=each)
    return save_file(ckpt.tensors, dst, policy=policy, threads=threads, metadata=metadata, progress=progress)


def decompress_checkpoint(src: str, dst: str, threads: Optional[int] = None) -> int:
    """Decode a .wvc file into a .pt/.pth/.bin (torch.save) or .safetensors file,
    written atomically; a .safetensors source's own metadata is restored. Returns
    the number of tensors."""
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    if not dst.endswith(CHECKPOINT_SUFFIXES + (SAFETENSORS_SUFFIX,)):
        raise InputError(f"{dst}: a checkpoint ends in {', '.join(CHECKPOINT_SUFFIXES)} or {SAFETENSORS_SUFFIX}")
    if torch is None and not dst.endswith(SAFETENSORS_SUFFIX):
        raise InputError(f"writing {os.path.splitext(dst)[1]} needs torch: pip install torch")
    if not os.path.isfile(src):
        raise InputError(f"{src}: no such file")
    with safe_open(src) as f:
        st_meta = f.metadata().get(SAFETENSORS_META_KEY)
    if torch is not None and dst.endswith(SAFETENSORS_SUFFIX):
        with ThreadPoolExecutor(threads or local_cores()) as pool:
            return _stream_safetensors(src, dst, st_meta, pool, threading.Event())
    tensors = load_file(src, like="torch" if torch else "numpy", threads=threads)

    def write(tmp: str) -> None:
        if dst.endswith(SAFETENSORS_SUFFIX):
            # safetensors stores no shared tensors: tied ones become copies
            seen, unique = set(), {}
            for k, v in tensors.items():
                unique[k] = v.clone() if torch and id(v) in seen else v
                seen.add(id(v))
            import safetensors.numpy
            import safetensors.torch

            st_save: Any = safetensors.torch.save_file if torch else safetensors.numpy.save_file
            st_save(unique, tmp, metadata=json.loads(st_meta) if st_meta else {"format": "pt"})
        else:
            torch.save(tensors, tmp)

    atomic_write(dst, write)
    return len(tensors)


_ST_CODES = {name: code for code, name in SAFETENSORS_DTYPES.items()}


def _stream_safetensors(src: str, dst: str, st_meta: Optional[str], pool: ThreadPoolExecutor, stop: threading.Event) -> int:
    """Decode a .wvc file into a .safetensors file (torch dtypes, bfloat16 kept)
    without holding it in memory: the header first, from the .wvc header, then each
    tensor decoded by a task of `pool` (one decoder thread each, largest first) and
    written at its offset. Atomic; `stop` set makes the tasks not started give up.
    Returns the number of tensors."""
    with safe_open(src, threads=1) as f:
        entries = {name: f.entry(name) for name in f.keys()}
        header: dict = {"__metadata__": json.loads(st_meta) if st_meta else {"format": "pt"}}
        offset = 0
        for name, e in entries.items():
            size = math.prod(e["shape"]) * RAW_DTYPES[e["dtype"]]
            header[name] = {"dtype": _ST_CODES[e["dtype"]], "shape": e["shape"], "data_offsets": [offset, offset + size]}
            offset += size
        blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
        blob += b" " * (-len(blob) % 8)
        start = 8 + len(blob)

        def one(fd: int, name: str) -> None:
            if stop.is_set():
                raise KeyboardInterrupt
            import torch

            t = f.get_tensor(name, like="torch")
            flat = t.contiguous().reshape(-1)
            if flat.numel():
                data = flat.view(torch.uint8).numpy()
                written = os.pwrite(fd, data, start + header[name]["data_offsets"][0])
                if written != data.nbytes:
                    raise OSError(errno.EIO, f"short write of tensor {name!r}", dst)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as out:
                out.write(struct.pack("<Q", len(blob)) + blob)
                out.truncate(start + offset)
                order = sorted(entries, key=lambda n: -header[n]["data_offsets"][1] + header[n]["data_offsets"][0])
                futures = [pool.submit(one, out.fileno(), name) for name in order]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    stop.set()
                    for future in futures:
                        future.cancel()
                    wait(futures)  # no task writes to the file once it is removed
                    raise
                out.flush()
                os.fsync(out.fileno())

        atomic_write(dst, write)
    return len(entries)


def model_shards(folder: str) -> list[str]:
    """The .safetensors files of a model folder: those its index names, or all."""
    index = os.path.join(folder, SAFETENSORS_INDEX)
    if os.path.isfile(index):
        try:
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{index}: not a safetensors index ({exc})") from None
        missing = [s for s in shards if os.sep in s or not os.path.isfile(os.path.join(folder, s))]
        if missing:
            raise InputError(f"{index} names shards that are not in the folder: {missing}")
        return shards
    shards = sorted(n for n in os.listdir(folder) if n.endswith(SAFETENSORS_SUFFIX))
    if not shards:
        raise InputError(f"{folder}: a model folder to compress must hold .safetensors files")
    return shards


def _copy_other_files(src: str, dst: str, skip: Callable[[str], bool]) -> None:
    for name in sorted(os.listdir(src)):
        if skip(name):
            continue
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if os.path.isdir(s):
            shutil.copytree(s, d, dirs_exist_ok=True)
        else:
            shutil.copy2(s, d)


def folder_elements(folder: str) -> int:
    """Elements in all the .safetensors shards of a model folder (headers only)."""
    return sum(checkpoint_elements(os.path.join(folder, s)) for s in model_shards(folder))


def compress_folder(
    src: str,
    dst: str,
    policy: Optional[Policy] = None,
    *,
    threads: Optional[int] = None,
    progress: Progress = None,
    client: Any = None,
    scheduler: Optional[str] = None,
    workers: Optional[int] = None,
    resume: bool = False,
) -> FolderResult:
    """A model folder (sharded or not): each .safetensors shard becomes a .wvc file;
    every other file is copied; the manifest is written last, so a folder without
    one is incomplete.

    One tensor per task, read by its worker from the shard's memory map; each shard
    is written as soon as its tensors are done (:mod:`pyweightvc.distributed`).
    client: a ``dask.distributed.Client`` (its workers read the shards: on a remote
    cluster `src` must be at the same path on every worker). scheduler:
    "local" or a Dask scheduler address. workers: 1 runs in this process; more, or
    the default (every core), start a Dask LocalCluster when Dask is installed.
    threads: encoder threads per task. resume: keep the .wvc shards already in
    `dst` that verify (same source and policy, every checksum) instead of coding
    them again. The bytes written do not depend on the executor or worker count."""
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise InputError(f"{dst}: exists and is not a folder")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise InputError("the output folder must differ from the input folder")
    policy = policy or Policy()
    shards = model_shards(src)
    os.makedirs(dst, exist_ok=True)
    manifest = {_wvc_name(shard): shard for shard in shards}
    headers: dict[str, dict] = {}
    jobs = []
    for target, shard in manifest.items():
        source = os.path.abspath(os.path.join(src, shard))
        job = ShardJob(source, os.path.abspath(os.path.join(dst, target)), _shard_metadata(source))
        header = _finished_shard(job, policy) if resume else None
        if header is None:
            jobs.append(job)
        else:
            headers[shard] = header
            if progress:
                for name, e in header.items():
                    progress(name, math.prod(e["shape"]))

    def written(job: ShardJob, header: dict) -> None:
        headers[os.path.basename(job.source)] = header

    compress_shards(jobs, policy, client=client, scheduler=scheduler, workers=workers, threads=threads, progress=progress, written=written)
    finish_folder(src, dst, manifest)
    size = sum(os.path.getsize(os.path.join(dst, target)) for target in manifest)
    merged = {f"{shard}:{k}": v for shard in shards for k, v in headers[shard].items()}
    return FolderResult(merged, size, manifest)


def finish_folder(src: str, dst: str, manifest: dict) -> None:
    """Copy the model folder's other files and write the manifest (.wvc file ->
    shard), last: the shards must be written already."""
    _copy_other_files(src, dst, skip=lambda n: n in manifest.values() or n == FOLDER_MANIFEST)
    text = json.dumps({"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "shards": manifest}, indent=1)
    atomic_write(os.path.join(dst, FOLDER_MANIFEST), lambda tmp: _write_text(tmp, text))


def _wvc_name(shard: str) -> str:
    return shard[: -len(SAFETENSORS_SUFFIX)] + ".wvc"


def _shard_metadata(path: str) -> dict:
    """The .wvc metadata of a shard, as :func:`compress_checkpoint` writes it."""
    with open_safetensors(path) as f:
        st_meta = f.metadata()
    return source_metadata(path, "safetensors", _safetensors_metadata(st_meta))


def _finished_shard(job: ShardJob, policy: Policy) -> Optional[dict]:
    """The header of `job`'s .wvc file if it is there and complete: written from the
    same shard (name and metadata) under the same policy, the shard's tensors in its
    order, and every tensor's checksum right. None otherwise (it is coded again)."""
    if not os.path.isfile(job.target):
        return None
    try:
        with safe_open(job.target) as f:
            meta = f.metadata()
            header = {k: f.written_entry(k) for k in f.keys()}
            if meta.get("policy") != policy.to_json() or any(meta.get(k) != v for k, v in job.metadata.items()):
                return None
            if list(header) != [name for name, _, _ in shard_tensors(job.source)]:
                return None
            if not f.checksums_ok():
                return None
    except (WeightVCError, OSError, ValueError, KeyError):
        return None
    return header


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def read_manifest(folder: str) -> dict:
    """The manifest of a folder written by :func:`compress_folder`: .wvc file -> shard."""
    path = os.path.join(folder, FOLDER_MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise InputError(f"{folder}: not a folder written by pyweightvc (no {FOLDER_MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc})") from None
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(shards, dict) or manifest.get("format") != MANIFEST_FORMAT or manifest.get("version") != MANIFEST_VERSION:
        raise InputError(f"{path}: not a {MANIFEST_FORMAT} manifest of version {MANIFEST_VERSION}")
    for wvc_name, st_name in shards.items():
        if (
            not isinstance(st_name, str)
            or os.sep in wvc_name
            or os.sep in st_name
            or not wvc_name.endswith(".wvc")
            or not st_name.endswith(SAFETENSORS_SUFFIX)
        ):
            raise InputError(f"{path}: bad shard entry {wvc_name!r}: {st_name!r}")
    return shards


def decompress_folder(src: str, dst: str, threads: Optional[int] = None) -> tuple[int, int]:
    """A folder from :func:`compress_folder` back to .safetensors shards; every other
    file is copied. Returns (tensors, bytes of the shards)."""
    shards = read_manifest(src)
    os.makedirs(dst, exist_ok=True)
    try:
        import torch  # noqa: F401
    except ImportError:
        count = sum(decompress_checkpoint(os.path.join(src, w), os.path.join(dst, s), threads) for w, s in shards.items())
    else:
        count = _decompress_shards(src, dst, shards, threads)
    _copy_other_files(src, dst, skip=lambda n: n in shards or n == FOLDER_MANIFEST)
    return count, sum(os.path.getsize(os.path.join(dst, s)) for s in shards.values())


def _decompress_shards(src: str, dst: str, shards: dict, threads: Optional[int]) -> int:
    """Every shard of a folder decoded at once, tensors as tasks of one pool of
    `threads` (default: every core) decoder threads, two shards in progress so that
    no core waits for a shard's last tensor; each shard streamed to its file. On
    Ctrl-C or an error the tasks not started are dropped and every temporary file
    is removed before this returns."""
    stop = threading.Event()
    with ThreadPoolExecutor(threads or local_cores()) as pool, ThreadPoolExecutor(2) as shard_pool:

        def one(wvc_name: str, st_name: str) -> int:
            path = os.path.join(src, wvc_name)
            with safe_open(path) as f:
                st_meta = f.metadata().get(SAFETENSORS_META_KEY)
            return _stream_safetensors(path, os.path.join(dst, st_name), st_meta, pool, stop)

        futures = [shard_pool.submit(one, w, s) for w, s in shards.items()]
        try:
            return sum(future.result() for future in futures)
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            wait(futures)
            raise
