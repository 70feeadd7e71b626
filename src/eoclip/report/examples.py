"""The paper's Fig. 6: example chips located on one modality's t-SNE map.

The paper shows a few chips in each modality beside the s1grdm t-SNE map of their AOI, with
each chip's place on the map marked, so a reader sees which kinds of ground each region of the
embedding space holds. The examples are spread over the map (farthest-point sampling from a
seeded start) and each one holds every modality of the store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from eoclip.data.store import ChipStore
from eoclip.report.figures import _panel, _save

__all__ = ["fig_tsne_examples", "spread_points"]


def spread_points(xy: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """Rows of `n` points spread over a 2-D map: farthest-point sampling from a seeded start.

    Args:
        xy: (N, 2) map coordinates.
        n: points wanted (all of them when N <= n).

    Returns:
        Row positions, in the order they were chosen.
    """
    if len(xy) <= n:
        return list(range(len(xy)))
    chosen = [int(np.random.default_rng(seed).integers(len(xy)))]
    dist = np.linalg.norm(xy - xy[chosen[0]], axis=1)
    while len(chosen) < n:
        nxt = int(np.argmax(dist))  # the point farthest from every chosen one
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(xy - xy[nxt], axis=1))
    return chosen


def fig_tsne_examples(
    store: ChipStore,
    tsne: pd.DataFrame,
    path: str | Path,
    modality: str = "s1grdm",
    n: int = 4,
    seed: int = 0,
    aoi: str | None = None,
) -> str:
    """Fig. 6: `n` chips in every modality, located on the `modality` t-SNE map of one AOI.

    Args:
        store: the ChipStore holding the chips' pixels.
        tsne: rows of `eoclip.tsne.run_tsne` for one source (`aoi`, `modality`, `chip_id`,
            `x`, `y`).
        modality: the map the chips are placed on (the paper: s1grdm).
        aoi: the AOI whose map is drawn; None: the first AOI (sorted) that has that map.

    Raises:
        ValueError: no map of `modality` (for `aoi`), or none of its chips holds every
            modality of the store.
    """
    maps = tsne[tsne["modality"] == modality]
    aois = sorted(maps["aoi"].unique()) if aoi is None else [aoi]
    if not aois or maps[maps["aoi"] == aois[0]].empty:
        raise ValueError(
            f"the t-SNE table has no {modality} map" + (f" of AOI {aoi!r}" if aoi else "")
        )
    m = maps[maps["aoi"] == aois[0]].reset_index(drop=True)
    pos = m["chip_id"].map(dict(zip(store.index["chip_id"], range(len(store)), strict=True)))
    every = np.ones(len(store), dtype=bool)
    for name in store.modalities:
        every &= store.valid_mask(name).any(axis=1)
    ok = pos.notna().to_numpy() & every[pos.fillna(0).astype(int).to_numpy()]
    if not ok.any():
        raise ValueError(
            f"{store.url}: no chip of the {aois[0]} {modality} map holds every modality"
        )
    cand = np.flatnonzero(ok)
    picks = cand[spread_points(m.loc[cand, ["x", "y"]].to_numpy(float), n, seed)]
    mods = list(store.modalities)
    fig = Figure(figsize=(4.5 + 2.2 * len(mods), max(4.5, 2.2 * len(picks))), layout="constrained")
    grid = fig.add_gridspec(len(picks), len(mods) + 2)
    ax = fig.add_subplot(grid[:, :2])
    ax.scatter(m["x"], m["y"], s=3, color="0.75", linewidths=0)
    for k, row in enumerate(picks, start=1):
        ax.scatter(m.at[row, "x"], m.at[row, "y"], s=60, color="tab:red", edgecolors="black")
        ax.annotate(
            str(k),
            (m.at[row, "x"], m.at[row, "y"]),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=10,
            weight="bold",
        )
    ax.set_title(f"{aois[0]}: t-SNE of {modality}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    for i, row in enumerate(picks):
        p = int(pos.iat[row])
        for j, name in enumerate(mods):
            sub = fig.add_subplot(grid[i, j + 2])
            img, kw, title = _panel(store, p, name)
            sub.imshow(img, **kw)
            sub.set_title(title, fontsize=7)
            sub.set_xticks([])
            sub.set_yticks([])
        fig.axes[-len(mods)].set_ylabel(f"{i + 1}: {m.at[row, 'chip_id']}", fontsize=7)
    fig.suptitle(f"Example chips located on the {modality} t-SNE map")
    return _save(fig, path)
