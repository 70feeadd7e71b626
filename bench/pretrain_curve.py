"""Learning curve of pretraining on the demo world: few-shot accuracy and recall vs steps.

For each budget of optimiser steps, a complete pretraining run (`eoclip.train.curve`), its
embeddings (`--channels`, default `stack`), and the few-shot protocol on the concatenated
embeddings (the paper's forest, mean over AOIs and tasks) at 10 / 100 / all labels, scored on
the VALIDATION split (what settings are chosen on) and on the TEST split (what is reported);
cross-modal recall@1 and the validation CLIP loss of the run's best checkpoint. Baselines:
the channel statistics (`eoclip.features`) and an untrained network of the same shape with the
same channel policy (horizontal lines). Finished budgets are reused on a rerun.

    python bench/pretrain_curve.py --world demo_out/world --out curve \
        [--config demo] [--set key=value ...] [--steps 25,50,100,200,400,800] \
        [--channels stack] [--figure docs/pretrain_curve.png] [--repeats 3]

Writes `<out>/curve.json` and `<out>/curve.csv` (one row per budget, split, train size, task)
and the figure; prints a markdown table (test split, mean over tasks).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd

from eoclip.features import write_stats_table
from eoclip.fsio import write_text_atomic
from eoclip.train import load_pretrain_config, parse_overrides
from eoclip.train.curve import BudgetRun, embed_run, train_budget
from eoclip.train.selection import fewshot_score

SIZES = (10, 100)  # and "all"


def _scores(tables: dict[str, str], args) -> pd.DataFrame:
    parts = []
    for split in args.splits:
        df = fewshot_score(tables, split, SIZES, args.repeats, ("concat",), n_jobs=args.n_jobs)
        parts.append(df.assign(split=split))
    return pd.concat(parts, ignore_index=True)


def _budget_rows(run: BudgetRun, scores: pd.DataFrame) -> pd.DataFrame:
    return scores.assign(
        steps=run.steps,
        cpu_s=run.cpu_s,
        wall_s=run.wall_s,
        val_loss=run.val_loss,
        val_chance_loss=run.val_chance_loss,
        mean_recall1=run.mean_recall1,
    )


def run_curve(args) -> tuple[pd.DataFrame, list[BudgetRun]]:
    """Every budget and both baselines: (tidy scores, the runs)."""
    out = Path(args.out)
    config = load_pretrain_config(
        args.config, {**parse_overrides(args.set), "store": args.world, "progress": False}
    )
    stats = out / "emb" / "stats.parquet"
    if not stats.is_file() and not args.no_baselines:
        write_stats_table(args.world, str(stats), progress=False)
    rows, runs, untrained = [], [], None
    for steps in args.steps:
        run = train_budget(config, steps, out / "runs")
        runs.append(run)
        print(
            f"steps {steps}: {run.cpu_s:.0f} CPU s, {run.wall_s:.0f} s wall (load "
            f"{run.load_avg[0]:.1f} -> {run.load_avg[1]:.1f}), val loss {run.val_loss:.4f}, "
            f"mean recall@1 {run.mean_recall1:.3f}",
            flush=True,
        )
        table = embed_run(
            run.run_dir, args.world, out / "emb" / f"steps-{steps:05d}.parquet", args.channels
        )
        if untrained is None and not args.no_baselines:  # same shape and policy, random weights
            untrained = embed_run(
                run.run_dir,
                args.world,
                out / "emb" / "untrained.parquet",
                args.channels,
                untrained=True,
            )
        rows.append(_budget_rows(run, _scores({"pretrained": table}, args)))
    if args.no_baselines:
        return pd.concat(rows, ignore_index=True), runs
    base = _scores({"stats": str(stats), "untrained": untrained}, args)
    df = pd.concat([*rows, base.assign(steps=pd.NA)], ignore_index=True)
    return df, runs


def markdown(df: pd.DataFrame, split: str = "test") -> str:
    """Table: one row per budget and baseline, mean over tasks, accuracy at 10 / 100 / all."""
    sub = df[(df["split"] == split) & (df["task"] == "mean")].copy()
    sub["budget"] = sub["steps"].fillna(-1).astype(int)  # -1: a baseline (no pretraining)
    sub["train_size"] = sub["train_size"].astype(str)
    lines = [
        "| pretraining | steps | wall s | val CLIP loss | mean recall@1 | acc @10 | @100 | @all |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def fmt(v, f: str) -> str:
        return "-" if pd.isna(v) else format(v, f)

    for (source, budget), g in sub.groupby(["source", "budget"], sort=False):
        acc = g.groupby("train_size")["accuracy"].mean()
        first = g.iloc[0]
        lines.append(
            f"| {source} | {'-' if budget < 0 else budget} | {fmt(first.get('wall_s'), '.0f')} | "
            f"{fmt(first.get('val_loss'), '.3f')} | {fmt(first.get('mean_recall1'), '.3f')} | "
            + " | ".join(fmt(acc.get(k), ".3f") for k in ("10", "100", "all"))
            + " |"
        )
    return "\n".join(lines)


def plot(df: pd.DataFrame, runs: list[BudgetRun], path: str) -> None:
    """Accuracy at 10 / 100 / all labels and recall@1 against steps; baselines dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    mean = df[df["task"] == "mean"]
    for ax, size in zip(axes[:3], ("10", "100", "all"), strict=True):
        for split, style in (("test", "-o"), ("val", ":.")):
            cur = mean[
                (mean["source"] == "pretrained")
                & (mean["train_size"] == size)
                & (mean["split"] == split)
            ].sort_values("steps")
            if len(cur):
                ax.plot(
                    cur["steps"].astype(float),
                    cur["accuracy"],
                    style,
                    color="C0",
                    label=f"pretrained ({split})",
                )
        for source, color in (("stats", "C3"), ("untrained", "C7")):
            base = mean[
                (mean["source"] == source)
                & (mean["train_size"] == size)
                & (mean["split"] == "test")
            ]
            if len(base):
                ax.axhline(
                    base["accuracy"].iloc[0],
                    ls="--",
                    color=color,
                    label=f"{'channel statistics' if source == 'stats' else source} (test)",
                )
        ax.set(
            xscale="log",
            xlabel="optimiser steps",
            title=f"{size} labels",
            ylabel="accuracy (concat, mean of AOIs x tasks)",
        )
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    ax = axes[3]
    steps = [r.steps for r in runs]
    ax.plot(steps, [r.mean_recall1 for r in runs], "-o", color="C2", label="mean recall@1 (val)")
    chance = [min(v["chance@1"] for v in r.recall.values()) for r in runs if r.recall]
    if chance:
        ax.axhline(chance[0], ls="--", color="C7", label="chance")
    ax.set(xscale="log", yscale="log", xlabel="optimiser steps", title="cross-modal recall@1")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    for ax in axes:  # the budgets themselves as ticks on the log axis
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.minorticks_off()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", required=True, help="ChipStore (the demo world)")
    ap.add_argument("--out", required=True, help="folder for runs, tables and results")
    ap.add_argument("--config", default="demo", help="pretraining setting (name or YAML)")
    ap.add_argument("--set", action="append", default=[], help="key=value override (repeatable)")
    ap.add_argument("--steps", default="25,50,100,200,400,800", help="budgets, optimiser steps")
    ap.add_argument("--channels", default="stack", help="channel policy of the export")
    ap.add_argument("--splits", default="val,test", help="few-shot evaluation splits")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the statistics and untrained baselines (recipe comparisons)",
    )
    ap.add_argument("--figure", default=None, help="PNG path (default <out>/pretrain_curve.png)")
    args = ap.parse_args()
    args.steps = [int(s) for s in args.steps.split(",") if s]
    args.splits = [s for s in args.splits.split(",") if s]
    df, runs = run_curve(args)
    out = Path(args.out)
    df.to_csv(out / "curve.csv", index=False)
    write_text_atomic(
        out / "curve.json",
        json.dumps(
            {
                "args": {k: v for k, v in vars(args).items()},
                "load_avg_end": os.getloadavg(),
                "runs": [r.to_dict() for r in runs],
            },
            indent=2,
            default=str,
        ),
    )
    plot(df, runs, args.figure or str(out / "pretrain_curve.png"))
    for split in args.splits:
        print(f"\n{split} split:\n{markdown(df, split)}")


if __name__ == "__main__":
    main()
