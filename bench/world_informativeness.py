"""How informative is each modality of the synthetic world about each task?

Generates (or reuses) a synthetic world, computes the per-chip channel statistics
(:mod:`eoclip.features.stats`) and, per AOI and task, trains the paper's Random Forest
(50 trees, depth 7) on each modality's statistics, the task binarised at the AOI's train
median. Reports test accuracy (mean over AOIs) with 100 train labels (mean of 3 draws) and with
all train labels, the best accuracy of any SINGLE statistic (a depth-2 tree, i.e. at most two
thresholds on it, all train labels) and
the majority-class rate of the test split (chance).

A good world has every modality clearly above chance on every task, while no single statistic
reaches the all-statistics accuracy.

Usage:
    .venv/bin/python bench/world_informativeness.py --world demo_out/world
    .venv/bin/python bench/world_informativeness.py --world /tmp/w --chips-per-aoi 300 --json o.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from eoclip.data.store import ChipStore
from eoclip.data.synthetic import make_world
from eoclip.features.stats import stats_table

TASKS = ("tree", "built", "crop", "water")
RF = {"n_estimators": 50, "max_depth": 7}  # paper, Sec. 4: chosen on validation


def _fit_score(x_tr, y_tr, x_te, y_te, seed: int) -> float:
    if len(np.unique(y_tr)) < 2:  # a forest of one class predicts it
        return float(np.mean(y_te == y_tr[0]))
    rf = RandomForestClassifier(**RF, random_state=seed, n_jobs=2).fit(x_tr, y_tr)
    return float(rf.score(x_te, y_te))


def _stump_score(x_tr, y_tr, x_te, y_te) -> float:
    """Accuracy of the best rule on ONE statistic: a depth-2 tree (up to two thresholds)."""
    ok = np.isfinite(x_tr)
    if ok.sum() < 2 or len(np.unique(y_tr[ok])) < 2:
        return 0.0
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x_tr[ok, None], y_tr[ok])
    fill = np.nanmedian(x_tr)  # a chip lacking the statistic gets the train median
    return float(tree.score(np.where(np.isfinite(x_te), x_te, fill)[:, None], y_te))


def evaluate(
    gdf: pd.DataFrame, modalities: list[str], n_small: int = 100, repeats: int = 3, seed: int = 0
) -> pd.DataFrame:
    """One row per (aoi, task, modality): acc_100, acc_all, best_single, chance."""
    rows = []
    for aoi, sub in gdf.groupby("aoi"):
        train, test = sub[sub.split == "train"], sub[sub.split == "test"]
        for task in TASKS:
            thr = np.nanmedian(train[f"label_{task}"])
            y_tr = (train[f"label_{task}"].to_numpy() > thr).astype(int)
            y_te = (test[f"label_{task}"].to_numpy() > thr).astype(int)
            chance = max(y_te.mean(), 1 - y_te.mean())
            for mod in modalities:
                x_tr = _matrix(train[f"emb_{mod}"])
                x_te = _matrix(test[f"emb_{mod}"])
                rng = np.random.default_rng(seed)
                small = [
                    _fit_score(x_tr[i], y_tr[i], x_te, y_te, seed + r)
                    for r in range(repeats)
                    for i in [rng.choice(len(y_tr), min(n_small, len(y_tr)), replace=False)]
                ]
                full = _fit_score(x_tr, y_tr, x_te, y_te, seed)
                single = max(
                    _stump_score(x_tr[:, j], y_tr, x_te[:, j], y_te) for j in range(x_tr.shape[1])
                )
                rows.append(
                    {
                        "aoi": aoi,
                        "task": task,
                        "modality": mod,
                        "chance": chance,
                        "acc_100": np.mean(small),
                        "acc_all": full,
                        "best_single": single,
                    }
                )
    return pd.DataFrame(rows)


def _matrix(col: pd.Series) -> np.ndarray:
    dim = max(len(v) for v in col if v is not None)
    return np.stack(
        [np.asarray(v, np.float32) if v is not None else np.full(dim, np.nan) for v in col]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", required=True, help="store folder (generated if absent)")
    ap.add_argument("--chips-per-aoi", type=int, default=1000)
    ap.add_argument("--chip-px", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the per-AOI rows here")
    args = ap.parse_args()
    t0 = time.time()
    if Path(args.world, "store.json").exists():
        store = ChipStore.open(args.world)
        print(f"reusing {store}")
    else:
        store = make_world(args.world, args.chips_per_aoi, args.chip_px, seed=args.seed)
        print(f"generated {len(store)} chips in {time.time() - t0:.1f} s")
    size = sum(p.stat().st_size for p in Path(args.world).rglob("*") if p.is_file())
    print(f"size on disk: {size / 2**20:.1f} MiB")
    gdf, meta = stats_table(store, progress=False)
    res = evaluate(gdf, list(meta["feature_names"]))
    summary = res.groupby(["task", "modality"])[["chance", "acc_100", "acc_all", "best_single"]]
    print("\nmean over AOIs (test accuracy)")
    print(summary.mean().round(3).to_string())
    print("\nworst AOI per (task, modality): acc_all")
    print(
        res.pivot_table(index="task", columns="modality", values="acc_all", aggfunc="min")
        .round(3)
        .to_string()
    )
    if args.json:
        Path(args.json).write_text(json.dumps(res.to_dict(orient="records"), indent=1))


if __name__ == "__main__":
    main()
