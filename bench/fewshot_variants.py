"""The evaluations beyond the paper on a demo folder's tables, printed as Markdown tables.

    python bench/fewshot_variants.py --demo demo_out --out /tmp/v [--what sampler,target,subsets]

Reads `<demo>/embeddings/{pretrained,stats,untrained}.parquet` and runs, with the demo's
forest (the paper's 50 trees / depth 7, no search) on the concatenation of each source:

- `sampler`: k-means label selection against the paper's uniform sample at 5-250 labels;
  the gain per task and size, mean and std over repeats (paired: same seeds);
- `target`: continuous targets (R2 and MAE of the label mean) at 10, 100 and all labels, and
  the median over AOIs of the labels needed for 95 % of the full-data R2;
- `subsets`: every subset of modalities and each modality missing at test time for half the
  test chips, accuracy at 100 labels and all (mean over AOIs);
- `headline`: the paper's headline shares (95 % point at <= 250 / <= 500 labels) of the
  random-sampler run of `sampler` (sizes 5-250 and all).

Each run resumes from its folder under `--out`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from eoclip.fewshot import (  # noqa: E402
    PAPER_RF,
    FewshotConfig,
    headline,
    paired_gain,
    point95,
    run_fewshot,
    subset_table,
    summarize,
)

SOURCES = ("pretrained", "stats", "untrained")
DEMO_SIZES = (10, 25, 50, 100, 250, 500)


def _md(df: pd.DataFrame, fmt: str = "{:.3f}") -> str:
    """A Markdown table (pandas' to_markdown needs tabulate, which is not a dependency)."""

    def cell(v):
        return fmt.format(v) if isinstance(v, float) else str(v)

    rows = [[str(c) for c in df.columns]] + [[cell(v) for v in r] for r in df.itertuples(False)]
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([lines[0], "|" + "---|" * len(df.columns), *lines[1:]])


def _run(tables: dict, out: Path, name: str, **kw) -> pd.DataFrame:
    t0 = time.perf_counter()
    base = dict(
        repeats=kw.pop("repeats"),
        grid=(PAPER_RF,),
        n_jobs=kw.pop("n_jobs"),
        progress=False,
        features=kw.pop("features", ("concat",)),
    )
    res = run_fewshot(tables, FewshotConfig(**base, **kw), out_dir=out / name)
    print(f"<!-- {name}: {len(res)} fits in {time.perf_counter() - t0:.0f} s -->", flush=True)
    return res


def sampler_tables(tables: dict, out: Path, common: dict) -> str:
    sizes = (5, 10, 25, 50, 100, 250)
    rnd = _run(tables, out, "sampler_random", train_sizes=sizes, **common)
    km = _run(tables, out, "sampler_kmeans", train_sizes=sizes, sampler="kmeans", **common)
    g = paired_gain(km, rnd)
    g = g[g["train_size"] != "all"]
    g["cell"] = g.apply(lambda r: f"{r['gain_mean']:+.3f} ± {r['gain_std']:.3f}", axis=1)
    t = g.pivot_table(
        index=["task", "source"], columns="n_train", values="cell", aggfunc="first", sort=False
    )
    t.columns = [f"{int(c)} labels" for c in t.columns]
    acc = g.pivot_table(
        index=["task", "source"], columns="n_train", values="accuracy_ref", sort=False
    )
    lines = [
        "k-means minus random accuracy (mean ± std over repeats of the AOI-mean gain):",
        "",
        _md(t.reset_index()),
        "",
        "random-sampler accuracy for reference:",
        "",
        _md(acc.reset_index()),
    ]
    return "\n".join(lines)


def target_tables(tables: dict, out: Path, common: dict) -> str:
    res = _run(tables, out, "continuous", train_sizes=DEMO_SIZES, target="continuous", **common)
    s = summarize(res)
    rows = []
    for (task, src), g in s.groupby(["task", "source"], sort=False):
        row = {"task": task, "source": src}
        for size in ("10", "100", "all"):
            at = g[g["train_size"] == size]
            row[f"R2 {size}"] = at["r2_mean"].mean()
            row[f"MAE {size}"] = at["mae_mean"].mean()
        row["n for 95 % R2 (median AOI)"] = point95(s[(s["task"] == task) & (s["source"] == src)])[
            "n_train_95"
        ].median()
        rows.append(row)
    return _md(pd.DataFrame(rows))


def subset_tables(tables: dict, out: Path, common: dict) -> str:
    res = _run(
        tables, out, "subsets", train_sizes=(100,), modality_subsets=True, features=None, **common
    )
    return _md(subset_table(summarize(res)))


def headline_table(tables: dict, out: Path, common: dict) -> str:
    # the random-sampler run of `sampler` (resumed, nothing refitted when it ran before)
    res = _run(tables, out, "sampler_random", train_sizes=(5, 10, 25, 50, 100, 250), **common)
    return _md(headline(summarize(res)), "{:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", required=True, help="an `eoclip demo` folder")
    ap.add_argument("--out", required=True, help="folder for the runs' results")
    ap.add_argument("--what", default="sampler,target,subsets,headline")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--sources", default=",".join(SOURCES), help="tables of the demo to use")
    ap.add_argument(
        "--subset-repeats",
        type=int,
        default=None,
        help="repeats of the subsets run (default: --repeats)",
    )
    args = ap.parse_args()
    emb = Path(args.demo) / "embeddings"
    tables = {
        s: str(emb / f"{s}.parquet")
        for s in args.sources.split(",")
        if (emb / f"{s}.parquet").is_file()
    }
    if not tables:
        sys.exit(f"error: no EmbeddingTables in {emb}")
    common = dict(repeats=args.repeats, n_jobs=args.n_jobs)
    out = Path(args.out)
    parts = {
        "sampler": sampler_tables,
        "target": target_tables,
        "subsets": subset_tables,
        "headline": headline_table,
    }
    for what in args.what.split(","):
        kw = dict(common)
        if what == "subsets" and args.subset_repeats:
            kw["repeats"] = args.subset_repeats
        print(f"\n### {what}\n\n{parts[what](tables, out, kw)}", flush=True)


if __name__ == "__main__":
    main()
