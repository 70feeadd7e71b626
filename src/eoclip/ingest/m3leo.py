"""Ingest the paper authors' M3LEO / geetiles chip files into a ChipStore.

Layout of a dataset folder (one AOI)::

    root/
      <name>.geojson               chips: `identifier` + EPSG:4326 polygon (one per chip)
      <name>_splits.csv            `identifier,split` (train / val / test)
      s2rgbm-2020/<identifier>.tif       uint8, bands 01_red 01_green 01_blue 02_red ... (0..0.3 -> 0..255)
      s1grdm-2020-asc/<identifier>.tif   dB, bands 01_vv 01_vh 02_vv ...   (also -des)
      gunw/<identifier>.nc               group /science/grids/data, coherence(datepair, lat, lon)
      esaworldcover-2020/<identifier>.tif   class codes (40 cropland, 80 permanent water)
      modis44b006veg/<identifier>.tif       band Percent_Tree_Cover_2020 (200 = water)
      ghsbuilts-2020/<identifier>.tif       built-up m2 per 100 m cell

A missing or unreadable file makes that modality absent (or that label NaN) for that chip and
is listed, with its reason, in ``<store>.ingest.json``; a missing chips GeoJSON or splits CSV
is an error. Sentinel-1 uses the ascending orbit by default and falls back to descending for
a chip whose ascending file is missing or unreadable (counted in the summary's notes).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eoclip.data.modalities import get_modality
from eoclip.ingest import readers
from eoclip.ingest.grid import ChipGrid, chip_grid
from eoclip.ingest.gunw import PAIR_MAX_DAYS, merge_pairs_on_chip, read_gunw, select_pairs
from eoclip.ingest.report import IngestFileError, IngestReport
from eoclip.ingest.writer import StoreWriter, open_store, summary_path

__all__ = ["M3LEOConfig", "ingest_m3leo", "read_chips", "read_splits"]

DEFAULT_FOLDERS = {
    "s2rgbm": "s2rgbm-{year}",
    "s1grdm-asc": "s1grdm-{year}-asc",
    "s1grdm-des": "s1grdm-{year}-des",
    "gunw": "gunw",
    "esaworldcover": "esaworldcover-{year}",
    "modis": "modis44b006veg",
    "ghsbuilts": "ghsbuilts-{year}",
}


@dataclass
class M3LEOConfig:
    """Settings of ``eoclip ingest m3leo``.

    Attributes:
        root: Dataset folder (see the module docstring for its layout).
        store: Output ChipStore path or URL.
        chips: Chips GeoJSON; default the only ``*.geojson`` in ``root``.
        splits: Splits CSV; default the only ``*split*.csv`` in ``root``.
        aoi: AOI name for the index; default the GeoJSON's ``aoi`` column, else root's name.
        chip_px: Pixels per chip side in the store (448 = native 10 m for 4480 m chips).
        year: Year in the product folder names and of the GUNW window.
        months: Calendar months to take for s2rgbm/s1grdm (stored as slots 01, 02, 03).
        s1_direction: ``asc`` or ``des``; the other is used when the chosen one is missing.
        s1_fallback: Allow that fallback.
        gunw_max_days: Longest GUNW pair span (paper: 48 days).
        ghs_divisor: Divides GHS-BUILT-S values into a fraction (10000 m2 per 100 m cell).
        folders: Product folder names, ``{year}`` substituted.
        modalities: Modalities of the store.
        batch_size: Chips per store append.
        resume: Reopen an existing store and skip the chips it holds.
        overwrite: Replace an existing store.
        limit: Ingest at most this many chips (for a trial run).
        progress: Show a progress bar.
    """

    root: Path
    store: str
    chips: Path | None = None
    splits: Path | None = None
    aoi: str | None = None
    chip_px: int = 448
    year: int = 2020
    months: tuple[int, ...] = (1, 2, 3)
    s1_direction: str = "asc"
    s1_fallback: bool = True
    gunw_max_days: int = PAIR_MAX_DAYS
    ghs_divisor: float = 10_000.0
    folders: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FOLDERS))
    modalities: tuple[str, ...] = ("s2rgbm", "s1grdm", "gunw")
    batch_size: int = 64
    resume: bool = False
    overwrite: bool = False
    limit: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.s1_direction not in ("asc", "des"):
            raise ValueError(f"s1_direction must be 'asc' or 'des', not {self.s1_direction!r}")
        if not self.months or any(not 1 <= m <= 12 for m in self.months):
            raise ValueError(f"months must be calendar months 1..12, got {self.months}")
        for name in ("s2rgbm", "s1grdm"):
            if name in self.modalities:
                n = len(get_modality(name).channels) // 3
                if len(self.months) != n:
                    raise ValueError(f"{name} stores {n} months; got months={self.months}")

    def folder(self, key: str) -> Path:
        return self.root / self.folders[key].format(year=self.year)

    def gunw_window(self) -> tuple[dt.date, dt.date]:
        """Second-date window of GUNW pairs: the first day of the first month to the last day of the last."""
        first, last = min(self.months), max(self.months)
        return dt.date(self.year, first, 1), dt.date(self.year, last, calendar.monthrange(self.year, last)[1])


def _only(root: Path, pattern: str, what: str) -> Path:
    found = sorted(root.glob(pattern))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{root}: expected exactly one {what} ({pattern}), found {[p.name for p in found]}; "
            f"pass it explicitly"
        )
    return found[0]


def read_chips(path: Path) -> gpd.GeoDataFrame:
    """Read the chips GeoJSON: ``identifier`` (or ``chip_id``) and EPSG:4326 polygons.

    Raises:
        IngestFileError: Missing/unreadable file, no identifier column, duplicate identifiers.
    """
    if not Path(path).is_file():
        raise IngestFileError(path, "chips GeoJSON not found")
    try:
        chips = gpd.read_file(path)
    except Exception as err:  # pyogrio raises several unrelated types
        raise IngestFileError(path, f"unreadable chips GeoJSON: {err}") from err
    key = "identifier" if "identifier" in chips else "chip_id" if "chip_id" in chips else None
    if key is None:
        raise IngestFileError(path, f"no 'identifier' column; columns are {list(chips.columns)}")
    chips = chips.rename(columns={key: "chip_id"})
    chips["chip_id"] = chips["chip_id"].astype(str)
    dup = chips["chip_id"][chips["chip_id"].duplicated()].tolist()
    if dup:
        raise IngestFileError(path, f"duplicate identifiers {dup[:5]}")
    if chips.crs is None:
        chips = chips.set_crs("EPSG:4326")
    elif not chips.crs.equals("EPSG:4326"):
        chips = chips.to_crs("EPSG:4326")
    return chips


def read_splits(path: Path) -> pd.Series:
    """Read ``identifier,split`` into a Series indexed by identifier."""
    if not Path(path).is_file():
        raise IngestFileError(path, "splits CSV not found")
    try:
        df = pd.read_csv(path, dtype=str)
    except Exception as err:
        raise IngestFileError(path, f"unreadable splits CSV: {err}") from err
    if not {"identifier", "split"} <= set(df.columns):
        raise IngestFileError(path, f"needs columns identifier,split; has {list(df.columns)}")
    return df.drop_duplicates("identifier").set_index("identifier")["split"]


def _file(folder: Path, chip_id: str, exts=(".tif", ".tiff", ".nc")) -> Path:
    for ext in exts:
        p = folder / f"{chip_id}{ext}"
        if p.exists():
            return p
    return folder / f"{chip_id}{exts[0]}"


def _orphans(cfg: M3LEOConfig, known: set[str], report: IngestReport) -> None:
    """List product files whose identifier is not in the grid, and missing product folders."""
    for key in cfg.folders:
        folder = cfg.folder(key)
        if not folder.is_dir():
            report.skip(None, folder.name, folder, "product folder missing: modality absent for every chip")
            continue
        for entry in folder.iterdir():
            if entry.suffix in (".tif", ".tiff", ".nc") and entry.stem not in known:
                report.skip(entry.stem, folder.name, entry, "chip id absent from the grid (chips GeoJSON)")


def _read_s1(cfg: M3LEOConfig, cid: str, grid: ChipGrid, report: IngestReport):
    order = [cfg.s1_direction] + ([{"asc": "des", "des": "asc"}[cfg.s1_direction]] if cfg.s1_fallback else [])
    for k, direction in enumerate(order):
        folder = cfg.folder(f"s1grdm-{direction}")
        path = _file(folder, cid)
        try:
            arr, missing = readers.read_s1_chip(path, grid, cfg.months)
        except IngestFileError as err:
            report.skip(cid, folder.name, path, err.problem)
            continue
        if k:
            report.notes[f"s1grdm: {direction} used ({order[0]} missing)"] += 1
        if missing:
            report.skip(cid, folder.name, path, f"missing bands: {','.join(missing)}")
        return arr
    return None


def _read_chip(cfg: M3LEOConfig, cid: str, grid: ChipGrid, report: IngestReport):
    """All modalities and labels of one chip -> (arrays, names, labels)."""
    arrays, names, labels = {}, {}, {}
    if "s2rgbm" in cfg.modalities:
        folder = cfg.folder("s2rgbm")
        path = _file(folder, cid)
        try:
            arrays["s2rgbm"], missing = readers.read_s2_chip(path, grid, cfg.months)
            if missing:
                report.skip(cid, folder.name, path, f"missing bands: {','.join(missing)}")
        except IngestFileError as err:
            report.skip(cid, folder.name, path, err.problem)
    if "s1grdm" in cfg.modalities:
        s1 = _read_s1(cfg, cid, grid, report)
        if s1 is not None:
            arrays["s1grdm"] = s1
    if "gunw" in cfg.modalities:
        folder = cfg.folder("gunw")
        path = _file(folder, cid, (".nc", ".nc4", ".h5"))
        try:
            raster, pairs = read_gunw(path)
            raster.check_overlap(grid)
            wanted = select_pairs(pairs, *cfg.gunw_window(), cfg.gunw_max_days, get_modality("gunw").max_channels)
            data, kept = merge_pairs_on_chip([raster], grid, wanted)
            if kept:
                arrays["gunw"], names["gunw"] = data, kept
            else:
                report.skip(cid, folder.name, path, f"no date pair in the window among {pairs}")
        except IngestFileError as err:
            report.skip(cid, folder.name, path, err.problem)
    _read_labels(cfg, cid, grid, report, labels)
    return arrays, names, labels


def _read_labels(cfg: M3LEOConfig, cid: str, grid: ChipGrid, report: IngestReport, labels: dict) -> None:
    jobs = [
        ("esaworldcover", ("label_crop", "label_water"),
         lambda p: readers.esa_worldcover_fractions(p, grid, (40, 80))),
        ("modis", ("label_tree",), lambda p: [readers.modis_tree_cover(p, grid, f"Percent_Tree_Cover_{cfg.year}")]),
        ("ghsbuilts", ("label_built",), lambda p: [readers.ghs_built_fraction(p, grid, cfg.ghs_divisor)]),
    ]
    for key, columns, read in jobs:
        folder = cfg.folder(key)
        path = _file(folder, cid)
        try:
            values = read(path)
        except IngestFileError as err:
            report.skip(cid, folder.name, path, err.problem)
            values = [np.nan] * len(columns)
        labels.update(zip(columns, values, strict=True))


def ingest_m3leo(cfg: M3LEOConfig) -> IngestReport:
    """Read an M3LEO dataset folder into a ChipStore; see the module docstring.

    Returns:
        The run's report, also written to ``<store>.ingest.json``.

    Raises:
        IngestFileError: The chips GeoJSON or splits CSV is missing or unreadable.
        FileNotFoundError: They cannot be found in ``root`` and were not given.
    """
    if not cfg.root.is_dir():
        raise FileNotFoundError(f"M3LEO dataset folder {cfg.root} does not exist")
    chips = read_chips(cfg.chips or _only(cfg.root, "*.geojson", "chips GeoJSON"))
    splits_path = cfg.splits or _only(cfg.root, "*split*.csv", "splits CSV")
    splits = read_splits(splits_path)
    report = IngestReport(source="m3leo", chips_total=len(chips))
    known = set(chips["chip_id"])
    for cid in sorted(set(splits.index) - known):
        report.skip(cid, "splits", splits_path, "chip id absent from the grid (chips GeoJSON)")
    _orphans(cfg, known, report)
    no_split = ~chips["chip_id"].isin(splits.index)
    for cid in chips.loc[no_split, "chip_id"]:
        report.skip(cid, "splits", splits_path, "chip has no split in the splits CSV: not written")
    chips = chips[~no_split]
    aoi_default = cfg.aoi or cfg.root.name
    first = chip_grid(chips["chip_id"].iloc[0], chips.geometry.iloc[0], cfg.chip_px) if len(chips) else None
    pixel = round(first.pixel_size_m, 3) if first else 10.0
    store = open_store(cfg.store, cfg.modalities, cfg.chip_px, pixel, cfg.resume, cfg.overwrite)
    writer = StoreWriter(store, report, cfg.batch_size)
    todo = chips[~chips["chip_id"].isin(writer.done)]
    report.chips_already_present = len(chips) - len(todo)
    if cfg.limit is not None:
        todo = todo.iloc[: cfg.limit]
    for row in tqdm(todo.itertuples(index=False), total=len(todo), desc="ingest m3leo", disable=not cfg.progress):
        cid = row.chip_id
        try:
            utm = getattr(row, "utm_epsg", None)
            utm = int(utm) if utm is not None and pd.notna(utm) else None
            grid = chip_grid(cid, row.geometry, cfg.chip_px, utm)
        except ValueError as err:
            report.skip(cid, "chips", cfg.chips, str(err))
            continue
        arrays, names, labels = _read_chip(cfg, cid, grid, report)
        if not arrays:
            report.skip(cid, "chip", None, "no modality readable: chip not written")
            continue
        aoi = getattr(row, "aoi", None) or aoi_default
        writer.add({"chip_id": cid, "geometry": row.geometry, "aoi": str(aoi),
                    "split": str(splits[cid]), **labels}, arrays, names)
    writer.flush()
    store.close()
    report.write_json(summary_path(cfg.store))
    return report
