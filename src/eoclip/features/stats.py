"""Per-chip channel statistics: the no-learning baseline features.

For each modality of a ChipStore and each chip, simple statistics of the raw physical values:

- fixed modality (``s2rgbm``, ``s1grdm``): for each channel, in channel order, its mean, std,
  10th and 90th percentile -> 4 x C features, NaN for a channel the chip lacks;
- variable modality (``gunw``): the same four statistics computed per valid channel and
  averaged over the chip's valid channels, plus the number of valid channels -> 5 features.

A chip that lacks a modality entirely gets no vector (null). The result is an ordinary
EmbeddingTable (``emb_<mod>`` columns, metadata ``source: "stats"``), so the few-shot code
reads it exactly like a table of learned embeddings.

Speed: percentiles are order statistics, and a modality stored as integers decodes through a
monotone map (``stored * scale + offset``, ``scale > 0``), so the 10th and 90th percentile of
a channel's physical values are the decoded order statistics of its stored integers,
interpolated as NumPy's ``percentile`` does. Those order statistics come from one histogram
per channel (``np.bincount``) instead of a partition of the float values; the result is the
same float32 bits (checked against ``np.percentile`` once per process, falling back to it if
a NumPy release computes differently).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
from tqdm.auto import tqdm

from eoclip.data.modalities import Modality, get_modality
from eoclip.data.store import ChipStore
from eoclip.embeddings.table import write_embedding_table
from eoclip.parallel import in_order

__all__ = [
    "STATS",
    "STATS_HASH",
    "feature_names",
    "channel_stats",
    "quantized_percentiles",
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


_Q = (10, 90)  # the percentiles of STATS


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
            q = np.percentile(flat, _Q, axis=-1)
            out = [flat.mean(-1), flat.std(-1), q[0], q[1]]
        else:
            q = np.nanpercentile(flat, _Q, axis=-1)
            out = [np.nanmean(flat, -1), np.nanstd(flat, -1), q[0], q[1]]
    return np.stack(out, axis=-1).astype(np.float32)


_CHUNK_CELLS = 1 << 22  # histogram cells (and pixels) handled at once: bounded memory


def _order_statistics(flat: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """The ``ks``-th smallest (0-based) values of each row of an integer array.

    Args:
        flat: integer array (R, n); ks: sorted int array of ranks in [0, n).

    Returns:
        (len(ks), R) array of flat's dtype.
    """
    rows, n = flat.shape
    out = np.empty((len(ks), rows), dtype=flat.dtype)
    if rows == 0:
        return out
    lo, hi = int(flat.min()), int(flat.max())
    width = hi - lo + 1
    sparse = width > 4 * n  # a wide integer range: partitioning is cheaper than histograms
    step = max(1, _CHUNK_CELLS // (n if sparse else max(n, width)))
    for i in range(0, rows, step):
        part = flat[i : i + step]
        if sparse:
            out[:, i : i + step] = np.partition(part, ks, axis=1)[:, ks].T
            continue
        # one histogram per row, row r's cells offset by r * width; cumulated over the whole
        # block the counts are sorted, and the k-th smallest value of row r is the first cell
        # whose cumulated count exceeds r * n + k
        r = np.arange(len(part), dtype=np.intp)
        cells = part.astype(np.intp) - lo
        cells += (r * width)[:, None]
        cum = np.cumsum(np.bincount(cells.ravel(), minlength=len(part) * width))
        targets = (r * n)[None, :] + np.asarray(ks, dtype=np.intp)[:, None]
        first = np.searchsorted(cum, targets.ravel(), side="right").reshape(targets.shape)
        out[:, i : i + step] = first - (r * width)[None, :] + lo
    return out


def quantized_percentiles(m: Modality, stored: np.ndarray) -> np.ndarray:
    """The 10th and 90th percentile of each channel's physical values, from stored integers.

    Equal, bit for bit, to ``np.percentile(m.decode(stored), [10, 90], axis=-1)`` over the
    flattened pixels (see the module docstring), without decoding or partitioning the pixels.

    Args:
        m: a quantized modality (integer storage, ``scale > 0``).
        stored: integer array (N, C, H, W).

    Returns:
        float64 (2, N, C).
    """
    flat = stored.reshape(-1, stored.shape[-2] * stored.shape[-1])
    n = flat.shape[1]
    # NumPy's 'linear' method: virtual index (n - 1) q, its floor and the next rank, weight
    virtual = (n - 1) * np.true_divide(np.asarray(_Q), 100)
    prev = np.floor(virtual).astype(np.intp)
    nxt = np.minimum(prev + 1, n - 1)
    gamma = (virtual - prev).reshape(-1, 1)
    ranks = np.unique(np.concatenate([prev, nxt]))
    values = m.decode(_order_statistics(flat, ranks))  # float32 (len(ranks), R)
    a = values[np.searchsorted(ranks, prev)]
    b = values[np.searchsorted(ranks, nxt)]
    diff = b - a  # NumPy's _lerp, in the same dtypes
    q = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=q, where=np.broadcast_to(gamma >= 0.5, q.shape))
    return q.reshape(len(_Q), *stored.shape[:2])


@functools.cache
def quantized_percentiles_ok() -> bool:
    """Whether `quantized_percentiles` matches ``np.percentile`` here (checked once)."""
    rng = np.random.default_rng(7)
    for name, px in (("s2rgbm", 5), ("s1grdm", 8), ("s1grdm", 7)):
        m = get_modality(name)
        info = np.iinfo(m.dtype)
        stored = rng.integers(max(info.min, -3000), min(info.max, 3000), (3, 4, px, px))
        stored = stored.astype(m.dtype)
        stored[0, 0] = stored[0, 0, 0, 0]  # a constant channel
        want = np.percentile(m.decode(stored).reshape(3, 4, -1), _Q, axis=-1)
        if not np.array_equal(want, quantized_percentiles(m, stored)):
            warnings.warn(
                "percentiles from stored integers differ from np.percentile in this NumPy; "
                "computing them from the decoded pixels instead (slower, same features)",
                RuntimeWarning,
                stacklevel=2,
            )
            return False
    return True


def _modality_block(m: Modality, stored: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Feature vectors of a block of chips: float32 (N, D), NaN rows for absent chips."""
    x = m.decode(stored, valid)
    if m.quantized and quantized_percentiles_ok():  # integer storage: the histogram path
        flat = x.reshape(*x.shape[:2], -1)
        q = quantized_percentiles(m, stored)
        q[:, ~np.asarray(valid, bool)] = np.nan  # what np.percentile gives a missing channel
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels -> NaN
            mean, std = flat.mean(-1), flat.std(-1)
        st = np.stack([mean, std, q[0], q[1]], axis=-1).astype(np.float32)
    else:
        st = channel_stats(x)  # (N, C, 4)
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


