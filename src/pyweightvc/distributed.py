"""Tensors as tasks: the shards of a model folder compressed on every local core or
on a Dask cluster, each .wvc shard written as soon as its tensors are done.

The engine behind :func:`pyweightvc.folders.compress_folder`. A task is one tensor:
the worker that runs it reads that tensor itself from its .safetensors shard
(memory-mapped; on a remote cluster the shard's path must be the same on every
worker: a shared file system) and returns the compressed entry and bytes that
:func:`pyweightvc.container.save_file` would store, never gigabytes of weights
through the scheduler. The client assembles each shard with
:func:`pyweightvc.container.write_file` (atomically) when its last tensor is back,
so it holds at most the compressed bytes of the shards in progress. Tasks run
shard by shard, largest tensor first within a shard: the long ones start early
and a shard completes soon after the previous one.

Executors:

- in this process (``workers=1`` and no client or scheduler): one tensor at a
  time, its encoder on every core (``threads=None``);
- a Dask ``LocalCluster`` of ``workers`` processes with one thread each
  (``scheduler="local"``, or ``workers`` > 1), one encoder thread per task;
- a running Dask cluster (``scheduler="tcp://host:8786"`` or ``client=``), one
  encoder thread per task (start workers with ``--nthreads`` = their cores).

The same tensors and settings give the same bytes in every case: x265's bitstream
does not depend on its thread count, and the file is assembled in the shard's
tensor order whatever order the tasks finish in. Dask re-runs the tasks of a
worker that dies elsewhere. Needs ``pip install 'pyweightvc[distributed]'`` for
anything but the in-process executor.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import as_completed as _as_completed_local
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .container import encode_tensor, warn_non_finite, write_file
from .errors import InputError
from .policy import Policy, TensorPlan

# dtype codes of a safetensors header -> the dtype names of a .wvc file
SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}
LOCAL = "local"
# no dashboard, and the scheduler's HTTP server (health, metrics) on a free port
# rather than 8787, which another cluster on the machine may hold
LOCAL_CLUSTER_OPTIONS: dict = {"dashboard_address": None, "scheduler_kwargs": {"dashboard_address": ":0"}}
# seconds a Dask LocalCluster started here may take to shut down, and to do it by
# itself on Ctrl-C or an error before its worker processes are killed
_CLOSE_TIMEOUT, _ABORT_GRACE = 10, 0.5


@dataclass(frozen=True)
class ShardJob:
    """One .safetensors shard to compress into one .wvc file."""

    source: str  # the .safetensors file: read by the workers (a shared path on a remote cluster)
    target: str  # the .wvc file the client writes
    metadata: dict = field(default_factory=dict)  # str -> str for the .wvc's __metadata__


@dataclass(frozen=True)
class Task:
    """One tensor of one shard."""

    shard: int  # index into the jobs
    name: str
    plan: TensorPlan
    elements: int


def distributed_available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _need_dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise InputError(
            "workers in other processes and Dask clusters need dask.distributed: pip install 'pyweightvc[distributed]'"
        ) from None
    return distributed


# ---------------------------------------------------------------------------
# shards: their header on the client, one tensor at a time on a worker


def tensor_framework() -> str:
    """The safetensors framework tensors are read with: "pt" when torch is installed
    (bfloat16 needs it), "np" otherwise."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "np"
    return "pt"


