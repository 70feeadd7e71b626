"""Labels: per-chip means from label rasters, and the paper's binary tasks.

The paper (section 3, "Downstream tasks") turns each continuous per-chip mean into a binary
task: above or below the AOI's median. We fit that median on the TRAIN split only, so test
labels never set the threshold. Ties at the median (most chips hold no permanent water) break
the balance, so the class balance is always reported alongside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from eoclip.errors import DataError

__all__ = [
    "TASKS",
    "WORLDCOVER_CROPLAND",
    "WORLDCOVER_WATER",
    "MODIS_WATER",
    "class_fraction",
    "continuous_mean",
    "chip_means_from_raster",
    "Binarized",
    "binarize",
    "binarize_by_aoi",
]

# Task name -> index column holding its continuous per-chip mean.
TASKS: dict[str, str] = {
    "tree": "label_tree",  # MODIS MOD44B Percent_Tree_Cover, %
    "built": "label_built",  # GHSL built-up surface, mean
    "crop": "label_crop",  # ESA WorldCover 2020 class 40, fraction of pixels
    "water": "label_water",  # ESA WorldCover 2020 class 80, fraction of pixels
}
WORLDCOVER_CROPLAND = 40  # ESA WorldCover 2020 legend
WORLDCOVER_WATER = 80  # ESA WorldCover 2020 legend: permanent water bodies
MODIS_WATER = 200  # MOD44B Percent_Tree_Cover: 200 flags water; counted as 0 % tree


def class_fraction(codes: np.ndarray, code: int, nodata: int | None = None) -> float:
    """Fraction of the (non-nodata) pixels equal to ``code``; NaN when no pixel is valid."""
    a = np.asarray(codes)
    ok = np.ones(a.shape, dtype=bool) if nodata is None else a != nodata
    n = int(ok.sum())
    return float((a[ok] == code).sum() / n) if n else float("nan")


def continuous_mean(
    values: np.ndarray,
    nodata: float | None = None,
    replace: Mapping[float, float] | None = None,
) -> float:
    """Mean of a continuous raster, ignoring NaN and ``nodata``; ``replace`` maps flag values
    (e.g. MODIS's 200 = water -> 0 % tree). NaN when no pixel is valid."""
    a = np.asarray(values, dtype=np.float64).copy()
    for src, dst in (replace or {}).items():
        a[a == src] = dst
    ok = np.isfinite(a)
    if nodata is not None:
        ok &= a != nodata
    return float(a[ok].mean()) if ok.any() else float("nan")


def chip_means_from_raster(
    path: str,
    chips,
    kind: str = "mean",
    code: int | None = None,
    replace: Mapping[float, float] | None = None,
) -> np.ndarray:
    """Per-chip label means from one large label raster (GeoTIFF/COG, any CRS).

    Args:
        path: the raster.
        chips: a GeoDataFrame of chip polygons (any CRS; reprojected to the raster's).
        kind: ``fraction`` (share of pixels equal to ``code``) or ``mean``.
        code: class code for ``fraction``.
        replace: flag values to map before averaging (``mean`` only).

    Returns:
        float64 array (len(chips),); NaN where the chip falls outside the raster or is nodata.
    """
    import rasterio
    import rasterio.mask
    from rasterio.errors import RasterioIOError

    if kind not in ("fraction", "mean"):
        raise DataError(f"kind must be 'fraction' or 'mean', not {kind!r}")
    if kind == "fraction" and code is None:
        raise DataError("kind='fraction' needs a class code")
    try:
        src = rasterio.open(path)
    except RasterioIOError as err:
        raise DataError(f"cannot read label raster {path}: {err}") from err
    out = np.full(len(chips), np.nan)
    with src:
        if src.crs is None:
            raise DataError(f"label raster {path} has no CRS")
        geoms = chips.to_crs(src.crs).geometry
        for i, geom in enumerate(geoms):
            try:
                arr, _ = rasterio.mask.mask(src, [geom], crop=True, filled=False)
            except ValueError:  # the chip does not overlap the raster
                continue
            band = arr[0]
            vals = np.asarray(band.compressed())
            if kind == "fraction":
                out[i] = class_fraction(vals, code)
            else:
                out[i] = continuous_mean(vals.astype(np.float64), replace=replace)
    return out


@dataclasses.dataclass
class Binarized:
    """A binary task for one AOI.

    Attributes:
        y: int8 labels (1 = above the threshold), -1 where the value is NaN.
        threshold: the train-split median.
        balance: positive fraction per split, e.g. {"train": 0.5, "test": 0.47}.
    """

    y: np.ndarray
    threshold: float
    balance: dict[str, float]


def binarize(values, splits, train_split: str = "train") -> Binarized:
    """Label 1 where value > the median of the ``train_split`` values (NaN -> -1).

    Args:
        values: continuous per-chip means, shape (N,).
        splits: split name per chip, shape (N,).
    """
    v = np.asarray(values, dtype=np.float64)
    s = np.asarray(splits).astype(str)
    if v.shape != s.shape:
        raise DataError(f"values {v.shape} and splits {s.shape} differ in shape")
    train = v[(s == train_split) & np.isfinite(v)]
    if train.size == 0:
        raise DataError(f"no labelled chips in the {train_split!r} split: cannot fit a threshold")
    thr = float(np.median(train))
    y = np.where(np.isfinite(v), (v > thr).astype(np.int8), np.int8(-1)).astype(np.int8)
    balance = {
        str(name): float((y[(s == name) & (y >= 0)] == 1).mean())
        for name in np.unique(s)
        if ((s == name) & (y >= 0)).any()
    }
    return Binarized(y, thr, balance)


def binarize_by_aoi(index: pd.DataFrame, task: str, train_split: str = "train") -> pd.DataFrame:
    """Binarise a task per AOI (each AOI its own median, as in the paper's Fig. 2).

    Returns:
        DataFrame indexed like ``index`` with columns ``y``, ``threshold``.
    """
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; tasks are {list(TASKS)}")
    col = TASKS[task]
    if col not in index:
        raise KeyError(f"index has no column {col} for task {task!r}")
    out = pd.DataFrame(index=index.index, columns=["y", "threshold"], dtype="float64")
    for _aoi, rows in index.groupby("aoi"):
        b = binarize(rows[col].to_numpy(), rows["split"].to_numpy(), train_split)
        out.loc[rows.index, "y"] = b.y
        out.loc[rows.index, "threshold"] = b.threshold
    out["y"] = out["y"].astype("int8")
    return out
