"""Where few-shot fits run: in this process, in local worker processes, or on a Dask cluster.

All three take the same calls, so the protocol code does not know which one it drives:

- `share(X)` makes an AOI's feature matrix available to the workers ONCE per matrix: nothing
  to do in-process; for local processes the matrix is written once to a `.npy` file that
  each worker maps copy-on-write (`np.load(mmap_mode="c")`: no copy, and writable, which
  scikit-learn's forest needs); on Dask it is scattered to the cluster. A fit then receives a
  small handle instead of the matrix, so dispatching a fit costs microseconds, not a copy or a
  hash of gigabytes (joblib's default for large arguments).
- `submit(fn, *args, priority=...)` starts one fit; `wait_any(futures)` returns those done.
- `release(handle)` frees a matrix once its fits are done.

Each fit is seeded by its own arguments, so results do not depend on the executor.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from eoclip.fewshot.config import FewshotError

__all__ = ["FitExecutor", "SharedMatrix", "make_executor", "resolve"]

log = logging.getLogger(__name__)

# one thread per fit: parallelism comes from running fits side by side
CONNECT_TIMEOUT = "20s"  # how long to wait for a Dask scheduler
_SINGLE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclass(frozen=True)
class SharedMatrix:
    """A matrix in a `.npy` file that worker processes map instead of receiving it."""

    path: str
    shape: tuple[int, ...]


_OPEN: OrderedDict[str, np.ndarray] = OrderedDict()  # per process: the matrices mapped last
_KEEP_OPEN = 4


def resolve(handle: Any) -> Any:
    """The array behind a `share` handle (the object itself unless it is a `SharedMatrix`)."""
    if not isinstance(handle, SharedMatrix):
        return handle
    if handle.path not in _OPEN:
        # copy-on-write: writable for scikit-learn's checks, pages shared with other workers
        _OPEN[handle.path] = np.load(handle.path, mmap_mode="c")
        while len(_OPEN) > _KEEP_OPEN:
            _OPEN.popitem(last=False)
    _OPEN.move_to_end(handle.path)
    return _OPEN[handle.path]


class FitExecutor:
    """Runs fits in this process, one after the other (`n_jobs=1`)."""

    n_workers = 1
    name = "this process"

    def share(self, X: np.ndarray) -> Any:
        """Handle of `X` for `submit` arguments."""
        return X

    def release(self, handle: Any) -> None:
        """Forget a shared matrix."""

    def submit(self, fn, *args, priority: float = 0.0) -> cf.Future:
        """Run `fn(*args)` (here: now) and return its future."""
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args))
        except Exception as err:  # re-raised by .result(), as from a worker
            fut.set_exception(err)
        return fut

    def wait_any(self, futures: list) -> tuple[set, set]:
        """(done, not done) once at least one of `futures` is done."""
        done, pending = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    def close(self) -> None:
        """Give workers and temporary files back."""

    def __enter__(self) -> FitExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reusable_pool(n: int) -> cf.Executor:
    """loky's reusable pool of `n` single-threaded worker processes: the same processes for
    every caller with the same `n` (few-shot fits, then t-SNE maps), started once."""
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=n, env=_SINGLE_THREAD)


class LocalProcesses(FitExecutor):
    """Fits in `n` loky worker processes (joblib's engine); matrices shared through files."""

    def __init__(self, n: int, tmp_dir: str | None = None) -> None:
        self.n_workers = n
        self.name = f"{n} local processes"
        self._pool = reusable_pool(n)
        self._tmp_dir = tmp_dir
        self._dirs: dict[str, str] = {}
        self._count = 0

    def share(self, X: np.ndarray) -> SharedMatrix:
        root = self._tmp_dir or _tmp_root(X.nbytes)
        if root not in self._dirs:
            _remove_stale(root)
            self._dirs[root] = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=root)
        self._count += 1
        path = os.path.join(self._dirs[root], f"matrix-{self._count:05d}.npy")
        np.save(path, X, allow_pickle=False)
        return SharedMatrix(path, tuple(X.shape))

    def release(self, handle: Any) -> None:
        if isinstance(handle, SharedMatrix):
            # workers that still map it keep their pages until they let go (POSIX unlink)
            os.remove(handle.path)

    def submit(self, fn, *args, priority: float = 0.0) -> cf.Future:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        for d in self._dirs.values():
            shutil.rmtree(d, ignore_errors=True)


class DaskCluster(FitExecutor):
    """Fits on a Dask distributed cluster; matrices scattered once, fits as futures."""

    def __init__(self, address: Any) -> None:
        from distributed import Client

        self._own = not hasattr(address, "submit")
        try:
            self.client = Client(address, timeout=CONNECT_TIMEOUT) if self._own else address
        except (OSError, TimeoutError, ValueError) as err:
            raise FewshotError(
                f"cannot connect to the Dask scheduler at {address!r} ({err}); start one "
                "(`dask scheduler`, then `dask worker ADDRESS` on each machine) or run locally"
            ) from err
        info = self.client.scheduler_info(n_workers=-1) or {}
        self.n_workers = max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))
        self.name = f"Dask at {self.client.scheduler.address} ({self.n_workers} threads)"

    def share(self, X: np.ndarray) -> Any:
        return self.client.scatter(X, hash=False)

    def release(self, handle: Any) -> None:
        handle.release()

    def submit(self, fn, *args, priority: float = 0.0):
        # Dask runs higher priorities first: the longest fits start first, so the cluster is
        # not left waiting on one big fit at the end of a matrix.
        return self.client.submit(fn, *args, pure=False, priority=priority)

    def wait_any(self, futures: list) -> tuple[set, set]:
        from distributed import wait

        done, pending = wait(futures, return_when="FIRST_COMPLETED")
        return set(done), set(pending)

    def close(self) -> None:
        if self._own:
            self.client.close()


_PREFIX = "eoclip-fewshot-"


def _remove_stale(root: str) -> None:
    """Delete shared-matrix folders left by runs that were killed (their process is gone)."""
    for name in os.listdir(root):
        pid = name[len(_PREFIX) :].split("-")[0] if name.startswith(_PREFIX) else ""
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:  # no such process: the folder is an orphan
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            log.info("removed %s, left by a killed few-shot run", os.path.join(root, name))
        except PermissionError:  # another user's live process
            pass


def _tmp_root(nbytes: int) -> str:
    """RAM-backed /dev/shm when it has room for two such matrices (joblib does the same), else
    the system temp dir ($TMPDIR)."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        if shutil.disk_usage(shm).free > 2 * nbytes + 2**28:
            return shm
    return tempfile.gettempdir()


def make_executor(n_jobs: int, scheduler: Any = None, tmp_dir: str | None = None) -> FitExecutor:
    """The executor for `n_jobs` local fits (negative: all cores + 1 + n_jobs), or a cluster.

    Args:
        n_jobs: parallel fits on this machine; 1 runs them in this process.
        scheduler: a Dask scheduler address (`tcp://host:8786`) or a `distributed.Client`;
            when given, `n_jobs` is ignored.
        tmp_dir: where local processes' shared matrices go (default /dev/shm or the temp dir).
    """
    if scheduler is not None:
        return DaskCluster(scheduler)
    n = n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return FitExecutor() if n == 1 else LocalProcesses(n, tmp_dir)
