"""Read geetiles-style GeoTIFF chips into physical units on a chip grid.

Each reader takes one file and one ``ChipGrid`` and returns float32 arrays in the physical
units of the eoclip modalities (reflectance, dB, fractions), NaN where there is no data, or
raises ``IngestFileError`` naming the file and the problem. Only the bands asked for are read
(a 12-month file holds 36 or 24 bands; the paper uses 3 months). Values outside a modality's
``valid_range`` are not data (geetiles may store dB as uint16): they become NaN and are
counted. Nothing here writes a store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
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
from eoclip.data.modalities import get_modality
from eoclip.ingest.grid import ChipGrid, project_geometry, reproject_to_chip
from eoclip.ingest.report import IngestFileError
from eoclip.ingest.source import mask_out_of_range

__all__ = [
    "S1_LAYOUT",
    "S2_LAYOUT",
    "S2_REFLECTANCE_MAX",
    "BandRead",
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
# Band order of geetiles' 12-month files, assumed only for a file without band descriptions.
S2_LAYOUT = tuple(f"{m:02d}_{b}" for m in range(1, 13) for b in S2_BANDS)
S1_LAYOUT = tuple(f"{m:02d}_{p}" for m in range(1, 13) for p in ("vv", "vh"))


class RasterChip:
    """Bands of one file with their georeferencing.

    Attributes:
        path: Source file.
        data: float32 array (B, h, w), NaN at the file's nodata.
        names: Band descriptions (``"01_red"``...), ``""`` where the file has none.
        crs: File CRS.
        transform: File affine transform.
        dtype: The file's storage dtype (for messages).
    """

    def __init__(
        self,
        path: str,
        data: np.ndarray,
        names: list[str],
        crs: CRS,
        transform: Affine,
        dtype: str = "float32",
    ):
        self.path, self.data, self.names, self.crs, self.transform = (
            path,
            data,
            names,
            crs,
            transform,
        )
        self.dtype = dtype

    def bands(self, wanted: Sequence[str]) -> np.ndarray:
        """Bands by description, shape (len(wanted), h, w); NaN for a band the file lacks."""
        lookup = {n: i for i, n in enumerate(self.names)}
        if list(wanted) == self.names:
            return self.data
        out = np.full((len(wanted), *self.data.shape[1:]), np.nan, dtype=np.float32)
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
                f"does not overlap chip {grid.chip_id}: file bounds "
                f"{tuple(round(v, 5) for v in file_box.bounds)} "
                f"in {self.crs.to_string()}, chip bounds there {tuple(round(v, 5) for v in chip)} "
                "(wrong CRS in the file, or the file belongs to another chip)",
            )

    def to_chip(
        self, grid: ChipGrid, data: np.ndarray | None = None, categorical=False
    ) -> np.ndarray:
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


def read_geotiff(
    path: str | os.PathLike,
    zero_is_nodata: bool = False,
    bands: Sequence[str] | None = None,
    layout: Sequence[str] | None = None,
) -> RasterChip:
    """Read bands of a GeoTIFF as float32 with NaN at nodata.

    Args:
        path: The file.
        zero_is_nodata: Also treat 0 as no data (geetiles writes masked pixels as 0).
        bands: Band descriptions to read (the others are not read); None reads every band.
            A wanted band the file lacks is left out (see ``RasterChip.missing``).
        layout: Band names to assume for a file without band descriptions that has exactly
            ``len(layout)`` bands (geetiles' 12-month order).

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
            names = [d or "" for d in src.descriptions]
            if layout is not None and not any(names) and src.count == len(layout):
                names = list(layout)
            idx = (
                list(range(len(names)))
                if bands is None
                else [names.index(b) for b in bands if b in names]
            )
            # GDAL converts to float32 while reading (integers of these files are exact in it)
            data = (
                src.read([i + 1 for i in idx], out_dtype="float32")
                if idx
                else np.empty((0, src.height, src.width), np.float32)
            )
            nodata = [src.nodatavals[i] for i in idx]
            crs, transform, dtype = src.crs, src.transform, src.dtypes[0]
    except IngestFileError:
        raise
    except (rasterio.errors.RasterioError, OSError, ValueError) as err:
        raise IngestFileError(path, f"unreadable GeoTIFF (truncated or corrupt?): {err}") from err
    for k, nd in enumerate(nodata):
        if nd is not None and np.isfinite(nd):
            data[k][data[k] == np.float32(nd)] = np.nan
    if zero_is_nodata:
        data[data == 0] = np.nan
    return RasterChip(path, data, [names[i] for i in idx], crs, transform, dtype)


@dataclass
class BandRead:
    """Bands of one product on the chip grid.

    Attributes:
        data: float32 (B, chip_px, chip_px) physical values, NaN = no data.
        missing: Wanted band names the file lacks.
        out_of_range: How many bands held values outside the modality's valid range.
        dtype: The file's storage dtype.
    """

    data: np.ndarray
    missing: list[str]
    out_of_range: int = 0
    dtype: str = ""


def _no_data(raster: RasterChip, wanted: Sequence[str], what: str) -> None:
    if raster.missing(wanted) == list(wanted):
        raise IngestFileError(
            raster.path,
            f"none of the bands {wanted[0]}..{wanted[-1]}; the file has "
            f"{raster.names[:6]}{'...' if len(raster.names) > 6 else ''}",
        )
    if not np.isfinite(raster.data).any():
        raise IngestFileError(raster.path, f"no valid pixel: {what}")


def _range_error(raster: RasterChip, name: str) -> IngestFileError:
    m = get_modality(name)
    lo, hi = m.valid_range
    return IngestFileError(
        raster.path,
        f"unusable: every value outside the valid range [{lo:g}, {hi:g}] "
        f"{m.units} (stored as {raster.dtype}; not {m.units}?)",
    )


def read_s2_chip(path, grid: ChipGrid, months: Sequence[int]) -> BandRead:
    """Monthly RGB reflectance of a geetiles ``s2rgbm`` file on the chip grid.

    Args:
        path: GeoTIFF with uint8 bands ``01_red``, ``01_green``, ``01_blue``, ``02_red``...
        grid: Chip grid.
        months: Calendar months to take (1..12), e.g. (1, 2, 3).

    Returns:
        BandRead with (3 * len(months), chip_px, chip_px) reflectance 0..0.3, NaN holes.
    """
    wanted = [f"{m:02d}_{b}" for m in months for b in S2_BANDS]
    raster = read_geotiff(path, zero_is_nodata=True, bands=wanted, layout=S2_LAYOUT)
    _no_data(raster, wanted, "every wanted band is 0 (masked)")
    raster.data *= np.float32(S2_REFLECTANCE_MAX / 255.0)
    raster.data, bad = mask_out_of_range(raster.data, get_modality("s2rgbm").valid_range)
    if not np.isfinite(raster.data).any():
        raise _range_error(raster, "s2rgbm")
    return BandRead(
        raster.to_chip(grid, raster.bands(wanted)), raster.missing(wanted), bad, raster.dtype
    )


def read_s1_chip(path, grid: ChipGrid, months: Sequence[int]) -> BandRead:
    """Monthly VV, VH and VV-VH (dB) of a geetiles ``s1grdm`` file on the chip grid.

    0 is geetiles' mask value (outside the chip polygon), not 0 dB. The log-ratio is derived
    per month as VV(dB) - VH(dB), after resampling.

    Returns:
        BandRead with (3 * len(months), chip_px, chip_px) dB, ordered vv, vh, vvvh per month.
    """
    wanted = [f"{m:02d}_{p}" for m in months for p in ("vv", "vh")]
    raster = read_geotiff(path, zero_is_nodata=True, bands=wanted, layout=S1_LAYOUT)
    _no_data(raster, wanted, "every wanted band is 0 or no data")
    raster.data, bad = mask_out_of_range(raster.data, get_modality("s1grdm").valid_range)
    if not np.isfinite(raster.data).any():
        raise _range_error(raster, "s1grdm")
    pol = raster.to_chip(grid, raster.bands(wanted))
    out = np.empty((3 * len(months), *pol.shape[1:]), dtype=np.float32)
    out[0::3], out[1::3] = pol[0::2], pol[1::2]
    np.subtract(pol[0::2], pol[1::2], out=out[2::3])
    return BandRead(out, raster.missing(wanted), bad, raster.dtype)


def esa_worldcover_fractions(path, grid: ChipGrid, classes: Sequence[int]) -> list[float]:
    """Fraction of the chip's valid pixels in each ESA WorldCover class (e.g. 40, 80).

    Class 0 and the file's nodata are not valid; counted over pixels inside the chip polygon.
    """
    raster = read_geotiff(path, zero_is_nodata=True, bands=None)
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
