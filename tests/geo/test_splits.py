"""Tests for eoclip.geo.splits: stripe patterns and geographic band splits."""

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from eoclip.geo import AOI, band_splits, make_grid, split_pattern, subgrid

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


@pytest.fixture(scope="module")
def pakin_grid():
    """The full built-in Pakistan-India grid (~140K chips of 4480 m)."""
    return make_grid("pakistan_india")


def test_paper_pattern():
    assert split_pattern() == ["train", "train", "train", "test", "val"]


@pytest.mark.parametrize(
    ("fractions", "names", "counts"),
    [
        ((0.5, 0.5), ("a", "b"), {"a": 1, "b": 1}),
        ((0.7, 0.15, 0.15), ("train", "val", "test"), {"train": 14, "val": 3, "test": 3}),
        ((1 / 3, 1 / 3, 1 / 3), ("x", "y", "z"), {"x": 1, "y": 1, "z": 1}),
        ((0.8, 0.2, 0.0), ("train", "val", "test"), {"train": 4, "val": 1}),
        ((1.0,), ("all",), {"all": 1}),
    ],
)
def test_smallest_integer_pattern(fractions, names, counts):
    pattern = split_pattern(fractions, names)
    assert {k: pattern.count(k) for k in set(pattern)} == counts
    assert pattern[0] == names[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fractions": (0.6, 0.2, 0.1)}, "sum to 1"),
        ({"fractions": (1.2, -0.1, -0.1)}, ">= 0"),
        ({"fractions": (0.5, 0.5)}, "one fraction per split"),
        ({"fractions": (0.6, 0.2, float("nan"))}, "finite"),
        ({"names": ("train", "train", "test")}, "unique"),
        ({"n_bands": 0}, "n_bands"),
        ({"angle": float("inf")}, "angle"),
    ],
)
def test_bad_arguments(kwargs, message):
    grid = make_grid(AOI("sq", box(0.0, 10.0, 0.5, 10.5)))
    with pytest.raises(ValueError, match=message):
        band_splits(grid, **kwargs)


def test_empty_grid_is_rejected():
    empty = make_grid(AOI("sq", box(0.0, 10.0, 0.5, 10.5)), bounds=(50.0, 50.0, 51.0, 51.0))
    with pytest.raises(ValueError, match="empty"):
        band_splits(empty)


@pytest.mark.parametrize("angle", [0.0, 90.0, 35.0])
def test_fractions_on_a_real_aoi(pakin_grid, angle):
    out = band_splits(pakin_grid, angle=angle, seed=1)
    assert len(out) == len(pakin_grid) and "split" not in pakin_grid.columns
    share = out["split"].value_counts(normalize=True)
    for name, frac in FRACTIONS.items():
        assert share[name] == pytest.approx(frac, abs=0.025)
    # Default width: 10-chip bands on a continental AOI.
    assert 30 <= out["band"].nunique() <= 120


def _projected(grid, angle):
    t = np.deg2rad(angle)
    return (grid["col"] + 0.5) * np.cos(t) + (grid["row"] + 0.5) * np.sin(t)


@pytest.mark.parametrize("angle", [0.0, 90.0, 35.0, -120.0])
def test_bands_are_contiguous_stripes(pakin_grid, angle):
    out = band_splits(pakin_grid, angle=angle, seed=2)
    assert (out.groupby("band")["split"].nunique() == 1).all()
    # Bands are consecutive intervals of the projected coordinate.
    p = _projected(out, angle).to_numpy()
    order = np.argsort(p, kind="stable")
    assert (np.diff(out["band"].to_numpy()[order]) >= 0).all()
    # Cyclic pattern: consecutive bands follow train,train,train,test,val.
    per_band = out.groupby("band")["split"].first().sort_index()
    pattern = ["train", "train", "train", "test", "val"]
    seq = per_band.tolist()
    assert any(seq == [pattern[(s + i) % 5] for i in range(len(seq))] for s in range(5))


def test_neighbours_along_a_stripe_share_their_split(pakin_grid):
    out = band_splits(pakin_grid, angle=0.0)  # north-south stripes
    keyed = out.set_index(["col", "row"])["split"]
    north = pd.MultiIndex.from_arrays([out["col"], out["row"] + 1])
    has = north.isin(keyed.index)
    assert has.sum() > 0.9 * len(out)
    assert (keyed.loc[north[has]].to_numpy() == out["split"].to_numpy()[has]).all()
    east = pd.MultiIndex.from_arrays([out["col"] + 1, out["row"]])
    has = east.isin(keyed.index)
    differ = keyed.loc[east[has]].to_numpy() != out["split"].to_numpy()[has]
    assert 0 < differ.mean() < 0.2  # splits change only at band edges, every few chips


def test_seed_is_deterministic_and_shifts_the_phase(pakin_grid):
    a = band_splits(pakin_grid, seed=0)["split"]
    assert a.equals(band_splits(pakin_grid, seed=0)["split"])
    b = band_splits(pakin_grid, seed=1)["split"]
    assert (a != b).mean() > 0.1


def test_explicit_band_count():
    grid = make_grid(AOI("sq", box(0.0, 10.0, 1.0, 11.0)), chip_size_m=4480)
    out = band_splits(grid, n_bands=10, angle=90.0)
    assert out["band"].nunique() in (10, 11)
    assert (out.groupby("row")["band"].nunique() == 1).all()


def test_each_aoi_of_a_mixed_grid_gets_its_own_bands():
    grid = pd.concat([subgrid("conus", 300, seed=0), subgrid("china", 300, seed=0)])
    out = band_splits(grid)
    assert out.groupby("band")["aoi"].nunique().max() == 1
    for _, part in out.groupby("aoi"):
        share = part["split"].value_counts(normalize=True)
        assert share["train"] == pytest.approx(0.6, abs=0.1)
        assert {"val", "test"} <= set(share.index)


def test_grid_without_col_row_uses_projected_centroids():
    block = subgrid("pakistan_india", 400, seed=5)
    bare = block.drop(columns=["col", "row", "utm_epsg"])
    out = band_splits(bare, angle=0.0, seed=0)
    assert (out.groupby("band")["split"].nunique() == 1).all()
    order = np.argsort(block["col"].to_numpy(), kind="stable")
    assert (np.diff(out["band"].to_numpy()[order]) >= 0).all()
