"""Labels, features and train samples for the few-shot protocol (paper section 4.2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from eoclip.data.labels import binarize
from eoclip.embeddings.table import embedding_matrix
from eoclip.fewshot.config import CONCAT, FewshotError
from eoclip.seeding import derive_seed

__all__ = [
    "SPLIT_ORDER",
    "GroupData",
    "GroupRows",
    "aoi_order",
    "derive_seed",
    "feature_matrix",
    "feature_sets",
    "group_rows",
    "prepare_group",
    "sample_train",
    "train_size_plan",
]


def feature_sets(modalities: list[str], subsets: bool = False) -> list[str]:
    """Each modality, plus `concat` when a source has two or more (and, with `subsets`, the
    other subsets and the missing-at-test sets: `eoclip.fewshot.featuresets`)."""
    from eoclip.fewshot.featuresets import feature_sets as names

    return names(modalities, subsets)


def feature_matrix(gdf: pd.DataFrame, features: str, modalities: list[str]) -> np.ndarray:
    """Features of every row of `gdf`.

    Returns:
        float32 array of shape (N, D); for `concat` D is the sum of the modality dims and a chip
        lacking a modality has NaN in that modality's block (other blocks stay usable).
    """
    if features == CONCAT:
        return np.hstack([embedding_matrix(gdf, m)[0] for m in modalities])
    if features not in modalities:
        raise FewshotError(
            f"unknown feature set {features!r}; available: {feature_sets(modalities)}"
        )
    return embedding_matrix(gdf, features)[0]


def train_size_plan(sizes: tuple[int, ...], n_split: int) -> list[tuple[str, int]]:
    """Train sizes to run: `(label, n)` for each size below the split size, then `("all", n)`."""
    plan = [(str(s), s) for s in sorted(set(sizes)) if s < n_split]
    return [*plan, ("all", n_split)]


def sample_train(
    y: np.ndarray, n: int, rng: np.random.Generator, max_resample: int
) -> tuple[np.ndarray, int]:
    """Uniform sample without replacement of `n` of `len(y)` positions.

    A sample with one class only is redrawn up to `max_resample` times (then kept).

    Returns:
        `(idx, n_resamples)`: sorted int positions of shape (n,) (a slice of everything when
        `n >= len(y)`) and how many redraws happened.
    """
    if n >= len(y):
        return slice(0, len(y)), 0  # the whole split: a view, not a copy
    n_resamples = 0
    idx = np.sort(rng.choice(len(y), size=n, replace=False))
    while len(np.unique(y[idx])) < 2 and n_resamples < max_resample:
        idx = np.sort(rng.choice(len(y), size=n, replace=False))
        n_resamples += 1
    return idx, n_resamples


Rows = slice | np.ndarray  # matrix rows of a split: a slice (a view, no copy) or positions


def _rows(idx: np.ndarray) -> Rows:
    """A slice when `idx` (sorted) is a contiguous run, so indexing the matrix makes a view."""
    if len(idx) == 0:
        return slice(0, 0)
    if idx[-1] - idx[0] + 1 == len(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


@dataclass
class GroupRows:
    """Which rows of an AOI's feature matrix one (aoi, task) uses, and their binary labels.

    Small (labels and positions, or slices when the rows are contiguous), so it travels with
    every fit while the matrix itself is shared once (`eoclip.fewshot.executor`).
    """

    train: Rows
    val: Rows
    test: Rows
    y_train: np.ndarray  # int8 (n_train,) in {0, 1}; float32 label means for "continuous"
    y_val: np.ndarray
    y_test: np.ndarray
    threshold: float


@dataclass
class GroupData:
    """An AOI's feature matrix X float32 (N, D) with the rows and labels of one task."""

    X: np.ndarray
    rows: GroupRows

    @property
    def X_train(self) -> np.ndarray:
        return self.X[self.rows.train]

    @property
    def X_val(self) -> np.ndarray:
        return self.X[self.rows.val]

    @property
    def X_test(self) -> np.ndarray:
        return self.X[self.rows.test]

    @property
    def y_train(self) -> np.ndarray:
        return self.rows.y_train

    @property
    def y_val(self) -> np.ndarray:
        return self.rows.y_val

    @property
    def y_test(self) -> np.ndarray:
        return self.rows.y_test

    @property
    def threshold(self) -> float:
        return self.rows.threshold


def _subsample(idx: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    if cap is None or len(idx) <= cap:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=cap, replace=False))


def group_rows(
    labels: np.ndarray,
    split: np.ndarray,
    seed: int,
    max_test: int | None = None,
    max_val: int | None = None,
    target: str = "binary",
) -> GroupRows:
    """Binarise one AOI's labels at its train median and find each split's rows.

    Args:
        labels: float (N,) continuous label means of the AOI's chips (NaN = unknown, dropped).
        split: str (N,) "train" / "val" / "test" (other values ignored).
        seed: seeds the optional val/test subsamples.
        max_test, max_val: subsample the test / validation split to at most this many chips.
        target: "binary" (the paper's task) or "continuous": the y arrays are then the label
            means themselves (float32) and the threshold is NaN.

    Returns:
        Rows in the order of `labels`; when the matrix is sorted by split and every label is
        known they are slices, i.e. views of the matrix.
    """
    labels = np.asarray(labels, dtype=np.float64)
    split = np.asarray(split).astype(str)
    known = ~np.isnan(labels)
    try:
        b = binarize(labels, split)
    except ValueError as err:
        raise FewshotError(str(err)) from err
    # int8 classes (-1 where unknown, dropped below), or the label means for a regressor
    y = labels.astype(np.float32) if target == "continuous" else b.y.astype(np.int8)
    idx = {s: np.flatnonzero(known & (split == s)) for s in ("train", "val", "test")}
    idx["test"] = _subsample(idx["test"], max_test, derive_seed(seed, "test"))
    idx["val"] = _subsample(idx["val"], max_val, derive_seed(seed, "val"))
    return GroupRows(
        train=_rows(idx["train"]),
        val=_rows(idx["val"]),
        test=_rows(idx["test"]),
        y_train=y[idx["train"]],
        y_val=y[idx["val"]],
        y_test=y[idx["test"]],
        threshold=float("nan") if target == "continuous" else float(b.threshold),
    )


def prepare_group(
    labels: np.ndarray,
    split: np.ndarray,
    X: np.ndarray,
    seed: int,
    max_test: int | None = None,
    max_val: int | None = None,
) -> GroupData:
    """`group_rows` with the matrix X float32 (N, D) of the same chips attached."""
    return GroupData(X, group_rows(labels, split, seed, max_test, max_val))


SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def aoi_order(index: pd.DataFrame, aoi: str) -> pd.DataFrame:
    """One AOI's chips of the train/val/test splits, sorted by split then chip id.

    Args:
        index: small columns of a table (`TableReader.index()`), row i = table row i.

    Returns:
        The AOI's rows with a `row` column (table row position). Sorting by split first makes
        each split a contiguous block of the feature matrix, i.e. a view; within a split the
        order is by chip id, as the train samples are drawn from.
    """
    sub = index[(index["aoi"] == aoi) & index["split"].isin(list(SPLIT_ORDER))]
    sub = sub.assign(row=sub.index.to_numpy(), _rank=sub["split"].map(SPLIT_ORDER))
    sub = sub.sort_values(["_rank", "chip_id"], kind="stable").drop(columns="_rank")
    return sub.reset_index(drop=True)
