"""Few-shot building blocks: seeds, thresholds, size plans, samples, features, heads, config."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from eoclip.fewshot import FewshotConfig, FewshotError, derive_seed, make_head, train_size_plan
from eoclip.fewshot.data import feature_matrix, prepare_group, sample_train
from eoclip.fewshot.heads import fit_predict


def test_derive_seed_is_stable_and_distinct():
    a = derive_seed(0, "aoi", "tree", "s2", "5", 0)
    assert a == derive_seed(0, "aoi", "tree", "s2", "5", 0)
    others = {
        derive_seed(1, "aoi", "tree", "s2", "5", 0),
        derive_seed(0, "aoi", "tree", "s2", "5", 1),
        derive_seed(0, "aoi", "tree", "s1", "5", 0),
        derive_seed(0, "aoi", "tree", "s2", "10", 0),
    }
    assert a not in others and len(others) == 4
    assert 0 <= a < 2**32


def test_train_size_plan_drops_sizes_not_below_split():
    plan = train_size_plan((5, 10, 100, 250), 120)
    assert plan == [("5", 5), ("10", 10), ("100", 100), ("all", 120)]
    assert train_size_plan((5, 10), 10) == [("5", 5), ("all", 10)]
    assert train_size_plan((500,), 3) == [("all", 3)]


def test_threshold_from_train_only_and_ties():
    labels = np.array([1.0, 2.0, 3.0, 4.0, 100.0, -50.0, np.nan, 7.0])
    split = np.array(["train", "train", "train", "train", "test", "test", "train", "val"])
    X = np.arange(16, dtype=np.float32).reshape(8, 2)
    g = prepare_group(labels, split, X, seed=0)
    assert g.threshold == 2.5
    np.testing.assert_array_equal(g.y_train, [0, 0, 1, 1])  # NaN label dropped
    np.testing.assert_array_equal(g.y_test, [1, 0])
    np.testing.assert_array_equal(g.y_val, [1])
    labels2 = labels.copy()
    labels2[4:6] = [-1e6, 1e6]  # moving test labels must not move the threshold
    g2 = prepare_group(labels2, split, X, seed=0)
    assert g2.threshold == g.threshold
    np.testing.assert_array_equal(g2.y_test, [0, 1])
    ties = prepare_group(np.array([0, 0, 0, 1.0]), np.array(["train"] * 4), X[:4], seed=0)
    assert ties.threshold == 0.0 and ties.y_train.tolist() == [0, 0, 0, 1]  # value > median
    with pytest.raises(FewshotError, match="train"):
        prepare_group(labels, np.array(["test"] * 8), X, seed=0)


def test_test_and_val_subsample_is_seeded():
    labels = np.arange(100, dtype=float)
    split = np.array(["train", "test"] * 50)
    X = labels[:, None].astype(np.float32)
    a = prepare_group(labels, split, X, seed=3, max_test=10)
    b = prepare_group(labels, split, X, seed=3, max_test=10)
    c = prepare_group(labels, split, X, seed=4, max_test=10)
    assert len(a.y_test) == 10
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.X_test, c.X_test)


def test_sample_train_resamples_one_class_samples():
    y = np.zeros(100, dtype=int)
    y[:3] = 1  # almost every 5-sample is all negative
    idx, n_res = sample_train(y, 5, np.random.default_rng(0), max_resample=1000)
    assert len(np.unique(y[idx])) == 2 and n_res > 0 and len(set(idx)) == 5
    idx, n_res = sample_train(np.zeros(50, dtype=int), 5, np.random.default_rng(0), 7)
    assert n_res == 7 and len(idx) == 5  # bounded, then kept
    idx, n_res = sample_train(y, 100, np.random.default_rng(0), 7)
    assert n_res == 0 and idx == slice(0, 100)  # the whole split: a view, no copy


def test_concat_features_keep_nan_block(table):
    sub = table.iloc[:30]
    X = feature_matrix(sub, "concat", ["s2", "s1"])
    assert X.shape == (30, 12)
    missing = sub["emb_s1"].isna().to_numpy()
    assert missing.any()
    assert np.isnan(X[missing, 6:]).all() and not np.isnan(X[:, :6]).any()
    with pytest.raises(FewshotError, match="unknown feature set 'gunw'.*concat"):
        feature_matrix(sub, "gunw", ["s2", "s1"])


@pytest.mark.parametrize(
    "head,params",
    [
        ("rf", {"n_estimators": 5, "max_depth": 3}),
        ("logreg", {"C": 1.0}),
        ("knn", {"n_neighbors": 5}),
    ],
)
def test_heads_handle_nan_rows(head, params):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    X[::7] = np.nan  # chips lacking the modality
    X[:, 2] = np.nan  # a column never seen: imputed with 0 for logreg/knn
    pred, single = fit_predict(head, params, 0, X[:40], y[:40], X[40:])
    assert not single and pred.shape == (20,)
    assert (pred[1:] == y[41:]).mean() > 0.7  # row 49 is NaN, the rest separable on dim 0
    pred, single = fit_predict(head, params, 0, X[:5], np.ones(5, int), X[40:])
    assert single and (pred == 1).all()


def test_knn_neighbours_capped_at_train_size():
    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    pred, _ = fit_predict("knn", {"n_neighbors": 45}, 0, X, np.array([0, 0, 1, 1]), X)
    assert pred.shape == (4,)
    assert make_head("knn", {"n_neighbors": 45}, 0, 4)[-1].n_neighbors == 4


def test_config_and_head_validation():
    with pytest.raises(FewshotError, match="unknown task.*'trees'"):
        FewshotConfig(tasks=("trees",))
    with pytest.raises(FewshotError, match="unknown head"):
        FewshotConfig(head="svm")
    with pytest.raises(FewshotError, match="repeats"):
        FewshotConfig(repeats=0)
    with pytest.raises(FewshotError, match="bad parameters"):
        make_head("rf", {"n_trees": 3}, 0, 10)
    cfg = FewshotConfig()
    assert cfg.head_grid[0] == {"n_estimators": 50, "max_depth": 7}  # the paper's forest
    assert cfg.train_sizes == (5, 10, 100, 250, 500, 1000, 5000, 20000) and cfg.repeats == 10


def test_read_only_inputs_as_joblib_memmaps_them():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    X[::5] = np.nan
    X.flags.writeable = False  # what a joblib worker receives for arrays above 1 MB
    pred, _ = fit_predict("rf", {"n_estimators": 3, "max_depth": 2}, 0, X, y, X)
    same, _ = fit_predict("rf", {"n_estimators": 3, "max_depth": 2}, 0, X.copy(), y, X.copy())
    assert pred.shape == (40,) and np.array_equal(pred, same)
    assert (pred[1:5] == y[1:5]).mean() >= 0.75  # it learned x0 > 0, not a constant


def test_accuracy_scores_equal_sklearns():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    from eoclip.fewshot.fits import accuracy, balanced_accuracy

    rng = np.random.default_rng(4)
    cases = [(rng.integers(0, 2, 57), rng.integers(0, 2, 57)) for _ in range(20)]
    cases.append((np.ones(9, int), rng.integers(0, 2, 9)))  # a one-class test split
    cases.append((rng.integers(0, 2, 9), np.zeros(9, int)))  # a one-class prediction
    for y_true, y_pred in cases:
        assert accuracy(y_true, y_pred) == accuracy_score(y_true, y_pred)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            want = balanced_accuracy_score(y_true, y_pred)
        assert balanced_accuracy(y_true, y_pred) == want
    assert balanced_accuracy(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])) == 0.75
