"""Running independent jobs side by side, results in submission order, memory bounded.

`in_order` is the pipeline of the synthetic world (batches generated in processes while this
process writes), the channel statistics (blocks computed in threads while this thread reads the
next) and the t-SNE maps (one per worker process): jobs are submitted as the caller's iterable
yields them, at most ``ahead`` of them wait while the caller handles a result, and results come
back in the order of the jobs, so the output never depends on the executor.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["InlineExecutor", "in_order"]


class InlineExecutor(cf.Executor):
    """Runs each task when it is submitted, in this process."""

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # delivered through the future, like a pool would
            if isinstance(err, KeyboardInterrupt | SystemExit):
                raise
            future.set_exception(err)
        return future


def in_order(
    executor: cf.Executor, fn: Callable, jobs: Iterable[tuple[Any, tuple]], ahead: int
) -> Iterator[tuple[Any, Any]]:
    """``(tag, fn(*args))`` for each ``(tag, args)`` of ``jobs``, in the order of ``jobs``.

    Args:
        executor: where ``fn`` runs (an `InlineExecutor` runs it at once, in this process).
        fn: the job function.
        jobs: (tag, args) pairs, read lazily: the next one is produced while others run.
        ahead: jobs kept submitted while the caller handles a result (0: one at a time).
    """
    pending: collections.deque = collections.deque()
    for tag, args in jobs:
        pending.append((tag, executor.submit(fn, *args)))
        while len(pending) > ahead:
            done_tag, future = pending.popleft()
            yield done_tag, future.result()
    while pending:
        done_tag, future = pending.popleft()
        yield done_tag, future.result()
