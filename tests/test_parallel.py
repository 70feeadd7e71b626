"""The shared in-order pipeline and the inline executor."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from eoclip.parallel import InlineExecutor, in_order


def test_results_come_in_job_order_with_at_most_ahead_waiting():
    drawn = []

    def job(i):
        time.sleep(0.002 * (8 - i))  # later jobs finish first
        return i * i

    def jobs():
        for i in range(8):
            drawn.append(i)
            yield f"j{i}", (i,)

    seen = []
    with ThreadPoolExecutor(4) as pool:
        for tag, result in in_order(pool, job, jobs(), ahead=2):
            # while the caller holds result k, jobs k+1 .. k+2 at most were submitted
            assert len(drawn) <= len(seen) + 1 + 2
            seen.append((tag, result))
    assert seen == [(f"j{i}", i * i) for i in range(8)]
    assert len(drawn) == 8


def test_inline_runs_at_submit_and_delivers_errors_through_the_future():
    calls = []

    def job(x):
        calls.append(x)
        return -x

    jobs = ((f"t{x}", (x,)) for x in (1, 2, 3))
    for tag, result in in_order(InlineExecutor(), job, jobs, ahead=0):
        assert calls[-1] == -result  # run when submitted, handed back before the next job
        assert tag == f"t{-result}"
    assert calls == [1, 2, 3]
    future = InlineExecutor().submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        future.result()
    with pytest.raises(ZeroDivisionError):
        list(in_order(InlineExecutor(), lambda x: 1 / x, [("zero", (0,))], 0))
