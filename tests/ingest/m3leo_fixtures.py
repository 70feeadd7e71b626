"""Seeded writers of tiny M3LEO / geetiles datasets (no committed binaries).

``write_m3leo(root, seed)`` writes the older flat layout; ``write_m3leo_nested(root, seed)``
the layout geetiles really writes (several AOIs, see its docstring). Chips are 640 m (64 px at
10 m), with values constant on each quarter of a chip so that a test can predict any pixel
away from the quarter edges.

``write_m3leo``: 4 chips in UTM zone 32N. Chip ``c0`` is complete and clean; the others carry
the failures the ingest must report:

- ``c1``: truncated s2rgbm GeoTIFF; no modis file (label_tree NaN)
- ``c2``: gunw netCDF without the /science/grids/data group
- ``c3``: s1grdm-asc GeoTIFF with a wrong CRS (metres labelled EPSG:4326) -> des fallback
- an s2rgbm file ``zz_orphan.tif`` and a splits row ``zz_ghost`` whose ids are not in the grid

Run ``python tests/ingest/m3leo_fixtures.py OUT`` to write one for a manual look.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyproj
import rasterio
import xarray as xr
from rasterio.transform import from_origin

EPSG = 32632
SIDE = 640.0  # metres per chip side
ORIGIN = (600_000.0, 5_020_000.0)  # UTM x, y of chip c0's lower-left corner
PAIRS = ["20200105_20191124", "20200312_20200217", "20200220_20191201", "20200401_20200308"]
PAIRS_SELECTED = ["20200105_20191124", "20200312_20200217"]  # second date in Q1, span <= 48 d
YEAR = 2020


@functools.cache
def _ll(epsg: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)


_to_ll = _ll(EPSG)


@dataclass
class M3LEOFixture:
    """What was written, for the tests to predict the store's content."""

    root: Path
    chips: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> UTM lower-left
    values: dict[tuple[str, str, str], np.ndarray] = field(
        default_factory=dict
    )  # (chip, product, band) -> 2x2
    epsg: dict[str, int] = field(default_factory=dict)  # id -> UTM zone (default EPSG)
    stems: dict[str, str] = field(default_factory=dict)  # AOI -> GeoJSON stem (nested layout)

    def quarter_lonlat(self, chip_id: str, qx: int, qy: int) -> tuple[float, float]:
        """Longitude/latitude of the centre of quarter (qx east, qy north) of a chip."""
        x0, y0 = self.chips[chip_id]
        tr = _ll(self.epsg.get(chip_id, EPSG))
        return tr.transform(x0 + SIDE * (0.25 + 0.5 * qx), y0 + SIDE * (0.25 + 0.5 * qy))


def _chip_polygon(x0: float, y0: float, epsg: int = EPSG) -> list[list[float]]:
    xs, ys = [x0, x0 + SIDE, x0 + SIDE, x0, x0], [y0, y0, y0 + SIDE, y0 + SIDE, y0]
    lon, lat = _ll(epsg).transform(xs, ys)
    return [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]


def _lonlat_grid(x0: float, y0: float, step_m: float, epsg: int = EPSG):
    """A lon/lat raster grid around a chip (2 px margin) with ~step_m pixels."""
    ring = np.array(_chip_polygon(x0, y0, epsg))
    lat_c = ring[:, 1].mean()
    dlat = step_m / 111_320.0
    dlon = step_m / (111_320.0 * np.cos(np.radians(lat_c)))
    west, north = ring[:, 0].min() - 2 * dlon, ring[:, 1].max() + 2 * dlat
    w = int(np.ceil((ring[:, 0].max() - ring[:, 0].min()) / dlon)) + 4
    h = int(np.ceil((ring[:, 1].max() - ring[:, 1].min()) / dlat)) + 4
    lon = west + dlon * (np.arange(w) + 0.5)
    lat = north - dlat * (np.arange(h) + 0.5)
    return lon, lat, from_origin(west, north, dlon, dlat)


