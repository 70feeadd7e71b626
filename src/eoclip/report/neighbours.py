"""Report figure: a few query chips and their nearest neighbours, as image strips.

For each query chip one PNG: each row is a search, the query chip's image then its `k`
nearest chips (cosine, `eoclip.search`), each titled with its chip id and distance. Rows
search within every modality (an s2rgbm query among s2rgbm vectors, shown as s2rgbm images)
and across modalities (an s1grdm query among s2rgbm vectors: the query shown as s1grdm, the
neighbours as s2rgbm), the query chip itself excluded so the strip shows other chips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from eoclip.data.store import ChipStore
from eoclip.embeddings.table import read_vectors
from eoclip.errors import ReportError
from eoclip.report.figures import _panel, _save, pick_example_chips
from eoclip.search.exact import cosine_topk

__all__ = ["fig_neighbours", "search_rows"]


def search_rows(modalities: list[str]) -> list[tuple[str, str]]:
    """(query modality, searched modality): each within itself, then each into the next one."""
    rows = [(m, m) for m in modalities]
    if len(modalities) > 1:
        rows += [(m, modalities[(i + 1) % len(modalities)]) for i, m in enumerate(modalities)]
    return rows


def _short(chip_id: str) -> str:
    parts = chip_id.split("_")
    return "_".join(parts[:1] + parts[-2:]) if len(parts) > 3 else chip_id


def fig_neighbours(
    store: ChipStore, table: str, out_dir: str | Path, n_queries: int = 3, k: int = 5, seed: int = 0
) -> list[tuple[str, str]]:
    """Draw one strip figure per query chip.

    Args:
        store: the ChipStore the table's chips come from (for the images).
        table: an EmbeddingTable of the store's chips.
        out_dir: folder for `neighbours_<i>.png`.
        n_queries: query chips (seeded, one per AOI in turn, holding every modality).
        k: neighbours per row.
        seed: which query chips.

    Returns:
        `[(png path, query chip id)]`.

    Raises:
        ValueError: the table shares no modality with the store, or no chip has them all.
    """
    vecs = {}
    for m in store.modalities:
        try:
            vecs[m] = read_vectors(table, m)
        except KeyError:
            continue
    mods = list(vecs)
    if not mods:
        raise ReportError(
            f"{table} has no vectors of the store's modalities {list(store.modalities)}"
        )
    ids = vecs[mods[0]][2]
    lookup = {c: i for i, c in enumerate(ids)}
    queries = [store.chip_ids[p] for p in pick_example_chips(store, n_queries, seed)]
    rows = search_rows(mods)
    out = []
    for qi, chip in enumerate(queries):
        fig = Figure(figsize=(1.7 * (k + 1), 1.85 * len(rows)), layout="constrained")
        axes = fig.subplots(len(rows), k + 1, squeeze=False)
        r = lookup[chip]
        for i, (qm, gm) in enumerate(rows):
            excl = np.zeros(len(ids), dtype=bool)
            excl[r] = True
            idx, sim = cosine_topk(vecs[qm][0][[r]], vecs[gm][0], k, exclude=excl)
            cells = [(chip, qm, f"query {qm}")] + [
                (ids[j], gm, f"{1 - s:.4f}") for j, s in zip(idx[0], sim[0], strict=True)
            ]
            for j, (cid, mod, label) in enumerate(cells):
                ax = axes[i, j]
                img, kw, _ = _panel(store, store.position(cid), mod)
                ax.imshow(img, **kw)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{_short(cid)}\n{label}", fontsize=6)
            axes[i, 0].set_ylabel(f"{qm} \u2192 {gm}", fontsize=8)
        fig.suptitle(
            f"Nearest chips of {chip} (cosine distance; query left, itself excluded)", fontsize=9
        )
        path = Path(out_dir) / f"neighbours_{qi}.png"
        out.append((_save(fig, path, dpi=90), chip))
    return out
