"""Ingest the paper authors' M3LEO / geetiles download into a ChipStore.

The download, as geetiles writes it (``eoclip.ingest.layout``; several AOIs per root)::

    root/
      <aoi>_partitions_aschips_<hash>.geojson      identifier + EPSG:4326 polygon per chip
      <aoi>_partitions_aschips_<hash>_splits*.csv  identifier,split
      <aoi>_partitions_aschips_<hash>/
        s2rgbm-2020/<id>.tif           uint8, 36 bands 01_red ... 12_blue (0..0.3 -> 0..255)
        s1grdm-2020-asc/<id>.tif       dB, 24 bands 01_vv 01_vh ... 12_vh (any dtype: range-checked)
        s1grdm-2020-desc/<id>.tif      (or -des) used when the ascending file is missing or unusable
        gunw/<id>.nc                   group /science/grids/data, coherence(datepair, lat, lon)
        esaworldcover-2020/<id>.tif    class codes (40 cropland, 80 permanent water)
        modis44b006veg/<id>.tif        band Percent_Tree_Cover_2020 (200 = water)
        ghsbuilts-2020/<id>.tif        built-up m2 per 100 m cell

A missing, unreadable, all-no-data or out-of-range file makes that modality absent (or that
label NaN) for that chip and is listed with its reason in ``<store>.ingest.json``; a product
folder missing for a whole AOI is listed once as a problem of that AOI, and one of the store's
modalities missing in every AOI stops the run before anything is read.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from eoclip.data.modalities import MAX_NAN_FRACTION, get_modality
from eoclip.ingest import readers
from eoclip.ingest.executors import ExecutorSpec
from eoclip.ingest.grid import ChipGrid
from eoclip.ingest.gunw import (
    PAIR_MAX_DAYS,
    cap_pairs,
    merge_pairs_on_chip,
    read_gunw,
    select_pairs,
)
from eoclip.ingest.layout import Dataset, find_datasets, read_chips, read_splits
from eoclip.ingest.report import IngestConfigError, IngestError, IngestFileError, IngestReport
from eoclip.ingest.runner import StoreSpec, run_ingest
from eoclip.ingest.source import ChipData, ChipSource

__all__ = ["LABEL_PRODUCTS", "M3LEOConfig", "M3LEOSource", "ingest_m3leo", "load_m3leo_grid"]

# Store modality -> the product folders it is read from.
MODALITY_PRODUCTS = {
    "s2rgbm": ("s2rgbm",),
    "s1grdm": ("s1grdm-asc", "s1grdm-des"),
    "gunw": ("gunw",),
}
# Label product -> the index columns it fills.
LABEL_PRODUCTS = {
    "esaworldcover": ("label_crop", "label_water"),
    "modis": ("label_tree",),
    "ghsbuilts": ("label_built",),
}


@dataclass
class M3LEOConfig:
    """What to read from an M3LEO / geetiles download (where to write: ``StoreSpec``).

    Attributes:
        root: The download folder (see the module docstring).
        chips: One chips GeoJSON instead of every ``*.geojson`` of ``root``.
        splits: Splits CSV: a path, or a part of its name choosing among each AOI's
            ``<stem>_splits*.csv``; default the only one.
        split_column: Column of the splits CSV; default ``split``, else the only ``*split*``.
        aoi: AOI name for every chip; default the GeoJSON's ``aoi`` column, else the stem's
            first part (``conus`` of ``conus_partitions_...``), else the root's name.
        year: Year in the product folder names and of the GUNW window.
        months: Calendar months to take for s2rgbm/s1grdm (stored as slots 01, 02, 03).
        s1_direction: ``asc`` or ``des`` (``desc`` accepted); the other orbit is used when
            the chosen one is missing or unusable.
        s1_fallback: Allow that fallback.
        gunw_max_days: Longest GUNW pair span (paper: 48 days).
        ghs_divisor: Divides GHS-BUILT-S values into a fraction (10000 m2 per 100 m cell).
        folders: Product key -> folder names to try ({year} substituted), replacing the
            defaults of ``eoclip.ingest.layout.PRODUCT_FOLDERS``.
        modalities: Modalities of the store; each must have its folder in at least one AOI.
        labels: Label products to read (``esaworldcover``, ``modis``, ``ghsbuilts``).
    """

    root: Path
    chips: Path | None = None
    splits: str | Path | None = None
    split_column: str | None = None
    aoi: str | None = None
    year: int = 2020
    months: tuple[int, ...] = (1, 2, 3)
    s1_direction: str = "asc"
    s1_fallback: bool = True
    gunw_max_days: int = PAIR_MAX_DAYS
    ghs_divisor: float = 10_000.0
    folders: dict[str, tuple[str, ...]] = field(default_factory=dict)
    modalities: tuple[str, ...] = ("s2rgbm", "s1grdm", "gunw")
    labels: tuple[str, ...] = tuple(LABEL_PRODUCTS)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.s1_direction = {"desc": "des"}.get(self.s1_direction, self.s1_direction)
        if self.s1_direction not in ("asc", "des"):
            raise IngestConfigError(
                f"s1_direction must be 'asc' or 'des' ('desc'), not {self.s1_direction!r}"
            )
        self.months = tuple(int(m) for m in self.months)
        if not self.months or any(not 1 <= m <= 12 for m in self.months):
            raise IngestConfigError(f"months must be calendar months 1..12, got {self.months}")
        for name in self.modalities:
            if name not in MODALITY_PRODUCTS:
                raise IngestConfigError(
                    f"M3LEO has no modality {name!r}; it has {list(MODALITY_PRODUCTS)}"
                )
            if (
                name in ("s2rgbm", "s1grdm")
                and len(self.months) != len(get_modality(name).channels) // 3
            ):
                raise IngestConfigError(
                    f"{name} stores {len(get_modality(name).channels) // 3} months; got "
                    f"months={self.months}"
                )
        unknown = set(self.labels) - set(LABEL_PRODUCTS)
        if unknown:
            raise IngestConfigError(
                f"unknown label products {sorted(unknown)}; known: {list(LABEL_PRODUCTS)}"
            )
        self.folders = {
            k: (v,) if isinstance(v, str) else tuple(v) for k, v in self.folders.items()
        }

    def gunw_window(self) -> tuple[dt.date, dt.date]:
        """Second-date window of GUNW pairs: the first day of the first month to the last day of the
        last.
        """
        first, last = min(self.months), max(self.months)
        return dt.date(self.year, first, 1), dt.date(
            self.year, last, calendar.monthrange(self.year, last)[1]
        )


def _file(folder: Path, chip_id: str, exts=(".tif", ".tiff", ".nc")) -> Path:
    for ext in exts:
        p = folder / f"{chip_id}{ext}"
        if p.exists():
            return p
    return folder / f"{chip_id}{exts[0]}"


def _usable(x: np.ndarray) -> bool:
    """Whether any channel would be stored as valid (few enough missing pixels)."""
    return bool((np.isnan(x).mean(axis=(1, 2)) <= MAX_NAN_FRACTION).any())


class M3LEOSource(ChipSource):
    """Reads one chip's files of an M3LEO download (see the module docstring).

    Args:
        cfg: What to read.
        datasets: The AOIs (``find_datasets``); a row's ``dataset`` is an index into it.
    """

    name = "m3leo"
    row_keys = ("dataset", "has_files")

    def __init__(self, cfg: M3LEOConfig, datasets: list[Dataset]):
        self.cfg, self.datasets = cfg, datasets
        self.modalities = tuple(cfg.modalities)

    def read(self, grid: ChipGrid, row: dict, report: IngestReport) -> ChipData:
        ds = self.datasets[int(row["dataset"])]
        cid, out = grid.chip_id, ChipData()
        if not row.get("has_files", True):
            out.not_written = f"no file of any modality in {ds.folder}"
            return out
        folder = ds.products.get("s2rgbm")
        if "s2rgbm" in self.modalities and folder is not None:
            path = _file(folder, cid)
            try:
                out.arrays["s2rgbm"] = self._checked(
                    readers.read_s2_chip(path, grid, self.cfg.months),
                    "s2rgbm",
                    cid,
                    folder,
                    path,
                    report,
                )
            except IngestFileError as err:
                report.skip(cid, folder.name, path, err.problem)
        if "s1grdm" in self.modalities:
            s1 = self._read_s1(ds, cid, grid, report)
            if s1 is not None:
                out.arrays["s1grdm"] = s1
        if "gunw" in self.modalities and ds.products.get("gunw") is not None:
            self._read_gunw(ds.products["gunw"], cid, grid, report, out)
        self._read_labels(ds, cid, grid, report, out.labels)
        return out

    @staticmethod
    def _checked(
        band: readers.BandRead,
        modality: str,
        cid: str,
        folder: Path,
        path: Path,
        report: IngestReport,
    ) -> np.ndarray:
        """Record missing and out-of-range bands; raise if no channel would be valid."""
        if band.missing:
            report.skip(cid, folder.name, path, f"missing bands: {','.join(band.missing)}")
        if band.out_of_range:
            lo, hi = get_modality(modality).valid_range
            report.skip(
                cid,
                folder.name,
                path,
                f"out of range: values outside [{lo:g}, {hi:g}] in "
                f"{band.out_of_range} bands set invalid (stored as {band.dtype})",
            )
        if not _usable(band.data):
            raise IngestFileError(
                path,
                f"unusable: no band with at least {1 - MAX_NAN_FRACTION:.0%} valid "
                "pixels on the chip (no data, masked or out of range)",
            )
        return band.data

    def _read_s1(
        self, ds: Dataset, cid: str, grid: ChipGrid, report: IngestReport
    ) -> np.ndarray | None:
        first = self.cfg.s1_direction
        order = [first] + ([{"asc": "des", "des": "asc"}[first]] if self.cfg.s1_fallback else [])
        for k, direction in enumerate(order):
            folder = ds.products.get(f"s1grdm-{direction}")
            if folder is None:
                continue
            path = _file(folder, cid)
            try:
                data = self._checked(
                    readers.read_s1_chip(path, grid, self.cfg.months),
                    "s1grdm",
                    cid,
                    folder,
                    path,
                    report,
                )
            except IngestFileError as err:
                report.skip(cid, folder.name, path, err.problem)
                continue
            if k:
                report.note(cid, f"s1grdm: {direction} used ({first} missing or unusable)")
            return data
        return None

    def _read_gunw(
        self, folder: Path, cid: str, grid: ChipGrid, report: IngestReport, out: ChipData
    ) -> None:
        path = _file(folder, cid, (".nc", ".nc4", ".h5"))
        try:
            raster, pairs = read_gunw(path)
            raster.check_overlap(grid)
            wanted = select_pairs(pairs, *self.cfg.gunw_window(), self.cfg.gunw_max_days)
            # cap after resampling, so a pair without data on this chip never takes a slot
            data, kept = cap_pairs(
                *merge_pairs_on_chip([raster], grid, wanted), get_modality("gunw").max_channels
            )
        except IngestFileError as err:
            report.skip(cid, folder.name, path, err.problem)
            return
        if not kept:
            reason = (
                f"no date pair in the window among {pairs}"
                if not wanted
                else "no valid pixel in the selected date pairs (all fill or out of range)"
            )
            report.skip(cid, folder.name, path, reason)
            return
        out.arrays["gunw"], out.names["gunw"] = data, kept

    def _read_labels(
        self, ds: Dataset, cid: str, grid: ChipGrid, report: IngestReport, labels: dict
    ) -> None:
        cfg = self.cfg
        readers_of = {
            "esaworldcover": lambda p: readers.esa_worldcover_fractions(p, grid, (40, 80)),
            "modis": lambda p: [
                readers.modis_tree_cover(p, grid, f"Percent_Tree_Cover_{cfg.year}")
            ],
            "ghsbuilts": lambda p: [readers.ghs_built_fraction(p, grid, cfg.ghs_divisor)],
        }
        for key in cfg.labels:
            columns, folder = LABEL_PRODUCTS[key], ds.products.get(key)
            values = [np.nan] * len(columns)
            if folder is not None:
                path = _file(folder, cid)
                try:
                    values = readers_of[key](path)
                except IngestFileError as err:
                    report.skip(cid, folder.name, path, err.problem)
            labels.update(zip(columns, values, strict=True))


def _wanted_products(cfg: M3LEOConfig) -> list[str]:
    return [p for m in cfg.modalities for p in MODALITY_PRODUCTS[m]] + list(cfg.labels)


def _dataset_grid(cfg: M3LEOConfig, k: int, ds: Dataset, report: IngestReport) -> gpd.GeoDataFrame:
    """The chips of one AOI with their split; records chips without a split and ghost ids."""
    chips = read_chips(ds.chips_path)
    if ds.splits_path is not None:
        splits = read_splits(ds.splits_path, cfg.split_column)
        source = ds.splits_path
    elif "split" in chips:
        splits, source = chips.set_index("chip_id")["split"].dropna().astype(str), ds.chips_path
    else:
        raise IngestFileError(
            ds.chips_path,
            f"no splits CSV ({ds.stem}_splits*.csv) beside it and no 'split' column in it",
        )
    known = set(chips["chip_id"])
    for cid in sorted(set(splits.index) - known):
        report.skip(cid, "splits", source, "chip id absent from the grid (chips GeoJSON)")
    no_split = ~chips["chip_id"].isin(splits.index)
    for cid in chips.loc[no_split, "chip_id"]:
        report.skip(cid, "splits", source, "chip has no split in the splits CSV: not written")
    chips = chips[~no_split].copy()
    chips["split"] = chips["chip_id"].map(splits).astype(str)
    if cfg.aoi or "aoi" not in chips:
        chips["aoi"] = ds.aoi
    chips["dataset"] = k
    cols = ["chip_id", "aoi", "split", "dataset", "geometry"] + (
        ["utm_epsg"] if "utm_epsg" in chips else []
    )
    return chips[cols]


def _scan_products(cfg: M3LEOConfig, ds: Dataset, ids: set[str], report: IngestReport) -> set[str]:
    """List each product folder once: orphan files, folders without any chip's file.

    Returns the ids of the chips with a file in at least one modality folder.
    """
    with_modality: set[str] = set()
    modality_products = {p for m in cfg.modalities for p in MODALITY_PRODUCTS[m]}
    for key in _wanted_products(cfg):
        folder = ds.products.get(key)
        if folder is None:
            if key != "s1grdm-des" or ds.products.get("s1grdm-asc") is None:
                report.problem(
                    key,
                    ds.folder,
                    f"no product folder in AOI {ds.aoi} ({ds.stem}): absent for all its chips",
                )
            continue
        matched, other = 0, 0
        with os.scandir(folder) as entries:
            for entry in entries:
                stem, ext = os.path.splitext(entry.name)
                if ext not in (".tif", ".tiff", ".nc", ".nc4", ".h5"):
                    other += 1
                elif stem in ids:
                    matched += 1
                    if key in modality_products:
                        with_modality.add(stem)
                else:
                    report.skip(
                        stem,
                        folder.name,
                        entry.path,
                        "chip id absent from the grid (chips GeoJSON)",
                    )
        if not matched:
            report.problem(
                key,
                folder,
                f"holds no readable file of a chip of AOI {ds.aoi} ({other} other "
                "entries): absent for all its chips",
            )
            ds.products[key] = None
    return with_modality


def load_m3leo_grid(
    cfg: M3LEOConfig, report: IngestReport
) -> tuple[gpd.GeoDataFrame, list[Dataset]]:
    """Every chip of every AOI (with ``dataset``, ``has_files``), after checking the products
    asked for. ``has_files`` is False for a chip without a file in any modality folder (not
    read, reported as not written).

    Raises:
        IngestError: A modality or label product asked for has no folder in any AOI.
    """
    datasets = find_datasets(cfg.root, cfg.chips, cfg.splits, cfg.aoi, cfg.year, cfg.folders)
    grids = []
    for k, ds in enumerate(datasets):
        chips = _dataset_grid(cfg, k, ds, report)
        with_modality = _scan_products(cfg, ds, set(chips["chip_id"]), report)
        chips["has_files"] = chips["chip_id"].isin(with_modality)
        grids.append(chips)
    for name in (*cfg.modalities, *cfg.labels):
        products = MODALITY_PRODUCTS.get(name, (name,))
        if not any(ds.products.get(p) for ds in datasets for p in products):
            looked = sorted(
                {name.format(year=cfg.year) for key in products for name in _folder_names(cfg, key)}
            )
            raise IngestError(
                f"{name}: no product folder ({', '.join(looked)}) with chip files in any AOI "
                f"under {cfg.root}; leave {name} out of the "
                f"{'modalities' if name in MODALITY_PRODUCTS else 'labels'} to ingest without it"
            )
    grid = pd.concat(grids, ignore_index=True) if grids else gpd.GeoDataFrame()
    dup = grid["chip_id"][grid["chip_id"].duplicated()].unique().tolist() if len(grid) else []
    if dup:
        raise IngestError(
            f"chip ids {dup[:3]} appear in several AOIs of {cfg.root}; ingest the AOIs into "
            "separate stores"
        )
    return gpd.GeoDataFrame(grid, geometry="geometry", crs="EPSG:4326"), datasets


def _folder_names(cfg: M3LEOConfig, key: str) -> tuple[str, ...]:
    from eoclip.ingest.layout import PRODUCT_FOLDERS

    return cfg.folders.get(key) or PRODUCT_FOLDERS[key]


def ingest_m3leo(
    cfg: M3LEOConfig, out: StoreSpec, executor: ExecutorSpec | None = None
) -> IngestReport:
    """Read an M3LEO download into a ChipStore; see the module docstring.

    Args:
        cfg: What to read.
        out: Where and how to write.
        executor: Where chips are read (default: this process).

    Returns:
        The report, also written to ``<store>.ingest.json``.

    Raises:
        IngestError: The download cannot be used (no GeoJSON, ambiguous splits, a modality
            missing everywhere); NothingIngestedError when no chip could be written.
        IngestFileError: The chips GeoJSON or splits CSV is missing or unreadable.
    """
    report = IngestReport("m3leo")
    grid, datasets = load_m3leo_grid(cfg, report)
    return run_ingest(grid, out, M3LEOSource(cfg, datasets), executor, report)
