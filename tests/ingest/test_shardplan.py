from eoclip.ingest.report import IngestReport
from eoclip.ingest.shardplan import ShardPlan
from eoclip.ingest.tasks import TaskResult


def _rows(n):
    return [{"chip_id": f"c{i:02d}"} for i in range(n)]


def _result(task, fail=()):
    """A task that writes every chip but those in ``fail``."""
    written = [r for r in task.rows if r["chip_id"] not in fail]
    return TaskResult(
        task.start,
        index=[{"chip_id": r["chip_id"]} for r in written],
        unwritten=[r["chip_id"] for r in task.rows if r["chip_id"] in fail],
        report=IngestReport("test"),
    )


def _drain(plan, fail=(), order=None, slots=3):
    """Run the plan with ``slots`` tasks at a time, finishing them in ``order``; returns the
    committed chip ids by position and every task that ran."""
    committed, ran = [], []
    while True:
        running = []
        while len(running) < slots and (task := plan.next_task()) is not None:
            running.append(task)
        if not running:
            if plan.stuck():
                plan.redo_after_hole()
                continue
            return committed, ran
        for task in (order or (lambda ts: ts))(running):
            ran.append(task)
            plan.complete(task, _result(task, fail))
            for res in plan.committable():
                committed += [r["chip_id"] for r in res.index]


def _check_shards(ran, shard):
    for t in ran:  # a task never leaves its shard
        assert t.start // shard == (t.start + len(t.rows) - 1) // shard


def test_tasks_are_shard_aligned_and_commit_in_order():
    plan = ShardPlan(0, 4, _rows(10))
    committed, ran = _drain(plan, order=lambda ts: ts[::-1])  # finish out of order
    assert committed == [f"c{i:02d}" for i in range(10)]
    assert sorted((t.start, len(t.rows)) for t in ran) == [(0, 4), (4, 4), (8, 2)]
    _check_shards(ran, 4)
    assert plan.frontier == 10 and plan.idle and not plan.stuck()


def test_resume_in_the_middle_of_a_shard():
    plan = ShardPlan(6, 4, _rows(5))  # positions 6, 7 end shard 1
    committed, ran = _drain(plan)
    assert [(t.start, len(t.rows)) for t in ran] == [(6, 2), (8, 3)]
    assert len(committed) == 5 and plan.frontier == 11


def test_unwritable_chips_leave_holes_that_later_chips_fill():
    fail = {"c01", "c06"}
    plan = ShardPlan(0, 4, _rows(12))
    committed, ran = _drain(plan, fail=fail, order=lambda ts: ts[::-1])
    assert sorted(committed) == sorted(f"c{i:02d}" for i in range(12) if f"c{i:02d}" not in fail)
    assert len(committed) == len(set(committed)) == plan.frontier == 10
    _check_shards(ran, 4)


def test_a_hole_at_the_end_is_closed_by_reading_the_last_chips_again():
    plan = ShardPlan(0, 4, _rows(8))
    first = plan.next_task(), plan.next_task()  # shards 0 and 1 run at once
    plan.complete(first[1], _result(first[1]))  # shard 1 finishes first, whole
    plan.complete(first[0], _result(first[0], fail={"c02"}))  # shard 0 short by one, nothing left
    assert [r["chip_id"] for res in plan.committable() for r in res.index] == ["c00", "c01", "c03"]
    assert plan.stuck() and plan.redo_after_hole() == 4 and plan.cursor == 3
    committed, ran = _drain(plan)
    assert committed == ["c04", "c05", "c06", "c07"] and plan.frontier == 7
    assert [(t.start, len(t.rows)) for t in ran] == [(3, 1), (4, 3)]


def test_holes_are_filled_first_and_shards_stay_exclusive():
    plan = ShardPlan(0, 4, _rows(10))
    a = plan.next_task()
    plan.complete(a, _result(a, fail={"c00", "c01"}))  # a hole at positions 2..3 of shard 0
    b = plan.next_task()
    assert (b.start, [r["chip_id"] for r in b.rows]) == (2, ["c04", "c05"])  # the hole first
    c = plan.next_task()
    assert (c.start, len(c.rows)) == (4, 4)
    assert sorted(t // 4 for t in plan.running) == [0, 1]  # one task per shard


def test_shard_size_gives_every_worker_tasks():
    from eoclip.ingest.runner import shard_size

    assert shard_size(845_000, 64) == 256  # the paper's scale: the default shard
    assert shard_size(200, 2) == 25 and shard_size(7, 1) == 16  # small grids: ~4 tasks per worker
