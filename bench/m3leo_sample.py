"""Seeded M3LEO / geetiles sample at the real scale of one chip (448 x 448 px), for benchmarks.

Files are laid out and typed as the authors' geetiles tool writes them (see README, "The paper
authors' M3LEO / geetiles files")::

    root/
      <aoi>_partitions_aschips_<hash>.geojson     identifier + EPSG:4326 polygon per chip
      <aoi>_partitions_aschips_<hash>_splits.csv  identifier,split
      <aoi>_partitions_aschips_<hash>/
        s2rgbm-2020/<id>.tif        36 bands 01_red .. 12_blue, uint8, 448 x 448 px in EPSG:4326
        s1grdm-2020-asc/<id>.tif    24 bands 01_vv .. 12_vh, float32 dB
        s1grdm-2020-desc/<id>.tif   the same, for 10 % of the chips (5 % have no asc file)
        gunw/<id>.nc                4 date pairs of coherence at ~90 m
        esaworldcover-2020/<id>.tif class codes at 10 m
        modis44b006veg/<id>.tif     Percent_Tree_Cover_2019/2020 at 250 m
        ghsbuilts-2020/<id>.tif     built-up m2 per 100 m cell

Pixels outside the chip polygon are 0, as geetiles' mask leaves them. Files are uncompressed,
pixel-interleaved GeoTIFFs (what geetiles writes). ``write_sample`` is deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyproj
import rasterio
import rasterio.features
import xarray as xr
from rasterio.transform import from_bounds
from shapely.geometry import Polygon, mapping

__all__ = ["AOIS", "write_sample"]

# (aoi name, UTM EPSG, lower-left UTM corner of its block of chips)
AOIS = (("conus", 32611, (400_000.0, 3_950_000.0)), ("middleeast", 32638, (500_000.0, 3_700_000.0)))
SIDE = 4480.0
PAIRS = ["20200105_20191124", "20200312_20200217", "20200220_20191201", "20200129_20200117"]


def _polygon(epsg: int, x0: float, y0: float) -> Polygon:
    tr = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)
    xs, ys = [x0, x0 + SIDE, x0 + SIDE, x0, x0], [y0, y0, y0 + SIDE, y0 + SIDE, y0]
    lon, lat = tr.transform(xs, ys)
    return Polygon(zip(lon, lat, strict=True))


def _field(rng: np.random.Generator, h: int, w: int, bands: int) -> np.ndarray:
    """Smooth random field plus texture, (bands, h, w) in 0..1."""
    coarse = rng.random((bands, 8, 8)).astype(np.float32)
    ys = np.linspace(0, 7, h, dtype=np.float32)
    xs = np.linspace(0, 7, w, dtype=np.float32)
    yi, xi = np.clip(ys.astype(int), 0, 6), np.clip(xs.astype(int), 0, 6)
    fy, fx = (ys - yi)[:, None], (xs - xi)[None, :]
    c = coarse
    smooth = (
        c[:, yi][:, :, xi] * (1 - fy) * (1 - fx)
        + c[:, yi + 1][:, :, xi] * fy * (1 - fx)
        + c[:, yi][:, :, xi + 1] * (1 - fy) * fx
        + c[:, yi + 1][:, :, xi + 1] * fy * fx
    )
    texture = rng.random((1, h, w), dtype=np.float32)
    return np.clip(0.8 * smooth + 0.2 * texture, 0, 1)


def _write_tif(path: Path, data: np.ndarray, poly: Polygon, names=None) -> None:
    b, h, w = data.shape
    transform = from_bounds(*poly.bounds, w, h)
    inside = rasterio.features.geometry_mask([mapping(poly)], (h, w), transform, invert=True)
    data = np.where(inside, data, 0).astype(data.dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=b,
        dtype=data.dtype.name,
        crs="EPSG:4326",
        transform=transform,
    ) as dst:
        dst.write(data)
        for i, name in enumerate(names or []):
            dst.set_band_description(i + 1, name)


def _write_gunw(path: Path, poly: Polygon, rng: np.random.Generator, px: int) -> None:
    minx, miny, maxx, maxy = poly.bounds
    n = max(4, px // 9)  # ~90 m for a 4480 m chip
    lon = np.linspace(minx, maxx, n)
    lat = np.linspace(maxy, miny, n)
    coh = (0.2 + 0.7 * _field(rng, n, n, len(PAIRS))).astype(np.float32)
    ds = xr.Dataset(
        {"coherence": (("datepair", "lat", "lon"), coh)},
        coords={"datepair": np.array(PAIRS, dtype=object), "lat": lat, "lon": lon},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, group="/science/grids/data", engine="h5netcdf")


def _chip(folder: Path, cid: str, poly: Polygon, rng: np.random.Generator, px: int, k: int) -> None:
    s2_names = [f"{m:02d}_{b}" for m in range(1, 13) for b in ("red", "green", "blue")]
    s2 = (1 + 254 * _field(rng, px, px, len(s2_names))).astype(np.uint8)
    _write_tif(folder / "s2rgbm-2020" / f"{cid}.tif", s2, poly, s2_names)
    s1_names = [f"{m:02d}_{p}" for m in range(1, 13) for p in ("vv", "vh")]
    directions = ["asc"] if k % 20 else ["desc"]  # 5 % without an ascending file
    if k % 10 == 5:
        directions.append("desc")
    for direction in directions:
        s1 = (-25.0 + 20.0 * _field(rng, px, px, len(s1_names))).astype(np.float32)
        _write_tif(folder / f"s1grdm-2020-{direction}" / f"{cid}.tif", s1, poly, s1_names)
    _write_gunw(folder / "gunw" / f"{cid}.nc", poly, rng, px)
    wc = rng.choice(np.array([10, 20, 30, 40, 50, 80], np.uint8), size=(1, px, px))
    _write_tif(folder / "esaworldcover-2020" / f"{cid}.tif", wc, poly)
    m = max(2, px * 10 // 250)
    tree = (rng.random((2, m, m)) * 100).astype(np.uint8)
    _write_tif(
        folder / "modis44b006veg" / f"{cid}.tif",
        tree,
        poly,
        ["Percent_Tree_Cover_2019", "Percent_Tree_Cover_2020"],
    )
    g = max(2, px // 10)
    ghs = (rng.random((1, g, g)) * 10000).astype(np.uint16)
    _write_tif(folder / "ghsbuilts-2020" / f"{cid}.tif", ghs, poly)


def write_sample(root: str | Path, n_chips: int = 200, chip_px: int = 448, seed: int = 0) -> Path:
    """Write ``n_chips`` chips split over the AOIs of ``AOIS`` under ``root``; returns root.

    A finished sample (``sample.json`` with the same settings) is reused as it is.
    """
    root = Path(root)
    stamp = {"n_chips": n_chips, "chip_px": chip_px, "seed": seed, "version": 1}
    marker = root / "sample.json"
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return root
    if marker.is_file():  # another sample: start afresh (its AOIs would be read too)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_aoi = -(-n_chips // len(AOIS))
    k = 0
    for aoi, epsg, (x0, y0) in AOIS:
        n = min(per_aoi, n_chips - k)
        cols = int(np.ceil(np.sqrt(n)))
        polys = {}
        for i in range(n):
            poly = _polygon(epsg, x0 + SIDE * (i % cols), y0 + SIDE * (i // cols))
            cid = hashlib.sha1(poly.wkb).hexdigest()[:16]
            polys[cid] = poly
        stem = f"{aoi}_partitions_aschips_{hashlib.sha1(''.join(polys).encode()).hexdigest()[:13]}"
        features = [
            {"type": "Feature", "properties": {"identifier": cid}, "geometry": mapping(p)}
            for cid, p in polys.items()
        ]
        (root / f"{stem}.geojson").write_text(
            json.dumps({"type": "FeatureCollection", "features": features})
        )
        splits = ["identifier,split"] + [
            f"{cid},{('train', 'train', 'train', 'test', 'val')[i % 5]}"
            for i, cid in enumerate(polys)
        ]
        (root / f"{stem}_splits.csv").write_text("\n".join(splits) + "\n")
        for cid, poly in polys.items():
            _chip(root / stem, cid, poly, rng, chip_px, k)
            k += 1
    marker.write_text(json.dumps(stamp))
    return root
