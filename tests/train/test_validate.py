"""Validation batches: a seeded order of chip ids, not the store's (geographic) order."""

from __future__ import annotations

import torch
from train_helpers import make_store, tiny_config

from eoclip.data.dataset import ChipDataset
from eoclip.distributed import DistEnv
from eoclip.model import create_model
from eoclip.train.validate import val_batches, validate


def _chips(batches, ids):
    return [sorted(ids[i] for i in b) for b in batches]


def test_val_batches_cover_each_chip_once_in_a_seeded_order():
    ids = [f"c{i:03d}" for i in range(50)]
    batches = val_batches(ids, 8, seed=1)
    assert [len(b) for b in batches] == [8] * 6 + [2]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(50))
    assert flat != list(range(50))  # not store order: neighbours do not share a batch
    assert val_batches(ids, 8, seed=1) == batches
    assert val_batches(ids, 8, seed=2) != batches
    assert val_batches([], 8, seed=1) == []


def test_val_batches_hold_the_same_chips_whatever_the_store_order():
    ids = [f"c{i:03d}" for i in range(30)]
    shuffled = ids[::-1][10:] + ids[::-1][:10]
    assert _chips(val_batches(ids, 7, 0), ids) == _chips(val_batches(shuffled, 7, 0), shuffled)


def test_validate_scores_every_val_chip_with_seeded_batches(tmp_path):
    store = make_store(tmp_path / "s", n=40, splits=("val",))
    config = tiny_config(tmp_path / "s", tmp_path / "out", batch_size=16, recall_max_chips=20)
    torch.manual_seed(0)
    model = create_model("demo", modalities=store.modalities, img_size=16, **config.model_overrides)
    ds = ChipDataset(store, "val", store.modalities, channels="random", seed=config.val_seed)
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    a = validate(model, ds, config, env, torch.autocast("cpu", enabled=False))
    b = validate(model, ds, config, env, torch.autocast("cpu", enabled=False))
    assert a["val_chips"] == 40 and a["val_loss"] == b["val_loss"]
    assert a["val_loss"] > 0 and a["val_chance_loss"] > 0
    assert a["recall"]  # scored on the first 20 chips of the seeded order