_BLOCK_BYTES = 256 * 2**20  # decoded float32 pixels of one block (bounds memory at 448 px)


def stats_features(
    store: ChipStore,
    modalities: Sequence[str] | None = None,
    block_chips: int | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Statistics features of every chip of a store.

    Reads the store's arrays a block of chips at a time in this thread and computes the blocks'
    statistics in ``threads`` threads (NumPy releases the GIL in them); the result does not
    depend on either setting.

    Args:
        store: an open ChipStore.
        modalities: which ones (default: all of the store's).
        block_chips: chips read at once (default: the store's shard size, less where the
            decoded block would exceed 256 MB, e.g. 448 px chips).
        progress: show a progress bar.
        threads: blocks computed at once (default: the cores, at most 4).

    Returns:
        modality -> (features float32 (N, D), present bool (N,)), rows in store order.
    """
    mods = list(modalities or store.modalities)
    for name in mods:
        if name not in store.modalities:
            raise KeyError(f"{store.url} has no modality {name!r}; it has {list(store.modalities)}")
    threads = int(threads or min(os.cpu_count() or 1, 4))
    n = len(store)
    out = {
        name: (
            np.full((n, len(feature_names(store.modalities[name]))), np.nan, np.float32),
            store.valid_mask(name),
        )
        for name in mods
    }

    def blocks():  # read here, one block at a time, while the threads compute earlier ones
        for name in mods:
            pixels = store.arrays(name)["pixels"]
            per_chip = 4 * int(np.prod(pixels.shape[1:]))
            step = int(block_chips or min(store.shard_chips, max(1, _BLOCK_BYTES // per_chip)))
            valid = out[name][1]
            for start in range(0, n, step):
                end = min(start + step, n)
                args = (store.modalities[name], np.asarray(pixels[start:end]), valid[start:end])
                yield (name, start, end), args

    with (
        tqdm(total=n * len(mods), unit="chip", desc="channel stats", disable=not progress) as bar,
        ThreadPoolExecutor(threads, thread_name_prefix="stats") as pool,
    ):
        for (name, start, end), feats in in_order(pool, _modality_block, blocks(), threads):
            out[name][0][start:end] = feats
            bar.update(end - start)
    return {name: (feats, valid.any(axis=1)) for name, (feats, valid) in out.items()}


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
