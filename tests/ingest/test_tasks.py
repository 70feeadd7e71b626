"""Per-worker process settings of the ingest tasks."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc malloc settings"
)

# A chip loop's allocation pattern: arrays of 0.4-12 MB, a few alive at once, freed in any
# order; the second pass prints the minor page faults it caused.
_CHURN = """
import resource, sys
import numpy as np
from eoclip.ingest.tasks import keep_freed_heap
if sys.argv[1] == "on":
    assert keep_freed_heap()
rng = np.random.default_rng(0)
def work():
    live = []
    for _ in range(200):
        live.append(np.ones(int(rng.integers(100_000, 3_000_000)), np.float32))
        if len(live) > 4:
            live.pop(int(rng.integers(0, len(live))))
work()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
work()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


def test_keep_freed_heap_reuses_chip_buffers_instead_of_faulting_new_pages():
    default, kept = _faults("off"), _faults("on")
    # glibc's defaults map and trim memory again and again (~11 K faults measured)
    assert default > 2000
    assert kept < default / 10


def test_configure_worker_keeps_freed_heap(monkeypatch):
    from eoclip.ingest import tasks

    calls = []
    monkeypatch.setattr(tasks, "_configured", False)
    monkeypatch.setattr(tasks, "keep_freed_heap", lambda: calls.append(1) or True)
    tasks.configure_worker()
    tasks.configure_worker()  # idempotent
    assert calls == [1]
