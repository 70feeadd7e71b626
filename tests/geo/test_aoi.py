"""Tests for eoclip.geo.aoi: built-in AOIs and loading user AOIs from GeoJSON/WKT."""

import json

import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from eoclip.geo import AOI, PAPER_CHIP_COUNTS, chip_count, list_aois, load_aoi

NAMES = ["china", "conus", "middle_east", "pakistan_india", "south_america"]


def test_list_aois_is_the_paper_five():
    assert list_aois() == NAMES
    assert set(PAPER_CHIP_COUNTS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_builtin_aoi_is_a_plausible_lonlat_polygon(name):
    aoi = load_aoi(name)
    assert isinstance(aoi, AOI) and aoi.name == name
    assert isinstance(aoi.geometry, Polygon) and aoi.geometry.is_valid
    assert 6 <= len(aoi.geometry.exterior.coords) - 1 <= 20
    lon0, lat0, lon1, lat1 = aoi.bounds
    assert -180 <= lon0 < lon1 <= 180 and -90 <= lat0 < lat1 <= 90


@pytest.mark.parametrize("name", NAMES)
def test_builtin_chip_counts_match_paper_order_of_magnitude(name):
    ratio = chip_count(name) / PAPER_CHIP_COUNTS[name]
    assert 0.8 < ratio < 1.25


def _write_geojson(path, obj):
    path.write_text(json.dumps(obj))
    return path


def _feature(geom):
    return {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(geom)}


def test_geojson_featurecollection_is_merged_and_named_after_file(tmp_path):
    a, b = box(10, 10, 11, 11), box(12, 10, 13, 11)
    path = _write_geojson(
        tmp_path / "two_boxes.geojson",
        {"type": "FeatureCollection", "features": [_feature(a), _feature(b)]},
    )
    aoi = load_aoi(path)
    assert aoi.name == "two_boxes"
    assert isinstance(aoi.geometry, MultiPolygon)
    assert aoi.geometry.area == pytest.approx(2.0)
    assert load_aoi(str(path), name="renamed").name == "renamed"


def test_geojson_feature_geometry_and_crs84_are_accepted(tmp_path):
    geom = box(-3, 40, -2, 41)
    feature = _write_geojson(tmp_path / "f.json", _feature(geom))
    bare = _write_geojson(
        tmp_path / "g.geojson",
        {
            **shapely.geometry.mapping(geom),
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
        },
    )
    assert load_aoi(feature).geometry.equals(geom)
    assert load_aoi(bare).geometry.equals(geom)


def test_wkt_file_string_geometry_and_aoi_passthrough(tmp_path):
    geom = box(30, -5, 31, -4)
    path = tmp_path / "site.wkt"
    path.write_text(geom.wkt + "\n")
    assert load_aoi(path).name == "site" and load_aoi(path).geometry.equals(geom)
    from_string = load_aoi(geom.wkt)
    assert from_string.name == "custom" and from_string.geometry.equals(geom)
    assert load_aoi(geom, name="g").name == "g"
    aoi = AOI("x", geom)
    assert load_aoi(aoi) is aoi and load_aoi(aoi, name="y").name == "y"


def test_unknown_name_lists_builtins():
    with pytest.raises(ValueError, match="unknown AOI 'atlantis'.*conus"):
        load_aoi("atlantis")


def test_non_lonlat_crs_member_is_rejected(tmp_path):
    obj = {
        **shapely.geometry.mapping(box(500000, 4000000, 600000, 4100000)),
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
    }
    with pytest.raises(ValueError, match="32633.*not EPSG:4326"):
        load_aoi(_write_geojson(tmp_path / "utm.geojson", obj))


def test_projected_coordinates_without_crs_are_rejected(tmp_path):
    obj = shapely.geometry.mapping(box(500000, 4000000, 600000, 4100000))
    with pytest.raises(ValueError, match="outside longitude/latitude"):
        load_aoi(_write_geojson(tmp_path / "utm.geojson", obj))


@pytest.mark.parametrize(
    ("wkt", "message"),
    [
        ("POLYGON EMPTY", "empty"),
        ("POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))", "invalid polygon"),
        ("POLYGON ((0 0, 1 1, 2 2, 0 0))", "invalid|zero area"),
        ("GEOMETRYCOLLECTION (POINT (1 1))", "only polygons"),
    ],
)
def test_bad_geometries_are_rejected(wkt, message):
    with pytest.raises(ValueError, match=message):
        load_aoi(wkt)


def test_point_and_malformed_files_are_rejected(tmp_path):
    point = _write_geojson(tmp_path / "p.geojson", {"type": "Point", "coordinates": [1, 2]})
    with pytest.raises(ValueError, match="expected a Polygon"):
        load_aoi(point)
    broken = tmp_path / "broken.geojson"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.geojson: not valid JSON"):
        load_aoi(broken)
    empty = _write_geojson(tmp_path / "e.geojson", {"type": "FeatureCollection", "features": []})
    with pytest.raises(ValueError, match="holds no geometry"):
        load_aoi(empty)
    bad_wkt = tmp_path / "bad.wkt"
    bad_wkt.write_text("POLYGON ((0 0, 1")
    with pytest.raises(ValueError, match="bad.wkt: not valid WKT"):
        load_aoi(bad_wkt)
