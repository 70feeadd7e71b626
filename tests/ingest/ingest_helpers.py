"""Helpers shared by the ingest tests: store comparison and sources that misbehave on purpose."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from eoclip.data.store import ChipStore
from eoclip.ingest.m3leo import M3LEOSource


def assert_same_store(path, reference) -> None:
    """Same chips (each once), same index values and the same pixels, whatever the order."""
    a, b = ChipStore.open(path), ChipStore.open(reference)
    assert len(set(a.chip_ids)) == len(a.chip_ids), "duplicate chips"
    assert sorted(a.chip_ids) == sorted(b.chip_ids)
    ia, ib = a.index.set_index("chip_id"), b.index.set_index("chip_id")
    for col in ("aoi", "split", "label_tree", "label_crop", "label_water", "label_built"):
        assert (
            ia[col].loc[b.chip_ids].astype(str).tolist()
            == ib[col].loc[b.chip_ids].astype(str).tolist()
        ), col
    for cid in b.chip_ids:
        ca, cb = a.read_chip(cid), b.read_chip(cid)
        assert ca.keys() == cb.keys(), cid
        for m in cb:
            assert ca[m].names == cb[m].names and np.array_equal(ca[m].valid, cb[m].valid), (cid, m)
            np.testing.assert_array_equal(ca[m].data, cb[m].data, err_msg=f"{cid} {m}")


class KillOnceSource(M3LEOSource):
    """Kills its own worker process (SIGKILL) when it first reads ``target``."""

    def __init__(self, *args, target: str, marker: str, **kw):
        super().__init__(*args, **kw)
        self.target, self.marker = target, marker

    def read(self, grid, row, report):
        if grid.chip_id == self.target and not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().read(grid, row, report)


class SlowSource(M3LEOSource):
    """Sleeps before each chip, so that a kill lands in the middle of a run."""

    def __init__(self, *args, delay: float, **kw):
        super().__init__(*args, **kw)
        self.delay = delay

    def read(self, grid, row, report):
        time.sleep(self.delay)
        return super().read(grid, row, report)
