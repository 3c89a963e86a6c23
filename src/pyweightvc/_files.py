"""Writing files so that a failure or a kill never leaves a half-written file under
the user's name.

Every output is written to a temporary file beside it, named
``.<name>.<pid>.<tag>`` (docs/format.md), then renamed over the target. A writer
killed before the rename leaves that file behind; the next write to the same
target removes the leftovers of processes that no longer run.
"""

from __future__ import annotations

import errno
import os
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_path(path: str, tag: str = "partial") -> str:
    """The name of this process's temporary file for `path`."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.{os.getpid()}.{tag}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(path: str) -> list[str]:
    """Remove temporary files of `path` left by writers that no longer run; returns them."""
    directory, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}."
    removed: list[str] = []
    try:
        candidates = os.listdir(directory)
    except OSError:
        return removed
    for entry in candidates:
        if not entry.startswith(prefix):
            continue
        pid_text, _, tag = entry[len(prefix) :].partition(".")
        if not pid_text.isdigit() or not tag or int(pid_text) == os.getpid() or _alive(int(pid_text)):
            continue
        try:
            os.unlink(os.path.join(directory, entry))
            removed.append(entry)
        except OSError:
            pass
    return removed


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call write(tmp) to fill a temporary file beside `path`, then rename it over
    `path` (permissions as a new file would get). On any failure, Ctrl-C included,
    the temporary file is removed and `path` is untouched. OSError names `path`,
    not the temporary file."""
    path = os.fspath(path)
    remove_stale(path)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        if exc.filename == tmp or exc.filename is None:
            raise OSError(exc.errno or errno.EIO, f"cannot write {path}: {exc.strerror or exc}", path) from None
        raise
    except BaseException:
        _discard(tmp)
        raise


def write_chunks(chunks) -> Callable[[str], None]:
    """A writer for :func:`atomic_write` of byte chunks, synced to disk before the rename."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())

    return write


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
