"""Read geetiles-style GeoTIFF chips into physical units on a chip grid.

Each reader takes one file and one ``ChipGrid`` and returns float32 arrays in the physical
units of the eoclip modalities (reflectance, dB, fractions), NaN where there is no data, or
raises ``IngestFileError`` naming the file and the problem. Nothing here writes a store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
import rasterio.features
import rasterio.warp
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import box, mapping

from eoclip.data.labels import MODIS_WATER, class_fraction, continuous_mean
from eoclip.ingest.grid import ChipGrid, project_geometry, reproject_to_chip
from eoclip.ingest.report import IngestFileError

__all__ = [
    "S2_REFLECTANCE_MAX",
    "RasterChip",
    "esa_worldcover_fractions",
    "ghs_built_fraction",
    "modis_tree_cover",
    "read_geotiff",
    "read_s1_chip",
    "read_s2_chip",
]

# geetiles stores Sentinel-2 reflectance 0..0.3 linearly as uint8 0..255 (docs/design.md).
S2_REFLECTANCE_MAX = 0.3
S2_BANDS = ("red", "green", "blue")


class RasterChip:
    """Bands of one file with their georeferencing.

    Attributes:
        path: Source file.
        data: float32 array (B, h, w), NaN at the file's nodata.
        names: Band descriptions (``"01_red"``...), ``""`` where the file has none.
        crs: File CRS.
        transform: File affine transform.
    """

    def __init__(self, path: str, data: np.ndarray, names: list[str], crs: CRS, transform: Affine):
        self.path, self.data, self.names, self.crs, self.transform = path, data, names, crs, transform

    def bands(self, wanted: Sequence[str]) -> np.ndarray:
        """Bands by description, shape (len(wanted), h, w); NaN for a band the file lacks."""
        out = np.full((len(wanted), *self.data.shape[1:]), np.nan, dtype=np.float32)
        lookup = {n: i for i, n in enumerate(self.names)}
        for k, name in enumerate(wanted):
            if name in lookup:
                out[k] = self.data[lookup[name]]
        return out

    def missing(self, wanted: Sequence[str]) -> list[str]:
        return [w for w in wanted if w not in self.names]

    def check_overlap(self, grid: ChipGrid) -> None:
        """Raise if the file does not cover the chip at all (usually a wrong CRS or chip id)."""
        h, w = self.data.shape[1:]
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (w, h)
        file_box = box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
        chip = rasterio.warp.transform_bounds(grid.crs, self.crs, *grid.bounds)
        if not file_box.intersects(box(*chip)):
            raise IngestFileError(
                self.path,
                f"does not overlap chip {grid.chip_id}: file bounds {tuple(round(v, 5) for v in file_box.bounds)} "
                f"in {self.crs.to_string()}, chip bounds there {tuple(round(v, 5) for v in chip)} "
                "(wrong CRS in the file, or the file belongs to another chip)",
            )

    def to_chip(self, grid: ChipGrid, data: np.ndarray | None = None, categorical=False) -> np.ndarray:
        """Resample (some of) the bands onto the chip grid, shape (B, chip_px, chip_px)."""
        self.check_overlap(grid)
        return reproject_to_chip(
            self.data if data is None else data, self.crs, self.transform, grid, categorical
        )

    def inside_chip(self, grid: ChipGrid) -> np.ndarray:
        """Boolean (h, w): file pixels whose centres fall inside the chip polygon."""
        self.check_overlap(grid)
        poly = grid.geometry
        epsg = self.crs.to_epsg()
        if epsg != 4326:
            if epsg is None:
                raise IngestFileError(self.path, f"CRS {self.crs} has no EPSG code")
            poly = project_geometry(poly, 4326, epsg)
        mask = rasterio.features.geometry_mask(
            [mapping(poly)], out_shape=self.data.shape[1:], transform=self.transform, invert=True
        )
        if not mask.any():
            raise IngestFileError(self.path, f"no pixel centre inside chip {grid.chip_id}")
        return mask


def read_geotiff(path: str | os.PathLike, zero_is_nodata: bool = False) -> RasterChip:
    """Read every band of a GeoTIFF as float32 with NaN at nodata.

    Args:
        path: The file.
        zero_is_nodata: Also treat 0 as no data (geetiles writes masked pixels as 0).

    Raises:
        IngestFileError: Missing, truncated or corrupt file, or a file without a CRS.
    """
    path = str(path)
    if not Path(path).is_file():
        raise IngestFileError(path, "missing file")
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise IngestFileError(path, "has no CRS (georeferencing missing)")
            data = src.read(masked=True).astype(np.float32).filled(np.nan)
            names = [d or "" for d in src.descriptions]
            crs, transform = src.crs, src.transform
    except IngestFileError:
        raise
    except (rasterio.errors.RasterioError, OSError, ValueError) as err:
        raise IngestFileError(path, f"unreadable GeoTIFF (truncated or corrupt?): {err}") from err
    if zero_is_nodata:
        data[data == 0] = np.nan
    return RasterChip(path, data, names, crs, transform)


def read_s2_chip(path, grid: ChipGrid, months: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """Monthly RGB reflectance of a geetiles ``s2rgbm`` file on the chip grid.

    Args:
        path: GeoTIFF with uint8 bands ``01_red``, ``01_green``, ``01_blue``, ``02_red``...
        grid: Chip grid.
        months: Calendar months to take (1..12), e.g. (1, 2, 3).

    Returns:
        (array (3 * len(months), chip_px, chip_px) reflectance 0..0.3 with NaN holes,
        list of band names the file lacked).
    """
    raster = read_geotiff(path, zero_is_nodata=True)
    wanted = [f"{m:02d}_{b}" for m in months for b in S2_BANDS]
    bands = raster.bands(wanted) * np.float32(S2_REFLECTANCE_MAX / 255.0)
    return raster.to_chip(grid, bands), raster.missing(wanted)


def read_s1_chip(path, grid: ChipGrid, months: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """Monthly VV, VH and VV-VH (dB) of a geetiles ``s1grdm`` file on the chip grid.

    The log-ratio is derived per month as VV(dB) - VH(dB), after resampling.

    Returns:
        (array (3 * len(months), chip_px, chip_px) in dB, ordered vv, vh, vvvh per month,
        list of band names the file lacked).
    """
    raster = read_geotiff(path)
    wanted = [f"{m:02d}_{p}" for m in months for p in ("vv", "vh")]
    pol = raster.to_chip(grid, raster.bands(wanted))
    out = []
    for k in range(len(months)):
        vv, vh = pol[2 * k], pol[2 * k + 1]
        out += [vv, vh, vv - vh]
    return np.stack(out), raster.missing(wanted)


def esa_worldcover_fractions(path, grid: ChipGrid, classes: Sequence[int]) -> list[float]:
    """Fraction of the chip's valid pixels in each ESA WorldCover class (e.g. 40, 80).

    Class 0 and the file's nodata are not valid; counted over pixels inside the chip polygon.
    """
    raster = read_geotiff(path, zero_is_nodata=True)
    values = raster.data[0][raster.inside_chip(grid)]
    values = values[np.isfinite(values)]
    return [class_fraction(values, c) for c in classes]


def modis_tree_cover(path, grid: ChipGrid, band: str = "Percent_Tree_Cover_2020") -> float:
    """Mean MODIS MOD44B tree cover (%) inside the chip; water (200) counts as 0, >100 is fill."""
    raster = read_geotiff(path)
    if band in raster.names:
        values = raster.data[raster.names.index(band)]
    elif len(raster.names) == 1 and not raster.names[0]:
        values = raster.data[0]  # an undescribed single band: the tree cover itself
    else:
        raise IngestFileError(path, f"no band {band!r}; the file has bands {raster.names}")
    values = values[raster.inside_chip(grid)]
    values = values[(values <= 100) | (values == MODIS_WATER)]  # other values > 100 are fill
    return continuous_mean(values, replace={MODIS_WATER: 0.0})


def ghs_built_fraction(path, grid: ChipGrid, divisor: float = 10_000.0) -> float:
    """Mean GHS-BUILT-S built-up surface inside the chip as a fraction 0..1.

    GHS-BUILT-S gives built-up m2 per 100 m cell (0..10000), hence the default divisor; use
    ``divisor=1`` for a layer that already holds fractions.
    """
    raster = read_geotiff(path)
    values = raster.data[0][raster.inside_chip(grid)]
    values = values[np.isfinite(values) & (values >= 0)]
    if values.size == 0:
        return float("nan")
    return float(np.clip(values.mean() / divisor, 0.0, 1.0))
