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
    "GunwLibrary",
    "PAIR_MAX_DAYS",
    "cap_pairs",
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


def cap_pairs(data: np.ndarray, names: list[str], max_pairs: int) -> tuple[np.ndarray, list[str]]:
    """Keep at most `max_pairs` of the pairs that hold data on a chip (the shortest spans).

    The cap is this project's choice, not the paper's (which keeps every qualifying pair): the
    store has a fixed number of channel slots (the gunw modality's `max_channels`, 8). It is
    applied after resampling, to the pairs that cover the chip, so a pair without a valid pixel
    on the chip never takes the slot of one with data.

    Args:
        data: (P, H, W) coherence of the pairs `names` on the chip.
        max_pairs: slots available.

    Returns:
        (data (P', H, W), names) with P' = min(P, max_pairs), chronological.
    """
    if len(names) <= max_pairs:
        return data, names
    keep = set(select_pairs(names, dt.date.min, dt.date.max, 10**6, max_pairs))
    idx = [i for i, n in enumerate(names) if n in keep]
    return data[idx], [names[i] for i in idx]


def _axis(values: np.ndarray, path: str, name: str) -> tuple[float, float]:
    """(first coordinate, step) of a regular axis."""
    if values.size < 2:
        raise IngestFileError(path, f"coordinate {name!r} has fewer than 2 values")
    steps = np.diff(values.astype(np.float64))
    if not np.allclose(steps, steps[0], rtol=1e-3):
        raise IngestFileError(path, f"coordinate {name!r} is not regularly spaced")
    return float(values[0]), float(steps[0])


def _crs_of(group, var, lat: str, path: str) -> CRS:
    if lat in ("lat", "latitude"):
        return CRS.from_epsg(4326)
    mapping_name = var.attrs.get("grid_mapping")
    if mapping_name and mapping_name in group.variables:
        attrs = group.variables[mapping_name].attrs
        for key in ("crs_wkt", "spatial_ref"):
            if key in attrs:
                return CRS.from_wkt(_text(attrs[key]))
    raise IngestFileError(path, "coherence has x/y coordinates but no grid_mapping CRS")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _coordinate(group, name: str, path: str) -> np.ndarray:
    """A coordinate variable of ``group`` or of a parent group (netCDF scoping)."""
    g = group
    while g is not None:
        if name in g.variables:
            return np.asarray(g.variables[name][...])
        g = g.parent if g.name != "/" else None
    raise IngestFileError(path, f"no coordinate variable {name!r}")


def _decoded(var) -> np.ndarray:
    """CF decoding of a numeric variable: fill and missing values to NaN, scale and offset."""
    raw = np.asarray(var[...])
    data = raw.astype(np.float32)
    for key in ("_FillValue", "missing_value"):
        fill = var.attrs.get(key)
        if fill is not None and np.all(np.isfinite(fill)):
            data[np.isin(raw, np.atleast_1d(fill))] = np.nan
    scale, offset = var.attrs.get("scale_factor"), var.attrs.get("add_offset")
    if scale is not None:
        data *= np.float32(scale)
    if offset is not None:
        data += np.float32(offset)
    return data


