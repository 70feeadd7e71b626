"""Batched, resumable writing of ingested chips into a ChipStore."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np

from eoclip.data.modalities import get_modality
from eoclip.data.store import ChipStore, StoreError
from eoclip.ingest.report import IngestReport

__all__ = ["StoreWriter", "open_store", "summary_path"]


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
            raise StoreError(f"{path} has chip_px={store.chip_px}, not {chip_px}; use the same --chip-px")
        missing = set(modalities) - set(store.modalities)
        if missing:
            raise StoreError(f"{path} lacks modalities {sorted(missing)}; it has {list(store.modalities)}")
        return store
    return ChipStore.create(
        path, modalities=list(modalities), chip_px=chip_px, pixel_size_m=pixel_size_m,
        shard_chips=shard_chips, overwrite=overwrite,
    )


class StoreWriter:
    """Collect chips and append them to a store in batches.

    Args:
        store: A ChipStore open for appending.
        report: The run's report; counts written chips and present modalities/labels.
        batch_size: Chips per ``store.append`` call.
    """

    def __init__(self, store: ChipStore, report: IngestReport, batch_size: int = 64):
        self.store, self.report, self.batch_size = store, report, max(1, int(batch_size))
        self.done = set(store.chip_ids)
        self._rows: list[dict] = []
        self._arrays: list[dict[str, np.ndarray]] = []
        self._names: list[dict[str, list[str]]] = []

    def add(self, row: dict, arrays: dict[str, np.ndarray], names: dict[str, list[str]] | None = None):
        """Queue one chip.

        Args:
            row: chip_id, geometry (EPSG:4326), aoi, split and label_* values.
            arrays: per modality (C, H, W) physical float32; leave a modality out when absent.
            names: per variable modality the C channel names.
        """
        self._rows.append(row)
        self._arrays.append(arrays)
        self._names.append(names or {})
        self.done.add(row["chip_id"])
        if len(self._rows) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Append the queued chips (if any) and flush the store."""
        if not self._rows:
            return
        n, h = len(self._rows), self.store.chip_px
        arrays, channel_names = {}, {}
        for name in self.store.modalities:
            m = get_modality(self.store.modalities[name])
            have = [a.get(name) for a in self._arrays]
            if all(x is None for x in have):
                continue
            c = max(x.shape[0] for x in have if x is not None)
            batch = np.full((n, c, h, h), np.nan, dtype=np.float32)
            for i, x in enumerate(have):
                if x is not None:
                    batch[i, : x.shape[0]] = x
            arrays[name] = batch
            if m.variable:
                channel_names[name] = [nm.get(name, []) for nm in self._names]
            present = sum(x is not None and bool(np.isfinite(x).any()) for x in have)
            self.report.present[name] += present
        for row in self._rows:
            for key, value in row.items():
                if key.startswith("label_") and np.isfinite(value):
                    self.report.present[key] += 1
        index = gpd.GeoDataFrame(self._rows, geometry="geometry", crs="EPSG:4326")
        self.store.append(index, arrays, channel_names or None)
        self.store.flush()
        self.report.chips_written += n
        self._rows, self._arrays, self._names = [], [], []
