"""Label-selection samplers: k-means picks in feature space, and the runs that use them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eoclip.fewshot import FewshotConfig, FewshotError, run_fewshot
from eoclip.fewshot.data import sample_train
from eoclip.fewshot.samplers import draw_train, kmeans_picks

SMALL_RF = ({"n_estimators": 8, "max_depth": 4},)


def _blobs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [20, 0, 0], [0, 20, 0], [0, 0, 20]], float)
    return np.concatenate([c + rng.normal(size=(25, 3)) for c in centres]).astype(np.float32)


def test_kmeans_picks_one_chip_per_cluster():
    X = _blobs()
    picks = kmeans_picks(X, 4, seed=0)
    assert picks.dtype == np.int64 and list(picks) == sorted(set(picks))
    assert sorted(picks // 25) == [0, 1, 2, 3]  # one chip of each blob
    assert np.array_equal(kmeans_picks(X, 4, seed=0), picks)  # seeded
    X[::3, 1] = np.nan  # missing values are imputed, not fatal
    X[:, 2] = np.nan  # a column no chip has
    assert len(set(kmeans_picks(X, 10, seed=1))) == 10


def test_draw_train_random_is_the_paper_sample_and_kmeans_redraws_one_class():
    X, y = _blobs(), np.repeat([0, 1, 1, 1], 25)
    idx, n_re = draw_train("random", X, y, 8, np.random.default_rng(3), 10, 0)
    ref, _ = sample_train(y, 8, np.random.default_rng(3), 10)
    assert np.array_equal(idx, ref) and n_re == 0
    assert draw_train("kmeans", X, y, 100, None, 10, 0) == (slice(0, 100), 0)  # everything
    idx, n_re = draw_train("kmeans", X, y, 4, None, 10, 0, memo_key=("m", 1))
    assert len(np.unique(y[idx])) == 2 and n_re == 0
    y1 = np.repeat([0, 0, 0, 1], 25)  # 1 chip of class 1 per... blob 3 only: picks may be 1-class
    idx, n_re = draw_train("kmeans", X, y1, 2, None, 50, 7)
    assert len(np.unique(y1[idx])) == 2 or n_re == 50
    with pytest.raises(FewshotError, match="unknown sampler 'cheap'"):
        draw_train("cheap", X, y, 4, None, 1, 0)
    with pytest.raises(FewshotError, match="unknown sampler"):
        FewshotConfig(sampler="cheap")


def test_kmeans_run_labels_the_same_chips_for_every_task(table):
    cfg = dict(
        train_sizes=(5, 20),
        repeats=2,
        grid=SMALL_RF,
        tasks=("tree", "water"),
        features=("s2",),
        progress=False,
    )
    rnd = run_fewshot({"p": table}, FewshotConfig(**cfg))
    km = run_fewshot({"p": table}, FewshotConfig(**cfg, sampler="kmeans"))
    assert (rnd["sampler"] == "random").all() and (km["sampler"] == "kmeans").all()
    assert len(km) == len(rnd) == 2 * 2 * 3 * 2
    key = ["aoi", "task", "train_size", "repeat"]
    a, b = rnd.set_index(key), km.set_index(key)
    full = a.index.get_level_values("train_size") == "all"
    # at 'all' every chip is labelled whatever the sampler: identical fits
    pd.testing.assert_series_equal(a.loc[full, "accuracy"], b.loc[full, "accuracy"])
    assert not np.allclose(a.loc[~full, "accuracy"], b.loc[~full, "accuracy"])
    assert (km["n_train"] == km["train_size"].replace("all", "120").astype(int)).all()
    assert "sampler" not in FewshotConfig().result_key()  # default key unchanged
    assert FewshotConfig(sampler="kmeans").result_key()["sampler"] == "kmeans"


def test_kmeans_folder_is_not_resumed_as_random(tmp_path, table):
    cfg = dict(
        train_sizes=(5,),
        repeats=1,
        grid=SMALL_RF,
        tasks=("tree",),
        features=("s2",),
        progress=False,
    )
    run_fewshot({"p": table}, FewshotConfig(**cfg, sampler="kmeans"), out_dir=tmp_path)
    with pytest.raises(FewshotError, match="sampler"):
        run_fewshot({"p": table}, FewshotConfig(**cfg), out_dir=tmp_path)
