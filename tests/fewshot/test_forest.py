"""The lean forest gives scikit-learn's forest exactly, and falls back to it when it cannot."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from eoclip.fewshot import forest as forest_mod
from eoclip.fewshot.forest import forest_predict, lean_forest_ok, lean_supported
from eoclip.fewshot.heads import fit_predict, fit_predict_values


def _problem(seed: int, n: int, d: int, nan: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + 150, d)).astype(np.float32)
    if nan == "scattered":
        X[rng.random(X.shape) < 0.05] = np.nan
    elif nan == "block":  # a missing modality: a NaN block in some rows, train and test
        X[rng.random(n + 150) < 0.3, : d // 3] = np.nan
    value = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) + 0.7 * rng.normal(size=n + 150)
    return X, value, (value > 0).astype(np.int64)


CASES = [
    (0, 10, 192, "none", {"n_estimators": 50, "max_depth": 7}),
    (1, 25, 192, "block", {"n_estimators": 50, "max_depth": 7}),
    (2, 100, 64, "scattered", {"n_estimators": 50, "max_depth": 3}),
    (3, 250, 96, "block", {"n_estimators": 20, "max_depth": None}),
    (4, 40, 30, "scattered", {"n_estimators": 13}),
    (5, 60, 300, "none", {}),
]


@pytest.mark.parametrize(("seed", "n", "d", "nan", "params"), CASES)
def test_lean_classifier_is_sklearns_forest(seed, n, d, nan, params):
    X, _, y = _problem(seed, n, d, nan)
    ref = RandomForestClassifier(**params, random_state=seed, n_jobs=1).fit(X[:n], y[:n])
    got = forest_mod._lean(X[:n], y[:n], X[n:], seed=seed, **params)
    np.testing.assert_array_equal(got, ref.predict(X[n:]))
    # string labels come back as labels, not indices
    names = np.array(["dry", "wet"])[y]
    got = forest_mod._lean(X[:n], names[:n], X[n:], seed=seed, **params)
    np.testing.assert_array_equal(got, np.array(["dry", "wet"])[ref.predict(X[n:])])


@pytest.mark.parametrize(("seed", "n", "d", "nan", "params"), CASES[:4])
def test_lean_regressor_is_sklearns_forest(seed, n, d, nan, params):
    X, value, _ = _problem(seed, n, d, nan)
    ref = RandomForestRegressor(**params, random_state=seed, n_jobs=1).fit(X[:n], value[:n])
    got = forest_mod._lean(X[:n], value[:n], X[n:], seed=seed, regress=True, **params)
    np.testing.assert_array_equal(got, ref.predict(X[n:]))


def test_heads_give_the_same_results_as_before():
    """fit_predict('rf') equals scikit-learn's public estimator, for one and for two classes."""
    X, value, y = _problem(9, 80, 48, "block")
    params = {"n_estimators": 30, "max_depth": 7}
    pred, single = fit_predict("rf", params, 3, X[:80], y[:80], X[80:])
    ref = RandomForestClassifier(**params, random_state=3, n_jobs=1).fit(X[:80], y[:80])
    assert not single and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, ref.predict(X[80:]))
    values = fit_predict_values("rf", params, 3, X[:80], value[:80], X[80:])
    ref = RandomForestRegressor(**params, random_state=3, n_jobs=1).fit(X[:80], value[:80])
    np.testing.assert_array_equal(values, ref.predict(X[80:]))


def test_unsupported_parameters_go_to_sklearn():
    assert lean_supported({"n_estimators": 50, "max_depth": 7})
    assert lean_supported({"max_depth": None})
    assert not lean_supported({"n_estimators": 50, "min_samples_leaf": 3})
    assert not lean_supported({"n_estimators": 0})
    assert not lean_supported({"max_depth": 2.5})
    assert not lean_supported({"n_estimators": True})
    X, _, y = _problem(2, 60, 20, "none")
    params = {"n_estimators": 10, "min_samples_leaf": 5}
    pred, _ = fit_predict("rf", params, 0, X[:60], y[:60], X[60:])
    ref = RandomForestClassifier(**params, random_state=0, n_jobs=1).fit(X[:60], y[:60])
    np.testing.assert_array_equal(pred, ref.predict(X[60:]))


def test_bad_input_is_refused():
    X, _, y = _problem(0, 30, 8, "none")
    X[3, 2] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        forest_predict(X[:30], y[:30], X[30:], {"n_estimators": 5}, 0)


def test_failed_self_check_falls_back_to_sklearn(monkeypatch):
    """A scikit-learn whose internals changed: one warning, then scikit-learn's own forest."""
    assert lean_forest_ok()  # this scikit-learn passes

    def broken(*args, **kwargs):
        raise TypeError("BestSplitter() takes 5 arguments")

    monkeypatch.setattr(forest_mod, "_lean", broken)
    forest_mod.lean_forest_ok.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="does not reproduce"):
            assert not lean_forest_ok()
        X, _, y = _problem(1, 50, 16, "scattered")
        got = forest_predict(X[:50], y[:50], X[50:], {"n_estimators": 9}, 4)  # no _lean call
        ref = RandomForestClassifier(n_estimators=9, random_state=4, n_jobs=1).fit(X[:50], y[:50])
        np.testing.assert_array_equal(got, ref.predict(X[50:]))
    finally:
        forest_mod.lean_forest_ok.cache_clear()
