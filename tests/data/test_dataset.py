import numpy as np
import pytest
import torch

from eoclip.data.dataset import ChipDataset, collate_samples
from eoclip.data.store import ChipStore


def test_random_policy_one_valid_channel_deterministic(tiny_store):
    ds = ChipDataset(tiny_store[0], split="train", seed=3)
    assert len(ds) == 6  # splits cycle train x3, test, val
    s = ds[0]
    assert set(s) == {
        "chip_id",
        "s2rgbm",
        "s2rgbm_valid",
        "s1grdm",
        "s1grdm_valid",
        "gunw",
        "gunw_valid",
    }
    assert s["s2rgbm"].shape == (1, 8, 8) and s["s2rgbm"].dtype == torch.float32
    again = ChipDataset(tiny_store[0], split="train", seed=3)
    assert all(torch.equal(ds[i]["s1grdm"], again[i]["s1grdm"]) for i in range(len(ds)))
    picks = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        picks.add(ds[0]["s1grdm"][0, 0, 0].item())
    assert len(picks) > 1  # a new channel per epoch


def test_random_policy_draws_the_seeded_channel(tiny_store):
    """The channel is rng.choice(valid slots) of the (seed, epoch, chip) generator: runs made
    before and after the draw was rewritten pick the same channels."""
    store = ChipStore.open(tiny_store[0])
    ds = ChipDataset(store, split=None, modalities=["gunw"], seed=5, cache=False)
    for epoch in (0, 3):
        ds.set_epoch(epoch)
        for i, pos in enumerate(ds.positions.tolist()):
            valid = store.valid_mask("gunw")[pos]
            slot = int(np.random.default_rng([5, epoch, pos]).choice(np.flatnonzero(valid)))
            want = store.read_channel(pos, "gunw", slot)
            name = store.slot_name("gunw", pos, slot)
            want = store.modalities["gunw"].normalize(want[None], [name])
            assert ds[i]["chip_id"] == store.index["chip_id"].iat[pos]
            np.testing.assert_array_equal(ds[i]["gunw"].numpy(), want)


def test_random_policy_never_picks_an_invalid_channel(tiny_store):
    store = ChipStore.open(tiny_store[0])
    ds = ChipDataset(store, split=None, modalities=["s2rgbm"], seed=0)
    chip1 = ds.positions.tolist().index(1)
    cloudy = store.read_channel(1, "s2rgbm", 4)
    assert np.isnan(cloudy).all()
    for epoch in range(30):
        ds.set_epoch(epoch)
        assert torch.isfinite(ds[chip1]["s2rgbm"]).all() and ds[chip1]["s2rgbm"].abs().sum() > 0


def test_missing_modality_is_absent_and_collate_masks_it(tiny_store):
    ds = ChipDataset(tiny_store[0], split=None)
    samples = [ds[i] for i in range(4)]
    assert "s2rgbm" not in samples[2] and "s2rgbm_valid" not in samples[2]
    batch = collate_samples(samples)
    assert batch["s2rgbm"].shape == (4, 1, 8, 8)
    assert batch["s2rgbm_present"].tolist() == [True, True, False, True]
    assert batch["s2rgbm"][2].abs().sum() == 0 and batch["chip_id"][2] == "chip0002"


def test_all_policy_pads_variable_channels(tiny_store):
    ds = ChipDataset(tiny_store[0], split=None, modalities=["gunw"], channels="all")
    batch = collate_samples([ds[i] for i in range(3)])
    assert batch["gunw"].shape == (3, 8, 8, 8)
    assert batch["gunw_valid"].sum(dim=1).tolist() == [1, 2, 3]


def test_fixed_channel_by_name_and_slot(tiny_store):
    by_name = ChipDataset(tiny_store[0], split=None, channels="02_vh", modalities=["s1grdm"])
    by_slot = ChipDataset(tiny_store[0], split=None, channels=4, modalities=["s1grdm"])
    assert torch.equal(by_name[3]["s1grdm"], by_slot[3]["s1grdm"])
    pair = ChipDataset(tiny_store[0], split=None, channels="20200224_20200112", modalities=["gunw"])
    assert "gunw" not in pair[0] and "gunw" in pair[1]  # chip0 has only the first pair


def test_bad_arguments(tiny_store):
    with pytest.raises(ValueError, match="split 'holdout'"):
        ChipDataset(tiny_store[0], split="holdout")
    with pytest.raises(KeyError, match="landsat"):
        ChipDataset(tiny_store[0], modalities=["landsat"])
    with pytest.raises(ValueError, match="empty"):
        collate_samples([])


def test_aoi_filter(tiny_store):
    ds = ChipDataset(tiny_store[0], split=None, aoi="china")
    assert len(ds) == 5 and all(int(ds[i]["chip_id"][4:]) % 2 == 1 for i in range(len(ds)))


def test_works_in_dataloader_workers(tiny_store):
    from torch.utils.data import DataLoader

    ds = ChipDataset(tiny_store[0], split=None, seed=1)
    loader = DataLoader(ds, batch_size=5, num_workers=2, collate_fn=collate_samples)
    batches = list(loader)
    assert sum(len(b["chip_id"]) for b in batches) == 10
    assert torch.equal(batches[0]["s1grdm"][0], ds[0]["s1grdm"])


