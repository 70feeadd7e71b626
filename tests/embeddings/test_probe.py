"""Probe features: every layer, both aggregations, consistent with the tower and the export."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import torch
from shapely.geometry import box

from eoclip.data.store import ChipStore
from eoclip.embeddings.export import EmbedConfig, embed_store
from eoclip.embeddings.probe import layer_names, probe_features, tower_layers
from eoclip.embeddings.table import embedding_matrix, read_embedding_table
from eoclip.model import create_model
from eoclip.train.checkpoint import save_checkpoint

N, PX, DIM, WIDTH = 10, 16, 8, 16


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    rng = np.random.default_rng(1)
    index = gpd.GeoDataFrame(
        {
            "chip_id": [f"p{i:02d}" for i in range(N)],
            "aoi": "conus",
            "split": ["train", "val", "test", "train", "train"] * 2,
        },
        geometry=[box(i * 0.05, 0, i * 0.05 + 0.04, 0.04) for i in range(N)],
        crs="EPSG:4326",
    )
    s2 = rng.uniform(0.0, 0.3, (N, 9, PX, PX)).astype(np.float32)
    s2[2, 7] = np.nan  # chip 2 lacks 03_green
    s1 = rng.uniform(-25, 0, (N, 9, PX, PX)).astype(np.float32)
    s1[4] = np.nan  # chip 4 lacks s1grdm
    gunw = rng.uniform(0, 1, (N, 2, PX, PX)).astype(np.float32)
    names = [["20200312_20200217", "20200224_20200112"]] * N
    with ChipStore.create(
        root / "store", ["s2rgbm", "s1grdm", "gunw"], chip_px=PX, shard_chips=4
    ) as store:
        store.append(
            index, {"s2rgbm": s2, "s1grdm": s1, "gunw": gunw}, channel_names={"gunw": names}
        )
    torch.manual_seed(0)
    model = create_model(
        "demo",
        img_size=PX,
        patch_size=8,
        width=WIDTH,
        depth=2,
        heads=2,
        embed_dim=DIM,
        global_pool="token",
    )
    save_checkpoint(root / "ckpt", model, step=0, epoch=0)
    return root, model.eval()


def test_tower_layers_end_in_the_towers_own_output(setup):
    _, model = setup
    tower = model.towers["s2rgbm"]
    x = torch.randn(5, 1, PX, PX)
    feats = tower_layers(tower, x)
    assert list(feats) == layer_names(2) == ["patch1", "cls1", "patch2", "cls2", "pooled", "proj"]
    with torch.no_grad():
        tokens = tower.forward_features(x)
        torch.testing.assert_close(feats["pooled"], tower.forward_pool(tokens))
        torch.testing.assert_close(feats["proj"], model.encode("s2rgbm", x))
        # Block 2's class token, normed, is the pooled class token ("token" pooling); the
        # patch features are the mean of the patch tokens.
        torch.testing.assert_close(tower.backbone.norm(feats["cls2"]), feats["pooled"])
    assert feats["patch1"].shape == (5, WIDTH) and feats["proj"].shape == (5, DIM)
    assert not torch.allclose(feats["patch1"], feats["patch2"])


def test_probe_features_match_the_mean_and_stack_exports(setup):
    root, model = setup
    chip_ids, feats = probe_features(model, root / "store", batch_chips=3, progress=False)
    assert chip_ids == [f"p{i:02d}" for i in range(N)]
    assert feats[("patch1", "s2rgbm", "stack")].shape == (N, 9 * WIDTH)
    assert feats[("cls2", "gunw", "stack")].shape == (N, WIDTH)  # variable channels: the mean
    assert feats[("proj", "s1grdm", "mean")].shape == (N, DIM)
    assert np.isnan(feats[("pooled", "s1grdm", "mean")][4]).all()  # chip without s1
    stacked = feats[("proj", "s2rgbm", "stack")].reshape(N, 9, DIM)
    assert np.isnan(stacked[2, 7]).all() and np.isfinite(np.delete(stacked[2], 7, 0)).all()
    for policy in ("mean", "stack"):
        out = embed_store(
            EmbedConfig(
                checkpoint=str(root / "ckpt"),
                store=str(root / "store"),
                out=str(root / f"{policy}.parquet"),
                channels=policy,
                progress=False,
            )
        )
        gdf, _ = read_embedding_table(out)
        for mod in ("s2rgbm", "s1grdm", "gunw"):
            np.testing.assert_allclose(
                feats[("proj", mod, policy)], embedding_matrix(gdf, mod)[0], atol=1e-5
            )
