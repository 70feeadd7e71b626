"""Synthetic EmbeddingTables of any size for the few-shot benches (seeded, vectorised).

Each chip has one latent vector; each modality's embedding is a fixed random projection of
it plus noise, so the four labels are learnable but noisy, as real embeddings are (a forest
reaches ~0.7-0.8 accuracy). Splits cycle train x3, val, test (60/20/20); a few % of the chips
lack the last modality (a null vector, a NaN block in `concat`).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from eoclip.embeddings import write_embedding_table

__all__ = ["synthetic_matrix", "write_table"]

TASKS = ("tree", "built", "crop", "water")
LATENT = 16


def synthetic_matrix(
    n: int, dims: tuple[int, ...], seed: int = 0, missing_frac: float = 0.03
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Embeddings and continuous labels of `n` chips.

    Returns:
        `(blocks, labels)`: one float32 (n, d) block per modality (NaN rows where a chip lacks
        the last modality), and `label_<task>` -> float64 (n,).
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, LATENT)).astype(np.float32)
    blocks = []
    for k, d in enumerate(dims):
        proj = np.random.default_rng(1000 + k).normal(size=(LATENT, d)).astype(np.float32)
        block = z @ proj / np.sqrt(LATENT)
        block += rng.normal(scale=1.0, size=(n, d)).astype(np.float32)
        blocks.append(block)
    blocks[-1][rng.random(n) < missing_frac] = np.nan
    labels = {
        f"label_{t}": np.exp(z[:, i] + 0.8 * rng.normal(size=n)).astype(np.float64)
        for i, t in enumerate(TASKS)
    }
    return blocks, labels


def write_table(
    path: str,
    chips_per_aoi: int,
    aois: tuple[str, ...] = ("aoi_0",),
    dims: tuple[int, ...] = (768, 768, 768),
    seed: int = 0,
) -> str:
    """Write an EmbeddingTable of `len(aois) x chips_per_aoi` chips with modalities m0, m1, ..."""
    frames = []
    mods = [f"m{k}" for k in range(len(dims))]
    for a, aoi in enumerate(aois):
        n = chips_per_aoi
        blocks, labels = synthetic_matrix(n, dims, seed=seed + a)
        i = np.arange(n)
        frame = pd.DataFrame(
            {
                "chip_id": [f"{aoi}_{k:07d}" for k in i],
                "aoi": aoi,
                "split": np.array(["train", "train", "train", "val", "test"])[i % 5],
                **labels,
            }
        )
        for m, block in zip(mods, blocks, strict=True):
            present = ~np.isnan(block).any(axis=1)
            frame[f"emb_{m}"] = [
                row if ok else None for row, ok in zip(block, present, strict=True)
            ]
        frame["geometry"] = shapely.box(a + i * 1e-3, 0, a + i * 1e-3 + 1e-3, 1e-3)
        frames.append(frame)
    gdf = gpd.GeoDataFrame(
        pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326"
    )
    meta = {
        "source": "synthetic",
        "checkpoint_hash": f"synthetic-{seed}",
        "dims": dict(zip(mods, dims, strict=True)),
    }
    return write_embedding_table(gdf, path, meta)
