"""The paper's figures as PNG files (matplotlib, no display needed).

Each function takes plain tables (a store index, a few-shot summary, metrics records) and a
path, draws with the object-oriented API (`matplotlib.figure.Figure`, rendered by Agg) and
returns the path. Fig. 5 (t-SNE) is `eoclip.tsne.plot_tsne`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from eoclip.data.store import ChipStore
from eoclip.errors import ReportError
from eoclip.fsio import atomic_write

matplotlib.use("Agg")

__all__ = [
    "SPLIT_COLORS",
    "best_epoch",
    "fig_accuracy",
    "fig_aois",
    "fig_examples",
    "fig_label_quantiles",
    "fig_retrieval",
    "pick_example_chips",
    "single_features",
]

# Paper Fig. 1: "train (yellow), validation (blue) and test (pink)".
SPLIT_COLORS = {"train": "#f2c14e", "val": "#3a7ca5", "test": "#e56b9f"}
FEATURE_COLORS = {
    "s2rgbm": "tab:green",
    "s1grdm": "tab:blue",
    "gunw": "tab:purple",
    "concat": "black",
}
BASELINE_COLORS = {"stats": "tab:orange", "untrained": "tab:red"}
MAX_POLYGONS = 20000  # above this, chips are drawn as points (polygons get slow)


def _save(fig: Figure, path: str | Path, dpi: int = 110) -> str:
    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    return str(path)


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _draw_chips(ax, chips: gpd.GeoDataFrame) -> None:
    for split, color in SPLIT_COLORS.items():
        sub = chips[chips["split"] == split]
        if sub.empty:
            continue
        if len(chips) <= MAX_POLYGONS:
            sub.plot(ax=ax, color=color, edgecolor="none", label=split)
        else:
            c = sub.geometry.representative_point()
            ax.scatter(c.x, c.y, s=0.3, color=color, label=split, linewidths=0)


def fig_aois(index: gpd.GeoDataFrame, path: str | Path) -> str:
    """Fig. 1: per AOI its polygon and the chips coloured by split (train/val/test).

    When the chips cover a small part of the AOI (the synthetic world's blocks), an inset
    zooms onto them.

    Args:
        index: store index (EPSG:4326) with `aoi`, `split` and chip polygons.
        path: PNG to write.
    """
    from eoclip.geo import load_aoi

    aois = sorted(index["aoi"].unique())
    rows, cols = _grid(len(aois))
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, aoi in zip(axes, aois, strict=False):
        chips = index[index["aoi"] == aoi]
        try:
            poly = gpd.GeoSeries([load_aoi(aoi).geometry], crs="EPSG:4326")
            poly.plot(ax=ax, facecolor="#eeeeee", edgecolor="0.3", linewidth=0.8)
        except (ValueError, KeyError, FileNotFoundError):
            poly = None
        _draw_chips(ax, chips)
        ax.set_title(f"{aoi} ({len(chips)} chips)", fontsize=10)
        ax.tick_params(labelsize=7)
        ax.set_aspect("equal")
        if poly is not None and _small(chips, poly):
            inset = ax.inset_axes([0.58, 0.02, 0.4, 0.4])
            _draw_chips(inset, chips)
            inset.set_xticks([])
            inset.set_yticks([])
            inset.set_xlabel("")
            inset.set_ylabel("")
            ax.indicate_inset_zoom(inset, edgecolor="0.2")
        ax.set_xlabel("longitude", fontsize=8)
        ax.set_ylabel("latitude", fontsize=8)
    for ax in axes[len(aois) :]:
        ax.set_visible(False)
    handles = [matplotlib.patches.Patch(color=c, label=s) for s, c in SPLIT_COLORS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9)
    fig.suptitle("AOIs and geographic split bands")
    return _save(fig, path)


def _small(chips: gpd.GeoDataFrame, poly: gpd.GeoSeries) -> bool:
    cx0, cy0, cx1, cy1 = chips.total_bounds
    px0, py0, px1, py1 = poly.total_bounds
    return (cx1 - cx0) * (cy1 - cy0) < 0.05 * (px1 - px0) * (py1 - py0)


def fig_label_quantiles(
    index: pd.DataFrame, path: str | Path, tasks: Sequence[str] | None = None
) -> str:
    """Fig. 2: per task, the quantile plot of the chips' label means, one line per AOI."""
    tasks = list(tasks or [c.removeprefix("label_") for c in index if c.startswith("label_")])
    tasks = [t for t in tasks if index[f"label_{t}"].notna().any()]
    if not tasks:
        raise ReportError("no label_* column with values to plot")
    q = np.linspace(0, 1, 101)
    fig = Figure(figsize=(3.3 * len(tasks), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(tasks), squeeze=False)).ravel()
    for ax, task in zip(axes, tasks, strict=True):
        for aoi in sorted(index["aoi"].unique()):
            v = index.loc[index["aoi"] == aoi, f"label_{task}"].dropna().to_numpy()
            if len(v):
                ax.plot(q, np.quantile(v, q), label=aoi, lw=1.4)
        ax.set_title(task)
        ax.set_xlabel("quantile")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("chip label mean")
    axes[-1].legend(fontsize=7)
    fig.suptitle("Label distribution per task and AOI (quantile plot)")
    return _save(fig, path)


def _plot_curve(
    ax, g: pd.DataFrame, color: str, style: str, label: str, metric: str = "accuracy"
) -> None:
    g = g.sort_values("n_train")
    x, y = g["n_train"].to_numpy(float), g[f"{metric}_mean"].to_numpy(float)
    sd = np.nan_to_num(g[f"{metric}_std"].to_numpy(float))
    ax.plot(x, y, style, color=color, lw=1.3, label=label)
    ax.fill_between(x, y - sd, y + sd, color=color, alpha=0.15, lw=0)
    p = g[g["is_95_point"]]
    ax.plot(p["n_train"], p[f"{metric}_mean"], "o", color=color, ms=5)


def fig_accuracy(
    summary: pd.DataFrame,
    path: str | Path,
    main: str = "pretrained",
    baselines: Sequence[str] = ("stats", "untrained"),
    metric: str = "accuracy",
) -> str:
    """Fig. 4: accuracy vs train size, one panel per task (rows) and AOI (columns).

    Lines: every feature set of the `main` source (solid), and the `concat` of each baseline
    source (dashed); mean over repeats with a +-1 std band; a dot marks the smallest train
    size reaching 95 % of that line's full-data accuracy.

    Args:
        summary: `eoclip.fewshot.summarize` output.
        path: PNG to write.
        main: source whose feature sets are all drawn.
        baselines: sources drawn as dashed concat lines (missing ones are skipped).
        metric: "accuracy", or "r2" for the twin figure of continuous targets (a summary
            of continuous results).
    """
    if summary.empty:
        raise ReportError("empty few-shot summary")
    tasks = [t for t in ("tree", "built", "crop", "water") if t in set(summary["task"])]
    tasks += sorted(set(summary["task"]) - set(tasks))
    aois = sorted(summary["aoi"].unique())
    single = single_features(summary)
    fig = Figure(figsize=(2.9 * len(aois) + 2.4, 2.4 * len(tasks) + 0.6), layout="constrained")
    axes = fig.subplots(len(tasks), len(aois), squeeze=False, sharex=True)
    for i, task in enumerate(tasks):
        for j, aoi in enumerate(aois):
            ax = axes[i, j]
            cell = summary[(summary["task"] == task) & (summary["aoi"] == aoi)]
            for feats, g in cell[cell["source"] == main].groupby("features", sort=False):
                _plot_curve(
                    ax, g, FEATURE_COLORS.get(feats, "tab:gray"), "-", f"{main} {feats}", metric
                )
            for k, src in enumerate(baselines):
                feats = single.get(src, "concat")
                g = cell[(cell["source"] == src) & (cell["features"] == feats)]
                if not g.empty:
                    color = BASELINE_COLORS.get(src, f"C{k + 5}")
                    _plot_curve(ax, g, color, "--", f"{src} {feats}", metric)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.grid(alpha=0.3, which="major", lw=0.5)
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(aoi, fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{task}\n{'R²' if metric == 'r2' else metric}", fontsize=9)
            if i == len(tasks) - 1:
                ax.set_xlabel("labelled chips", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    what = "R² of the label mean" if metric == "r2" else metric
    fig.suptitle(f"Few-shot {what} vs labels (dot: 95 % of the full-data {what})")
    return _save(fig, path)


def single_features(summary: pd.DataFrame, features: str = "concat") -> dict[str, str]:
    """Sources without `features` but with exactly one feature set (an imported product's
    own vector) -> that feature set, so they are compared like the baselines' concat."""
    out = {}
    for src, g in summary.groupby("source"):
        feats = set(g["features"])
        if features not in feats and len(feats) == 1:
            out[str(src)] = feats.pop()
    return out


def fig_retrieval(records: list[dict], path: str | Path) -> str:
    """Pretraining metrics: train/val CLIP loss per epoch, and the best epoch's retrieval recall.

    Args:
        records: the `metrics.jsonl` lines of a pretraining run (`kind == "epoch"` ones used).
        path: PNG to write.
    """
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if not epochs:
        raise ReportError("no epoch records in the metrics")
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax_loss, ax_rec = fig.subplots(1, 2, width_ratios=[1, 1.4])
    x = [r["epoch"] for r in epochs]
    ax_loss.plot(x, [r.get("train_loss") for r in epochs], "-o", ms=3, label="train")
    val = [(r["epoch"], r["val_loss"]) for r in epochs if r.get("val_loss") is not None]
    if val:
        ax_loss.plot(*zip(*val, strict=True), "-o", ms=3, label="validation")
        chance = [r.get("val_chance_loss") for r in epochs if r.get("val_loss") is not None]
        ax_loss.plot([v[0] for v in val], chance, ":", color="0.4", label="chance (log n)")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("CLIP loss")
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3)
    best = best_epoch(records)
    recall = (best or {}).get("recall") or {}
    if recall:
        pairs = list(recall)
        pos = np.arange(len(pairs))
        for k, (key, off) in enumerate((("r@1", -0.2), ("r@5", 0.2))):
            ax_rec.bar(
                pos + off,
                [recall[p][key] for p in pairs],
                0.4,
                color=f"C{k}",
                label=f"recall@{key[2:]}",
            )
            chance = [recall[p].get(key.replace("r@", "chance@"), np.nan) for p in pairs]
            ax_rec.hlines(
                chance,
                pos + off - 0.2,
                pos + off + 0.2,
                color="k",
                lw=1.5,
                label="chance" if k == 0 else None,
            )
        ax_rec.set_xticks(
            pos, [p.replace("->", "\u2192") for p in pairs], rotation=25, fontsize=7, ha="right"
        )
        top = max(max(r.get("r@5", 0), r.get("chance@5", 0)) for r in recall.values())
        ax_rec.set_ylim(0, min(1.0, 1.2 * top) or 1.0)  # small recalls stay readable
        ax_rec.legend(fontsize=8)
        ax_rec.set_title(f"cross-modal retrieval on val, epoch {best['epoch']}", fontsize=9)
    else:
        ax_rec.text(0.5, 0.5, "no retrieval metrics logged", ha="center", va="center")
        ax_rec.set_axis_off()
    fig.suptitle("Pretraining")
    return _save(fig, path)


def best_epoch(records: list[dict]) -> dict | None:
    """The epoch record with the lowest validation loss (the one `best/` holds), else the last."""
    epochs = [r for r in records if r.get("kind") == "epoch"]
    scored = [r for r in epochs if r.get("val_loss") is not None]
    if scored:
        return min(scored, key=lambda r: r["val_loss"])
    return epochs[-1] if epochs else None


def pick_example_chips(store: ChipStore, n: int = 4, seed: int = 0) -> list[int]:
    """Positions of `n` chips that hold every modality, one per AOI in turn (seeded)."""
    present = np.ones(len(store), dtype=bool)
    for m in store.modalities:
        present &= store.valid_mask(m).any(axis=1)
    rng = np.random.default_rng(seed)
    aois = store.index["aoi"].to_numpy()
    pools = [
        rng.permutation(np.flatnonzero(present & (aois == a))).tolist() for a in sorted(set(aois))
    ]
    out: list[int] = []
    while len(out) < n and any(pools):
        for pool in pools:
            if pool and len(out) < n:
                out.append(pool.pop())
    return out


def _stretch(x: np.ndarray) -> np.ndarray:
    lo, hi = np.nanpercentile(x, [2, 98])
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1)


def _panel(store: ChipStore, pos: int, mod: str) -> tuple[np.ndarray, dict, str]:
    """(image, imshow kwargs, title) of one chip and modality for Fig. 6."""
    chip = store.read_chip(pos, [mod])[mod]
    names, valid = list(chip.names), chip.valid
    ok = {n: i for i, n in enumerate(names) if valid[i]}
    months = sorted({n.split("_")[0] for n in ok})
    for month in months:  # RGB of the first month with all three bands
        rgb = [f"{month}_{b}" for b in ("red", "green", "blue")]
        if all(b in ok for b in rgb):
            img = np.stack([chip.data[ok[b]] for b in rgb], axis=-1)
            return _stretch(img), {}, f"{mod} {month} RGB"
    for month in months:  # S1 VV of the first month, already in dB
        if f"{month}_vv" in ok:
            img = chip.data[ok[f"{month}_vv"]]
            lo, hi = np.nanpercentile(img, [2, 98])
            return img, {"cmap": "gray", "vmin": lo, "vmax": hi}, f"{mod} {month}_vv (dB)"
    name = next(iter(ok))
    lo, hi = store.modalities[mod].valid_range
    kw = {"cmap": "viridis", "vmin": lo, "vmax": hi} if np.isfinite([lo, hi]).all() else {}
    return chip.data[ok[name]], kw, f"{mod} {name}"


def fig_examples(store: ChipStore, path: str | Path, n: int = 4, seed: int = 0) -> str:
    """Fig. 6: a few chips (rows) in each modality (columns).

    s2rgbm as the RGB of one month (2-98 % stretch), s1grdm as one month's VV in dB with a
    grey colormap, gunw as one coherence pair (0..1); another modality shows its first channel.
    """
    positions = pick_example_chips(store, n, seed)
    if not positions:
        raise ReportError(f"{store.url}: no chip holds every modality")
    mods = list(store.modalities)
    fig = Figure(figsize=(2.5 * len(mods), 2.5 * len(positions)), layout="constrained")
    axes = fig.subplots(len(positions), len(mods), squeeze=False)
    for i, pos in enumerate(positions):
        chip_id = store.index["chip_id"].iat[pos]
        for j, mod in enumerate(mods):
            img, kw, title = _panel(store, pos, mod)
            im = axes[i, j].imshow(img, **kw)
            axes[i, j].set_title(title, fontsize=8)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if img.ndim == 2:
                fig.colorbar(im, ax=axes[i, j], shrink=0.8).ax.tick_params(labelsize=6)
        axes[i, 0].set_ylabel(chip_id, fontsize=7)
    fig.suptitle("Example chips in each modality")
    return _save(fig, path)
