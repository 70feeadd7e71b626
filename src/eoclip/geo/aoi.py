"""Areas of interest (AOIs): named EPSG:4326 polygons, built in or read from a file.

The five built-in AOIs follow the paper (Allen et al., 2023, Fig. 1): ``conus``,
``middle_east``, ``pakistan_india``, ``china`` and ``south_america``. They are hand-drawn
APPROXIMATIONS (12-20 vertices each) of the 2020 ARIA GUNW coverage the paper used, not the
authors' polygons, which were not published. Coastlines and borders are followed only
roughly, so expect some sea and some neighbouring land in them. Chips of 4480 m (centre inside,
centroid UTM zone) per AOI, against the paper's counts (``PAPER_CHIP_COUNTS``):

================  ====================================================  =======  =====
name              extent                                                 ours     paper
================  ====================================================  =======  =====
conus             the western contiguous US, west of 102.3 W            167 K    167 K
middle_east       Turkey, Syria, Iraq, Iran, Levant                     159 K    163 K
pakistan_india    Pakistan and India north of ~21.5 N                   140 K    147 K
china             eastern China, east of ~98-111 E incl. the north-east 259 K    285 K
south_america     a 20.5-26.5 S band: N Chile/Argentina, Paraguay, S Brazil  87 K   83 K
================  ====================================================  =======  =====

The whole contiguous US would hold 417 K chips, 2.5 x the paper's 167 K: the paper's 2020 ARIA
coverage was evidently only part of it, so ``conus`` is cut at 102.3 W to match the paper's
count. Pass your own polygon to reproduce a specific extent.

A user's own AOI is a GeoJSON file (a geometry, a Feature or a FeatureCollection, whose
polygons are merged), a WKT file, or a WKT string, in longitude/latitude (EPSG:4326 / CRS84).
AOIs that cross the antimeridian are not supported.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from eoclip.errors import GeoError

__all__ = ["AOI", "PAPER_CHIP_COUNTS", "list_aois", "load_aoi", "validate_geometry"]

# Paper, Fig. 1 caption: chips of 4480 m per AOI.
PAPER_CHIP_COUNTS: dict[str, int] = {
    "conus": 167_000,
    "middle_east": 163_000,
    "pakistan_india": 147_000,
    "china": 285_000,
    "south_america": 83_000,
}

# CRS names GeoJSON files use for plain longitude/latitude.
_LONLAT_CRS_NAMES = {
    "epsg:4326",
    "urn:ogc:def:crs:epsg::4326",
    "urn:ogc:def:crs:epsg:6.6:4326",
    "urn:ogc:def:crs:ogc:1.3:crs84",
    "urn:ogc:def:crs:ogc::crs84",
    "crs84",
    "ogc:crs84",
}
_WKT_KEYWORDS = ("POLYGON", "MULTIPOLYGON", "GEOMETRYCOLLECTION")


@dataclass(frozen=True)
class AOI:
    """A named area of interest.

    Attributes:
        name: Short identifier, used as the ``aoi`` column and the prefix of chip ids.
        geometry: Polygon or MultiPolygon in EPSG:4326 (x = longitude, y = latitude).
    """

    name: str
    geometry: Polygon | MultiPolygon

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min_lon, min_lat, max_lon, max_lat)."""
        return tuple(self.geometry.bounds)


def _aoi_dir():
    return resources.files("eoclip.geo").joinpath("aois")


def list_aois() -> list[str]:
    """Names of the built-in AOIs, sorted.

    Returns:
        List of names accepted by :func:`load_aoi`.
    """
    return sorted(
        p.name.removesuffix(".geojson") for p in _aoi_dir().iterdir() if p.name.endswith(".geojson")
    )


