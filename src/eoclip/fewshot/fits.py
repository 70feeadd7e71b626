"""One few-shot fit, as a worker runs it: a seeded train sample, a head, scores.

These functions receive the AOI's feature matrix as an executor handle (`resolve` turns it into
the array: the array itself in-process, a copy-on-write map of a shared file in a local worker,
the scattered array on Dask) and the task's `GroupRows`. The matrix is never copied whole: the
splits are views of it, and only a train sample smaller than the split is gathered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import mean_absolute_error, r2_score

from eoclip.fewshot.data import GroupRows, derive_seed
from eoclip.fewshot.executor import SharedMatrix, resolve
from eoclip.fewshot.heads import fit_predict, fit_predict_values
from eoclip.fewshot.samplers import draw_train

__all__ = ["FitPlan", "accuracy", "balanced_accuracy", "evaluate", "selection_rows", "val_accuracy"]


@dataclass(frozen=True)
class FitPlan:
    """What every protocol fit of one group does, apart from its size, repeat and seeds."""

    head: str  # "rf" | "logreg" | "knn"
    params: dict  # the head's parameters (chosen on validation)
    max_resample: int = 100  # redraws of a one-class train sample
    sampler: str = "random"  # which train chips get labels (eoclip.fewshot.samplers)
    target: str = "binary"  # "binary" (classifier) | "continuous" (regressor)
    # a modality missing at test time: its (start, stop) columns are NaN in these test rows
    blank_cols: tuple[int, int] | None = None
    blank_rows: np.ndarray | None = None  # positions within the test split


def _memo_key(X_handle: object, train: slice | np.ndarray) -> tuple:
    """(matrix, train rows) identity for the k-means memo of a worker process."""
    matrix = X_handle.path if isinstance(X_handle, SharedMatrix) else id(X_handle)
    rows = (train.start, train.stop) if isinstance(train, slice) else hash(train.tobytes())
    return (matrix, rows)


def evaluate(
    X_handle: object,
    rows: GroupRows,
    plan: FitPlan,
    label: str,
    n: int,
    repeat: int,
    seed: int,
    sample_seed: int | None = None,
) -> dict:
    """Fit a head on `n` train chips chosen by `plan.sampler` and score it on the test split.

    Args:
        seed: seeds the random sample and the head.
        sample_seed: seeds a sampler that does not depend on the task (k-means); None: `seed`.

    Returns:
        One result row (train size label, n_train, repeat, accuracy, balanced accuracy, class
        balance of the sample and of the test split, redraws, single-class flag, seed; for a
        continuous target R2 and MAE instead of the accuracies and class balances, which
        are NaN, and the other way round).
    """
    X = resolve(X_handle)
    rng = np.random.default_rng(seed)
    X_train = X[rows.train]
    idx, n_resamples = draw_train(
        plan.sampler,
        X_train,
        rows.y_train,
        n,
        rng,
        plan.max_resample,
        seed if sample_seed is None else sample_seed,
        _memo_key(X_handle, rows.train),
    )
    y_fit = rows.y_train[idx]
    X_test = X[rows.test]
    if plan.blank_cols is not None:  # a copy: the shared matrix stays whole
        X_test = np.array(X_test)
        X_test[plan.blank_rows, plan.blank_cols[0] : plan.blank_cols[1]] = np.nan
    row = {
        "train_size": label,
        "n_train": len(y_fit),
        "repeat": repeat,
        "n_test": len(rows.y_test),
        "n_resamples": n_resamples,
        "seed": seed,
    }
    if plan.target == "continuous":
        pred = fit_predict_values(plan.head, plan.params, seed, X_train[idx], y_fit, X_test)
        nan = float("nan")
        return {
            **row,
            "accuracy": nan,
            "balanced_accuracy": nan,
            "pos_frac_train": nan,
            "pos_frac_test": nan,
            "single_class": False,
            "r2": float(r2_score(rows.y_test, pred)),
            "mae": float(mean_absolute_error(rows.y_test, pred)),
        }
    pred, single = fit_predict(plan.head, plan.params, seed, X_train[idx], y_fit, X_test)
    return {
        **row,
        "accuracy": accuracy(rows.y_test, pred),
        "balanced_accuracy": balanced_accuracy(rows.y_test, pred),
        "pos_frac_train": float(y_fit.mean()),
        "pos_frac_test": float(rows.y_test.mean()),
        "single_class": single,
        "r2": float("nan"),
        "mae": float("nan"),
    }


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of correct predictions: scikit-learn's `accuracy_score` without its input
    validation, which with `balanced_accuracy_score` cost ~7 ms per fit (cProfile of the
    demo's 1,680 pretrained fits: 12.0 s), about a 10-label forest fit."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in `y_true` (scikit-learn's
    `balanced_accuracy_score`: a one-class test split scores that class's recall)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    recalls = [np.sum(y_pred[y_true == c] == c) / np.sum(y_true == c) for c in np.unique(y_true)]
    return float(np.mean(recalls)) if recalls else float("nan")


def selection_rows(n_train: int, cap: int | None, seed: int) -> slice | np.ndarray:
    """Train positions the head is chosen on: all of them, or a seeded sample of `cap`.

    Validation accuracy of a fit on `cap` chips ranks the grid as one on the whole split does
    at a fraction of the cost; the cap only applies where the split is larger.
    """
    if cap is None or n_train <= cap:
        return slice(0, n_train)
    return np.sort(np.random.default_rng(derive_seed(seed, "select")).choice(n_train, cap, False))


def val_accuracy(
    X_handle: object,
    rows: GroupRows,
    head: str,
    params: dict,
    seed: int,
    train: slice | np.ndarray,
    target: str = "binary",
) -> float:
    """Validation accuracy (R2 for a continuous target) of `head(params)` fitted on `train`."""
    X = resolve(X_handle)
    args = (head, params, seed, X[rows.train][train], rows.y_train[train], X[rows.val])
    if target == "continuous":
        return float(r2_score(rows.y_val, fit_predict_values(*args)))
    pred, _ = fit_predict(*args)
    return accuracy(rows.y_val, pred)
