"""Classifier heads fitted on frozen embeddings.

Missing features (a chip lacking a modality has a NaN row, and `concat` a NaN block):

- `rf` passes NaN straight to scikit-learn's RandomForestClassifier, which (scikit-learn >= 1.4)
  learns at each split which side missing values go to (fitted through
  `eoclip.fewshot.forest`, which gives the same forest with less overhead per tree);
- `logreg` and `knn` impute each column with the mean of the training sample, then
  standardise (an all-NaN column of the sample is imputed with 0).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from eoclip.fewshot.config import HEADS, FewshotError
from eoclip.fewshot.forest import forest_predict, lean_supported

__all__ = ["fit_predict", "fit_predict_values", "make_head"]


def _scaled(estimator: ClassifierMixin) -> ClassifierMixin:
    return make_pipeline(
        SimpleImputer(strategy="mean", keep_empty_features=True), StandardScaler(), estimator
    )


def make_head(
    head: str, params: dict, seed: int, n_train: int, target: str = "binary"
) -> ClassifierMixin:
    """Build an unfitted classifier (or, for `target="continuous"`, regressor).

    Args:
        head: "rf", "logreg" or "knn".
        params: estimator parameters (e.g. `{"n_estimators": 50, "max_depth": 7}`).
        seed: random_state for estimators that use one.
        n_train: training-set size; caps knn's `n_neighbors`.
        target: "binary" (classifier) or "continuous" (the same forest or knn as a regressor,
            same parameters; logreg has no regressor here).

    Raises:
        FewshotError: unknown head or parameter.
    """
    regress = target == "continuous"
    try:
        if head == "rf":
            forest = RandomForestRegressor if regress else RandomForestClassifier
            return forest(**{**params, "random_state": seed, "n_jobs": 1})
        if head == "logreg" and regress:
            raise FewshotError("head 'logreg' has no regressor; use 'rf' or 'knn'")
        if head == "logreg":
            return _scaled(LogisticRegression(**{"max_iter": 2000, **params, "random_state": seed}))
        if head == "knn":
            p = dict(params)
            p["n_neighbors"] = max(1, min(int(p.get("n_neighbors", 5)), n_train))
            return _scaled((KNeighborsRegressor if regress else KNeighborsClassifier)(**p))
    except TypeError as err:
        raise FewshotError(f"bad parameters {params} for head {head!r}: {err}") from err
    raise FewshotError(f"unknown head {head!r}; choose one of {HEADS}")


def fit_predict(
    head: str, params: dict, seed: int, X_train: np.ndarray, y_train: np.ndarray, X_eval: np.ndarray
) -> tuple[np.ndarray, bool]:
    """Fit a head and predict.

    Args:
        X_train: float32 (n, D), NaN for missing; y_train: int (n,) in {0, 1}.
        X_eval: float32 (m, D).

    Returns:
        `(pred, single_class)`: int predictions of shape (m,); when the training labels hold
        one class only the head is not fitted and that class is predicted everywhere.
    """
    classes = np.unique(y_train)
    if len(classes) < 2:
        return np.full(len(X_eval), classes[0] if len(classes) else 0, dtype=np.int64), True
    # scikit-learn's finiteness check in fit (cy_isfinite, 1.9) rejects read-only buffers;
    # predict does not, so only a read-only TRAIN matrix is copied, never the evaluation one.
    # (The executors hand workers writable copy-on-write maps, so this is a fallback.)
    if not X_train.flags.writeable:
        X_train = np.array(X_train)
    if head == "rf" and lean_supported(params):  # scikit-learn's forest, less Python per tree
        return forest_predict(X_train, y_train, X_eval, params, seed).astype(np.int64), False
    model = make_head(head, params, seed, len(y_train))
    model.fit(X_train, y_train)
    return model.predict(X_eval).astype(np.int64), False


def fit_predict_values(
    head: str, params: dict, seed: int, X_train: np.ndarray, y_train: np.ndarray, X_eval: np.ndarray
) -> np.ndarray:
    """Fit a regressor head on continuous labels y_train float (n,) and predict (m,) floats."""
    if not X_train.flags.writeable:  # as in fit_predict
        X_train = np.array(X_train)
    if head == "rf" and lean_supported(params):
        return forest_predict(X_train, y_train, X_eval, params, seed, regress=True)
    model = make_head(head, params, seed, len(y_train), target="continuous")
    model.fit(X_train, y_train)
    return np.asarray(model.predict(X_eval), dtype=np.float64)