def validate_geometry(geometry: BaseGeometry, source: str) -> Polygon | MultiPolygon:
    """Check that a geometry is a usable lon/lat AOI polygon.

    Args:
        geometry: The candidate geometry.
        source: What it came from (a file or a name), for the error message.

    Returns:
        The geometry, a Polygon or MultiPolygon (a collection of polygons is merged).

    Raises:
        ValueError: Empty, not polygonal, invalid, or coordinates outside lon/lat range.
    """
    if geometry is None or geometry.is_empty:
        raise GeoError(f"AOI {source}: the geometry is empty")
    if geometry.geom_type == "GeometryCollection":
        parts = [g for g in geometry.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        if len(parts) != len(geometry.geoms):
            raise GeoError(f"AOI {source}: only polygons are allowed, got {geometry.geom_type}")
        geometry = shapely.union_all(parts)
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise GeoError(
            f"AOI {source}: expected a Polygon or MultiPolygon, got {geometry.geom_type}"
        )
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        raise GeoError(
            f"AOI {source}: invalid polygon ({reason}); fix it, e.g. with shapely.make_valid"
        )
    x0, y0, x1, y1 = geometry.bounds
    if x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90:
        raise GeoError(
            f"AOI {source}: coordinates {geometry.bounds} are outside longitude/latitude range; "
            "AOIs must be in EPSG:4326 (reproject it first, e.g. GeoDataFrame.to_crs(4326))"
        )
    if geometry.area <= 0:
        raise GeoError(f"AOI {source}: the polygon has zero area")
    return geometry


def _geojson_geometry(text: str, source: str) -> BaseGeometry:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise GeoError(f"AOI {source}: not valid JSON ({err})") from err
    if not isinstance(obj, dict) or "type" not in obj:
        raise GeoError(f"AOI {source}: not a GeoJSON object (no 'type' member)")
    crs = obj.get("crs")
    if crs is not None:
        crs_name = (
            str((crs.get("properties") or {}).get("name", "")) if isinstance(crs, dict) else ""
        )
        if crs_name.lower() not in _LONLAT_CRS_NAMES:
            raise GeoError(
                f"AOI {source}: CRS {crs_name or crs!r} is not EPSG:4326; reproject the file "
                "to longitude/latitude (e.g. ogr2ogr -t_srs EPSG:4326)"
            )
    if obj["type"] == "FeatureCollection":
        geoms = [f.get("geometry") for f in obj.get("features", [])]
    elif obj["type"] == "Feature":
        geoms = [obj.get("geometry")]
    else:
        geoms = [obj]
    geoms = [g for g in geoms if g]
    if not geoms:
        raise GeoError(f"AOI {source}: the GeoJSON holds no geometry")
    try:
        shapes = [shape(g) for g in geoms]
    except Exception as err:  # shapely raises several types for malformed GeoJSON
        raise GeoError(f"AOI {source}: malformed GeoJSON geometry ({err})") from err
    return shapes[0] if len(shapes) == 1 else shapely.GeometryCollection(shapes)


def _wkt_geometry(text: str, source: str) -> BaseGeometry:
    try:
        return shapely.from_wkt(text.strip())
    except shapely.errors.GEOSException as err:
        raise GeoError(f"AOI {source}: not valid WKT ({err})") from err


def load_aoi(name_or_path: str | os.PathLike | AOI | BaseGeometry, name: str | None = None) -> AOI:
    """Load a built-in AOI, a GeoJSON or WKT file, or a WKT string.

    Args:
        name_or_path: A built-in name (see :func:`list_aois`), a path to a ``.geojson``/``.json``
            or ``.wkt``/``.txt`` file, a WKT string, a shapely geometry, or an :class:`AOI`
            (returned as is, renamed if ``name`` is given).
        name: Name to give the AOI; defaults to the built-in name, the file stem, or
            ``"custom"`` for a WKT string or geometry.

    Returns:
        The :class:`AOI` with a validated EPSG:4326 Polygon/MultiPolygon.

    Raises:
        ValueError: Unknown name, missing file, empty/invalid geometry, or a non-lon/lat CRS.
    """
    if isinstance(name_or_path, AOI):
        return name_or_path if name is None else AOI(name, name_or_path.geometry)
    if isinstance(name_or_path, BaseGeometry):
        return AOI(name or "custom", validate_geometry(name_or_path, "geometry"))
    text = os.fspath(name_or_path)
    if text in list_aois():
        resource = _aoi_dir().joinpath(f"{text}.geojson")
        geometry = _geojson_geometry(resource.read_text(), f"built-in '{text}'")
        return AOI(name or text, validate_geometry(geometry, f"built-in '{text}'"))
    if text.lstrip().upper().startswith(_WKT_KEYWORDS):
        return AOI(name or "custom", validate_geometry(_wkt_geometry(text, "WKT string"), "WKT"))
    path = Path(text)
    if not path.is_file():
        raise GeoError(
            f"unknown AOI '{text}': not a built-in name ({', '.join(list_aois())}), "
            "not an existing GeoJSON/WKT file, and not a WKT string"
        )
    body = path.read_text()
    if path.suffix.lower() in (".geojson", ".json") or body.lstrip().startswith("{"):
        geometry = _geojson_geometry(body, str(path))
    else:
        geometry = _wkt_geometry(body, str(path))
    return AOI(name or path.stem, validate_geometry(geometry, str(path)))
