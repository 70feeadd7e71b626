"""Few-shot scores for choosing pretraining settings: validation split by default."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point

from eoclip.train.selection import fewshot_score, split_view


def _table(informative: str, n: int = 90, seed: int = 0) -> gpd.GeoDataFrame:
    """Two AOIs; the embedding tells the label apart only on `informative` (and train) chips."""
    rng = np.random.default_rng(seed)
    rows = []
    for aoi in ("conus", "china"):
        split = np.array(["train", "train", "train", "val", "test"] * (n // 5))
        label = rng.uniform(0, 1, n)
        signal = np.where(np.isin(split, ["train", informative]), label, rng.uniform(0, 1, n))
        for i in range(n):
            rows.append(
                {
                    "chip_id": f"{aoi}{i:03d}",
                    "aoi": aoi,
                    "split": split[i],
                    "label_tree": label[i],
                    "label_crop": 1 - label[i],
                    "emb_a": np.array([signal[i], rng.normal()], dtype=np.float32),
                    "emb_b": np.array([rng.normal()], dtype=np.float32),
                    "geometry": Point(i, 0),
                }
            )
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    gdf.attrs["eoclip"] = {"modalities": ["a", "b"], "checkpoint_hash": informative}
    return gdf


def test_split_view_puts_val_in_tests_place_and_hides_test():
    gdf = _table("val")
    view = split_view(gdf, "val")
    assert (view["split"] == "test").sum() == (gdf["split"] == "val").sum()
    assert set(view["split"]) == {"train", "test", "heldout"}
    assert split_view(gdf, "test") is gdf and view.attrs == gdf.attrs
    with pytest.raises(ValueError, match="evaluation split"):
        split_view(gdf, "train")


def test_score_reads_the_chosen_split_only():
    kw = dict(train_sizes=(10,), repeats=2, features=("concat", "a"))
    val_good = fewshot_score({"x": _table("val")}, "val", tasks=("tree", "crop"), **kw)
    test_of_it = fewshot_score({"x": _table("val")}, "test", tasks=("tree", "crop"), **kw)
    mean = val_good[(val_good["task"] == "mean") & (val_good["features"] == "concat")]
    assert list(mean["train_size"]) == ["10", "all"]
    assert (mean["accuracy"] > 0.8).all()
    noise = test_of_it[(test_of_it["task"] == "mean") & (test_of_it["train_size"] == "all")]
    assert (noise["accuracy"] < 0.7).all()  # its test chips carry no signal
    assert set(val_good["task"]) == {"tree", "crop", "mean"}
    logreg = fewshot_score(
        {"x": _table("test")}, "test", (), 1, ("a",), head="logreg", tasks=("tree",)
    )
    assert logreg["accuracy"].iloc[0] > 0.8
