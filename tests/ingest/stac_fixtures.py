"""Seeded writer of a tiny static STAC catalogue (pystac + rasterio GeoTIFFs, local hrefs).

Two 640 m chips in UTM 32N: ``a`` is covered by every collection, ``b`` (2 km east) only by
WorldCover. Rasters are 10 m on the chips' own UTM grid, so with ``chip_px=64`` the store's
pixels are the file's pixels. Values (DN * 1e-4 = reflectance):

- S2 January: scene 1 B04 = 1500; scene 2 B04 = 1700 west, 9999 east under SCL 9 (cloud)
  -> median 0.16 west, 0.15 east. February: 1000, 1200 and (offset -0.1 baseline) 2200
  -> 0.12 everywhere. March: none -> NaN. B03 = B04 - 100, B02 = B04 - 200 (same rule).
- S1 (linear): January VV 0.1, 0.3; VH 0.01, 0.03 -> 10*log10(0.2), 10*log10(0.02).
  February VV 0.05, VH 0.005. March: none.
- WorldCover: west half 40, north-east 80, south-east 10 -> crop 0.5, water 0.25.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyproj
import pystac
import rasterio
from rasterio.transform import from_origin

EPSG = 32632
SIDE, PX = 640.0, 64
CHIPS = {"a": (600_000.0, 5_020_000.0), "b": (602_000.0, 5_020_000.0)}
_to_ll = pyproj.Transformer.from_crs(EPSG, 4326, always_xy=True)


def _ring(x0, y0, w, h):
    lon, lat = _to_ll.transform([x0, x0 + w, x0 + w, x0, x0], [y0, y0, y0 + h, y0 + h, y0])
    return [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]


def _tif(path: Path, data: np.ndarray, x0: float, y0: float) -> None:
    h, w = data.shape[-2:]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype=data.dtype.name,
        crs=f"EPSG:{EPSG}",
        transform=from_origin(x0, y0 + h * 10.0, 10.0, 10.0),
        nodata=0,
    ) as dst:
        dst.write(data[None] if data.ndim == 2 else data)


def _item(
    root: Path, iid: str, collection: str, when: dt.datetime, x0, y0, layers: dict, extra=None
):
    folder = root / "data" / iid
    folder.mkdir(parents=True, exist_ok=True)
    h, w = next(iter(layers.values())).shape
    ring = _ring(x0, y0, w * 10.0, h * 10.0)
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    item = pystac.Item(
        iid,
        {"type": "Polygon", "coordinates": [ring]},
        [min(lons), min(lats), max(lons), max(lats)],
        when,
        {
            "proj:epsg": EPSG,
            "proj:shape": [h, w],
            "proj:transform": [10.0, 0.0, x0, 0.0, -10.0, y0 + h * 10.0],
            **(extra or {}),
        },
    )
    for key, data in layers.items():
        path = folder / f"{key}.tif"
        _tif(path, data, x0, y0)
        fields = {}
        if key.startswith("B"):
            fields["raster:bands"] = [
                {"scale": 1e-4, "offset": -0.1 if "offset" in iid else 0.0, "nodata": 0}
            ]
        item.add_asset(
            key,
            pystac.Asset(
                str(path.resolve()),
                media_type=pystac.MediaType.GEOTIFF,
                roles=["data"],
                extra_fields=fields,
            ),
        )
    item.collection_id = collection
    return item


def _halves(west, east) -> np.ndarray:
    out = np.empty((PX, PX), dtype=np.asarray(west).dtype)
    out[:, : PX // 2], out[:, PX // 2 :] = west, east
    return out


def write_stac(root: str | Path) -> Path:
    """Write the catalogue; returns the path of its ``catalog.json``."""
    root = Path(root)
    x0, y0 = CHIPS["a"]
    items: dict[str, list[pystac.Item]] = {
        "sentinel-2-l2a": [],
        "sentinel-1-rtc": [],
        "esa-worldcover": [],
    }

    def s2(iid, day, red_w, red_e, scl_e=4):
        layers = {}
        for key, minus in (("B04", 0), ("B03", 100), ("B02", 200)):
            layers[key] = _halves(
                np.uint16(red_w - minus), np.uint16(red_e - minus if scl_e == 4 else red_e)
            )
        layers["SCL"] = _halves(np.uint8(4), np.uint8(scl_e))
        items["sentinel-2-l2a"].append(
            _item(root, iid, "sentinel-2-l2a", day, x0, y0, layers, {"eo:cloud_cover": 10.0})
        )

    s2("s2_0105", dt.datetime(2020, 1, 5, 10, tzinfo=dt.UTC), 1500, 1500)
    s2("s2_0115", dt.datetime(2020, 1, 15, 10, tzinfo=dt.UTC), 1700, 9999, scl_e=9)
    s2("s2_0204", dt.datetime(2020, 2, 4, 10, tzinfo=dt.UTC), 1000, 1000)
    s2("s2_0214", dt.datetime(2020, 2, 14, 10, tzinfo=dt.UTC), 1200, 1200)
    s2("s2_0224_offset", dt.datetime(2020, 2, 24, 10, tzinfo=dt.UTC), 2200, 2200)
    s2("s2_0410", dt.datetime(2020, 4, 10, 10, tzinfo=dt.UTC), 500, 500)  # outside Jan-Mar

    for iid, day, vv, vh in (("s1_0103", 3, 0.1, 0.01), ("s1_0115", 15, 0.3, 0.03)):
        layers = {"vv": np.full((PX, PX), vv, np.float32), "vh": np.full((PX, PX), vh, np.float32)}
        items["sentinel-1-rtc"].append(
            _item(
                root,
                iid,
                "sentinel-1-rtc",
                dt.datetime(2020, 1, day, 6, tzinfo=dt.UTC),
                x0,
                y0,
                layers,
                {"sat:orbit_state": "ascending"},
            )
        )
    layers = {"vv": np.full((PX, PX), 0.05, np.float32), "vh": np.full((PX, PX), 0.005, np.float32)}
    items["sentinel-1-rtc"].append(
        _item(
            root,
            "s1_0208",
            "sentinel-1-rtc",
            dt.datetime(2020, 2, 8, 6, tzinfo=dt.UTC),
            x0,
            y0,
            layers,
            {"sat:orbit_state": "descending"},
        )
    )

    wc = np.full((PX, 5 * PX), 10, np.uint8)  # covers chips a (columns 0..63) and b (200..263)
    for col in (0, 200):
        wc[:, col : col + PX // 2] = 40
        wc[: PX // 2, col + PX // 2 : col + PX] = 80
    items["esa-worldcover"].append(
        _item(
            root,
            "wc_2020",
            "esa-worldcover",
            dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            x0,
            y0,
            {"map": wc},
        )
    )

    catalog = pystac.Catalog("tiny", "tiny static catalogue for eoclip tests")
    for cid, its in items.items():
        extent = pystac.Extent(
            pystac.SpatialExtent([[-180, -90, 180, 90]]),
            pystac.TemporalExtent([[dt.datetime(2019, 1, 1, tzinfo=dt.UTC), None]]),
        )
        coll = pystac.Collection(cid, cid, extent)
        coll.add_items(its)
        catalog.add_child(coll)
    catalog.normalize_hrefs(str(root / "stac"))
    catalog.save(pystac.CatalogType.ABSOLUTE_PUBLISHED)
    features = [
        {
            "type": "Feature",
            "properties": {"chip_id": cid, "split": "train", "aoi": "tiny"},
            "geometry": {"type": "Polygon", "coordinates": [_ring(x, y, SIDE, SIDE)]},
        }
        for cid, (x, y) in CHIPS.items()
    ]
    (root / "chips.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    return root / "stac" / "catalog.json"
