"""Labels, features and train samples for the few-shot protocol (paper section 4.2)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eoclip.data.labels import binarize
from eoclip.embeddings.table import (
    embedding_matrix,
    read_embedding_table,
)
from eoclip.fewshot.config import CONCAT, FewshotError

__all__ = [
    "GroupData",
    "derive_seed",
    "feature_matrix",
    "feature_sets",
    "load_sources",
    "prepare_group",
    "sample_train",
    "train_size_plan",
]


def derive_seed(seed: int, *parts: object) -> int:
    """A 32-bit seed that depends only on `seed` and `parts` (stable across runs and machines).

    Example: `derive_seed(0, "conus", "tree", "s1grdm", "250", 3)`.
    """
    payload = json.dumps([int(seed), *[str(p) for p in parts]])
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:4], "little")


def load_sources(tables: dict[str, object]) -> dict[str, tuple[pd.DataFrame, dict]]:
    """Read EmbeddingTables keyed by source name ("pretrained", "stats", ...).

    Args:
        tables: source name -> path/URL of an EmbeddingTable, or an in-memory frame.

    Returns:
        source name -> `(gdf, meta)`.
    """
    if not tables:
        raise FewshotError("no EmbeddingTables given")
    out = {}
    for name, table in tables.items():
        if isinstance(table, str | Path):
            out[name] = read_embedding_table(table)
        elif isinstance(table, pd.DataFrame):
            out[name] = (table, dict(table.attrs.get("eoclip") or {}))
        else:
            raise FewshotError(f"source {name!r}: expected a path or a DataFrame, got {table!r}")
        missing = [c for c in ("chip_id", "aoi", "split") if c not in out[name][0].columns]
        if missing:
            where = table if isinstance(table, str | Path) else "in-memory frame"
            raise FewshotError(f"source {name!r} ({where}): missing column(s) {missing}")
    return out


def feature_sets(modalities: list[str]) -> list[str]:
    """Each modality, plus `concat` when a source has two or more."""
    return list(modalities) + ([CONCAT] if len(modalities) > 1 else [])


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
        `(idx, n_resamples)`: sorted int positions of shape (n,) and how many redraws happened.
    """
    if n >= len(y):
        return np.arange(len(y)), 0
    n_resamples = 0
    idx = np.sort(rng.choice(len(y), size=n, replace=False))
    while len(np.unique(y[idx])) < 2 and n_resamples < max_resample:
        idx = np.sort(rng.choice(len(y), size=n, replace=False))
        n_resamples += 1
    return idx, n_resamples


@dataclass
class GroupData:
    """Binary task data of one (source, aoi, task, features) group; X float32 (n, D), y int."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    threshold: float


def _subsample(idx: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    if cap is None or len(idx) <= cap:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=cap, replace=False))


def prepare_group(
    labels: np.ndarray,
    split: np.ndarray,
    X: np.ndarray,
    seed: int,
    max_test: int | None = None,
    max_val: int | None = None,
) -> GroupData:
    """Binarise one AOI's labels at its train median and cut features by split.

    Args:
        labels: float (N,) continuous label means of the AOI's chips (NaN = unknown, dropped).
        split: str (N,) "train" / "val" / "test" (other values ignored).
        X: float32 (N, D) features of the same chips.
        seed: seeds the optional val/test subsamples.
    """
    labels = np.asarray(labels, dtype=np.float64)
    split = np.asarray(split).astype(str)
    known = ~np.isnan(labels)
    try:
        b = binarize(labels, split)
    except ValueError as err:
        raise FewshotError(str(err)) from err
    threshold, y = b.threshold, b.y.astype(np.int64)  # y is -1 where unknown (dropped below)
    idx = {s: np.flatnonzero(known & (split == s)) for s in ("train", "val", "test")}
    idx["test"] = _subsample(idx["test"], max_test, derive_seed(seed, "test"))
    idx["val"] = _subsample(idx["val"], max_val, derive_seed(seed, "val"))
    return GroupData(
        X_train=X[idx["train"]],
        y_train=y[idx["train"]],
        X_val=X[idx["val"]],
        y_val=y[idx["val"]],
        X_test=X[idx["test"]],
        y_test=y[idx["test"]],
        threshold=threshold,
    )
