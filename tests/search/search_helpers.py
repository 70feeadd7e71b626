"""A small EmbeddingTable with known geometry of its vectors, for the search tests."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from shapely.geometry import box

from eoclip.embeddings.table import write_embedding_table

N, D = 60, 8
NO_S1 = (4, 9)  # chips without an s1grdm vector


def make_table(path) -> tuple[str, np.ndarray, np.ndarray]:
    """s2 vectors random; s1 = s2 of the same chip + small noise (a shared space).

    Returns:
        (path, s2 (N, D), s1 (N, D) with NaN rows at NO_S1).
    """
    rng = np.random.default_rng(0)
    s2 = rng.normal(size=(N, D)).astype(np.float32)
    s1 = (s2 + 0.05 * rng.normal(size=(N, D))).astype(np.float32)
    s1[list(NO_S1)] = np.nan
    gdf = gpd.GeoDataFrame(
        {
            "chip_id": [f"c{i:03d}" for i in range(N)],
            "aoi": "conus",
            "split": ["train", "val", "test"] * (N // 3),
            "emb_s2rgbm": list(s2),
            "emb_s1grdm": [None if np.isnan(v).any() else v for v in s1],
        },
        geometry=[box(i, 0, i + 1, 1) for i in range(N)],
        crs="EPSG:4326",
    )
    write_embedding_table(gdf, path, {"source": "pretrained", "checkpoint_hash": "abc"})
    return str(path), s2, s1