def read_gunw(path: str | os.PathLike, variable: str = "coherence") -> tuple[RasterChip, list[str]]:
    """Read coherence layers of a GUNW netCDF (chip file or whole ARIA product).

    Read with h5netcdf (about 4x faster than through xarray for these small files).
    Coherence 0 is ARIA's fill outside the swath and becomes NaN, as do values above 1.

    Returns:
        (RasterChip with data (P, h, w) float32 0..1, pair names).

    Raises:
        IngestFileError: Missing or unreadable file, no ``/science/grids/data`` group, no
            coherence variable, unrecognised dimensions, or a 2-D layer whose pair cannot be
            told from the file name.
    """
    import h5netcdf

    path = str(path)
    if not Path(path).is_file():
        raise IngestFileError(path, "missing file")
    try:
        f = h5netcdf.File(path, "r")
    except (OSError, ValueError) as err:
        raise IngestFileError(path, f"unreadable netCDF (truncated or corrupt?): {err}") from err
    with f:
        try:
            group = f[GUNW_GROUP]
        except KeyError as err:
            raise IngestFileError(
                path, f"no group {GUNW_GROUP} (not a GUNW coherence file?)"
            ) from err
        if variable not in group.variables:
            raise IngestFileError(
                path, f"no variable {variable!r} in {GUNW_GROUP}; has {list(group.variables)}"
            )
        var = group.variables[variable]
        dims = tuple(var.dimensions)
        lat = next((d for d in dims if d in _LAT_NAMES), None)
        lon = next((d for d in dims if d in _LON_NAMES), None)
        others = [d for d in dims if d not in (lat, lon)]
        if lat is None or lon is None or len(others) > 1:
            raise IngestFileError(path, f"unrecognised coherence dimensions {dims}")
        data = _decoded(var)
        order = [dims.index(d) for d in (*others, lat, lon)]
        data = np.transpose(data, order) if others else np.transpose(data, order)[None]
        if others:
            pairs = [_text(v) for v in _coordinate(group, others[0], path)]
        else:
            pairs = [
                _text(var.attrs["datepair"]) if "datepair" in var.attrs else pair_from_name(path)
            ]
            if pairs[0] is None:
                raise IngestFileError(
                    path, "2-D coherence and no YYYYMMDD_YYYYMMDD pair in the file name"
                )
        y0, dy = _axis(_coordinate(group, lat, path), path, lat)
        x0, dx = _axis(_coordinate(group, lon, path), path, lon)
        crs = _crs_of(group, var, lat, path)
    if dy > 0:  # south-up storage: flip so the transform has a negative y step
        data, y0, dy = data[:, ::-1, :], y0 + dy * (data.shape[1] - 1), -dy
    # 0 is ARIA's fill; values above 1 are not coherence (a wrongly scaled or typed file)
    with np.errstate(invalid="ignore"):
        data = np.where((data > 0) & (data <= 1), data, np.float32(np.nan)).astype(np.float32)
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
        idx = [i for i, name in enumerate(raster.names) if name in wanted]
        if not idx:
            continue
        try:
            warped = raster.to_chip(grid, raster.data[idx])  # one warp for all pairs of the file
        except IngestFileError:
            continue  # a frame that misses this chip
        for k, i in enumerate(idx):
            name, layer = raster.names[i], warped[k]
            prev = layers.get(name)
            layers[name] = layer if prev is None else np.where(np.isnan(prev), layer, prev)
    names = [n for n in wanted if n in layers and np.isfinite(layers[n]).any()]
    if not names:
        return np.empty((0, grid.chip_px, grid.chip_px), np.float32), []
    return np.stack([layers[n] for n in names]), names


class GunwLibrary:
    """ARIA GUNW products on disk (e.g. downloaded by ``ingest asf``), read once per process.

    Pickled to worker processes as its settings only; each process reads the products on
    first use. Products whose footprint misses a chip are not resampled for it.

    Args:
        folder: Folder searched recursively for ``*.nc``.
        start, end: Second-date window of the pairs.
        max_days: Longest pair span.
    """

    _loaded: dict[tuple, tuple[list[RasterChip], list[str], list[tuple[str, str]]]] = {}

    def __init__(
        self, folder: str | os.PathLike, start: dt.date, end: dt.date, max_days: int = PAIR_MAX_DAYS
    ):
        self.folder, self.start, self.end, self.max_days = str(folder), start, end, max_days

    def _load(self):
        key = (self.folder, self.start, self.end, self.max_days)
        if key not in self._loaded:
            rasters, bad = [], []
            for path in sorted(Path(self.folder).rglob("*.nc")):
                try:
                    rasters.append(read_gunw(path)[0])
                except IngestFileError as err:
                    bad.append((str(path), err.problem))
            names = [n for r in rasters for n in r.names]
            self._loaded[key] = (
                rasters,
                select_pairs(names, self.start, self.end, self.max_days),
                bad,
            )
        return self._loaded[key]

    def unreadable(self) -> list[tuple[str, str]]:
        """(path, problem) of every product that could not be read."""
        return self._load()[2]

    def chip(self, grid: ChipGrid) -> tuple[np.ndarray, list[str]]:
        """Coherence of the selected pairs on a chip grid (P, H, W) and their names."""
        from eoclip.data.modalities import get_modality

        rasters, pairs, _ = self._load()
        lon0, lat0, lon1, lat1 = grid.geometry.bounds
        near = [
            r
            for r in rasters
            if not r.crs.is_geographic or _bounds_overlap(r, (lon0, lat0, lon1, lat1))
        ]
        data, names = merge_pairs_on_chip(near, grid, pairs)
        return cap_pairs(data, names, get_modality("gunw").max_channels)


def _bounds_overlap(raster: RasterChip, bounds: tuple[float, float, float, float]) -> bool:
    h, w = raster.data.shape[1:]
    (x0, y0), (x1, y1) = raster.transform @ (0, 0), raster.transform @ (w, h)
    return not (
        max(x0, x1) < bounds[0]
        or min(x0, x1) > bounds[2]
        or max(y0, y1) < bounds[1]
        or min(y0, y1) > bounds[3]
    )
