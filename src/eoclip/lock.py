"""One writer per output: an advisory lock on each folder or file a command writes.

The lock is an OS file lock (``filelock``, ``flock`` on POSIX), so it is released when its
holder exits in any way, ``kill -9`` included: a stale lock from a killed process is simply
taken over by the next writer. Who holds it (pid, host, command, start time) is written beside
it, so that a second writer can say whom it is waiting for and exit at once.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from eoclip.errors import OutputLockedError

__all__ = ["lock_path", "output_lock"]


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of an output: ``<folder>/.eoclip.lock`` or ``.<file>.lock`` beside a file
    (a target ending in a suffix such as ``.parquet`` is a file, anything else a folder)."""
    target = Path(target)
    if target.suffix and not target.is_dir():
        return target.with_name(f".{target.name}.lock")
    return target / ".eoclip.lock"


def _holder(info: Path) -> str:
    try:
        h = json.loads(info.read_text())
        return (
            f"pid {h['pid']} on {h['host']} ({h['command']}, since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(h['since']))})"
        )
    except (OSError, ValueError, KeyError):
        return "another process"


@contextmanager
def output_lock(target: str | os.PathLike, enabled: bool = True) -> Iterator[None]:
    """Hold the lock of an output for the duration of the block.

    Args:
        target: the output folder or file (its parent folder is created).
        enabled: ``False`` does nothing (the non-zero ranks of a distributed job, which
            write nothing themselves).

    Raises:
        OutputLockedError: another process holds the lock (the message names it).
    """
    if not enabled:
        yield
        return
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = path.with_name(path.name + ".json")
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise OutputLockedError(
            f"{target} is being written by {_holder(info)}; wait for it to finish or choose "
            "another output"
        ) from None
    try:
        info.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "command": " ".join(sys.argv[:3]),
                    "since": time.time(),
                }
            )
        )
        yield
    finally:
        info.unlink(missing_ok=True)
        lock.release()
