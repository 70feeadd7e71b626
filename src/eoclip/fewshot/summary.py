"""Summaries of few-shot results: mean and spread per train size, and the 95 % point.

Binary results are summarised on accuracy; continuous-target results on R2 (`n_train_95` is
then the smallest train size whose mean R2 reaches 95 % of the R2 with every train label).
"""

from __future__ import annotations

import pandas as pd

from eoclip.fewshot.config import TASKS

__all__ = [
    "CELL_KEYS",
    "HEADLINE_SIZES",
    "SUMMARY_INPUTS",
    "has_subsets",
    "headline",
    "metric_of",
    "point95",
    "subset_table",
    "summarize",
]

# the paper's headline: 95 % of full-data accuracy "always <= 500 labels, mostly <= 250"
HEADLINE_SIZES = (250, 500)

CELL_KEYS = ["source", "aoi", "task", "features"]
# the results columns `summarize` reads (a reader may project on them)
SUMMARY_INPUTS = [
    *CELL_KEYS,
    "train_size",
    "n_train",
    "repeat",
    "accuracy",
    "balanced_accuracy",
    "pos_frac_train",
    "pos_frac_test",
    "n_nonfinite",
    "target",
    "r2",
    "mae",
]


def metric_of(results: pd.DataFrame) -> str:
    """The score a summary is built on: "r2" for continuous-target results, else "accuracy"."""
    if "target" in results.columns and len(results) and (results["target"] == "continuous").all():
        return "r2"
    return "accuracy"


def summarize(results: pd.DataFrame, frac: float = 0.95, metric: str | None = None) -> pd.DataFrame:
    """Mean and std over repeats, and where `frac` of the full-data score is reached.

    Args:
        results: tidy results of `run_fewshot`.
        frac: relative score defining the reference point; the paper's Fig. 4 uses 0.95.
        metric: "accuracy" or "r2"; None: `metric_of(results)` (R2 for a continuous target).

    Returns:
        One row per (source, aoi, task, features, train_size) sorted by `n_train`, with
        `<metric>_mean`, `<metric>_std` (sample std over repeats, NaN for one repeat),
        `balanced_accuracy_mean` and `_std` (`mae_mean`, `mae_std` for R2),
        `pos_frac_train_mean`, `pos_frac_test`, `n_repeats`, `full_<metric>_mean` (mean at
        `train_size == "all"`), `relative_<metric>`, `reaches_frac` (mean >= frac * full),
        `n_train_95` (the smallest `n_train` of the cell that reaches it; `all` always does),
        `is_95_point` and `n_nonfinite` (chips whose vectors held NaN/inf and were used as
        missing; 0 for results of older versions without the column).
    """
    metric = metric or metric_of(results)
    other = "mae" if metric == "r2" else "balanced_accuracy"
    keys = [*CELL_KEYS, "train_size", "n_train"]
    if "n_nonfinite" not in results.columns:
        results = results.assign(n_nonfinite=0)
    s = (
        results.groupby(keys, sort=False)
        .agg(
            **{
                f"{metric}_mean": (metric, "mean"),
                f"{metric}_std": (metric, "std"),
                f"{other}_mean": (other, "mean"),
                f"{other}_std": (other, "std"),
                "pos_frac_train_mean": ("pos_frac_train", "mean"),
                "pos_frac_test": ("pos_frac_test", "mean"),
                "n_repeats": ("repeat", "nunique"),
                "n_nonfinite": ("n_nonfinite", "max"),
            }
        )
        .reset_index()
    )
    full_col = f"full_{metric}_mean"
    full = s[s["train_size"] == "all"].set_index(CELL_KEYS)[f"{metric}_mean"].rename(full_col)
    s = s.join(full, on=CELL_KEYS)
    s[f"relative_{metric}"] = s[f"{metric}_mean"] / s[full_col]
    s["reaches_frac"] = s[f"{metric}_mean"] >= frac * s[full_col]
    n95 = s[s["reaches_frac"]].groupby(CELL_KEYS)["n_train"].min().rename("n_train_95")
    s = s.join(n95, on=CELL_KEYS)
    s["is_95_point"] = s["n_train"] == s["n_train_95"]
    return s.sort_values([*CELL_KEYS, "n_train"], kind="stable").reset_index(drop=True)


