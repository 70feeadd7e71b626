"""The one chip loop: parallel workers, a worker killed, the coordinator kill -9ed, resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from ingest_helpers import KillOnceSource, assert_same_store

from eoclip.ingest.executors import ExecutorSpec
from eoclip.ingest.m3leo import M3LEOConfig, ingest_m3leo, load_m3leo_grid
from eoclip.ingest.report import IngestReport
from eoclip.ingest.runner import StoreSpec, run_ingest

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"
OUT = dict(chip_px=16, shard_chips=2, progress=False)

# Runs an ingest of the nested download and SIGKILLs itself at a chosen point of the commit
# protocol: "pixels" (before the n-th pixel write), "index" (in the n-th index write, after the
# summary), "after" (right after the n-th index write); or, with "slow", reads slowly with
# workers so that the test can kill it from outside in the middle of a run.
DRIVER = """
import os, signal, sys
import eoclip.data.shardwriter as sw
import eoclip.data.store as st
import eoclip.ingest.writer as wr
from eoclip.ingest.executors import ExecutorSpec
from eoclip.ingest.m3leo import M3LEOConfig, load_m3leo_grid
from eoclip.ingest.report import IngestReport
from eoclip.ingest.runner import StoreSpec, run_ingest
from ingest_helpers import SlowSource

root, store, point = sys.argv[1], sys.argv[2], sys.argv[3]
n, workers = int(sys.argv[4]), int(sys.argv[5])
wr.CHECKPOINT_SECONDS = 0.0  # commit to the index after every task
calls = [0]

def kill_at(cls, name, after=False):
    orig = getattr(cls, name)
    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        out = orig(*args, **kwargs)
        if calls[0] == n and after:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    setattr(cls, name, wrapper)

if point == "pixels":
    kill_at(sw.PixelWriter, "write")
elif point in ("index", "after"):
    kill_at(st.ChipStore, "flush", after=point == "after")
cfg = M3LEOConfig(root=root)
report = IngestReport("m3leo")
grid, datasets = load_m3leo_grid(cfg, report)
source = SlowSource(cfg, datasets, delay=0.4 if point == "slow" else 0.0)
out = StoreSpec(store, chip_px=16, shard_chips=2, batch_size=1, resume=True, progress=False)
print("started", flush=True)
run_ingest(grid, out, source, ExecutorSpec(workers=workers), report)
"""


def _driver(root, store, point, n, workers=1):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(root), str(store), point, str(n), str(workers)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _resume(root, store, workers=1):
    return ingest_m3leo(
        M3LEOConfig(root=root), StoreSpec(str(store), resume=True, **OUT), ExecutorSpec(workers)
    )


def test_parallel_workers_and_a_killed_worker(m3leo_nested, nested_reference, tmp_path):
    """Two worker processes write the store a serial run writes, even when one of them dies."""
    cfg = M3LEOConfig(root=m3leo_nested.root)
    report = IngestReport("m3leo")
    grid, datasets = load_m3leo_grid(cfg, report)
    marker = tmp_path / "killed"
    source = KillOnceSource(cfg, datasets, target="us2", marker=str(marker))
    report = run_ingest(
        grid, StoreSpec(str(tmp_path / "p"), **OUT), source, ExecutorSpec(workers=2), report
    )
    assert marker.exists()  # a worker did die on us2, and its task ran again in a new pool
    assert (
        report.chips_written == 6 and len(report.worker_rss_mb) >= 2
    )  # several processes read chips
    assert_same_store(tmp_path / "p", nested_reference)
    runs = json.loads((tmp_path / "p.ingest.json").read_text())["runs"]
    assert runs[-1]["workers"] == 2 and runs[-1]["complete"]
    busy = runs[-1]["worker_busy_s"]  # time in tasks, per process that read chips
    assert set(busy) == set(report.worker_rss_mb) and sum(busy.values()) > 0
    assert max(busy.values()) <= runs[-1]["seconds"]


def test_kill_at_every_step_of_the_commit_then_resume(m3leo_nested, nested_reference, tmp_path):
    store = tmp_path / "s"
    for point, n in (("pixels", 3), ("index", 2), ("after", 2)):
        proc = _driver(m3leo_nested.root, store, point, n)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, (point, err[-2000:])
    report = _resume(m3leo_nested.root, store)
    assert report.chips_already_present + report.chips_written == 6
    assert_same_store(store, nested_reference)
    summary = json.loads(store.with_name("s.ingest.json").read_text())
    assert summary["chips_in_store"] == 6 and summary["chips_written"] == 6
    assert len(summary["runs"]) == 4 and [r["complete"] for r in summary["runs"]] == [False] * 3 + [
        True
    ]
    keys = [(s["chip_id"], s["product"], s["reason"]) for s in summary["skips"]]
    assert len(keys) == len(set(keys)) and ("cn2", "chip") in {k[:2] for k in keys}
    assert summary["notes"] == {"s1grdm: des used (asc missing or unusable)": 1}


def test_kill_the_coordinator_mid_run_with_workers(m3leo_nested, nested_reference, tmp_path):
    store = tmp_path / "w"
    proc = _driver(m3leo_nested.root, store, "slow", 0, workers=2)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(1.5)  # some tasks done, others being read
    group = [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == proc.pid]
    os.kill(proc.pid, signal.SIGKILL)  # the coordinator only, as `kill -9 PID` would
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in group
    ):
        time.sleep(0.1)
    assert not [p.pid for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], (
        "worker processes outlived their coordinator"
    )
    _resume(m3leo_nested.root, store, workers=2)
    assert_same_store(store, nested_reference)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def test_nothing_to_do_on_a_complete_store(nested_reference, m3leo_nested, tmp_path):
    store = tmp_path / "c"
    shutil.copytree(nested_reference, store)
    report = _resume(m3leo_nested.root, store)  # only cn2 is left, and it has no file: a warning
    assert report.chips_written == 0 and report.chips_already_present == 6
