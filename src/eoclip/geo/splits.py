"""Geographic train/val/test splits as parallel stripes (bands) across a chip grid.

The paper splits each AOI into parallel bands assigned cyclically (train, train, train, test,
val for 60/20/20; paper Sec. 3 and Fig. 1) so that neighbouring chips mostly share a split and
little leaks between splits. :func:`band_splits` does the same in the grid's UTM coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import geopandas as gpd
import numpy as np

from eoclip.errors import GeoError
from eoclip.geo.grid import utm_crs_for

__all__ = ["band_splits", "split_pattern"]

_MAX_CYCLE = 100  # longest stripe pattern tried; fractions are matched to 1/100 at worst
_MAX_BAND_CHIPS = 10.0  # default band width cap, in chips (45 km at 4480 m)
_MIN_CYCLES = 3  # default: at least this many full patterns across the grid if it fits


def split_pattern(
    fractions: Sequence[float] = (0.6, 0.2, 0.2), names: Sequence[str] = ("train", "val", "test")
) -> list[str]:
    """The shortest cyclic stripe pattern that realises the fractions.

    The pattern has the first name's stripes first, then the other names in REVERSE order,
    which reproduces the paper authors' tool: 0.6/0.2/0.2 -> train, train, train, test, val.

    Args:
        fractions: One non-negative fraction per name, summing to 1.
        names: Split names, unique.

    Returns:
        The pattern, a list of names of length L <= 100 (exact if every fraction is a multiple
        of 1/L for some L <= 100, else the closest pattern of 100 stripes).

    Raises:
        ValueError: Wrong length, negative or non-finite fractions, a sum other than 1,
            or duplicate names.
    """
    f = np.asarray(fractions, dtype=float)
    if f.ndim != 1 or len(f) != len(names) or len(f) == 0:
        raise GeoError(f"need one fraction per split name {tuple(names)}, got {tuple(fractions)}")
    if len(set(names)) != len(names):
        raise GeoError(f"split names must be unique, got {tuple(names)}")
    if not np.all(np.isfinite(f)) or np.any(f < 0):
        raise GeoError(f"fractions must be finite and >= 0, got {tuple(fractions)}")
    if abs(f.sum() - 1.0) > 1e-6:
        raise GeoError(f"fractions must sum to 1, got {tuple(fractions)} (sum {f.sum():g})")
    for length in range(1, _MAX_CYCLE + 1):
        counts = _largest_remainder(f, length)
        if np.max(np.abs(counts / length - f)) < 1e-6:
            break
    order = [0, *range(len(names) - 1, 0, -1)]
    return [names[i] for i in order for _ in range(counts[i])]


def _largest_remainder(f: np.ndarray, length: int) -> np.ndarray:
    raw = f * length
    counts = np.floor(raw + 1e-9).astype(int)
    missing = length - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:missing]] += 1
    return counts


def _chip_coords(grid: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Chip centres in the grid's UTM coordinates, in units of chips (shape (N,) each)."""
    if {"col", "row"}.issubset(grid.columns):
        return grid["col"].to_numpy(float) + 0.5, grid["row"].to_numpy(float) + 0.5
    # Any other chip table (e.g. a store index): project centroids, measure in chip sides.
    if grid.crs is None:
        raise GeoError("band_splits: the grid has no CRS and no col/row columns")
    lonlat = grid.geometry.to_crs(4326)
    crs = utm_crs_for(lonlat.union_all().envelope)
    centres = lonlat.to_crs(crs)
    side = float(np.sqrt(np.median(centres.area))) or 1.0
    c = centres.centroid
    return c.x.to_numpy() / side, c.y.to_numpy() / side


def _group_keys(grid: gpd.GeoDataFrame) -> np.ndarray:
    cols = [c for c in ("aoi", "utm_epsg") if c in grid.columns]
    if not cols:
        return np.zeros(len(grid), dtype=np.int64)
    return grid.groupby(cols, sort=True, dropna=False).ngroup().to_numpy()


def band_splits(
    grid: gpd.GeoDataFrame,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    n_bands: int | None = None,
    angle: float = 0.0,
    seed: int = 0,
    names: Sequence[str] = ("train", "val", "test"),
) -> gpd.GeoDataFrame:
    """Assign each chip to a split by parallel geographic bands.

    Chip centres are projected on the direction ``angle`` (degrees counter-clockwise from
    UTM east); the projected coordinate is cut into ``n_bands`` equal intervals (bands), and
    bands take the names of :func:`split_pattern` cyclically. ``angle=0`` gives north-south
    stripes (intervals of easting), ``angle=90`` east-west stripes (intervals of northing).
    This differs from the paper authors' tool, whose angle 0 gives latitude bands: their
    ``angle=a`` is ``angle=a + 90`` here.
    Each (aoi, utm_epsg) group of the grid gets its own bands.

    Args:
        grid: Chips, e.g. from :func:`~eoclip.geo.grid.make_grid` (uses its ``col``/``row``;
            without them the geometry's centroids are projected to UTM).
        fractions: Fraction of stripes per split name, summing to 1 (paper: 60/20/20).
        n_bands: Bands across each group's extent. Default: bands as wide as
            ``extent / (3 * len(pattern))`` (at least three full patterns) but between 1 and
            10 chips (10 chips = 44.8 km at 4480 m), so e.g. ~100 bands across CONUS and ~15
            across a 17-chip-wide block.
        angle: Direction the bands follow one another along, in degrees.
        seed: Shifts the bands' phase (a sub-band offset and a cyclic shift of the pattern).
        names: Split names, one per fraction.

    Returns:
        A copy of ``grid`` with columns ``band`` (int, unique across groups) and ``split``
        (str). Split fractions of chips match ``fractions`` only approximately: bands hold
        different numbers of chips.

    Raises:
        ValueError: Empty grid, bad fractions/names, or ``n_bands`` < 1.
    """
    if len(grid) == 0:
        raise GeoError("band_splits: the grid is empty (no chips to split)")
    pattern = np.asarray(split_pattern(fractions, names), dtype=object)
    if n_bands is not None and int(n_bands) < 1:
        raise GeoError(f"n_bands must be >= 1, got {n_bands}")
    if not math.isfinite(angle):
        raise GeoError(f"angle must be a finite number of degrees, got {angle}")
    x, y = _chip_coords(grid)
    theta = np.deg2rad(angle)
    proj = x * np.cos(theta) + y * np.sin(theta)
    groups = _group_keys(grid)
    rng = np.random.default_rng(seed)
    band = np.empty(len(grid), dtype=np.int64)
    split = np.empty(len(grid), dtype=object)
    first = 0
    for g in np.unique(groups):
        sel = groups == g
        p = proj[sel] - proj[sel].min()
        extent = p.max() + 1.0  # chip centres span max - min; add one chip for the edges
        if n_bands is None:
            width = float(np.clip(extent / (_MIN_CYCLES * len(pattern)), 1.0, _MAX_BAND_CHIPS))
        else:
            width = extent / int(n_bands)
        phase, shift = rng.uniform(0.0, width), int(rng.integers(len(pattern)))
        local = np.floor((p + phase) / width).astype(np.int64)
        band[sel] = local + first
        split[sel] = pattern[(local + shift) % len(pattern)]
        first += int(local.max()) + 1
    out = grid.copy()
    out["band"] = band
    out["split"] = split
    return out