def point95(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, aoi, task, features): the 95 % point of a `summarize` table.

    Returns:
        Columns `CELL_KEYS`, `train_size`, `n_train_95`, `<metric>_mean` (at that point),
        `full_<metric>_mean`, `relative_<metric>` (metric: accuracy, or r2).
    """
    metric = "accuracy" if "accuracy_mean" in summary.columns else "r2"
    cols = [
        *CELL_KEYS,
        "train_size",
        "n_train_95",
        f"{metric}_mean",
        f"full_{metric}_mean",
        f"relative_{metric}",
    ]
    return summary[summary["is_95_point"]][cols].reset_index(drop=True)


def headline(summary: pd.DataFrame, sizes: tuple[int, ...] = HEADLINE_SIZES) -> pd.DataFrame:
    """The paper's headline per source and feature set: how often 95 % comes cheap.

    Args:
        summary: a `summarize` table.
        sizes: label budgets (the paper's sentence: <= 500 always, <= 250 mostly).

    Returns:
        One row per (source, features): `n_cells` (AOI x task cells) and, per size s,
        `share_n95_le_<s>`, the fraction of cells whose `n_train_95` is <= s. A cell whose
        95 % point is only its whole train split counts as <= s when that split is.
    """
    p = point95(summary)
    g = p.groupby(["source", "features"], sort=True)["n_train_95"]
    out = g.size().rename("n_cells").to_frame()
    for size in sizes:
        out[f"share_n95_le_{size}"] = g.apply(lambda n, s=size: float((n <= s).mean()))
    return out.reset_index()


def has_subsets(summary: pd.DataFrame) -> bool:
    """Whether a summary holds modality subsets or missing-at-test feature sets."""
    f = summary["features"].astype(str)
    return bool((f.str.contains("+", regex=False) | f.str.endswith("@test")).any())


def subset_table(summary: pd.DataFrame, sizes: tuple[str, ...] = ("100", "all")) -> pd.DataFrame:
    """The robustness matrix: per source and feature set, the score per task at `sizes`.

    Args:
        summary: a `summarize` table (accuracy, or R2 for continuous targets).
        sizes: train size labels (the issue's: 100 labels and all).

    Returns:
        One row per (source, features), in the summary's order of feature sets; columns
        `<task>@<size>`: the mean over AOIs of the mean over repeats (NaN where an AOI lacks
        that size, so a mean never mixes AOIs with and without it).
    """
    metric = "accuracy" if "accuracy_mean" in summary.columns else "r2"
    sub = summary[summary["train_size"].astype(str).isin(sizes)]
    n_aois = summary.groupby(["source", "task"])["aoi"].nunique()
    g = (
        sub.groupby(["source", "features", "task", "train_size"], sort=False)
        .agg(score=(f"{metric}_mean", "mean"), n=("aoi", "nunique"))
        .reset_index()
    )
    complete = g.apply(lambda r: r["n"] == n_aois[(r["source"], r["task"])], axis=1)
    g.loc[~complete, "score"] = float("nan")
    g["col"] = g["task"] + "@" + g["train_size"].astype(str)
    out = g.pivot_table(
        index=["source", "features"], columns="col", values="score", sort=False, dropna=False
    )
    present = list(dict.fromkeys(summary["task"]))
    tasks = [t for t in TASKS if t in present] + [t for t in present if t not in TASKS]
    cols = [f"{t}@{s}" for t in tasks for s in sizes]  # a size no AOI ran: a NaN column
    return out.reindex(columns=cols).reset_index().rename_axis(columns=None)