def _quarters(
    values: np.ndarray, x0: float, y0: float, lon: np.ndarray, lat: np.ndarray, epsg: int = EPSG
) -> np.ndarray:
    """Paint (B, 2, 2) quarter values [band, qy, qx] onto a lon/lat grid -> (B, h, w)."""
    clon, clat = _ll(epsg).transform(x0 + SIDE / 2, y0 + SIDE / 2)
    qx = (lon[None, :] > clon).astype(int)
    qy = (lat[:, None] > clat).astype(int)
    return values[:, qy, qx]


def _write_tif(path: Path, data: np.ndarray, transform, names=None, crs="EPSG:4326", nodata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=crs,
        transform=transform,
        nodata=nodata,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(names or []):
            dst.set_band_description(i + 1, name)


def _write_gunw(path: Path, coh: np.ndarray, lon, lat, group: str = "/science/grids/data"):
    """A geetiles/sartiles GUNW chip file: coherence(datepair, lat, lon) in ``group``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = xr.Dataset(
        {"coherence": (("datepair", "lat", "lon"), coh.astype(np.float32))},
        coords={"datepair": np.array(PAIRS, dtype=object), "lat": lat, "lon": lon},
    )
    ds.to_netcdf(path, group=group, engine="h5netcdf")


def _chip_files(fx: M3LEOFixture, cid: str, rng: np.random.Generator) -> None:
    x0, y0 = fx.chips[cid]
    root = fx.root
    lon, lat, transform = _lonlat_grid(x0, y0, 10.0)

    s2_names = [f"{m:02d}_{b}" for m in range(1, 5) for b in ("red", "green", "blue")]
    s2 = rng.integers(1, 256, size=(len(s2_names), 2, 2)).astype(np.uint8)
    _write_tif(
        root / "s2rgbm-2020" / f"{cid}.tif", _quarters(s2, x0, y0, lon, lat), transform, s2_names
    )
    for k, name in enumerate(s2_names):
        fx.values[(cid, "s2rgbm", name)] = s2[k].astype(np.float64) * 0.3 / 255.0

    s1_names = [f"{m:02d}_{p}" for m in range(1, 4) for p in ("vv", "vh")]
    for direction in ("asc", "des"):
        s1 = rng.uniform(-25.0, -5.0, size=(len(s1_names), 2, 2)).astype(np.float32)
        crs = "EPSG:4326"
        t = transform
        if direction == "asc" and cid == "c3":
            t = from_origin(x0, y0 + SIDE, 10.0, 10.0)  # metres, but labelled lon/lat: wrong CRS
        _write_tif(
            root / f"s1grdm-2020-{direction}" / f"{cid}.tif",
            _quarters(s1, x0, y0, lon, lat),
            t,
            s1_names,
            crs=crs,
        )
        for k, name in enumerate(s1_names):
            fx.values[(cid, f"s1grdm-{direction}", name)] = s1[k].astype(np.float64)

    glon, glat, _ = _lonlat_grid(x0, y0, 90.0)
    coh = rng.uniform(0.2, 0.95, size=(len(PAIRS), 2, 2))
    group = "/science/grids/other" if cid == "c2" else "/science/grids/data"
    _write_gunw(root / "gunw" / f"{cid}.nc", _quarters(coh, x0, y0, glon, glat), glon, glat, group)
    for k, name in enumerate(PAIRS):
        fx.values[(cid, "gunw", name)] = coh[k]

    wc = np.array([[[40, 10], [40, 80]]], dtype=np.uint8)  # [qy][qx]: west half crop, NE water
    _write_tif(
        root / "esaworldcover-2020" / f"{cid}.tif", _quarters(wc, x0, y0, lon, lat), transform
    )
    if cid != "c1":
        tree = np.array([[[5, 5], [5, 5]], [[30, 60], [200, 10]]], dtype=np.uint8)  # 2019, 2020
        _write_tif(
            root / "modis44b006veg" / f"{cid}.tif",
            _quarters(tree, x0, y0, lon, lat),
            transform,
            ["Percent_Tree_Cover_2019", "Percent_Tree_Cover_2020"],
        )
    ghs = np.array([[[0, 5000], [10000, 1000]]], dtype=np.uint16)
    _write_tif(root / "ghsbuilts-2020" / f"{cid}.tif", _quarters(ghs, x0, y0, lon, lat), transform)


# Expected labels of any clean chip (quarter means; pixel-edge effects make them approximate).
EXPECTED_LABELS = {"label_crop": 0.5, "label_water": 0.25, "label_tree": 25.0, "label_built": 0.4}


def write_m3leo(root: str | Path, seed: int = 0) -> M3LEOFixture:
    """Write the fixture dataset under ``root`` and return what it holds."""
    fx = M3LEOFixture(Path(root))
    fx.root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    features = []
    for k in range(4):
        cid = f"c{k}"
        fx.chips[cid] = (ORIGIN[0] + SIDE * (k % 2), ORIGIN[1] + SIDE * (k // 2))
        features.append(
            {
                "type": "Feature",
                "properties": {"identifier": cid},
                "geometry": {"type": "Polygon", "coordinates": [_chip_polygon(*fx.chips[cid])]},
            }
        )
        _chip_files(fx, cid, rng)
    (fx.root / "tiny_chips.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    splits = ["identifier,split", "c0,train", "c1,train", "c2,val", "c3,test", "zz_ghost,train"]
    (fx.root / "tiny_splits.csv").write_text("\n".join(splits) + "\n")
    # failures
    bad = fx.root / "s2rgbm-2020" / "c1.tif"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 3])
    src = fx.root / "s2rgbm-2020" / "c0.tif"
    (fx.root / "s2rgbm-2020" / "zz_orphan.tif").write_bytes(src.read_bytes())
    return fx


# The nested layout: AOI -> (UTM EPSG, lower-left corner of its chips, number of chips).
NESTED_AOIS = {
    "conus": (32611, (400_000.0, 3_950_000.0), 4),
    "china": (32650, (300_000.0, 4_400_000.0), 3),
}
S2_12 = [f"{m:02d}_{b}" for m in range(1, 13) for b in ("red", "green", "blue")]
S1_12 = [f"{m:02d}_{p}" for m in range(1, 13) for p in ("vv", "vh")]


def _nested_chip(
    fx: M3LEOFixture, folder: Path, cid: str, aoi: str, rng: np.random.Generator
) -> None:
    x0, y0 = fx.chips[cid]
    epsg = fx.epsg[cid]
    lon, lat, transform = _lonlat_grid(x0, y0, 10.0, epsg)

    def paint(values):
        return _quarters(values, x0, y0, lon, lat, epsg)

    s2 = rng.integers(1, 256, size=(len(S2_12), 2, 2)).astype(np.uint8)
    if cid == "cn1":
        s2[:] = 0  # masked everywhere: no valid pixel
    if cid != "cn2":
        _write_tif(folder / "s2rgbm-2020" / f"{cid}.tif", paint(s2), transform, S2_12)
    for k, name in enumerate(S2_12):
        fx.values[(cid, "s2rgbm", name)] = s2[k].astype(np.float64) * 0.3 / 255.0
    desc = "s1grdm-2020-desc" if aoi == "conus" else "s1grdm-2020-des"
    for product in ("s1grdm-2020-asc", desc):
        s1 = rng.uniform(-25.0, -5.0, size=(len(S1_12), 2, 2)).astype(np.float32)
        for k, name in enumerate(S1_12):
            fx.values[(cid, product.replace("-2020", ""), name)] = s1[k].astype(np.float64)
        data = paint(s1)
        if product.endswith("asc") and cid == "us1":
            data = np.round(data).astype(np.int16).view(np.uint16)  # geetiles' uint16 cast: not dB
        if product.endswith("asc") and cid == "us2":
            data[2:4] = 35.0  # month 2 VV, VH above the valid range (max 30 dB)
        if cid != "cn2":
            _write_tif(folder / product / f"{cid}.tif", data, transform, S1_12)
    if aoi == "conus":
        glon, glat, _ = _lonlat_grid(x0, y0, 90.0, epsg)
        coh = rng.uniform(0.2, 0.95, size=(len(PAIRS), 2, 2))
        _write_gunw(
            folder / "gunw" / f"{cid}.nc", _quarters(coh, x0, y0, glon, glat, epsg), glon, glat
        )
        for k, name in enumerate(PAIRS):
            fx.values[(cid, "gunw", name)] = coh[k]
    wc = np.array([[[40, 10], [40, 80]]], dtype=np.uint8)
    _write_tif(folder / "esaworldcover-2020" / f"{cid}.tif", paint(wc), transform)
    tree = np.array([[[5, 5], [5, 5]], [[30, 60], [200, 10]]], dtype=np.uint8)
    _write_tif(
        folder / "modis44b006veg" / f"{cid}.tif",
        paint(tree),
        transform,
        ["Percent_Tree_Cover_2019", "Percent_Tree_Cover_2020"],
    )
    ghs = np.array([[[0, 5000], [10000, 1000]]], dtype=np.uint16)
    _write_tif(folder / "ghsbuilts-2020" / f"{cid}.tif", paint(ghs), transform)


def write_m3leo_nested(
    root: str | Path, seed: int = 0, split_variants: bool = False
) -> M3LEOFixture:
    """Write the layout geetiles writes, with two AOIs, under ``root``.

    ``<aoi>_partitions_aschips_<hash>.geojson`` (with an extra ``*_proportions`` column), its
    ``_splits.csv`` and its ``<stem>/`` product folders, 12-month files (S2 36 bands, S1 24
    bands). conus: chips us0..us3 in UTM 11N, a ``-desc`` S1 folder, gunw. china: cn0..cn2
    in UTM 50N, a ``-des`` folder, a gunw folder holding nothing readable. Failures:

    - ``us1``: S1 ascending file stored as uint16 (values out of range) -> descending used
    - ``us2``: S1 ascending month 2 at 35 dB (out of range) -> those channels invalid
    - ``cn1``: S2 file all 0 (masked): no valid pixel -> s2rgbm absent, chip written
    - ``cn2``: no S2 nor S1 file -> chip not written

    With ``split_variants`` conus also gets ``<stem>_splits_8bands_45deg.csv``.
    """
    fx = M3LEOFixture(Path(root))
    fx.root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for aoi, (epsg, (ox, oy), n) in NESTED_AOIS.items():
        ids = [f"{'us' if aoi == 'conus' else 'cn'}{k}" for k in range(n)]
        for k, cid in enumerate(ids):
            fx.chips[cid], fx.epsg[cid] = (ox + SIDE * (k % 2), oy + SIDE * (k // 2)), epsg
        stem = f"{aoi}_partitions_aschips_{hashlib.sha1(''.join(ids).encode()).hexdigest()[:13]}"
        fx.stems[aoi] = stem
        features = [
            {
                "type": "Feature",
                "properties": {"identifier": cid, "esaworldcover_proportions": "{}"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [_chip_polygon(*fx.chips[cid], epsg)],
                },
            }
            for cid in ids
        ]
        (fx.root / f"{stem}.geojson").write_text(
            json.dumps({"type": "FeatureCollection", "features": features})
        )
        splits = ["identifier,split"] + [
            f"{cid},{('train', 'val', 'test')[k % 3]}" for k, cid in enumerate(ids)
        ]
        (fx.root / f"{stem}_splits.csv").write_text("\n".join(splits) + "\n")
        if split_variants and aoi == "conus":
            (fx.root / f"{stem}_splits_8bands_45deg.csv").write_text(
                "\n".join(["identifier,split"] + [f"{cid},test" for cid in ids]) + "\n"
            )
        for cid in ids:
            _nested_chip(fx, fx.root / stem, cid, aoi, rng)
    junk = fx.root / fx.stems["china"] / "gunw"
    junk.mkdir(parents=True, exist_ok=True)
    (junk / "README.txt").write_text("download failed\n")
    (junk / "cn0.tif.msk").write_bytes(b"\0" * 16)
    return fx


if __name__ == "__main__":
    out = write_m3leo(sys.argv[1] if len(sys.argv) > 1 else "m3leo_fixture")
    print(f"wrote {out.root}")
