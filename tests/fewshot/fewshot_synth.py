"""Tiny synthetic EmbeddingTables for the few-shot tests (a uniquely named module so test
files can import it whatever other conftest.py files exist)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

TASK_DIMS = {"tree": 0, "built": 1, "crop": 2, "water": 3}


def make_table(
    n_per_aoi: int = 200,
    aois=("aoi_a", "aoi_b"),
    dim: int = 6,
    mods=("s2", "s1"),
    null_frac: float = 0.1,
    seed: int = 0,
) -> gpd.GeoDataFrame:
    """Chips whose label_<task> grows with embedding dim TASK_DIMS[task] of every modality.

    Splits cycle train, train, train, val, test (60/20/20); `null_frac` of the chips lack the
    second modality (null vector).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for a, aoi in enumerate(aois):
        z = rng.normal(size=(n_per_aoi, dim)).astype(np.float32)
        for i in range(n_per_aoi):
            row = {
                "chip_id": f"{aoi}_{i:04d}",
                "aoi": aoi,
                "split": ("train", "train", "train", "val", "test")[i % 5],
                "geometry": shapely.box(a + i * 0.01, 0, a + i * 0.01 + 0.01, 0.01),
            }
            for task, d in TASK_DIMS.items():
                row[f"label_{task}"] = float(np.exp(z[i, d] + 0.3 * rng.normal()))
            for k, m in enumerate(mods):
                missing = k == 1 and rng.random() < null_frac
                noise = 0.2 * rng.normal(size=dim).astype(np.float32)
                row[f"emb_{m}"] = None if missing else (z[i] + noise).astype(np.float32)
                row[f"emb_{m}_channels"] = [] if missing else [f"01_{m}"]
            rows.append(row)
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    gdf["checkpoint_hash"] = "abc123"
    return gdf
