"""Which train chips get labels: the paper's uniform sample, or a choice made in feature space.

- `random` (the paper): a uniform sample without replacement of the AOI's train split
  (`eoclip.fewshot.data.sample_train`).
- `kmeans`: k-means with k = the label budget on the UNLABELLED train features of the feature
  set being evaluated, then the chip nearest each centre. Only the features are used (no
  labels), as a user choosing chips to label would. Columns are imputed (train mean; a chip
  lacking a modality keeps the other blocks) and standardised first, so no single feature's
  scale decides the clusters (the channel-statistics baseline mixes dB, reflectance and counts).

The k-means picks depend on (features, AOI, train size, repeat), not on the task: every task
of a matrix gets the same chips, which also lets a worker reuse its last k-means fits (a small
per-process memo), since a fit is the costly part (about a second for 250 centres on 600 x 192
on one core).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from eoclip.fewshot.config import SAMPLERS, FewshotError
from eoclip.fewshot.data import sample_train

__all__ = ["SAMPLERS", "draw_train", "kmeans_picks"]

_MEMO: OrderedDict[tuple, np.ndarray] = OrderedDict()  # per process: last k-means picks
_MEMO_SIZE = 64


def _standardised(X: np.ndarray) -> np.ndarray:
    """float64 copy of X (n, D) with NaN -> column mean, each column scaled to unit std."""
    X = np.array(X, dtype=np.float64)
    with warnings.catch_warnings():  # an all-NaN column (a modality no train chip has)
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(X, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    X = np.where(np.isnan(X), mean, X)
    std = X.std(axis=0)
    return (X - mean) / np.where(std > 0, std, 1.0)


def kmeans_picks(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Positions of the `n` chips nearest the centres of a k-means (k = n) of X.

    Args:
        X: float (N, D) unlabelled train features, NaN for missing values.
        n: chips to pick, 1 <= n < N.
        seed: k-means initialisation.

    Returns:
        Sorted int positions (n,), distinct: a centre whose nearest chip is taken by an
        earlier centre gets its nearest free chip.
    """
    Z = _standardised(X)
    with warnings.catch_warnings():  # duplicate points can leave fewer distinct clusters
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=n, n_init=1, max_iter=100, random_state=seed).fit(Z)
    # squared distances chip x centre, without materialising (N, n, D)
    d = (Z**2).sum(1)[:, None] - 2 * Z @ km.cluster_centers_.T + (km.cluster_centers_**2).sum(1)
    taken = np.zeros(len(Z), dtype=bool)
    picks = []
    for c in np.argsort(d.min(axis=0)):  # the tightest centres choose first
        order = np.argsort(d[:, c])
        first = order[~taken[order]][0]
        taken[first] = True
        picks.append(first)
    return np.sort(np.asarray(picks, dtype=np.int64))


def _memo_picks(key: tuple, X_train: np.ndarray, n: int, seed: int) -> np.ndarray:
    if key not in _MEMO:
        _MEMO[key] = kmeans_picks(X_train, n, seed)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    _MEMO.move_to_end(key)
    return _MEMO[key]


def draw_train(
    sampler: str,
    X_train: np.ndarray,
    y: np.ndarray,
    n: int,
    rng: np.random.Generator,
    max_resample: int,
    kmeans_seed: int,
    memo_key: tuple = (),
) -> tuple[np.ndarray | slice, int]:
    """Train positions to label with one sampler.

    Args:
        sampler: "random" or "kmeans".
        X_train: (N, D) train features (only `kmeans` reads them).
        y: (N,) labels (only used to redraw a one-class sample).
        rng: the fit's generator (`random`).
        kmeans_seed: seed of the first k-means; a one-class pick is redrawn with the next
            seeds, up to `max_resample` times.
        memo_key: identifies (matrix, train rows); with `n` and the seed it keys the memo.

    Returns:
        `(idx, n_resamples)` as `sample_train`.
    """
    if sampler == "random" or n >= len(y):
        return sample_train(y, n, rng, max_resample)
    if sampler != "kmeans":
        raise FewshotError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    for attempt in range(max_resample + 1):
        seed = (kmeans_seed + attempt) % 2**32
        idx = (
            _memo_picks((*memo_key, n, seed), X_train, n, seed)
            if memo_key
            else kmeans_picks(X_train, n, seed)
        )
        if len(np.unique(y[idx])) > 1:
            break
    return idx, attempt
