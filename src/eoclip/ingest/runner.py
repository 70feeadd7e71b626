"""The chip loop shared by the STAC and ASF paths: grid in, ChipStore out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eoclip.data.modalities import get_modality
from eoclip.ingest.grid import ChipGrid, chip_grid
from eoclip.ingest.gunw import PAIR_MAX_DAYS, merge_pairs_on_chip, read_gunw, select_pairs
from eoclip.ingest.report import IngestFileError, IngestReport
from eoclip.ingest.writer import StoreWriter, open_store, summary_path

__all__ = ["GridSpec", "GunwLibrary", "StoreSpec", "load_grid", "run_chips"]


@dataclass
class GridSpec:
    """Which chips: a chips GeoJSON, or an AOI (name or file) with optional bounds.

    Attributes:
        chips: GeoJSON with ``chip_id`` (or ``identifier``), EPSG:4326 polygons, optional
            ``aoi``, ``split`` and ``utm_epsg``.
        aoi: AOI for ``eoclip.geo.make_grid`` when no chips file is given.
        bounds: (min_lon, min_lat, max_lon, max_lat) restricting the AOI grid.
        chip_size_m: Chip side for ``make_grid`` (paper: 4480 m).
        split_seed: Seed of ``eoclip.geo.band_splits`` for chips without a split.
    """

    chips: Path | None = None
    aoi: str | None = None
    bounds: tuple[float, float, float, float] | None = None
    chip_size_m: float = 4480.0
    split_seed: int = 0


@dataclass
class StoreSpec:
    """Where and how to write: see ``eoclip.ingest.m3leo.M3LEOConfig`` for the fields."""

    path: str
    chip_px: int = 448
    batch_size: int = 64
    resume: bool = False
    overwrite: bool = False
    limit: int | None = None
    progress: bool = True


def load_grid(spec: GridSpec) -> gpd.GeoDataFrame:
    """The chips to ingest, with ``chip_id``, ``aoi``, ``split``, ``geometry`` (EPSG:4326)."""
    from eoclip.geo import band_splits, make_grid

    if spec.chips is not None:
        from eoclip.ingest.m3leo import read_chips

        grid = read_chips(Path(spec.chips))
        if "aoi" not in grid:
            grid["aoi"] = spec.aoi or Path(spec.chips).stem
    elif spec.aoi is not None:
        grid = make_grid(spec.aoi, spec.chip_size_m, spec.bounds)
        if grid.empty:
            raise ValueError(f"no chip of {spec.chip_size_m} m in AOI {spec.aoi} within bounds {spec.bounds}")
    else:
        raise ValueError("give a chips GeoJSON or an AOI (name or file) with optional bounds")
    if "split" not in grid or grid["split"].isna().any():
        splits = band_splits(grid, seed=spec.split_seed)["split"]
        grid["split"] = grid["split"].fillna(splits) if "split" in grid else splits
    return grid


class GunwLibrary:
    """ARIA GUNW products on disk (e.g. downloaded by ``ingest asf``), read once.

    Args:
        folder: Folder searched recursively for ``*.nc``.
        start, end: Second-date window of the pairs.
        max_days: Longest pair span.
        report: Unreadable products are recorded here.
    """

    def __init__(self, folder: Path, start: dt.date, end: dt.date, report: IngestReport,
                 max_days: int = PAIR_MAX_DAYS):
        self.rasters = []
        for path in sorted(Path(folder).rglob("*.nc")):
            try:
                self.rasters.append(read_gunw(path)[0])
            except IngestFileError as err:
                report.skip(None, "gunw", path, err.problem)
        names = [n for r in self.rasters for n in r.names]
        self.pairs = select_pairs(names, start, end, max_days)
        self.max_pairs = get_modality("gunw").max_channels

    def chip(self, grid: ChipGrid) -> tuple[np.ndarray, list[str]]:
        """Coherence of the selected pairs on a chip grid (P, H, W) and their names."""
        data, names = merge_pairs_on_chip(self.rasters, grid, self.pairs)
        if len(names) > self.max_pairs:
            keep = set(select_pairs(names, dt.date.min, dt.date.max, 10**6, self.max_pairs))
            idx = [i for i, n in enumerate(names) if n in keep]
            data, names = data[idx], [names[i] for i in idx]
        return data, names


ChipReader = Callable[[ChipGrid, IngestReport], tuple[dict, dict, dict]]


def run_chips(grid: gpd.GeoDataFrame, out: StoreSpec, modalities, read: ChipReader,
              report: IngestReport) -> IngestReport:
    """Ingest every chip of ``grid`` with ``read(chip_grid, report) -> (arrays, names, labels)``.

    Chips already in a resumed store are skipped; a chip with no modality is not written.
    """
    report.chips_total = len(grid)
    first = chip_grid(str(grid["chip_id"].iloc[0]), grid.geometry.iloc[0], out.chip_px) if len(grid) else None
    pixel = round(first.pixel_size_m, 3) if first else 10.0
    store = open_store(out.path, modalities, out.chip_px, pixel, out.resume, out.overwrite)
    writer = StoreWriter(store, report, out.batch_size)
    todo = grid[~grid["chip_id"].astype(str).isin(writer.done)]
    report.chips_already_present = len(grid) - len(todo)
    if out.limit is not None:
        todo = todo.iloc[: out.limit]
    for row in tqdm(todo.itertuples(index=False), total=len(todo), desc=f"ingest {report.source}",
                    disable=not out.progress):
        cid = str(row.chip_id)
        utm = getattr(row, "utm_epsg", None)
        try:
            cg = chip_grid(cid, row.geometry, out.chip_px, int(utm) if utm is not None and pd.notna(utm) else None)
            arrays, names, labels = read(cg, report)
        except (ValueError, IngestFileError) as err:
            report.skip(cid, "chip", None, str(err))
            continue
        if not arrays:
            report.skip(cid, "chip", None, "no modality found: chip not written")
            continue
        writer.add({"chip_id": cid, "geometry": row.geometry, "aoi": str(row.aoi),
                    "split": str(row.split), **labels}, arrays, names)
    writer.flush()
    store.close()
    report.write_json(summary_path(out.path))
    return report
