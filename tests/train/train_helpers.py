"""Tiny seeded ChipStores whose three modalities share a latent signal (so CLIP can learn)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from eoclip.data.store import ChipStore
from eoclip.train import PretrainConfig

CHIP_PX = 16
# A tiny `demo` model: trains a step in milliseconds on a CPU.
TINY_MODEL = {"embed_dim": 16, "width": 32, "depth": 1, "heads": 2, "patch_size": 8}
GUNW_PAIRS = ["20200110_20191229", "20200122_20200110", "20200203_20200122", "20200215_20200203"]


def make_store(
    path: Path, n: int = 40, seed: int = 0, splits=("train",) * 3 + ("val", "test")
) -> ChipStore:
    """`n` chips of CHIP_PX px; every modality is a different rendering of one latent field.

    Splits cycle through `splits`; every 7th chip lacks gunw (all NaN), so the loss and the
    metrics meet absent modalities.
    """
    rng = np.random.default_rng(seed)
    latent = np.kron(rng.normal(size=(n, 4, 4)), np.ones((CHIP_PX // 4, CHIP_PX // 4)))  # (n, H, W)
    z = latent[:, None].astype(np.float32)

    def noise(c: int, scale: float) -> np.ndarray:
        return (scale * rng.normal(size=(n, c, CHIP_PX, CHIP_PX))).astype(np.float32)

    s2 = np.clip(
        0.15 + 0.04 * z * np.linspace(0.8, 1.2, 9)[None, :, None, None] + noise(9, 0.004), 0, 0.3
    )
    vv, vh = -12 + 3 * z + noise(3, 0.3), -18 + 2.5 * z + noise(3, 0.3)
    s1 = np.stack([vv, vh, vv - vh], axis=2).reshape(n, 9, CHIP_PX, CHIP_PX)
    n_gunw = rng.integers(2, 5, size=n)
    gunw = np.full((n, 4, CHIP_PX, CHIP_PX), np.nan, dtype=np.float32)
    names = []
    for i in range(n):
        k = int(n_gunw[i])
        gunw[i, :k] = np.clip(0.45 - 0.15 * z[i] + noise(1, 0.02)[0], 0, 1)[:1].repeat(k, 0)
        names.append(GUNW_PAIRS[:k])
    gunw[::7] = np.nan
    index = gpd.GeoDataFrame(
        {
            "chip_id": [f"c{i:03d}" for i in range(n)],
            "aoi": "tiny",
            "split": [splits[i % len(splits)] for i in range(n)],
            "geometry": [shapely.box(i * 0.05, 0, i * 0.05 + 0.04, 0.04) for i in range(n)],
        },
        crs="EPSG:4326",
    )
    store = ChipStore.create(path, ["s2rgbm", "s1grdm", "gunw"], chip_px=CHIP_PX, shard_chips=16)
    store.append(index, {"s2rgbm": s2, "s1grdm": s1, "gunw": gunw}, channel_names={"gunw": names})
    store.flush()
    return ChipStore.open(path)


def tiny_config(store: Path, out: Path, **overrides) -> PretrainConfig:
    """A CPU config that trains a step in milliseconds; no workers, no progress bar."""
    values = dict(
        store=str(store),
        model="demo",
        model_overrides=dict(TINY_MODEL),
        img_size=CHIP_PX,
        epochs=2,
        batch_size=8,
        lr=3e-3,
        warmup_steps=2,
        min_lr_ratio=0.1,
        num_workers=0,
        out=str(out),
        name="run",
        progress=False,
        log_every=1,
        device="cpu",
        seed=0,
    )
    values.update(overrides)
    return PretrainConfig(**values)
