"""Run the few-shot protocol of paper section 4.2 over one or more EmbeddingTables.

For every source table, AOI, task and feature set (each modality and `concat`):

1. binarise `label_<task>` at the median of the AOI's TRAIN split (value > median -> 1);
2. choose the head's parameters ONCE on the validation split: each grid entry is fitted on the
   full train split and the best validation accuracy wins (ties go to the earlier entry, so the
   paper's 50-tree depth-7 forest is the default);
3. for each train size (paper: 5 ... 20000 and all; sizes not below the split size are dropped,
   `all` is always run) and each of `repeats` repeats, fit the head on a uniform random sample
   of the AOI's train split and score it on the whole test split.

Missing features: a chip lacking a modality has a NaN row for that modality and a NaN block in
`concat`; it stays in every split (the whole test split is scored). The paper's forest takes NaN
natively (scikit-learn >= 1.4); `logreg` and `knn` impute the train-sample mean first.

Every sample and fit is seeded with `derive_seed(seed, aoi, task, train_size, repeat)`:
same seed, same numbers, whatever `n_jobs`; neither the source nor the feature set is part of
the seed, so every table of the same chips and every feature set (an imported product's own
vector against eoclip's concatenation) is scored on the same train samples (a paired
comparison).

Resuming: with `out_dir`, results are rewritten (temporary name, then rename) after each group
of (source, aoi, task, features). On a rerun, groups (source, aoi, task, features, train_size)
that already hold all repeats are kept and skipped; incomplete ones are recomputed. A folder
written with different numbers-changing settings (head, grid, seed, repeats, max_test,
max_val) or a source table from another checkpoint is refused unless `overwrite=True`. Rows
already in the folder for sources, tasks or feature sets not asked for this time are kept.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from tqdm.auto import tqdm

from eoclip.embeddings.table import embedding_modalities, table_identity
from eoclip.fewshot.config import FewshotConfig, FewshotError
from eoclip.fewshot.data import (
    GroupData,
    derive_seed,
    feature_matrix,
    feature_sets,
    load_sources,
    prepare_group,
    sample_train,
    train_size_plan,
)
from eoclip.fewshot.heads import fit_predict
from eoclip.fewshot.io import (
    CONFIG_FILE,
    RESULTS_FILE,
    read_results,
    write_json,
    write_results,
)

__all__ = ["GROUP_KEYS", "RESULT_COLUMNS", "run_fewshot"]

log = logging.getLogger(__name__)

GROUP_KEYS = ["source", "aoi", "task", "features", "train_size"]
RESULT_COLUMNS = [
    *GROUP_KEYS[:4],
    "train_size",
    "n_train",
    "repeat",
    "head",
    "head_params",
    "val_accuracy",
    "accuracy",
    "balanced_accuracy",
    "pos_frac_train",
    "pos_frac_test",
    "n_test",
    "threshold",
    "n_train_split",
    "n_resamples",
    "single_class",
    "seed",
]


@dataclass
class _Group:
    """One (source, aoi, task, features) cell and the train sizes still to run."""

    source: str
    aoi: str
    task: str
    features: str
    plan: list[tuple[str, int]]
    todo: list[tuple[str, int]] = field(default_factory=list)


def _evaluate(
    data: GroupData,
    head: str,
    params: dict,
    label: str,
    n: int,
    repeat: int,
    seed: int,
    max_resample: int,
) -> dict:
    """One fit on a seeded train sample, scored on the test split."""
    rng = np.random.default_rng(seed)
    idx, n_resamples = sample_train(data.y_train, n, rng, max_resample)
    pred, single = fit_predict(
        head, params, seed, data.X_train[idx], data.y_train[idx], data.X_test
    )
    with warnings.catch_warnings():  # a one-class test split is legal; its balance is recorded
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(balanced_accuracy_score(data.y_test, pred))
    return {
        "train_size": label,
        "n_train": len(idx),
        "repeat": repeat,
        "accuracy": float(accuracy_score(data.y_test, pred)),
        "balanced_accuracy": balanced,
        "pos_frac_train": float(data.y_train[idx].mean()),
        "pos_frac_test": float(data.y_test.mean()),
        "n_test": len(data.y_test),
        "n_resamples": n_resamples,
        "single_class": single,
        "seed": seed,
    }


def _val_accuracy(data: GroupData, head: str, params: dict, seed: int) -> float:
    pred, _ = fit_predict(head, params, seed, data.X_train, data.y_train, data.X_val)
    return float(accuracy_score(data.y_val, pred))


def _select(
    data: GroupData, g: _Group, config: FewshotConfig, parallel: Parallel
) -> tuple[dict, float]:
    """Grid entry with the best validation accuracy (fitted on the full train split)."""
    grid = config.head_grid
    if len(grid) == 1:
        return dict(grid[0]), float("nan")
    if len(data.y_val) == 0:
        log.warning(
            "%s/%s/%s/%s: empty validation split, using %s",
            g.source,
            g.aoi,
            g.task,
            g.features,
            grid[0],
        )
        return dict(grid[0]), float("nan")
    seed = derive_seed(config.seed, g.aoi, g.task, g.features, "select")
    scores = parallel(delayed(_val_accuracy)(data, config.head, p, seed) for p in grid)
    best = int(np.argmax(scores))  # first maximum: earlier grid entries win ties
    return dict(grid[best]), float(scores[best])


def _plan(sources: dict, config: FewshotConfig, done: set) -> list[_Group]:
    """Every group to evaluate, with its train-size plan and the sizes not yet done."""
    groups = []
    for source, (gdf, _) in sources.items():
        mods = embedding_modalities(gdf)
        feats = list(config.features) if config.features is not None else feature_sets(mods)
        for f in feats:
            if f not in feature_sets(mods):
                raise FewshotError(
                    f"unknown feature set {f!r} for source {source!r}; "
                    f"available: {feature_sets(mods)}"
                )
        for task in config.tasks:
            col = f"label_{task}"
            if col not in gdf.columns:
                labels = [c for c in gdf.columns if str(c).startswith("label_")]
                raise FewshotError(f"source {source!r} has no {col!r} column (has {labels})")
        for aoi in sorted(gdf["aoi"].unique()):
            sub = gdf[gdf["aoi"] == aoi]
            for f in feats:  # features outermost: one feature matrix serves every task
                for task in config.tasks:
                    known = sub[f"label_{task}"].notna()
                    n_split = int(((sub["split"] == "train") & known).sum())
                    if n_split == 0:
                        log.warning("%s/%s/%s: no labelled train chips, skipped", source, aoi, task)
                        continue
                    plan = train_size_plan(config.train_sizes, n_split)
                    g = _Group(source, aoi, task, f, plan)
                    g.todo = [p for p in plan if (source, aoi, task, f, p[0]) not in done]
                    groups.append(g)
    return groups


def _existing(
    out_dir: str | None, config: FewshotConfig, sources: dict, overwrite: bool
) -> pd.DataFrame:
    """Complete groups already in `out_dir` (empty frame when none); checks the stored config."""
    empty = pd.DataFrame(columns=RESULT_COLUMNS)
    if out_dir is None:
        return empty
    fs, root = fsspec.core.url_to_fs(str(out_dir))
    hashes = {s: table_identity(meta) for s, (_, meta) in sources.items()}
    stored = {"result_key": config.result_key(), "sources": {}, "config": config.to_dict()}
    cfg_path, res_path = f"{root}/{CONFIG_FILE}", f"{root}/{RESULTS_FILE}"
    if not overwrite and fs.exists(cfg_path):
        with fs.open(cfg_path) as f:
            stored = json.load(f)
        if stored["result_key"] != config.result_key():
            raise FewshotError(
                f"{out_dir} holds results of other settings {stored['result_key']} != "
                f"{config.result_key()}; use another output folder or overwrite=True"
            )
        for s, h in hashes.items():
            if s in stored["sources"] and stored["sources"][s] != h:
                raise FewshotError(
                    f"{out_dir}: source {s!r} was checkpoint {stored['sources'][s]}, "
                    f"now {h}; use another output folder or overwrite=True"
                )
    elif not overwrite and fs.exists(res_path):
        raise FewshotError(f"{res_path} exists without {CONFIG_FILE}; pass overwrite=True")
    stored["sources"].update(hashes)
    stored["config"] = config.to_dict()
    fs.makedirs(root, exist_ok=True)
    write_json(stored, f"{root}/{CONFIG_FILE}", fs)
    if overwrite or not fs.exists(res_path):
        return empty
    df = read_results(f"{root}/{RESULTS_FILE}", fs)
    complete = df.groupby(GROUP_KEYS)["repeat"].transform("nunique") >= config.repeats
    return df[complete].reset_index(drop=True)


def _run_group(
    g: _Group,
    data: GroupData,
    params: dict,
    val_acc: float,
    config: FewshotConfig,
    parallel: Parallel,
    bar: tqdm,
) -> pd.DataFrame:
    jobs = []
    for label, n in g.todo:
        for rep in range(config.repeats):
            seed = derive_seed(config.seed, g.aoi, g.task, label, rep)
            jobs.append(
                delayed(_evaluate)(
                    data, config.head, params, label, n, rep, seed, config.max_resample
                )
            )
    rows = []
    for row in parallel(jobs):
        rows.append(row)
        bar.update(1)
    df = pd.DataFrame(rows)
    df = df.assign(
        source=g.source,
        aoi=g.aoi,
        task=g.task,
        features=g.features,
        head=config.head,
        head_params=json.dumps(params, sort_keys=True),
        val_accuracy=val_acc,
        threshold=data.threshold,
        n_train_split=len(data.y_train),
    )
    return df[RESULT_COLUMNS]


def run_fewshot(
    tables: dict[str, str | Path | pd.DataFrame],
    config: FewshotConfig | None = None,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Evaluate few-shot heads on the embeddings of one or more sources.

    Args:
        tables: source name -> EmbeddingTable path/URL or frame, e.g.
            `{"pretrained": "emb/pretrained.parquet", "stats": "emb/stats.parquet"}`.
        config: settings; defaults reproduce the paper (RF, 10 repeats, 5 ... 20000 + all).
        out_dir: folder (or fsspec URL) for `results.parquet`, `results.csv`, `summary.csv`
            and `fewshot_config.json`; enables resuming. None: compute in memory only.
        overwrite: discard results already in `out_dir`.

    Returns:
        Tidy results, one row per (source, aoi, task, features, train_size, repeat), columns
        `RESULT_COLUMNS`; `n_train` is the number of labelled chips actually used.

    Raises:
        FewshotError: unknown feature set, missing label column, incompatible `out_dir`.
    """
    config = config or FewshotConfig()
    sources = load_sources(tables)
    results = _existing(None if out_dir is None else str(out_dir), config, sources, overwrite)
    done = set(map(tuple, results[GROUP_KEYS].to_numpy().tolist()))
    groups = [g for g in _plan(sources, config, done) if g.todo]
    total = sum(len(g.todo) for g in groups) * config.repeats
    cache: dict = {}
    with (
        tqdm(total=total, desc="fewshot", unit="fit", disable=not config.progress) as bar,
        Parallel(n_jobs=config.n_jobs) as parallel,
    ):
        for g in groups:
            gdf, _ = sources[g.source]
            key = (g.source, g.aoi, g.features)
            if key not in cache:  # features are shared by the tasks of an AOI
                sub = gdf[gdf["aoi"] == g.aoi].sort_values("chip_id", kind="stable")
                cache = {key: (sub, feature_matrix(sub, g.features, embedding_modalities(gdf)))}
            sub, X = cache[key]
            data = prepare_group(
                sub[f"label_{g.task}"].to_numpy(),
                sub["split"].to_numpy(),
                X,
                derive_seed(config.seed, g.aoi, g.task),
                config.max_test,
                config.max_val,
            )
            prev = results[
                (results["source"] == g.source)
                & (results["aoi"] == g.aoi)
                & (results["task"] == g.task)
                & (results["features"] == g.features)
            ]
            if len(prev):  # resuming: the selection is deterministic, reuse it
                params = json.loads(prev["head_params"].iloc[0])
                val_acc = float(prev["val_accuracy"].iloc[0])
            else:
                params, val_acc = _select(data, g, config, parallel)
            new = _run_group(g, data, params, val_acc, config, parallel, bar)
            results = new if results.empty else pd.concat([results, new], ignore_index=True)
            if out_dir is not None:
                write_results(results, str(out_dir))
    if out_dir is not None and not groups and not results.empty:
        write_results(
            results, str(out_dir)
        )  # nothing new; rewrites summary.csv (and after overwrite)
    return _sorted(results)


def _sorted(results: pd.DataFrame) -> pd.DataFrame:
    return results.sort_values(
        ["source", "aoi", "task", "features", "n_train", "train_size", "repeat"], kind="stable"
    ).reset_index(drop=True)
