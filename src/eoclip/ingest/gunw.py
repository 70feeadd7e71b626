"""ARIA Sentinel-1 GUNW coherence: date-pair selection and the netCDF reader.

Both the geetiles/sartiles chip files of the M3LEO datasets (a ``coherence`` variable with a
``datepair`` dimension, one layer per pair) and whole ARIA GUNW products downloaded from ASF
(a 2-D ``coherence``, its pair in the file name) keep the variable in the netCDF group
``/science/grids/data`` on a ~90 m longitude/latitude grid; ``read_gunw`` reads either.
A pair is named like ARIA, second (later) date first: ``20200312_20200217``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from eoclip.ingest.grid import ChipGrid
from eoclip.ingest.readers import RasterChip
from eoclip.ingest.report import IngestFileError

__all__ = [
    "GUNW_GROUP",
    "PAIR_MAX_DAYS",
    "merge_pairs_on_chip",
    "pair_from_name",
    "parse_pair",
    "read_gunw",
    "select_pairs",
]

GUNW_GROUP = "/science/grids/data"
# Paper, section 3: pairs whose second date is in 2020Q1 and whose first is at most 48 days before.
PAIR_MAX_DAYS = 48
_PAIR_RE = re.compile(r"(\d{8})_(\d{8})")
_LAT_NAMES, _LON_NAMES = ("lat", "latitude", "y"), ("lon", "longitude", "x")


def parse_pair(name: str) -> tuple[dt.date, dt.date]:
    """``"20200312_20200217"`` -> (second date, first date)."""
    m = _PAIR_RE.search(str(name))
    if m is None:
        raise ValueError(f"{name!r} is not a date pair like 20200312_20200217")
    second, first = (dt.datetime.strptime(s, "%Y%m%d").date() for s in m.groups())
    if first > second:
        second, first = first, second
    return second, first


def pair_from_name(text: str) -> str | None:
    """The ``YYYYMMDD_YYYYMMDD`` pair inside a file or product name (ARIA naming), or None."""
    m = _PAIR_RE.search(Path(str(text)).name)
    return None if m is None else "_".join(d.strftime("%Y%m%d") for d in parse_pair(m.group(0)))


def select_pairs(
    names: Iterable[str],
    start: dt.date,
    end: dt.date,
    max_days: int = PAIR_MAX_DAYS,
    max_pairs: int | None = None,
) -> list[str]:
    """Choose the date pairs the paper uses.

    A pair is kept when its second date lies in [start, end] and its first date is at most
    ``max_days`` before the second. When more than ``max_pairs`` qualify, the ones with the
    shortest time span are kept (highest coherence, least decorrelation), ties going to the
    earlier pair.

    Args:
        names: Pair names; unparseable names are ignored.
        start, end: Inclusive window for the second date (default use: 2020-01-01..2020-03-31).
        max_days: Longest allowed span in days.
        max_pairs: Slots available (the gunw modality's ``max_channels``), None for all.

    Returns:
        Selected names, chronological by (second date, first date), duplicates removed.
    """
    keep: dict[str, tuple[dt.date, dt.date]] = {}
    for name in names:
        try:
            second, first = parse_pair(name)
        except ValueError:
            continue
        if start <= second <= end and 0 < (second - first).days <= max_days:
            keep.setdefault(str(name), (second, first))
    chosen = sorted(keep, key=lambda n: (keep[n][0] - keep[n][1], keep[n]))
    if max_pairs is not None:
        chosen = chosen[:max_pairs]
    return sorted(chosen, key=lambda n: keep[n])


def _axis(values: np.ndarray, path: str, name: str) -> tuple[float, float]:
    """(first coordinate, step) of a regular axis."""
    if values.size < 2:
        raise IngestFileError(path, f"coordinate {name!r} has fewer than 2 values")
    steps = np.diff(values.astype(np.float64))
    if not np.allclose(steps, steps[0], rtol=1e-3):
        raise IngestFileError(path, f"coordinate {name!r} is not regularly spaced")
    return float(values[0]), float(steps[0])


def _crs_of(ds, var, lat: str, path: str) -> CRS:
    if lat in ("lat", "latitude"):
        return CRS.from_epsg(4326)
    mapping_name = var.attrs.get("grid_mapping")
    if mapping_name and mapping_name in ds:
        attrs = ds[mapping_name].attrs
        for key in ("crs_wkt", "spatial_ref"):
            if key in attrs:
                return CRS.from_wkt(attrs[key])
    raise IngestFileError(path, "coherence has x/y coordinates but no grid_mapping CRS")


def read_gunw(path: str | os.PathLike, variable: str = "coherence") -> tuple[RasterChip, list[str]]:
    """Read coherence layers of a GUNW netCDF (chip file or whole ARIA product).

    Coherence 0 is ARIA's fill outside the swath and becomes NaN.

    Returns:
        (RasterChip with data (P, h, w) float32 0..1, pair names).

    Raises:
        IngestFileError: Missing or unreadable file, no ``/science/grids/data`` group, no
            coherence variable, unrecognised dimensions, or a 2-D layer whose pair cannot be
            told from the file name.
    """
    import xarray as xr

    path = str(path)
    if not Path(path).is_file():
        raise IngestFileError(path, "missing file")
    try:
        ds = xr.open_dataset(path, group=GUNW_GROUP, engine="h5netcdf")
    except (OSError, ValueError, KeyError) as err:
        problem = f"no group {GUNW_GROUP} (not a GUNW coherence file?)" if "group" in str(err).lower() \
            or isinstance(err, KeyError) else f"unreadable netCDF (truncated or corrupt?): {err}"
        raise IngestFileError(path, problem) from err
    with ds:
        if variable not in ds:
            raise IngestFileError(path, f"no variable {variable!r} in {GUNW_GROUP}; has {list(ds.data_vars)}")
        var = ds[variable]
        lat = next((d for d in var.dims if d in _LAT_NAMES), None)
        lon = next((d for d in var.dims if d in _LON_NAMES), None)
        others = [d for d in var.dims if d not in (lat, lon)]
        if lat is None or lon is None or len(others) > 1:
            raise IngestFileError(path, f"unrecognised coherence dimensions {var.dims}")
        if others:
            var = var.transpose(others[0], lat, lon)
            coord = var[others[0]].values
            pairs = [v.decode() if isinstance(v, bytes) else str(v) for v in coord]
        else:
            var = var.transpose(lat, lon).expand_dims("pair")
            pairs = [var.attrs.get("datepair") or pair_from_name(path)]
            if pairs[0] is None:
                raise IngestFileError(path, "2-D coherence and no YYYYMMDD_YYYYMMDD pair in the file name")
        data = np.asarray(var.values, dtype=np.float32)
        y0, dy = _axis(var[lat].values, path, lat)
        x0, dx = _axis(var[lon].values, path, lon)
        crs = _crs_of(ds, ds[variable], lat, path)
    if dy > 0:  # south-up storage: flip so the transform has a negative y step
        data, y0, dy = data[:, ::-1, :], y0 + dy * (data.shape[1] - 1), -dy
    data = np.where((data > 0) & np.isfinite(data), data, np.nan).astype(np.float32)
    transform = Affine(dx, 0.0, x0 - dx / 2, 0.0, dy, y0 - dy / 2)
    return RasterChip(path, np.ascontiguousarray(data), pairs, crs, transform), pairs


def merge_pairs_on_chip(
    rasters: Sequence[RasterChip], grid: ChipGrid, wanted: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Resample the wanted pairs of one or more GUNW rasters onto a chip grid.

    The same pair from adjacent frames is mosaicked (first valid value wins).

    Returns:
        (array (P, chip_px, chip_px) coherence with NaN, names of the P pairs with any data).
    """
    layers: dict[str, np.ndarray] = {}
    for raster in rasters:
        for i, name in enumerate(raster.names):
            if name not in wanted:
                continue
            try:
                layer = raster.to_chip(grid, raster.data[i : i + 1])[0]
            except IngestFileError:
                continue  # a frame that misses this chip
            prev = layers.get(name)
            layers[name] = layer if prev is None else np.where(np.isnan(prev), layer, prev)
    names = [n for n in wanted if n in layers and np.isfinite(layers[n]).any()]
    if not names:
        return np.empty((0, grid.chip_px, grid.chip_px), np.float32), []
    return np.stack([layers[n] for n in names]), names
