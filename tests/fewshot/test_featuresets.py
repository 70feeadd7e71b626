"""Modality subsets and modalities missing at test time: names, matrices, runs, the matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fewshot_synth import make_table

from eoclip.fewshot import FewshotConfig, FewshotError, run_fewshot, subset_table, summarize
from eoclip.fewshot.featuresets import (
    blank_columns,
    blank_test_rows,
    feature_mods,
    feature_sets,
    missing_at_test,
)

MODS = ["s2rgbm", "s1grdm", "gunw"]
SMALL_RF = ({"n_estimators": 8, "max_depth": 4},)


def test_names_and_what_they_read():
    assert feature_sets(MODS) == [*MODS, "concat"]
    full = feature_sets(MODS, subsets=True)
    assert full == [
        *MODS,
        "concat",
        "s2rgbm+s1grdm",
        "s2rgbm+gunw",
        "s1grdm+gunw",
        "concat-s2rgbm@test",
        "concat-s1grdm@test",
        "concat-gunw@test",
    ]
    assert feature_sets(["a"], subsets=True) == ["a"]
    assert feature_mods("gunw+s2rgbm", MODS) == ["s2rgbm", "gunw"]  # table order
    assert feature_mods("concat-gunw@test", MODS) == MODS
    assert missing_at_test("concat-gunw@test") == "gunw" and missing_at_test("concat") is None
    with pytest.raises(FewshotError, match="unknown feature set 'sar'"):
        feature_mods("sar", MODS)
    with pytest.raises(FewshotError, match="unknown feature set"):
        feature_mods("gunw+gunw", MODS)
    dims = {"s2rgbm": 4, "s1grdm": 6, "gunw": 2}
    assert blank_columns("concat-s1grdm@test", MODS, dims) == (4, 10)
    assert blank_columns("s2rgbm+gunw", MODS, dims) is None
    rows = blank_test_rows(40, 0.25, seed=3)
    assert len(rows) == 10 and len(set(rows)) == 10 and rows.max() < 40
    assert np.array_equal(rows, blank_test_rows(40, 0.25, seed=3))
    with pytest.raises(FewshotError, match="missing_frac"):
        FewshotConfig(missing_frac=0.0)


def test_subset_run_and_missing_at_test(table):
    cfg = dict(train_sizes=(20,), repeats=2, grid=SMALL_RF, tasks=("tree",), progress=False)
    three = make_table(n_per_aoi=100, mods=("s2", "s1", "sx"))
    res = run_fewshot({"p": three}, FewshotConfig(**cfg, modality_subsets=True))
    assert set(res["features"]) == set(feature_sets(["s2", "s1", "sx"], subsets=True))
    base = run_fewshot({"p": three}, FewshotConfig(**cfg))
    key = ["aoi", "features", "train_size", "repeat"]
    a = base.set_index(key)["accuracy"]
    b = res.set_index(key)["accuracy"].loc[a.index]
    pd.testing.assert_series_equal(a, b)  # the default feature sets are unchanged
    # one modality missing for every test chip: the same fits score the test split without it
    cfg1 = FewshotConfig(
        **cfg,
        modality_subsets=True,
        missing_frac=1.0,
        features=("concat", "concat-s2@test", "s1+sx"),
    )
    one = run_fewshot({"p": three}, cfg1).set_index(key)["accuracy"]
    full = one.xs("concat", level="features")
    dropped = one.xs("concat-s2@test", level="features")
    assert (dropped != full).any() and dropped.mean() > 0.5
    with pytest.raises(FewshotError, match="unknown feature set 'concat-s9@test'"):
        run_fewshot({"p": three}, FewshotConfig(**cfg, features=("concat-s9@test",)))


def test_subset_table_means_over_aois_at_100_and_all():
    rows = [
        dict(
            source="p",
            aoi=a,
            task=t,
            features=f,
            train_size=s,
            n_train=n,
            repeat=0,
            accuracy=acc,
            balanced_accuracy=acc,
            pos_frac_train=0.5,
            pos_frac_test=0.5,
        )
        for a, shift in (("x", 0.0), ("y", 0.1))
        for t in ("tree", "crop")
        for f, base in (("concat", 0.7), ("s2+s1", 0.6))
        for s, n, acc in (("100", 100, base + shift), ("all", 300, base + shift + 0.05))
    ]
    rows = [
        r
        for r in rows
        if not (r["aoi"] == "y" and r["train_size"] == "100" and r["task"] == "crop")
    ]
    t = subset_table(summarize(pd.DataFrame(rows)))
    assert t.columns.tolist() == [
        "source",
        "features",
        "tree@100",
        "tree@all",
        "crop@100",
        "crop@all",
    ]
    concat = t[t["features"] == "concat"].iloc[0]
    assert concat["tree@100"] == pytest.approx(0.75) and concat["tree@all"] == pytest.approx(0.8)
    assert np.isnan(concat["crop@100"])  # one AOI lacks 100 labels for crop
    assert t[t["features"] == "s2+s1"].iloc[0]["crop@all"] == pytest.approx(0.7)
