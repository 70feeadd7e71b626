"""Where ingest tasks run: in this process, in local worker processes, or on Dask distributed.

All three are ``concurrent.futures`` executors, so the chip loop has one code path:

- ``workers=1`` (engine ``local``): in this process, one task at a time.
- ``workers=N`` (engine ``local``): N worker processes on this machine
  (``ProcessPoolExecutor``, forkserver start). A worker killed by the system breaks the pool;
  the loop then starts a new pool and runs the lost tasks again. A worker whose coordinating
  process died (``kill -9``) exits within a second instead of finishing its task.
- engine ``dask``: a ``distributed.LocalCluster`` of N single-threaded worker processes, or
  the cluster at ``scheduler`` (``tcp://host:8786``). Dask runs a lost worker's task again on
  another worker; the task writes the same positions, so nothing is written twice.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from eoclip.errors import MissingDependencyError
from eoclip.ingest.report import IngestConfigError
from eoclip.parallel import InlineExecutor

__all__ = ["ExecutorSpec", "Pool", "open_pool", "watch_coordinator"]

logger = logging.getLogger(__name__)

ENGINES = ("local", "dask")


@dataclass
class ExecutorSpec:
    """How many processes read chips, and on which engine.

    Attributes:
        workers: Worker processes (local, or of the Dask LocalCluster); None = every core.
        engine: ``local`` (this machine's processes) or ``dask`` (Dask distributed).
        scheduler: Address of a running Dask scheduler; implies ``engine="dask"``.
    """

    workers: int | None = 1
    engine: str = "local"
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.scheduler:
            self.engine = "dask"
        if self.engine not in ENGINES:
            raise IngestConfigError(
                f"executor engine must be one of {ENGINES}, not {self.engine!r}"
            )
        if self.workers is None:
            self.workers = os.cpu_count() or 1
        if int(self.workers) < 1:
            raise IngestConfigError(f"workers must be >= 1, not {self.workers}")
        self.workers = int(self.workers)


def watch_coordinator(pid: int, every_s: float = 0.5) -> None:
    """In a worker process: exit as soon as the coordinating process ``pid`` is gone.

    A pool's workers otherwise finish their task (and keep each other's pipes open, so they
    may wait forever) after the coordinator was killed; a resumed run must not meet them.
    """

    def watch() -> None:
        while True:
            time.sleep(every_s)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(70)
            except PermissionError:
                pass  # exists, owned by someone else: cannot be ours, but do not guess

    threading.Thread(target=watch, name="watch-coordinator", daemon=True).start()


class Pool:
    """An executor plus what the loop needs to know about it.

    Attributes:
        executor: The ``concurrent.futures.Executor``.
        slots: How many tasks to keep running at once.
        kind: ``inline``, ``processes`` or ``dask``, for the report.
    """

    def __init__(self, spec: ExecutorSpec):
        self.spec = spec
        self.executor: cf.Executor | None = None
        self.slots, self.kind = 1, "inline"
        self._client = self._cluster = None

    def start(self) -> None:
        spec = self.spec
        if spec.engine == "dask":
            self._start_dask()
        elif spec.workers == 1:
            self.executor, self.slots, self.kind = InlineExecutor(), 1, "inline"
        else:
            method = (
                "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            )
            ctx = multiprocessing.get_context(method)
            if method == "forkserver":  # workers fork from a server that imported these once
                ctx.set_forkserver_preload(["eoclip.ingest.tasks", "eoclip.ingest.m3leo"])
            self.executor = cf.ProcessPoolExecutor(
                spec.workers, mp_context=ctx, initializer=watch_coordinator, initargs=(os.getpid(),)
            )
            self.slots, self.kind = spec.workers, "processes"

    def _start_dask(self) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as err:
            raise MissingDependencyError(
                "the dask engine needs dask distributed: pip install distributed"
            ) from err
        if self.spec.scheduler:
            self._client = Client(self.spec.scheduler)
        else:
            self._cluster = LocalCluster(
                n_workers=self.spec.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            self._client = Client(self._cluster)
        self.slots = max(1, sum(self._client.nthreads().values()))
        self.executor, self.kind = self._client.get_executor(pure=False), "dask"
        logger.info("dask: %s with %d worker threads", self._client.scheduler.address, self.slots)

    def restart(self) -> None:
        """A new pool after a broken one (a worker process was killed)."""
        self.close(cancel=True)
        self.start()

    def broken(self, err: BaseException) -> bool:
        """Whether ``err`` means the pool lost a worker (so its tasks can run again)."""
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(err, BrokenProcessPool)

    def close(self, cancel: bool = False) -> None:
        if self.executor is not None:
            if self.kind == "dask":  # ClientExecutor: no cancel_futures; closing the client cancels
                self.executor.shutdown(wait=not cancel)
            else:
                self.executor.shutdown(wait=not cancel, cancel_futures=cancel)
            self.executor = None
        for obj in (self._client, self._cluster):
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()
        self._client = self._cluster = None


@contextlib.contextmanager
def open_pool(spec: ExecutorSpec) -> Iterator[Pool]:
    """A started Pool, closed on exit (its running tasks cancelled on an error)."""
    pool = Pool(spec)
    pool.start()
    ok = False
    try:
        yield pool
        ok = True
    finally:
        pool.close(cancel=not ok)
