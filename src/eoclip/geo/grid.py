"""Square chip grids over an AOI, in the AOI's UTM zone.

A grid is the paper's tiling: square chips of ``chip_size_m`` a side (4480 m = 448 px at 10 m,
the paper's chip), aligned to multiples of ``chip_size_m`` in the UTM zone of the AOI's
centroid. A chip belongs to the AOI when its CENTRE lies inside the AOI polygon, so adjacent
AOIs sharing a border do not share chips and the chip count is about area / chip area.

Chip ids are derived from the UTM origin of the chip, ``<aoi>_<epsg>_E<col>_N<row>`` with
``col = floor(easting / chip_size_m)`` and ``row = floor(northing / chip_size_m)`` (e.g.
``conus_32614_E0123_N1000``; a far-west chip of a wide AOI can have a negative col, ``E-012``),
so ids do not change when the AOI polygon is redrawn or a grid is restricted to ``bounds``.
Ids are unique for one chip size; grids of different chip sizes should not be mixed.
AOIs spanning several UTM zones use the centroid's zone throughout (the Transverse Mercator
scale error grows away from it: about +7 % in length 30 degrees of longitude away at 45 N).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from eoclip.errors import GeoError
from eoclip.geo.aoi import AOI, load_aoi

__all__ = ["GRID_COLUMNS", "PAPER_CHIP_SIZE_M", "chip_count", "make_grid", "subgrid", "utm_crs_for"]

PAPER_CHIP_SIZE_M = 4480.0  # 448 px at 10 m (paper, Sec. 3; its "448 m" is a typo)
GRID_COLUMNS = ["chip_id", "aoi", "geometry", "utm_epsg", "col", "row"]
_DENSIFY_DEG = 0.25  # AOI edges are straight in lon/lat; densify before projecting to UTM


def utm_crs_for(geometry: BaseGeometry | AOI) -> pyproj.CRS:
    """The WGS 84 / UTM CRS of the zone holding the geometry's centroid.

    Args:
        geometry: A lon/lat (EPSG:4326) shapely geometry, or an :class:`AOI`.

    Returns:
        ``EPSG:326zz`` north of the equator, ``EPSG:327zz`` south of it (the Norway and
        Svalbard zone exceptions are ignored).
    """
    if isinstance(geometry, AOI):
        geometry = geometry.geometry
    if geometry.is_empty:
        raise GeoError("utm_crs_for: the geometry is empty")
    c = geometry.centroid
    if not (-180 <= c.x <= 180 and -90 <= c.y <= 90):
        raise GeoError(f"utm_crs_for: centroid ({c.x}, {c.y}) is not longitude/latitude")
    zone = min(int((c.x + 180) // 6) + 1, 60)
    return pyproj.CRS.from_epsg((32600 if c.y >= 0 else 32700) + zone)


def _aoi_in_utm(aoi: AOI, bounds, crs: pyproj.CRS) -> BaseGeometry:
    geom = aoi.geometry
    if bounds is not None:
        lon0, lat0, lon1, lat1 = bounds
        if not (lon0 < lon1 and lat0 < lat1):
            raise GeoError(f"bounds {bounds} must be (min_lon, min_lat, max_lon, max_lat)")
        geom = geom.intersection(box(lon0, lat0, lon1, lat1))
    if geom.is_empty:
        return geom
    to_utm = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
    dense = shapely.segmentize(geom, _DENSIFY_DEG)
    return shapely.transform(
        dense, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))
    )


def _chip_indices(geom_utm: BaseGeometry, size: float) -> tuple[np.ndarray, np.ndarray]:
    """(col, row) int64 arrays of the chips whose centre lies inside ``geom_utm``."""
    if geom_utm.is_empty:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    x0, y0, x1, y1 = geom_utm.bounds
    cols = np.arange(np.floor(x0 / size), np.floor(x1 / size) + 1, dtype=np.int64)
    rows = np.arange(np.floor(y0 / size), np.floor(y1 / size) + 1, dtype=np.int64)
    shapely.prepare(geom_utm)
    out_c, out_r = [], []
    # Row blocks keep memory flat for continent-sized AOIs (~1e6 candidate centres).
    for start in range(0, len(rows), 256):
        cc, rr = np.meshgrid(cols, rows[start : start + 256])
        cc, rr = cc.ravel(), rr.ravel()
        inside = shapely.contains_xy(geom_utm, (cc + 0.5) * size, (rr + 0.5) * size)
        out_c.append(cc[inside])
        out_r.append(rr[inside])
    return np.concatenate(out_c), np.concatenate(out_r)


def _check_size(chip_size_m: float) -> float:
    size = float(chip_size_m)
    if not np.isfinite(size) or size <= 0:
        raise GeoError(f"chip_size_m must be a positive number of metres, got {chip_size_m}")
    return size


def chip_count(aoi: AOI | str, chip_size_m: float = PAPER_CHIP_SIZE_M, bounds=None) -> int:
    """Number of chips :func:`make_grid` would return, without building their polygons.

    Args:
        aoi: An :class:`AOI` or anything :func:`load_aoi` accepts.
        chip_size_m: Chip side in metres.
        bounds: Optional (min_lon, min_lat, max_lon, max_lat) restriction.

    Returns:
        The chip count.
    """
    aoi = load_aoi(aoi)
    size = _check_size(chip_size_m)
    cols, _ = _chip_indices(_aoi_in_utm(aoi, bounds, utm_crs_for(aoi.geometry)), size)
    return len(cols)


def _grid_frame(aoi_name: str, epsg: int, cols, rows, size: float) -> gpd.GeoDataFrame:
    """Build the EPSG:4326 GeoDataFrame of chips (col, row) of one UTM zone."""
    x0, y0 = cols * size, rows * size
    corners_x = np.stack([x0, x0 + size, x0 + size, x0, x0], axis=1)
    corners_y = np.stack([y0, y0, y0 + size, y0 + size, y0], axis=1)
    to_ll = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = to_ll.transform(corners_x.ravel(), corners_y.ravel())
    coords = np.stack([lon, lat], axis=1).reshape(len(cols), 5, 2)
    geometry = shapely.polygons(coords) if len(cols) else np.empty(0, dtype=object)
    chip_id = [
        f"{aoi_name}_{epsg}_E{c:04d}_N{r:04d}"
        for c, r in zip(cols.tolist(), rows.tolist(), strict=True)
    ]
    frame = {
        "chip_id": chip_id,
        "aoi": [aoi_name] * len(cols),
        "utm_epsg": np.full(len(cols), epsg, dtype=np.int32),
        "col": cols.astype(np.int64),
        "row": rows.astype(np.int64),
    }
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, crs=4326), crs=4326)
    return gdf[GRID_COLUMNS]


def make_grid(
    aoi: AOI | str, chip_size_m: float = PAPER_CHIP_SIZE_M, bounds=None
) -> gpd.GeoDataFrame:
    """Tile an AOI with square chips in its UTM zone; keep the chips whose centre is inside.

    Args:
        aoi: An :class:`AOI` or anything :func:`load_aoi` accepts (e.g. ``"conus"``).
        chip_size_m: Chip side in metres (default 4480, the paper's 448 px at 10 m).
        bounds: Optional (min_lon, min_lat, max_lon, max_lat) box; only chips whose centre lies
            in both the AOI and the box are kept. The UTM zone and chip ids stay those of the
            whole AOI, so a bounded grid is a subset of the full grid.

    Returns:
        GeoDataFrame (EPSG:4326) of N rows sorted by (row, col), columns ``chip_id`` (str),
        ``aoi`` (str), ``geometry`` (the chip square, its 4 UTM corners in lon/lat),
        ``utm_epsg`` (int), ``col``, ``row`` (int: chip origin = (col, row) * chip_size_m in
        UTM metres). Empty (with these columns) if no chip centre falls inside.
    """
    aoi = load_aoi(aoi)
    size = _check_size(chip_size_m)
    crs = utm_crs_for(aoi.geometry)
    cols, rows = _chip_indices(_aoi_in_utm(aoi, bounds, crs), size)
    return _grid_frame(aoi.name, crs.to_epsg(), cols, rows, size)


def subgrid(
    aoi: AOI | str, n_chips: int, chip_size_m: float = PAPER_CHIP_SIZE_M, seed: int = 0
) -> gpd.GeoDataFrame:
    """A compact, roughly square block of ``n_chips`` contiguous chips inside an AOI.

    The block is centred on a seeded random point of the AOI; points are redrawn (up to 200
    times) until a square of 1.5 x the block's side around it lies inside the AOI, so the
    block is a full square where the AOI allows it. Its chips are the ``n_chips`` chips of
    :func:`make_grid` nearest the point (square distance, ties by distance then id), so ids
    and geometry match the full grid's.

    Args:
        aoi: An :class:`AOI` or anything :func:`load_aoi` accepts.
        n_chips: Number of chips wanted (>= 1).
        chip_size_m: Chip side in metres.
        seed: Seed for the block's position.

    Returns:
        GeoDataFrame like :func:`make_grid` of ``n_chips`` rows (fewer only if the whole AOI
        holds fewer chips), sorted by (row, col).
    """
    if int(n_chips) < 1:
        raise GeoError(f"n_chips must be >= 1, got {n_chips}")
    n_chips = int(n_chips)
    aoi = load_aoi(aoi)
    size = _check_size(chip_size_m)
    crs = utm_crs_for(aoi.geometry)
    geom_utm = _aoi_in_utm(aoi, None, crs)
    shapely.prepare(geom_utm)
    half = 0.5 * np.sqrt(n_chips) * size
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = geom_utm.bounds
    centre = None
    for _ in range(200):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if not shapely.contains_xy(geom_utm, x, y):
            continue
        centre = centre or (x, y)  # first inside point is the fallback
        if geom_utm.contains(box(x - 1.5 * half, y - 1.5 * half, x + 1.5 * half, y + 1.5 * half)):
            centre = (x, y)
            break
    if centre is None:
        centre = geom_utm.representative_point().coords[0]
    cx, cy = centre
    for grow in (2.0, 4.0, 8.0, 16.0, np.inf):
        r = grow * half
        window = (
            geom_utm if np.isinf(r) else geom_utm.intersection(box(cx - r, cy - r, cx + r, cy + r))
        )
        cols, rows = _chip_indices(window, size)
        if len(cols) >= n_chips or np.isinf(r):
            break
    dx, dy = (cols + 0.5) * size - cx, (rows + 0.5) * size - cy
    order = np.lexsort((cols, rows, np.hypot(dx, dy), np.maximum(np.abs(dx), np.abs(dy))))
    keep = order[:n_chips]
    keep = keep[np.lexsort((cols[keep], rows[keep]))]
    return _grid_frame(aoi.name, crs.to_epsg(), cols[keep], rows[keep], size)
