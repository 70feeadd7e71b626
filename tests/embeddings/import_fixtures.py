"""Seeded fixtures of foreign embedding products for the import tests.

A small ChipStore of 4 x 3 chips of 4480 m on the real UTM 12N grid (EPSG:32612), and, for
those chips, the same known per-chip vectors written in every foreign format:

- a Parquet table keyed by chip id (a list column; duplicate ids, an unknown id, a NaN row);
- a GeoParquet table of quarter-chip tiles in EPSG:3857 (four tiles per chip whose vectors
  average to the chip's vector; one tile outside every chip);
- a 5-band int8 GeoTIFF in EPSG:3857 with nodata -128, per-band scales and offsets, random
  nodata pixels inside the chips, a border of nodata around each chip (so pixel-edge rounding
  cannot mix two chips), and no data over the last column of chips;
- the same raster as a zarr (xarray, CF attributes, a `spatial_ref` CRS variable).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio
import shapely
from rasterio.transform import from_origin

from eoclip.data.store import ChipStore

__all__ = [
    "BANDS",
    "COLS",
    "OFFSETS",
    "ROWS",
    "SCALES",
    "chip_vectors",
    "make_store",
    "quantized_vectors",
    "write_geometry_table",
    "write_id_table",
    "write_raster",
    "write_zarr",
]

SIZE, EPSG, PX = 4480.0, 32612, 8
COLS, ROWS = range(100, 104), range(800, 803)
BANDS = 5
SCALES = np.array([0.01, 0.02, 0.005, 0.01, 0.04])
OFFSETS = np.array([0.0, 0.5, -1.0, 0.0, 0.25])
RASTER_PIXEL = 250.0  # metres of EPSG:3857 (about 205 m on the ground at 35 N)
HEAVY_NODATA_CHIP = 1  # 90 % of this chip's pixels are nodata


def _utm_squares() -> tuple[list[str], list[shapely.Polygon]]:
    ids, polys = [], []
    for r in ROWS:
        for c in COLS:
            ids.append(f"conus_{EPSG}_E{c:04d}_N{r:04d}")
            polys.append(shapely.box(c * SIZE, r * SIZE, (c + 1) * SIZE, (r + 1) * SIZE))
    return ids, polys


def make_store(path: Path) -> ChipStore:
    """12 chips (4 columns x 3 rows) with one tiny modality, labels and splits."""
    ids, polys = _utm_squares()
    index = gpd.GeoDataFrame(
        {
            "chip_id": ids,
            "aoi": "conus",
            "split": (["train", "val", "test"] * 4),
            "label_tree": np.linspace(0, 50, len(ids)),
        },
        geometry=gpd.GeoSeries(polys, crs=EPSG).to_crs(4326).to_numpy(),
        crs="EPSG:4326",
    )
    rng = np.random.default_rng(0)
    s2 = rng.uniform(0, 0.3, (len(ids), 9, PX, PX)).astype(np.float32)
    with ChipStore.create(path, ["s2rgbm"], chip_px=PX) as store:
        store.append(index, {"s2rgbm": s2})
    return ChipStore.open(path)


def quantized_vectors(seed: int = 0) -> np.ndarray:
    """int8 (12, BANDS) stored values per chip (never the nodata value -128)."""
    return (
        np.random.default_rng(seed)
        .integers(-120, 120, (len(COLS) * len(ROWS), BANDS))
        .astype(np.int8)
    )


def chip_vectors(seed: int = 0) -> np.ndarray:
    """float32 (12, BANDS) dequantised vectors the raster import must give, store order."""
    return (quantized_vectors(seed) * SCALES + OFFSETS).astype(np.float32)


def write_id_table(path: Path, seed: int = 0) -> np.ndarray:
    """Parquet keyed by chip id; returns the expected vectors (float32, (12, 8), NaN = none).

    Chip 0 has two rows (v - 1 and v + 1, averaging to v); chip 5 has none (its only row is
    NaN); one row names a chip the store lacks.
    """
    ids, _ = _utm_squares()
    want = np.random.default_rng(seed).normal(size=(len(ids), 8)).astype(np.float32)
    rows = [(c, want[i]) for i, c in enumerate(ids) if i not in (0, 5)]
    rows += [
        (ids[0], want[0] - 1),
        (ids[0], want[0] + 1),
        (ids[5], np.full(8, np.nan)),
        ("conus_32612_E9999_N9999", np.ones(8)),
    ]
    pd.DataFrame(
        {
            "chip_id": [r[0] for r in rows],
            "embedding": [r[1].tolist() for r in rows],
            "date": "2020-06-01",
        }
    ).to_parquet(path)
    want = want.copy()
    want[5] = np.nan
    return want


def write_geometry_table(path: Path, seed: int = 0) -> np.ndarray:
    """GeoParquet (EPSG:3857) of quarter-chip tiles with columns dim_0..dim_5.

    Returns:
        float32 (12, 6) expected mean vectors (chip 7 has no tile: NaN).
    """
    rng = np.random.default_rng(seed)
    _, polys = _utm_squares()
    want = rng.normal(size=(len(polys), 6))
    tiles, vecs = [], []
    for i, p in enumerate(polys):
        if i == 7:
            continue
        x0, y0, x1, y1 = p.bounds
        xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
        quads = [(x0, y0, xm, ym), (xm, y0, x1, ym), (x0, ym, xm, y1), (xm, ym, x1, y1)]
        deltas = rng.normal(size=(4, 6))
        deltas -= deltas.mean(axis=0)  # the four tiles average to the chip's vector
        for q, d in zip(quads, deltas, strict=True):
            tiles.append(shapely.box(*q))
            vecs.append(want[i] + d)
    tiles.append(shapely.box(0, 0, 1000, 1000))  # far from every chip
    vecs.append(np.ones(6))
    frame = pd.DataFrame(np.array(vecs), columns=[f"dim_{k}" for k in range(6)])
    frame["tile"] = np.arange(len(frame))
    gdf = gpd.GeoDataFrame(
        frame, geometry=gpd.GeoSeries(tiles, crs=EPSG).to_crs(3857).to_numpy(), crs="EPSG:3857"
    )
    gdf.to_parquet(path)
    want = want.astype(np.float32)
    want[7] = np.nan
    return want


def _raster_array(seed: int) -> tuple[np.ndarray, rasterio.Affine]:
    """int8 (BANDS, H, W) in EPSG:3857 covering chip columns 0-2; nodata -128 elsewhere."""
    ids, polys = _utm_squares()
    chips = gpd.GeoSeries(polys, crs=EPSG).to_crs(3857)
    inner = gpd.GeoSeries([p.buffer(-0.08 * SIZE) for p in polys], crs=EPSG).to_crs(3857)
    west, south, east, north = chips.total_bounds
    east = chips.iloc[2].bounds[2] + 0.05 * (chips.iloc[3].bounds[2] - chips.iloc[3].bounds[0])
    width = int(np.ceil((east - west) / RASTER_PIXEL)) + 4
    height = int(np.ceil((north - south) / RASTER_PIXEL)) + 4
    transform = from_origin(
        west - 2 * RASTER_PIXEL, north + 2 * RASTER_PIXEL, RASTER_PIXEL, RASTER_PIXEL
    )
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x, y = transform * (cols.ravel(), rows.ravel())
    data = np.full((BANDS, height * width), -128, dtype=np.int8)
    q = quantized_vectors(seed)
    rng = np.random.default_rng(seed + 1)
    for i, poly in enumerate(inner):
        if i % len(COLS) == len(COLS) - 1:
            continue  # last column: outside the raster's data
        inside = np.flatnonzero(shapely.contains_xy(poly, x, y))
        drop = 0.9 if i == HEAVY_NODATA_CHIP else 0.1
        inside = inside[rng.uniform(size=len(inside)) >= drop]
        data[:, inside] = q[i][:, None]
    return data.reshape(BANDS, height, width), transform


def write_raster(path: Path, seed: int = 0) -> Path:
    """The int8 GeoTIFF (tiled, with band scales/offsets and nodata -128)."""
    data, transform = _raster_array(seed)
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": BANDS,
        "dtype": "int8",
        "crs": "EPSG:3857",
        "transform": transform,
        "nodata": -128,
        "tiled": True,
        "blockxsize": 16,
        "blockysize": 16,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.scales = tuple(SCALES)
        dst.offsets = tuple(OFFSETS)
    return path


def write_zarr(path: Path, seed: int = 0) -> Path:
    """The same raster as a zarr: variable `embedding` (band, y, x), CF scale/offset/fill."""
    import xarray as xr

    data, t = _raster_array(seed)
    x = t.c + t.a * (np.arange(data.shape[2]) + 0.5)
    y = t.f + t.e * (np.arange(data.shape[1]) + 0.5)
    var = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={"band": np.arange(1, BANDS + 1), "y": y, "x": x},
        attrs={
            "scale_factor": SCALES.tolist(),
            "add_offset": OFFSETS.tolist(),
            "nodata": -128,
            "grid_mapping": "spatial_ref",
        },
    )
    ds = xr.Dataset({"embedding": var})
    ds["spatial_ref"] = xr.DataArray(0, attrs={"crs_wkt": pyproj.CRS(3857).to_wkt()})
    ds.to_zarr(path, mode="w", consolidated=False)
    return path
