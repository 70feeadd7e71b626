"""2-D t-SNE maps of each modality's embeddings per AOI (paper section 5.2, Fig. 5).

`run_tsne` embeds, per source, AOI and modality, a seeded random subsample of the AOI's chips
with openTSNE (reading only the vectors of those chips, `eoclip.embeddings.reader`) and returns a
tidy frame; `plot_tsne` draws a grid of AOIs x modalities coloured
by log10(label + eps). The same chips (chosen once per AOI among chips with at least one
vector, from `derive_seed(seed, aoi, "tsne")`) are used for every modality and source; a chip
lacking a modality is left out of that modality's map only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from openTSNE import TSNE
from tqdm.auto import tqdm

from eoclip.embeddings.reader import TableReader, TableScan, open_tables
from eoclip.errors import TsneError
from eoclip.fewshot.executor import reusable_pool
from eoclip.fsio import atomic_write
from eoclip.parallel import InlineExecutor, in_order
from eoclip.seeding import derive_seed

__all__ = ["TsneConfig", "TsneError", "plot_tsne", "run_tsne", "save_tsne"]

log = logging.getLogger(__name__)


@dataclass
class TsneConfig:
    """Settings of `run_tsne`."""

    max_points: int = 5000  # chips per AOI; a seeded random subsample above this
    perplexity: float = 30.0  # capped at (n - 1) / 3 for small maps
    n_iter: int = 500  # optimisation steps after early exaggeration
    early_exaggeration_iter: int = 250
    seed: int = 0
    n_jobs: int = 1  # maps at once, one per worker process (a single map: its threads)
    modalities: tuple[str, ...] | None = None  # None: every modality of each source
    splits: tuple[str, ...] | None = None  # None: chips of every split
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_points < 4:
            raise TsneError(f"max_points must be >= 4 (a map needs 4 chips), got {self.max_points}")
        if self.n_iter < 1 or self.perplexity <= 0:
            raise TsneError("n_iter must be >= 1 and perplexity > 0")


def _choose_chips(sub: pd.DataFrame, valid: np.ndarray, cfg: TsneConfig, aoi: str) -> pd.DataFrame:
    """Chips of one AOI with at least one finite vector, subsampled to `max_points` (seeded).

    Args:
        sub: the AOI's index rows sorted by chip id (frame index = table row).
        valid: bool (len(sub), n_modalities), True where the chip has a finite vector.
    """
    sub = sub[valid.any(axis=1)]
    if len(sub) > cfg.max_points:
        rng = np.random.default_rng(derive_seed(cfg.seed, aoi, "tsne"))
        sub = sub.iloc[np.sort(rng.choice(len(sub), cfg.max_points, replace=False))]
    return sub


def _check_modalities(reader: TableReader, scan: TableScan, mods: list[str]) -> None:
    """Warn about NaN/inf vectors; refuse a modality without a single finite vector."""
    for m in mods:
        n_bad = int(scan.nonfinite[m].sum())
        if n_bad:
            log.warning(
                "%s: %d emb_%s vectors hold NaN/inf; left out of the maps", reader.name, n_bad, m
            )
        if not scan.valid[m].any():
            raise TsneError(
                f"{reader.name}: modality {m!r} has no finite vector ({n_bad} hold NaN/inf, "
                f"the others are missing); re-export the embeddings or leave {m!r} out of the "
                "modalities"
            )


def _blas_threads() -> dict[str, int]:
    """This process's BLAS thread counts, per library (threadpoolctl's ``user_api`` blas)."""
    from threadpoolctl import threadpool_info

    return {i["prefix"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def _embed(
    X: np.ndarray,
    cfg: TsneConfig,
    seed: int,
    n_jobs: int | None = None,
    blas: dict[str, int] | None = None,
) -> np.ndarray:
    """openTSNE map of X (n, D) -> (n, 2), in ``n_jobs`` threads (default ``cfg.n_jobs``).

    ``blas``: BLAS thread counts to use (``_blas_threads()`` of the calling process): with
    another count the BLAS steps (PCA initialisation, neighbour distances) can round
    differently, and t-SNE turns that into another map.
    """
    if blas:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=blas):
            return _embed(X, cfg, seed, n_jobs)
    tsne = TSNE(
        perplexity=min(cfg.perplexity, (len(X) - 1) / 3),
        n_iter=cfg.n_iter,
        early_exaggeration_iter=cfg.early_exaggeration_iter,
        n_jobs=cfg.n_jobs if n_jobs is None else n_jobs,
        random_state=seed,
        verbose=False,
    )
    return np.asarray(tsne.fit(X), dtype=np.float32)


def run_tsne(
    tables: dict[str, str | Path | pd.DataFrame],
    config: TsneConfig | None = None,
    out_path: str | Path | None = None,
) -> pd.DataFrame:
    """t-SNE of every (source, aoi, modality).

    Args:
        tables: source name -> EmbeddingTable path/URL or frame.
        config: settings (defaults: 5000 points per AOI, perplexity 30).
        out_path: optional Parquet file to write (atomically).

    Returns:
        Tidy frame with columns source, aoi, modality, chip_id, split, x, y and every
        `label_*` column of the table; one row per chip and modality mapped.
        `df.attrs["nonfinite"]` counts, per "source/aoi/modality", the vectors left out
        because they held NaN or inf.

    Raises:
        ValueError: unknown modality, a modality without a single finite vector, nothing to map.
    """
    cfg = config or TsneConfig()
    readers = open_tables(tables)
    work, nonfinite = _plan_maps(readers, cfg)
    maps = [(s, a, m, sub, present[m]) for s, a, mods, sub, present in work for m in mods]
    # several maps: one per worker process, single-threaded, with this process's BLAS thread
    # counts (the same map as with threads, and on 800 points a second thread cost 1.4-1.6x
    # the CPU time); one map: in this process, in threads
    if cfg.n_jobs > 1 and len(maps) > 1:
        pool, ahead, n_jobs, blas = reusable_pool(cfg.n_jobs), 2 * cfg.n_jobs, 1, _blas_threads()
    else:
        pool, ahead, n_jobs, blas = InlineExecutor(), 0, None, None
    frames = []
    with tqdm(total=len(maps), desc="t-SNE", disable=not cfg.progress) as bar:

        def jobs():  # the vectors are read here while earlier maps run
            for source, aoi, m, sub, ok in maps:
                X = _vectors(readers[source], source, aoi, m, sub, ok)
                if X is None:
                    bar.update(1)
                    continue
                seed = derive_seed(cfg.seed, source, aoi, m)
                yield (source, aoi, m, sub, ok), (X, cfg, seed, n_jobs, blas)

        for tag, xy in in_order(pool, _embed, jobs(), ahead):
            frames.append(_frame(*tag, xy))
            bar.update(1)
    if not frames:
        raise TsneError("no t-SNE map could be computed (no AOI/modality with >= 4 vectors)")
    df = pd.concat(frames, ignore_index=True)
    df.attrs["nonfinite"] = nonfinite  # "source/aoi/modality" -> vectors left out for NaN/inf
    if out_path is not None:
        save_tsne(df, out_path)
    return df


def _plan_maps(readers: dict, cfg: TsneConfig) -> tuple[list, dict]:
    """Per (source, aoi): modalities, the chosen chips and which of them have a finite vector;
    and the count of NaN/inf vectors per "source/aoi/modality"."""
    work, nonfinite = [], {}
    for source, reader in readers.items():
        mods = reader.modalities
        if cfg.modalities is not None:
            unknown = [m for m in cfg.modalities if m not in mods]
            if unknown:
                raise TsneError(f"source {source!r}: unknown modalities {unknown}; has {mods}")
            mods = list(cfg.modalities)
        scan = reader.scan()  # validity per chip, never the vectors
        _check_modalities(reader, scan, mods)
        index = reader.index()
        if cfg.splits is not None:
            index = index[index["split"].isin(cfg.splits)]
        for aoi in sorted(index["aoi"].unique()):
            sub = index[index["aoi"] == aoi].sort_values("chip_id", kind="stable")
            rows = sub.index.to_numpy()
            for m in mods:
                if scan.nonfinite[m][rows].any():
                    nonfinite[f"{source}/{aoi}/{m}"] = int(scan.nonfinite[m][rows].sum())
            valid = np.stack([scan.valid[m][rows] for m in mods], axis=1)
            chosen = _choose_chips(sub, valid, cfg, aoi)
            present = {m: scan.valid[m][chosen.index.to_numpy()] for m in mods}
            work.append((source, aoi, mods, chosen, present))
    return work, nonfinite


def _vectors(
    reader: TableReader, source: str, aoi: str, m: str, sub: pd.DataFrame, ok: np.ndarray
) -> np.ndarray | None:
    """The vectors of modality `m` for the chips `sub[ok]` (None when under 4 of them)."""
    if ok.sum() < 4:
        log.warning("%s/%s/%s: %d vectors, no map", source, aoi, m, ok.sum())
        return None
    X = np.empty((int(ok.sum()), reader.dim(m)), dtype=np.float32)
    # only the mapped chips; t-SNE takes no NaN, so a vector holding one is left out
    reader.read_vectors(m, sub.index.to_numpy()[ok], X, nonfinite="drop")
    return X


def _frame(
    source: str, aoi: str, m: str, sub: pd.DataFrame, ok: np.ndarray, xy: np.ndarray
) -> pd.DataFrame:
    """The tidy rows of one map: the chips `sub[ok]` at their t-SNE coordinates `xy`."""
    labels = [c for c in sub.columns if str(c).startswith("label_")]
    part = pd.DataFrame(sub.loc[ok, ["chip_id", "split", *labels]])
    part.insert(0, "modality", m)
    part.insert(0, "aoi", aoi)
    part.insert(0, "source", source)
    part.insert(4, "x", xy[:, 0])
    part.insert(5, "y", xy[:, 1])
    return part.reset_index(drop=True)


def _atomic_write(path: str | Path, write) -> str:
    with atomic_write(path, "wb") as f:
        write(f)
    return str(path)


def save_tsne(df: pd.DataFrame, path: str | Path) -> str:
    """Write a `run_tsne` frame to Parquet (temporary name, then rename)."""
    return _atomic_write(path, lambda f: df.to_parquet(f, index=False))


def plot_tsne(
    df: pd.DataFrame,
    task: str,
    path: str | Path,
    source: str | None = None,
    eps: float = 1e-3,
) -> str:
    """Grid of t-SNE maps, AOIs in rows and modalities in columns, coloured by log10(label + eps).

    Args:
        df: output of `run_tsne`.
        task: label to colour by (`label_<task>` column); chips without it are grey.
        path: image file (PNG, SVG, PDF ... from the suffix), local or fsspec URL.
        source: which source to draw; may be None when `df` holds one source only.
        eps: added before the log so zero labels (no water) stay finite.

    Returns:
        The path written.
    """
    col = f"label_{task}"
    if col not in df.columns:
        raise TsneError(f"no {col!r} in the t-SNE frame; has {[c for c in df if 'label_' in c]}")
    sources = sorted(df["source"].unique())
    if source is None and len(sources) != 1:
        raise TsneError(f"frame holds sources {sources}; pass source=")
    df = df[df["source"] == (source or sources[0])]
    if df.empty:
        raise TsneError(f"no rows for source {source!r}; has {sources}")
    aois, mods = sorted(df["aoi"].unique()), list(dict.fromkeys(df["modality"]))
    color = np.log10(df[col].to_numpy(dtype=float) + eps)
    lo, hi = np.nanpercentile(color, [1, 99]) if np.isfinite(color).any() else (0.0, 1.0)
    fig = Figure(figsize=(2.6 * len(mods) + 0.8, 2.6 * len(aois)), layout="constrained")
    axes = fig.subplots(len(aois), len(mods), squeeze=False)
    scatter = None
    size = float(np.clip(4000 / max(len(df) / max(len(aois) * len(mods), 1), 1), 1, 12))
    for i, aoi in enumerate(aois):
        for j, m in enumerate(mods):
            ax = axes[i, j]
            sel = ((df["aoi"] == aoi) & (df["modality"] == m)).to_numpy()
            c = color[sel]
            known = np.isfinite(c)
            xy = df.loc[sel, ["x", "y"]].to_numpy()
            ax.scatter(*xy[~known].T, s=size, c="lightgrey", linewidths=0)
            scatter = ax.scatter(
                *xy[known].T, s=size, c=c[known], cmap="viridis", vmin=lo, vmax=hi, linewidths=0
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{aoi} / {m}", fontsize=8)
    fig.colorbar(scatter, ax=axes, shrink=0.6, label=f"log10({col} + {eps:g})")
    fmt = Path(str(path)).suffix.lstrip(".") or "png"
    return _atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=120))
