"""The coordinating process's side of the store: open or resume it, commit finished tasks in
position order, and checkpoint (summary, then index) so that a kill at any moment resumes."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np

from eoclip.data.store import LABEL_COLUMNS, ChipStore, StoreError
from eoclip.ingest.report import IngestReport
from eoclip.ingest.tasks import TaskResult, check_claim

__all__ = ["CHECKPOINT_SECONDS", "Committer", "open_store", "summary_path"]

# Seconds between checkpoints: each rewrites the index (~1 s at 845 K chips), and a kill loses
# at most the chips committed since the last one (they are read again on resume).
CHECKPOINT_SECONDS = 10.0


def summary_path(store_path: str | os.PathLike) -> Path:
    """Where the ingest summary goes: ``<store>.ingest.json`` beside a local store."""
    text = str(store_path).rstrip("/")
    if "://" in text and not text.startswith("file://"):
        return Path.cwd() / (Path(text).name + ".ingest.json")
    return Path(text.removeprefix("file://") + ".ingest.json")


def open_store(
    path: str | os.PathLike,
    modalities: Sequence[str],
    chip_px: int,
    pixel_size_m: float,
    resume: bool = False,
    overwrite: bool = False,
    shard_chips: int = 256,
) -> ChipStore:
    """Create a store, or reopen an existing one for appending when ``resume``.

    Raises:
        StoreError: The store exists and neither ``resume`` nor ``overwrite`` was given, or
            the existing store has another chip size or lacks a modality.
    """
    exists = (Path(str(path)) / "store.json").exists() if "://" not in str(path) else False
    if resume and exists:
        store = ChipStore.open(path, mode="a")
        if store.chip_px != chip_px:
            raise StoreError(
                f"{path} has chip_px={store.chip_px}, not {chip_px}; ingest with the same chip size"
            )
        missing = set(modalities) - set(store.modalities)
        if missing:
            raise StoreError(
                f"{path} lacks modalities {sorted(missing)}; it has {list(store.modalities)}"
            )
        return store
    try:
        return ChipStore.create(
            path,
            modalities=list(modalities),
            chip_px=chip_px,
            pixel_size_m=pixel_size_m,
            shard_chips=shard_chips,
            overwrite=overwrite,
        )
    except StoreError as err:
        if "already exists" in str(err):
            raise StoreError(
                f"{path} already exists: resume to add the missing chips, or overwrite "
                "to replace it"
            ) from err
        raise


def store_presence(store: ChipStore) -> Counter:
    """Per modality and label, how many chips of the store have it."""
    idx = store.index
    out: Counter = Counter()
    for name in store.modalities:
        col = f"{name}_channels"
        if col in idx and len(idx):
            out[name] = int(idx[col].map(len).gt(0).sum())
    for col in [c for c in idx.columns if c.startswith("label_")]:
        n = int(np.isfinite(idx[col].to_numpy(dtype="float64")).sum())
        if n or col in LABEL_COLUMNS:
            out[col] = n
    return Counter({k: v for k, v in out.items() if v})


class Committer:
    """Commits finished task results to the store and checkpoints.

    A checkpoint writes the JSON summary first and the index (the commit record) second:
    after a kill in between, the summary may list chips the index does not hold yet, and a
    resumed run drops those records and reads the chips again.

    Args:
        store: The store, open for appending, its positions reserved.
        report: The run's report.
        summary: Path of ``<store>.ingest.json``.
        run_id: This run's claim on the store (``claim_store``).
        every_s: Seconds between checkpoints (at least; grows if checkpoints get slow).
    """

    def __init__(
        self,
        store: ChipStore,
        report: IngestReport,
        summary: Path,
        run_id: str,
        every_s: float | None = None,
    ):
        self.store, self.report, self.summary, self.run_id = store, report, summary, run_id
        self.every_s = CHECKPOINT_SECONDS if every_s is None else every_s
        self._last = time.monotonic()
        self.store.flush_every = 10**9  # only checkpoints write the index

    def commit(self, results: list[TaskResult]) -> int:
        """Append the chips of ``results`` (in position order) to the index; returns how many."""
        rows = [r for res in results for r in res.index]
        if not rows:
            return 0
        mods = list(self.store.modalities)
        valid = {
            m: np.concatenate([res.valid[m] for res in results if len(res.index)]) for m in mods
        }
        names = {
            m: np.concatenate([res.slot_names[m] for res in results if len(res.index)])
            for m in mods
        }
        self.store.commit(
            gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326"), valid, names
        )
        for res in results:
            mine, _ = res.report.split_by_chips({r["chip_id"] for r in res.index})
            self.report.extend(mine)
        self.report.chips_written += len(rows)
        return len(rows)

    def maybe_checkpoint(self) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Summary, then index: the committed chips become durable."""
        t0 = time.monotonic()
        check_claim(self.store.url, self.run_id)
        self.report.chips_in_store = len(self.store)
        self.report.present = store_presence(self.store)
        self.report.write_json(self.summary)
        self.store.flush()
        took = time.monotonic() - t0
        self.every_s = (
            max(self.every_s, 10 * took) if self.every_s else 0.0
        )  # under ~10 % of the time
        self._last = time.monotonic()
