"""Tiny seeded stores for the data tests."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

GUNW_PAIRS = ["20200312_20200217", "20200224_20200112", "20200131_20200107"]


def make_rows(n: int, start: int = 0, splits=("train", "train", "train", "test", "val")):
    """Index rows for n chips in a line of 0.04 deg boxes."""
    return gpd.GeoDataFrame(
        {
            "chip_id": [f"chip{start + i:04d}" for i in range(n)],
            "aoi": ["conus" if (start + i) % 2 == 0 else "china" for i in range(n)],
            "split": [splits[(start + i) % len(splits)] for i in range(n)],
            "label_tree": np.linspace(0, 80, n),
            "label_water": np.r_[np.zeros(n - 2), 0.3, 0.5],
        },
        geometry=[
            shapely.box((start + i) * 0.04, 0, (start + i + 1) * 0.04, 0.04) for i in range(n)
        ],
        crs="EPSG:4326",
    )


def make_arrays(n: int, px: int, seed: int = 0):
    """Physical-unit arrays for the three built-in modalities plus gunw names."""
    rng = np.random.default_rng(seed)
    s2 = rng.uniform(0.0, 0.3, (n, 9, px, px)).astype(np.float32)
    s1 = rng.uniform(-25, 0, (n, 9, px, px)).astype(np.float32)
    gunw = rng.uniform(0, 1, (n, 3, px, px)).astype(np.float32)
    names = [GUNW_PAIRS[: 1 + i % 3] for i in range(n)]
    for i, row in enumerate(names):
        gunw[i, len(row) :] = np.nan
    return {"s2rgbm": s2, "s1grdm": s1, "gunw": gunw}, {"gunw": names}


@pytest.fixture
def tiny_store(tmp_path):
    """A 10-chip store of 8 px chips with a cloudy channel, a chip without s2 and NaN holes."""
    from eoclip.data.store import ChipStore

    arrays, names = make_arrays(10, 8)
    arrays["s2rgbm"][1, 4] = np.nan  # a fully clouded channel -> invalid
    arrays["s2rgbm"][2] = np.nan  # no s2 at all for chip0002
    arrays["s1grdm"][3, 0, :2, :2] = np.nan  # a small hole -> filled
    store = ChipStore.create(
        tmp_path / "store", ["s2rgbm", "s1grdm", "gunw"], chip_px=8, shard_chips=4
    )
    store.append(make_rows(6), {k: v[:6] for k, v in arrays.items()}, {"gunw": names["gunw"][:6]})
    store.append(
        make_rows(4, 6), {k: v[6:] for k, v in arrays.items()}, {"gunw": names["gunw"][6:]}
    )
    store.close()
    return tmp_path / "store", arrays, names


@pytest.fixture
def factories():
    """(make_rows, make_arrays) for tests that append more chips."""
    return make_rows, make_arrays
