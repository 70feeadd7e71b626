"""Per-chip channel statistics: the no-learning baseline features.

For each modality of a ChipStore and each chip, simple statistics of the raw physical values:

- fixed modality (``s2rgbm``, ``s1grdm``): for each channel, in channel order, its mean, std,
  10th and 90th percentile -> 4 x C features, NaN for a channel the chip lacks;
- variable modality (``gunw``): the same four statistics computed per valid channel and
  averaged over the chip's valid channels, plus the number of valid channels -> 5 features.

A chip that lacks a modality entirely gets no vector (null). The result is an ordinary
EmbeddingTable (``emb_<mod>`` columns, metadata ``source: "stats"``), so the few-shot code
reads it exactly like a table of learned embeddings.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
from tqdm.auto import tqdm

from eoclip.data.modalities import Modality
from eoclip.data.store import ChipStore
from eoclip.embeddings.table import write_embedding_table

__all__ = [
    "STATS",
    "STATS_HASH",
    "feature_names",
    "channel_stats",
    "stats_features",
    "stats_table",
    "write_stats_table",
]

STATS = ("mean", "std", "p10", "p90")
STATS_HASH = "stats-v1"  # stands in for a checkpoint hash: bump when the features change


def feature_names(modality: Modality) -> list[str]:
    """Names of a modality's features, in vector order (e.g. ``01_red_mean``, ``count``)."""
    if modality.variable:
        return [*(f"all_{s}" for s in STATS), "count"]
    return [f"{c}_{s}" for c in modality.channels for s in STATS]


def channel_stats(x: np.ndarray) -> np.ndarray:
    """Per-channel statistics of a block of chips.

    Args:
        x: float32 (N, C, H, W) physical values; a missing channel is all NaN.

    Returns:
        float32 (N, C, 4): mean, std, 10th and 90th percentile; NaN for a channel that has
        no finite pixel (a NaN pixel inside a valid channel is ignored).
    """
    flat = x.reshape(*x.shape[:2], -1).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels -> NaN
        if np.isnan(flat).all(axis=-1).sum() == np.isnan(flat).any(axis=-1).sum():
            # Fast path: channels are either entirely valid or entirely missing.
            q = np.percentile(flat, [10, 90], axis=-1)
            out = [flat.mean(-1), flat.std(-1), q[0], q[1]]
        else:
            q = np.nanpercentile(flat, [10, 90], axis=-1)
            out = [np.nanmean(flat, -1), np.nanstd(flat, -1), q[0], q[1]]
    return np.stack(out, axis=-1).astype(np.float32)


def _modality_block(m: Modality, stored: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Feature vectors of a block of chips: float32 (N, D), NaN rows for absent chips."""
    st = channel_stats(m.decode(stored, valid))  # (N, C, 4)
    present = valid.any(axis=1)
    if m.variable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            agg = np.nanmean(np.where(valid[..., None], st, np.nan), axis=1)  # (N, 4)
        feats = np.concatenate([agg, valid.sum(1, keepdims=True).astype(np.float32)], axis=1)
    else:
        feats = st.reshape(len(st), -1)
    feats[~present] = np.nan
    return feats


def stats_features(
    store: ChipStore,
    modalities: Sequence[str] | None = None,
    block_chips: int | None = None,
    progress: bool = True,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Statistics features of every chip of a store.

    Reads the store's arrays a block of chips at a time (one shard by default).

    Args:
        store: an open ChipStore.
        modalities: which ones (default: all of the store's).
        block_chips: chips read at once (default: the store's shard size).
        progress: show a progress bar.

    Returns:
        modality -> (features float32 (N, D), present bool (N,)), rows in store order.
    """
    mods = list(modalities or store.modalities)
    for name in mods:
        if name not in store.modalities:
            raise KeyError(f"{store.url} has no modality {name!r}; it has {list(store.modalities)}")
    n, step = len(store), int(block_chips or store.shard_chips)
    out = {}
    with tqdm(total=n * len(mods), unit="chip", desc="channel stats", disable=not progress) as bar:
        for name in mods:
            m = store.modalities[name]
            valid = store.valid_mask(name)
            feats = np.full((n, len(feature_names(m))), np.nan, np.float32)
            pixels = store.arrays(name)["pixels"]
            for start in range(0, n, step):
                end = min(start + step, n)
                stored = np.asarray(pixels[start:end])
                feats[start:end] = _modality_block(m, stored, valid[start:end])
                bar.update(end - start)
            out[name] = (feats, valid.any(axis=1))
    return out


def stats_table(
    store: ChipStore, modalities: Sequence[str] | None = None, progress: bool = True
) -> tuple[gpd.GeoDataFrame, dict]:
    """The statistics of a store as an in-memory EmbeddingTable frame and its metadata.

    Returns:
        (gdf, meta): gdf has the store index's chip_id, geometry, aoi, split and label_*
        columns, ``emb_<mod>`` (float32 vector or None) and ``emb_<mod>_channels`` (the valid
        channels that fed it) per modality, and ``checkpoint_hash``; meta is the ``eoclip``
        metadata (``source: "stats"``, ``feature_names`` per modality).
    """
    feats = stats_features(store, modalities, progress=progress)
    idx = store.index
    keep = ["chip_id", "geometry", "aoi", "split", *[c for c in idx if c.startswith("label_")]]
    gdf = gpd.GeoDataFrame(idx[keep].copy(), geometry="geometry", crs=idx.crs)
    for name, (x, present) in feats.items():
        gdf[f"emb_{name}"] = [row if ok else None for row, ok in zip(x, present, strict=True)]
        gdf[f"emb_{name}_channels"] = [list(c) for c in idx[f"{name}_channels"]]
    gdf["checkpoint_hash"] = STATS_HASH
    meta = {
        "source": "stats",
        "channel_policy": "all",
        "checkpoint_hash": STATS_HASH,
        "store": store.url,
        "feature_names": {n: feature_names(store.modalities[n]) for n in feats},
        "nan_means_missing": True,  # NaN statistics of a channel the chip lacks: not an error
    }
    return gdf, meta


def write_stats_table(
    store: ChipStore | str | os.PathLike,
    out: str | os.PathLike,
    modalities: Sequence[str] | None = None,
    progress: bool = True,
) -> str:
    """Compute the statistics of a store and write them as an EmbeddingTable (GeoParquet).

    Args:
        store: an open ChipStore or its path/URL.
        out: destination ``.parquet`` (local path or fsspec URL), written atomically.
        modalities: which ones (default: all of the store's).
        progress: show a progress bar.

    Returns:
        The path written.
    """
    if not isinstance(store, ChipStore):
        store = ChipStore.open(store)
    gdf, meta = stats_table(store, modalities, progress=progress)
    return write_embedding_table(gdf, out, meta)
