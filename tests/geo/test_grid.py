"""Tests for eoclip.geo.grid: UTM zones, chip grids and compact sub-grids."""

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import box

from eoclip.geo import AOI, GRID_COLUMNS, chip_count, load_aoi, make_grid, subgrid, utm_crs_for

# A 1 x 1 degree square in Spain (UTM zone 30N), small enough to grid in milliseconds.
SQUARE = AOI("sq", box(-3.5, 40.0, -2.5, 41.0))


@pytest.mark.parametrize(
    ("bounds", "epsg"),
    [
        ((-105.1, 40.0, -104.9, 40.1), 32613),
        ((-58.1, -25.1, -57.9, -24.9), 32721),
        ((0.4, 0.0, 0.6, 0.2), 32631),
        ((179.8, 10.0, 180.0, 10.1), 32660),
        ((-180.0, -10.1, -179.8, -10.0), 32701),
    ],
)
def test_utm_crs_for_centroid_zone(bounds, epsg):
    assert utm_crs_for(box(*bounds)).to_epsg() == epsg


def test_utm_crs_for_uses_centroid_of_a_multizone_aoi():
    assert utm_crs_for(load_aoi("conus")).to_epsg() == 32612
    with pytest.raises(ValueError, match="empty"):
        utm_crs_for(shapely.Polygon())


def _utm(grid):
    return grid.to_crs(int(grid["utm_epsg"].iloc[0]))


def test_grid_chips_are_aligned_squares_with_centres_inside():
    grid = make_grid(SQUARE, chip_size_m=4480)
    assert list(grid.columns) == GRID_COLUMNS
    assert grid.crs.to_epsg() == 4326
    assert set(grid["utm_epsg"]) == {32630} and set(grid["aoi"]) == {"sq"}
    utm = _utm(grid)
    np.testing.assert_allclose(utm.area, 4480.0**2, rtol=1e-6)
    x0, y0 = utm.bounds["minx"].to_numpy(), utm.bounds["miny"].to_numpy()
    np.testing.assert_allclose(x0, grid["col"] * 4480.0, atol=1e-3)
    np.testing.assert_allclose(y0, grid["row"] * 4480.0, atol=1e-3)
    centres = grid.geometry.to_crs(32630).centroid.to_crs(4326)
    assert centres.within(SQUARE.geometry).all()
    # Centre-inside rule: count ~ area / chip area (1 degree box at 40.5 N ~ 9400 km2).
    area = shapely.area(grid.to_crs(32630).union_all())
    square_area = SQUARE.geometry.area * 111.2e3**2 * np.cos(np.deg2rad(40.5))
    assert area == pytest.approx(square_area, rel=0.03)


def test_chip_ids_are_unique_and_follow_the_utm_origin():
    grid = make_grid(SQUARE, chip_size_m=4480)
    assert grid["chip_id"].is_unique
    first = grid.iloc[0]
    assert first["chip_id"] == f"sq_32630_E{first['col']:04d}_N{first['row']:04d}"
    assert (grid["row"].diff().fillna(0) >= 0).all()  # sorted by row, then col


def test_ids_survive_redrawing_and_bounds():
    full = make_grid(SQUARE, chip_size_m=2000)
    redrawn = make_grid(AOI("sq", box(-3.6, 40.0, -2.7, 41.05)), chip_size_m=2000)
    common = set(full["chip_id"]) & set(redrawn["chip_id"])
    assert len(common) > 0.7 * len(full)
    bounded = make_grid(SQUARE, chip_size_m=2000, bounds=(-3.2, 40.2, -2.9, 40.5))
    assert 0 < len(bounded) < len(full) and set(bounded["chip_id"]) <= set(full["chip_id"])
    sub = full.set_index("chip_id").loc[bounded["chip_id"]]
    assert sub.geometry.geom_equals_exact(bounded.set_index("chip_id").geometry, 1e-9).all()


def test_chip_count_matches_make_grid_and_bounds_outside_give_empty_grid():
    assert chip_count(SQUARE, 3000) == len(make_grid(SQUARE, 3000))
    empty = make_grid(SQUARE, bounds=(10.0, 10.0, 11.0, 11.0))
    assert len(empty) == 0 and list(empty.columns) == GRID_COLUMNS
    assert chip_count(SQUARE, bounds=(10.0, 10.0, 11.0, 11.0)) == 0


def test_negative_columns_far_west_of_the_zone():
    grid = make_grid("south_america", bounds=(-70.8, -24.0, -70.0, -23.5))
    assert (grid["col"] < 0).all() and grid["chip_id"].str.contains("_E-").all()


@pytest.mark.parametrize("size", [0, -4480, float("nan")])
def test_bad_chip_size(size):
    with pytest.raises(ValueError, match="chip_size_m"):
        make_grid(SQUARE, chip_size_m=size)


def test_bad_bounds():
    with pytest.raises(ValueError, match="bounds"):
        make_grid(SQUARE, bounds=(-2.0, 40.0, -3.0, 41.0))


def test_real_aoi_full_grid_is_fast_and_consistent():
    grid = make_grid("south_america")
    assert grid["chip_id"].is_unique and len(grid) == chip_count("south_america")
    assert len(grid) == pytest.approx(83_000, rel=0.2)  # paper, Fig. 1


@pytest.mark.parametrize("n", [1, 50, 300])
def test_subgrid_is_a_compact_block_of_the_full_grid(n):
    block = subgrid("middle_east", n, chip_size_m=4480, seed=3)
    assert len(block) == n and block["chip_id"].is_unique
    width = block["col"].max() - block["col"].min() + 1
    height = block["row"].max() - block["row"].min() + 1
    assert width * height <= 1.3 * n + 4 and max(width, height) <= 1.5 * np.sqrt(n) + 2
    lon0, lat0, lon1, lat1 = block.total_bounds
    around = make_grid("middle_east", 4480, bounds=(lon0 - 0.1, lat0 - 0.1, lon1 + 0.1, lat1 + 0.1))
    assert set(block["chip_id"]) <= set(around["chip_id"])
    centres = block.geometry.to_crs(block["utm_epsg"].iloc[0]).centroid.to_crs(4326)
    assert centres.within(load_aoi("middle_east").geometry).all()


def test_subgrid_is_seeded():
    a = subgrid("china", 100, 4480, seed=0)
    assert a["chip_id"].tolist() == subgrid("china", 100, 4480, seed=0)["chip_id"].tolist()
    assert set(a["chip_id"]).isdisjoint(subgrid("china", 100, 4480, seed=1)["chip_id"])


def test_subgrid_larger_than_aoi_returns_whole_grid_and_rejects_zero():
    tiny = AOI("tiny", box(10.0, 45.0, 10.1, 45.1))
    assert len(subgrid(tiny, 10_000, 1000)) == chip_count(tiny, 1000)
    with pytest.raises(ValueError, match="n_chips"):
        subgrid(tiny, 0)


def test_grid_projection_is_consistent_with_pyproj():
    grid = make_grid(SQUARE, 4480, bounds=(-3.0, 40.5, -2.95, 40.55))
    to_utm = pyproj.Transformer.from_crs(4326, 32630, always_xy=True)
    lon, lat = np.asarray(grid.geometry.iloc[0].exterior.coords).T
    x, y = to_utm.transform(lon, lat)
    assert x.min() == pytest.approx(grid["col"].iloc[0] * 4480, abs=1e-3)
    assert y.min() == pytest.approx(grid["row"].iloc[0] * 4480, abs=1e-3)