@contextlib.contextmanager
def open_safetensors(path: str, framework: str = "np") -> Iterator[Any]:
    """safetensors' safe_open, its errors (while opening or reading) as InputError
    naming the file."""
    from safetensors import SafetensorError
    from safetensors import safe_open as st_open

    try:
        with st_open(path, framework=framework) as f:
            yield f
    except InputError:
        raise
    except (SafetensorError, OSError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .safetensors file ({exc})") from None


def shard_tensors(path: str) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, dtype, shape) of every tensor of a .safetensors file, in the order
    :func:`pyweightvc.folders.load_checkpoint` reads them; from the header alone."""
    with open_safetensors(path) as f:
        out = []
        for name in f.keys():
            s = f.get_slice(name)
            code = s.get_dtype()
            if code not in SAFETENSORS_DTYPES:
                raise InputError(
                    f"{path}: tensor {name!r}: unsupported tensor dtype {code}; supported: {', '.join(SAFETENSORS_DTYPES.values())}"
                )
            out.append((name, SAFETENSORS_DTYPES[code], tuple(int(d) for d in s.get_shape())))
        return out


def read_tensor(path: str, name: str) -> Any:
    """One tensor of a .safetensors file, read from its memory map (a torch tensor
    when torch is installed: bfloat16 needs it; a numpy array otherwise)."""
    from safetensors import safe_open as st_open

    with st_open(path, framework=tensor_framework()) as f:
        return f.get_tensor(name)


def encode_task(source: str, name: str, plan: TensorPlan, threads: Optional[int]) -> tuple[dict, bytes, list[str]]:
    """Run on a worker: read one tensor from its shard and encode it. Returns its
    entry, its data, and the warnings raised (the client raises them again)."""
    x = read_tensor(source, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if plan.storage == "raw":
            warn_non_finite(name, x)
        entry, data = encode_tensor(name, x, plan, threads)
    return entry, data, [str(w.message) for w in caught]


def plan_shards(jobs: Sequence[ShardJob], policy: Policy) -> tuple[list[list[str]], list[Task]]:
    """The tensor names of every shard (file order) and the tasks, in the order they
    should run: shard by shard, largest tensor first within a shard."""
    names: list[list[str]] = []
    tasks: list[Task] = []
    for i, job in enumerate(jobs):
        entries = shard_tensors(job.source)
        names.append([n for n, _, _ in entries])
        shard_tasks = [Task(i, n, policy.plan(n, dtype, shape), math.prod(shape)) for n, dtype, shape in entries]
        tasks += sorted(shard_tasks, key=lambda t: -t.elements)  # stable: file order among equals
    return names, tasks


# ---------------------------------------------------------------------------
# executors


class _InProcess:
    """Tasks run one after another in a thread of this process."""

    def __init__(self, threads: Optional[int]):
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=1)

    def submit(self, task: Task, source: str, priority: int) -> Any:
        return self._pool.submit(encode_task, source, task.name, task.plan, self.threads)

    def as_completed(self, futures: list) -> Iterator[Any]:
        return _as_completed_local(futures)

    def abort(self, futures: list) -> None:
        # start no more tensors; the one being encoded finishes in its thread (the
        # command line leaves without waiting for it)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown()


class _Dask:
    """Tasks submitted to a Dask cluster; a LocalCluster started here is closed here."""

    def __init__(self, client: Any, threads: Optional[int], cluster: Any = None):
        self.client, self.cluster = client, cluster
        self.threads = 1 if threads is None else threads

    @classmethod
    def start(cls, scheduler: Optional[str], workers: Optional[int], threads: Optional[int]) -> _Dask:
        distributed = _need_dask()
        if scheduler not in (None, LOCAL):
            try:
                return cls(distributed.Client(scheduler, timeout="30s"), threads)
            except OSError as exc:
                raise InputError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from None
        n = workers or local_cores()
        # Ctrl-C in a terminal reaches every process of the group: the workers ignore
        # it (dask_setup) and this process shuts them down
        cluster = None
        try:
            cluster = distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                memory_limit=0,
                silence_logs=logging.ERROR,
                preload=[__name__],
                **LOCAL_CLUSTER_OPTIONS,
            )
            client = distributed.Client(cluster)
        except BaseException:
            if cluster is not None:
                cluster.close(timeout=_CLOSE_TIMEOUT)
            raise
        return cls(client, threads, cluster)

    def submit(self, task: Task, source: str, priority: int) -> Any:
        return self.client.submit(encode_task, source, task.name, task.plan, self.threads, priority=priority, pure=False)

    def as_completed(self, futures: list) -> Iterator[Any]:
        from distributed import as_completed

        return iter(as_completed(futures))

    def abort(self, futures: list) -> None:
        try:
            self.client.cancel(futures, force=True)
        except Exception:  # a client that lost its scheduler: nothing left to cancel
            pass
        if self.cluster is None:
            return
        # A worker busy in an encode finishes it before it closes (seconds to minutes):
        # the cluster closes in a thread while its worker processes are killed.
        try:
            pids = list(self.client.run(os.getpid).values())
        except Exception:
            pids = []
        closer = threading.Thread(target=self.close, daemon=True)
        closer.start()
        closer.join(_ABORT_GRACE)
        if closer.is_alive():
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        closer.join(_CLOSE_TIMEOUT)

    def close(self, timeout: float = _CLOSE_TIMEOUT) -> None:
        if self.cluster is None:
            return  # the caller's client and cluster stay up
        cluster, self.cluster = self.cluster, None
        try:
            self.client.close(timeout=timeout)
        finally:
            cluster.close(timeout=timeout)


def dask_setup(worker: Any) -> None:
    """Dask preload of the LocalCluster's workers: Ctrl-C in a terminal reaches every
    process of the group; the workers ignore it and the process that started them
    shuts them down (no traceback from each worker)."""
    with contextlib.suppress(ValueError):  # not in the main thread: leave it
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def local_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _executor(client: Any, scheduler: Optional[str], workers: Optional[int], threads: Optional[int]) -> Any:
    if client is not None:
        if scheduler is not None or workers is not None:
            raise ValueError("give a Dask client, or a scheduler and workers, not both")
        return _Dask(client, threads)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if scheduler is None:
        # on two cores one process (a thread per tensor, x265's own threads) was as fast
        # as a LocalCluster (docs/scale.md): a cluster is started only where it can pay
        if workers == 1 or (workers is None and (not distributed_available() or local_cores() <= 2)):
            return _InProcess(threads)
    return _Dask.start(scheduler, workers, threads)


# ---------------------------------------------------------------------------
# the driver


def compress_shards(
    jobs: Sequence[ShardJob],
    policy: Policy,
    *,
    client: Any = None,
    scheduler: Optional[str] = None,
    workers: Optional[int] = None,
    threads: Optional[int] = None,
    progress: Optional[Callable[[str, int], None]] = None,
    written: Optional[Callable[[ShardJob, dict], None]] = None,
) -> list[dict]:
    """Compress every shard of `jobs` under `policy`; returns the header written for
    each. client: a ``dask.distributed.Client`` to run on (left open). scheduler:
    ``"local"`` for a LocalCluster of `workers` processes, or a scheduler address.
    Without either: in this process when workers is 1 (by default also when Dask is
    not installed or the machine has at most 2 cores), else a LocalCluster of
    `workers` (default: every core). threads: encoder threads
    per task (default: every core in this process, 1 per task on a cluster).
    progress(name, elements) after each tensor; written(job, header) after each shard."""
    names, tasks = plan_shards(jobs, policy)  # unreadable shards fail before any cluster starts
    headers: list[Optional[dict]] = [None] * len(jobs)
    remaining = [len(n) for n in names]
    done: list[dict] = [{} for _ in jobs]

    def finish(i: int) -> None:
        parts = [(n, *done[i][n]) for n in names[i]]
        header = headers[i] = write_file(jobs[i].target, parts, policy, jobs[i].metadata)
        done[i] = {}
        if written:
            written(jobs[i], header)

    for i, count in enumerate(remaining):
        if not count:
            finish(i)
    if tasks:
        executor = _executor(client, scheduler, workers, threads)
        futures: dict[Any, Task] = {}
        try:
            for rank, task in enumerate(tasks):  # higher priority runs first
                futures[executor.submit(task, jobs[task.shard].source, -rank)] = task
            for future in executor.as_completed(list(futures)):
                task = futures.pop(future)
                entry, data, caught = future.result()
                for message in caught:
                    warnings.warn(message, stacklevel=2)
                done[task.shard][task.name] = (entry, data)
                if progress:
                    progress(task.name, task.elements)
                remaining[task.shard] -= 1
                if not remaining[task.shard]:
                    finish(task.shard)
        except BaseException:
            # Ctrl-C, a failed tensor or a failed write: no more tasks; a cluster
            # started here is shut down; shards not written are not on disk
            executor.abort(list(futures))
            raise
        executor.close()
    return [h for h in headers if h is not None]
