"""Paired comparisons of two few-shot runs of the same tables (e.g. a sampler against random).

Every fit of (aoi, task, train size, repeat) is seeded the same way in both runs (the seeds
do not depend on the sampler, source or feature set), so the difference of two runs' scores
is taken repeat by repeat, and its spread over repeats is the spread of a paired gain.
"""

from __future__ import annotations

import pandas as pd

from eoclip.fewshot.config import FewshotError

__all__ = ["PAIR_KEYS", "paired_gain"]

PAIR_KEYS = ["source", "aoi", "task", "features", "train_size", "repeat"]


def paired_gain(
    results: pd.DataFrame, reference: pd.DataFrame, metric: str = "accuracy"
) -> pd.DataFrame:
    """Gain of `results` over `reference`, per source, task, feature set and train size.

    Args:
        results, reference: tidy results of two `run_fewshot` runs (e.g. sampler "kmeans" and
            "random") over the same tables.
        metric: the score compared ("accuracy", "balanced_accuracy", "r2", "mae").

    Returns:
        One row per (source, task, features, train_size), sorted by n_train: `n_train`,
        `<metric>` (mean over AOIs and repeats of `results`), `<metric>_ref` (the same for
        `reference`), `gain_mean` and `gain_std` (mean and sample std over repeats of the
        per-repeat gain averaged over AOIs), `gain_min`, `gain_max` (over repeats), `n_aois`,
        `n_repeats`.

    Raises:
        FewshotError: no (source, aoi, task, features, train size, repeat) in common, or
            `metric` missing from either table.
    """
    for name, df in (("results", results), ("reference", reference)):
        if metric not in df.columns:
            raise FewshotError(f"{name} has no {metric!r} column")
    a = results[[*PAIR_KEYS, "n_train", metric]]
    b = reference[[*PAIR_KEYS, metric]].rename(columns={metric: f"{metric}_ref"})
    both = a.merge(b, on=PAIR_KEYS, how="inner")
    if both.empty:
        raise FewshotError(
            "the two runs share no (source, aoi, task, features, train size, "
            "repeat): were they run on the same tables and sizes?"
        )
    both["gain"] = both[metric] - both[f"{metric}_ref"]
    keys = ["source", "task", "features", "train_size"]
    per_rep = (
        both.groupby([*keys, "repeat"], sort=False)
        .agg(
            gain=("gain", "mean"),
            n_train=("n_train", "median"),
            n_aois=("aoi", "nunique"),
            score=(metric, "mean"),
            ref=(f"{metric}_ref", "mean"),
        )
        .reset_index()
    )
    out = (
        per_rep.groupby(keys, sort=False)
        .agg(
            n_train=("n_train", "median"),
            score=("score", "mean"),
            ref=("ref", "mean"),
            gain_mean=("gain", "mean"),
            gain_std=("gain", "std"),
            gain_min=("gain", "min"),
            gain_max=("gain", "max"),
            n_aois=("n_aois", "min"),
            n_repeats=("repeat", "nunique"),
        )
        .reset_index()
        .rename(columns={"score": metric, "ref": f"{metric}_ref"})
    )
    return out.sort_values(
        ["source", "task", "features", "n_train"], kind="stable", ignore_index=True
    )
