"""Few-shot scores for choosing pretraining settings, on the validation split, never on test.

A pretraining recipe is chosen by what its embeddings are for: the few-shot protocol of
`eoclip.fewshot` (paper section 4.2: binary tasks per AOI, the paper's forest, uniform train
samples), but scored on the VALIDATION split, so the test split stays untouched until the
recipe is fixed. `split_view` makes the validation split play the test split's role (and hides
the test split); `fewshot_score` runs the protocol and averages over AOIs and repeats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from eoclip.embeddings.table import read_embedding_table
from eoclip.fewshot import DEFAULT_GRIDS, PAPER_RF, TASKS, FewshotConfig, run_fewshot

__all__ = ["EVAL_SPLITS", "fewshot_score", "score_table", "split_view"]

EVAL_SPLITS = ("val", "test")
HIDDEN = "heldout"  # the split label `split_view` gives the chips it hides from the protocol


def split_view(gdf: pd.DataFrame, split: str) -> pd.DataFrame:
    """The table with `split` as the split the few-shot protocol scores on.

    Args:
        gdf: an EmbeddingTable frame (`split` column with train / val / test).
        split: ``val`` (validation chips are scored, test chips are hidden) or ``test``
            (the table unchanged).

    Returns:
        A copy (``val``) or `gdf` itself (``test``); `attrs` are kept.

    Raises:
        ValueError: `split` is neither.
    """
    if split not in EVAL_SPLITS:
        raise ValueError(f"evaluation split must be one of {EVAL_SPLITS}, got {split!r}")
    if split == "test":
        return gdf
    out = gdf.copy()
    # The protocol scores "test" and selects head settings on "val": with one head setting
    # (the paper's forest) nothing is selected, so val can take test's place.
    out["split"] = gdf["split"].map({"train": "train", "val": "test"}).fillna(HIDDEN)
    out.attrs = dict(gdf.attrs)
    return out


def fewshot_score(
    tables: dict[str, str | Path | pd.DataFrame],
    split: str = "val",
    train_sizes: tuple[int, ...] = (10, 100),
    repeats: int = 3,
    features: tuple[str, ...] = ("concat",),
    seed: int = 0,
    n_jobs: int = 1,
    head: str = "rf",
    params: dict | None = None,
    tasks: tuple[str, ...] = TASKS,
    progress: bool = False,
) -> pd.DataFrame:
    """Few-shot accuracy of each source on `split`, per task and train size.

    Args:
        tables: source name -> EmbeddingTable path or frame.
        split: ``val`` (to choose settings) or ``test`` (to report them, once chosen).
        train_sizes: labelled chips per fit (``all``, the whole train split, is added).
        repeats: train samples per size.
        features: feature sets (modalities and/or ``concat``).
        seed: root seed of the samples and forests (the same for every source: paired).
        n_jobs: parallel fits.
        head: few-shot head (``rf``, ``logreg``, ``knn``).
        params: its settings; None = the paper's forest (50 trees, depth 7) for ``rf``, the
            first entry of the fewshot package's grid otherwise.
        tasks: the tasks (default: all four).
        progress: progress bar.

    Returns:
        One row per (source, features, task, train_size) with ``accuracy`` (mean over AOIs and
        repeats), plus rows with task ``mean`` (mean over tasks); train_size is a string
        (``"10"``, ``"all"``).
    """
    frames = {}
    for name, table in tables.items():
        gdf = read_embedding_table(table)[0] if isinstance(table, str | Path) else table
        frames[name] = split_view(gdf, split)
    params = params if params is not None else PAPER_RF if head == "rf" else DEFAULT_GRIDS[head][0]
    config = FewshotConfig(
        train_sizes=train_sizes,
        repeats=repeats,
        head=head,
        grid=(params,),
        seed=seed,
        n_jobs=n_jobs,
        features=features,
        tasks=tasks,
        progress=progress,
    )
    return score_table(run_fewshot(frames, config))


def score_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy per (source, features, task, train_size) and over tasks (task ``mean``).

    Args:
        results: `run_fewshot` rows.
    """
    keys = ["source", "features", "task", "train_size"]
    per_task = results.groupby(keys, sort=False)["accuracy"].mean().reset_index()
    mean = per_task.groupby(["source", "features", "train_size"], sort=False)["accuracy"]
    overall = mean.mean().reset_index().assign(task="mean")
    out = pd.concat([per_task, overall[keys + ["accuracy"]]], ignore_index=True)
    order = {s: i for i, s in enumerate(sorted(set(out["train_size"]), key=_size_key))}
    return out.sort_values(
        ["source", "features", "task", "train_size"],
        key=lambda c: c.map(order) if c.name == "train_size" else c,
        kind="stable",
    ).reset_index(drop=True)


def _size_key(label: str) -> float:
    return np.inf if label == "all" else float(label)