@pytest.mark.parametrize("channels", ["random", "all", "01_vv", 0])
def test_cached_split_yields_the_same_samples(tiny_store, channels):
    cached = ChipDataset(tiny_store[0], "train", channels=channels, seed=3, cache=True)
    direct = ChipDataset(tiny_store[0], "train", channels=channels, seed=3, cache=False)
    assert cached._pixels is not None and direct._pixels is None
    assert ChipDataset(tiny_store[0], "train")._pixels is not None  # small: cached by default
    cached.set_epoch(2)
    direct.set_epoch(2)
    for i in range(len(direct)):
        a, b = cached[i], direct[i]
        assert a.keys() == b.keys()
        for key in a:
            if torch.is_tensor(a[key]):
                torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True)
            else:
                assert a[key] == b[key]


@pytest.mark.parametrize("cache", [True, False])
def test_reconstruction_targets_are_cell_means_of_every_channel(tiny_store, cache):
    path, arrays, names = tiny_store
    ds = ChipDataset(path, split=None, seed=0, cache=cache, targets=2)
    store = ChipStore.open(path)
    s2 = store.modalities["s2rgbm"]
    chip = store.read_chip(1, ["s2rgbm", "gunw"])
    t = ds[1]["s2rgbm_target"]
    assert t.shape == (9, 2, 2) and t.dtype == torch.float32
    norm = s2.normalize(chip["s2rgbm"].data, chip["s2rgbm"].names)
    expect = norm.reshape(9, 2, 4, 2, 4).mean(axis=(2, 4))
    assert torch.isnan(t[4]).all()  # the clouded channel is unknown, not zero
    ok = [c for c in range(9) if c != 4]
    np.testing.assert_allclose(t[ok].numpy(), expect[ok], rtol=1e-5, atol=1e-6)
    # A variable modality (date pairs): one map, the mean of the chip's valid pairs.
    g = ds[1]["gunw_target"]
    gunw = store.modalities["gunw"]
    valid = chip["gunw"].valid
    x = gunw.normalize(chip["gunw"].data, chip["gunw"].names)[valid].mean(axis=0)
    assert g.shape == (1, 2, 2) and valid.sum() == 2
    np.testing.assert_allclose(g[0].numpy(), x.reshape(2, 4, 2, 4).mean(axis=(1, 3)), rtol=1e-5)
    # Absent modality: no target; collate fills NaN (nothing to learn) for that row.
    batch = collate_samples([ds[i] for i in range(4)])
    assert "s2rgbm_target" not in ds[2]
    assert batch["s2rgbm_target"].shape == (4, 9, 2, 2)
    assert torch.isnan(batch["s2rgbm_target"][2]).all()
    assert torch.isfinite(batch["s2rgbm_target"][3]).all()
    assert "s2rgbm_target" not in collate_samples([ChipDataset(path, split=None)[0]])


def test_reconstruction_grid_must_divide_the_chip(tiny_store):
    with pytest.raises(ValueError, match="3 cells per side does not divide the 8 px"):
        ChipDataset(tiny_store[0], split=None, targets=3)


def _assert_same_batch(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        if torch.is_tensor(a[key]):
            assert a[key].dtype == b[key].dtype
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        else:
            assert a[key] == b[key]


@pytest.mark.parametrize("split", [None, "train"])
def test_batched_fetch_equals_collated_samples(tiny_store, split):
    from torch.utils.data import DataLoader

    from eoclip.data.dataset import CollatedBatch

    ds = ChipDataset(tiny_store[0], split=split, seed=5)
    assert ds._pixels is not None
    for epoch in range(4):
        ds.set_epoch(epoch)
        rng = np.random.default_rng(epoch)
        for size in (1, 3, len(ds)):
            idx = [int(i) for i in rng.permutation(len(ds))[:size]]
            fast = ds.__getitems__(idx)
            assert isinstance(fast, CollatedBatch)
            _assert_same_batch(collate_samples(fast), collate_samples([ds[i] for i in idx]))
    # chip0002 has no s2: its row is zero and absent; a batch of it alone has no s2 at all
    if split is None:
        alone = collate_samples(ds.__getitems__([2]))
        assert "s2rgbm" not in alone and alone["s1grdm_present"].tolist() == [True]
    # through a DataLoader (torch calls __getitems__), as training does
    loader = DataLoader(ds, batch_size=4, sampler=list(range(len(ds))), collate_fn=collate_samples)
    for k, got in enumerate(loader):
        want = collate_samples([ds[i] for i in range(4 * k, min(4 * k + 4, len(ds)))])
        _assert_same_batch(got, want)


def test_batched_fetch_falls_back_to_samples(tiny_store):
    uncached = ChipDataset(tiny_store[0], split=None, cache=False)
    assert isinstance(uncached.__getitems__([0, 1]), list)
    every = ChipDataset(tiny_store[0], split=None, channels="all")
    batch = collate_samples(every.__getitems__([0, 1, 2]))
    assert batch["s1grdm"].shape == (3, 9, 8, 8)
