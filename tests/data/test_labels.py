import numpy as np
import pandas as pd
import pytest

from eoclip.data.labels import (
    binarize,
    binarize_by_aoi,
    chip_means_from_raster,
    class_fraction,
    continuous_mean,
)


def test_class_fraction_and_continuous_mean():
    codes = np.array([[40, 40, 80], [10, 0, 40]])
    assert class_fraction(codes, 40) == pytest.approx(0.5)
    assert class_fraction(codes, 40, nodata=0) == pytest.approx(3 / 5)
    assert np.isnan(class_fraction(np.zeros((2, 2)), 40, nodata=0))
    tree = np.array([10.0, 30.0, 200.0, np.nan])
    assert continuous_mean(tree, replace={200: 0}) == pytest.approx(40 / 3)


def test_binarize_threshold_comes_from_train_only():
    values = np.array([1, 2, 3, 4, 100, 200, 0, 0], dtype=float)
    splits = np.array(["train"] * 4 + ["test"] * 4)
    b = binarize(values, splits)
    assert b.threshold == 2.5
    assert b.y.tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    moved = binarize(np.r_[values[:4], [-5, -5, 999, 999]], splits)
    assert moved.threshold == b.threshold  # test labels never move the threshold
    assert b.balance == {"test": 0.5, "train": 0.5}


def test_binarize_ties_break_the_balance_and_nan_is_unlabelled():
    values = np.array([0, 0, 0, 0.2, np.nan])
    b = binarize(values, ["train"] * 5)
    assert b.threshold == 0.0 and b.y.tolist() == [0, 0, 0, 1, -1]
    assert b.balance["train"] == pytest.approx(0.25)


def test_binarize_errors():
    with pytest.raises(ValueError, match="no labelled chips"):
        binarize([1.0, 2.0], ["test", "val"])
    with pytest.raises(ValueError, match="shape"):
        binarize([1.0, 2.0], ["train"])


def test_binarize_by_aoi_uses_each_aois_median():
    df = pd.DataFrame(
        {
            "aoi": ["a"] * 4 + ["b"] * 4,
            "split": ["train"] * 8,
            "label_tree": [1, 2, 3, 4, 10, 20, 30, 40],
        }
    )
    out = binarize_by_aoi(df, "tree")
    assert out["threshold"].tolist() == [2.5] * 4 + [25.0] * 4
    assert out["y"].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="unknown task"):
        binarize_by_aoi(df, "snow")


def test_chip_means_from_raster(tmp_path):
    import geopandas as gpd
    import rasterio
    import shapely
    from rasterio.transform import from_origin

    codes = np.full((20, 20), 10, dtype=np.uint8)
    codes[:10, :10] = 40  # the north-west quarter is cropland
    path = tmp_path / "wc.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=20,
        height=20,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(0, 2, 0.1, 0.1),
    ) as dst:
        dst.write(codes, 1)
    chips = gpd.GeoDataFrame(
        geometry=[shapely.box(0, 1, 1, 2), shapely.box(1, 0, 2, 1), shapely.box(5, 5, 6, 6)],
        crs="EPSG:4326",
    )
    out = chip_means_from_raster(str(path), chips, kind="fraction", code=40)
    assert out[0] == pytest.approx(1.0) and out[1] == pytest.approx(0.0) and np.isnan(out[2])
    with pytest.raises(ValueError, match="cannot read"):
        chip_means_from_raster(str(tmp_path / "missing.tif"), chips, kind="mean")
