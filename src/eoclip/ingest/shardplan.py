"""Which store positions each task writes, and which finished tasks can be committed.

The store's index is the commit record and lists chips in position order, so chips are
committed as a gap-free prefix: a finished task is committed once every position before it is.
Tasks own position ranges inside one shard (``[k * shard, (k + 1) * shard)``), so two writers
never share a shard file. A chip that cannot be written leaves a hole at the end of its task's
range; the hole becomes a range of its own and is filled by the next chips in line. When no
chip is left to fill a hole, the finished tasks after it are done again from the hole on (their
chips read and written again, at most a few shards at the very end of a run).

Pure bookkeeping, no I/O: ``eoclip.ingest.runner`` drives it.
"""

from __future__ import annotations

import bisect
from collections import deque

from eoclip.ingest.tasks import ShardTask, TaskResult

__all__ = ["ShardPlan"]


class ShardPlan:
    """Assigns position ranges to tasks and releases finished tasks in commit order.

    Args:
        start: First free position (the store's committed length).
        shard_chips: Chips per store shard.
        rows: Chips to write, in order.
    """

    def __init__(self, start: int, shard_chips: int, rows: list[dict]):
        self.shard = int(shard_chips)
        self.frontier = self.cursor = int(start)
        self.queue: deque[dict] = deque(rows)
        self.holes: list[tuple[int, int]] = []  # (start, length), sorted, not assigned
        self.running: dict[int, ShardTask] = {}
        self.finished: dict[int, tuple[ShardTask, TaskResult]] = {}
        self.redo_rounds = 0

    def _shard_of(self, pos: int) -> int:
        return pos // self.shard

    def _busy(self, pos: int) -> bool:
        return any(self._shard_of(s) == self._shard_of(pos) for s in self.running)

    def next_task(self) -> ShardTask | None:
        """The next task to run, or None when nothing can be started now."""
        if not self.queue:
            return None
        for i, (start, length) in enumerate(self.holes):  # fill holes first: they block commits
            if not self._busy(start):
                del self.holes[i]
                rows = self._take(length)
                if len(rows) < length:
                    bisect.insort(self.holes, (start + len(rows), length - len(rows)))
                return self._run(ShardTask(start, tuple(rows)))
        if self._busy(self.cursor):
            return None
        room = (self._shard_of(self.cursor) + 1) * self.shard - self.cursor
        rows = self._take(room)
        task = ShardTask(self.cursor, tuple(rows))
        self.cursor += len(rows)
        return self._run(task)

    def _take(self, n: int) -> list[dict]:
        return [self.queue.popleft() for _ in range(min(n, len(self.queue)))]

    def _run(self, task: ShardTask) -> ShardTask:
        self.running[task.start] = task
        return task

    def retry(self, task: ShardTask) -> None:
        """Forget that ``task`` is running (it will be submitted again, unchanged)."""
        self.running.pop(task.start, None)

    def resubmit(self, task: ShardTask) -> ShardTask:
        """Mark ``task`` as running again (after ``retry``)."""
        return self._run(task)

    def complete(self, task: ShardTask, result: TaskResult) -> None:
        """Record a finished task; a short one leaves a hole to fill."""
        self.running.pop(task.start, None)
        n = len(result.index)
        if n < len(task.rows):
            bisect.insort(self.holes, (task.start + n, len(task.rows) - n))
        self.finished[task.start] = (task, result)

    def committable(self) -> list[TaskResult]:
        """Finished results that now extend the gap-free prefix, in position order."""
        out = []
        while self.frontier in self.finished:
            _, result = self.finished.pop(self.frontier)
            out.append(result)
            if not result.index:
                break  # an empty result leaves its whole range as a hole
            self.frontier += len(result.index)
        return out

    @property
    def idle(self) -> bool:
        """Nothing running and nothing left to start."""
        return not self.running and not self.queue

    def stuck(self) -> bool:
        """Idle, with finished tasks that cannot be committed (a hole nobody can fill)."""
        return self.idle and bool(self.finished)

    def redo_after_hole(self) -> int:
        """Requeue the written chips of the finished, uncommitted tasks and restart from the
        first hole (``frontier``). Returns how many chips will be read again."""
        self.redo_rounds += 1
        again = []
        for start in sorted(self.finished):
            task, result = self.finished[start]
            written = {r["chip_id"] for r in result.index}
            again.extend(r for r in task.rows if str(r["chip_id"]) in written)
        self.queue.extendleft(reversed(again))
        self.finished.clear()
        self.holes.clear()
        self.cursor = self.frontier
        return len(again)
