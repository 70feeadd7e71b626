"""The report's few-shot tables: accuracy per task and source, 95 % points, robustness.

`summary_table` condenses `eoclip.fewshot.summarize` output to one row per (task, source); the
`*_html` functions render tables as the HTML fragments `eoclip.report.html` puts in the page.
"""

from __future__ import annotations

import html

import pandas as pd

from eoclip.fewshot import TASKS
from eoclip.fewshot.summary import has_subsets, subset_table
from eoclip.report import figures

__all__ = ["SUMMARY_SIZES", "per_aoi_html", "subsets_html", "summary_table", "table_html"]

SUMMARY_SIZES = ("10", "100", "500", "all")


def _fmt_acc(v: float) -> str:
    return "" if pd.isna(v) else f"{v:.3f}"


def summary_table(
    summary: pd.DataFrame,
    sources: list[str],
    features: str = "concat",
    sizes: tuple[str, ...] = SUMMARY_SIZES,
) -> pd.DataFrame:
    """Per task and source: mean accuracy over AOIs at each train size, and the 95 % point.

    Returns:
        One row per (task, source) with `acc@<size>` columns (mean over AOIs of the mean over
        repeats; NaN where a size exceeds an AOI's train split), `n95_max` (largest over AOIs
        of the smallest n_train reaching 95 % of the full-data accuracy) and `n95_median`.
    """
    rows = []
    sub = summary[summary["features"] == features]
    # An imported product has one feature set (its own vector, no concat): compare that.
    sub = pd.concat(
        [
            sub,
            *[
                summary[(summary["source"] == s) & (summary["features"] == f)]
                for s, f in figures.single_features(summary, features).items()
            ],
        ]
    )
    for task in [t for t in TASKS if t in set(sub["task"])]:
        for src in sources:
            g = sub[(sub["task"] == task) & (sub["source"] == src)]
            if g.empty:
                continue
            row = {"task": task, "source": src, "features": g["features"].iloc[0]}
            for s in sizes:
                at = g[g["train_size"].astype(str) == s]
                row[f"acc@{s}"] = (
                    at["accuracy_mean"].mean() if len(at) == g["aoi"].nunique() else float("nan")
                )
            n95 = g.groupby("aoi")["n_train_95"].first()
            row["n95_max"], row["n95_median"] = n95.max(), n95.median()
            rows.append(row)
    return pd.DataFrame(rows)


def table_html(df: pd.DataFrame, main: str) -> str:
    """`summary_table` as an HTML table, the rows of source `main` highlighted."""
    cols = [c for c in df.columns if c.startswith("acc@")]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    out = [
        f"<table><tr><th class='l'>task</th><th class='l'>features</th>{head}"
        "<th>labels for 95 % (worst AOI)</th><th>(median AOI)</th></tr>"
    ]
    for _, r in df.iterrows():
        cls = " class='main'" if r["source"] == main else ""
        cells = "".join(f"<td>{_fmt_acc(r[c])}</td>" for c in cols)
        out.append(
            f"<tr{cls}><td class='l'>{r['task']}</td><td class='l'>{r['source']} "
            f"{r['features']}</td>"
            f"{cells}<td>{r['n95_max']:.0f}</td><td>{r['n95_median']:.0f}</td></tr>"
        )
    return "\n".join(out) + "</table>"


def per_aoi_html(summary: pd.DataFrame) -> str:
    """The 95 % point of every source, AOI, task and feature set, in a folded HTML table."""
    pts = summary[summary["is_95_point"]][
        [
            "source",
            "aoi",
            "task",
            "features",
            "train_size",
            "n_train_95",
            "accuracy_mean",
            "full_accuracy_mean",
        ]
    ]
    pts = pts.sort_values(["task", "aoi", "source", "features"])
    body = pts.to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0)
    return (
        "<details><summary>95 % point per source, AOI, task and feature set</summary>"
        f"{body}</details>"
    )


def subsets_html(summary: pd.DataFrame) -> str:
    """The robustness matrix of a run with modality subsets, or "" without one."""
    if not has_subsets(summary):
        return ""
    table = subset_table(summary).to_html(
        index=False, float_format=lambda v: f"{v:.3f}", border=0, na_rep=""
    )
    return (
        "<p>Missing-modality robustness: accuracy per task at 100 labels and with all "
        "labels (mean over AOIs) for every subset of modalities (concatenated), and for "
        "<code>concat-&lt;m&gt;@test</code>: fitted on every modality, tested with "
        "modality m missing for a share of the test chips.</p>" + table
    )
