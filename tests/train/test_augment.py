"""Chip augmentations: one random view shared by every modality of a chip, seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eoclip.data.dataset import ChipDataset
from eoclip.errors import ConfigError
from eoclip.train.augment import ChipAugment


def _sample(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 16, 16, generator=g)
    # Two modalities made of the same image (so a shared view keeps them equal) and a third.
    return {
        "chip_id": "c",
        "a": base.repeat(3, 1, 1),
        "a_valid": torch.ones(3, dtype=torch.bool),
        "b": base.clone(),
        "b_valid": torch.ones(1, dtype=torch.bool),
    }


def _symmetries(x: torch.Tensor) -> list[torch.Tensor]:
    return [
        torch.rot90(f, k, dims=(-2, -1)) for f in (x, torch.flip(x, dims=(-1,))) for k in range(4)
    ]


def test_flip_and_rotation_are_one_symmetry_for_every_modality():
    aug = ChipAugment(flip=True, rot90=True)
    seen = set()
    for i in range(64):
        s = _sample()
        out = aug(s, np.random.default_rng(i))
        assert out["chip_id"] == "c" and torch.equal(out["a_valid"], s["a_valid"])
        match = [j for j, t in enumerate(_symmetries(s["b"])) if torch.equal(t, out["b"])]
        assert len(match) == 1
        seen.add(match[0])
        assert torch.equal(out["a"], out["b"].repeat(3, 1, 1))  # the same view of both
    assert len(seen) == 8  # all eight symmetries of the square occur


def test_crop_keeps_the_size_and_the_pairing_and_is_seeded():
    aug = ChipAugment(crop_scale=0.4)
    s = _sample(1)
    one, two = aug(s, np.random.default_rng(5)), aug(s, np.random.default_rng(5))
    assert one["a"].shape == (3, 16, 16) and torch.equal(one["a"], two["a"])
    assert torch.equal(one["a"][0], one["b"][0])
    assert not torch.equal(one["b"], s["b"])  # a crop smaller than the chip, resized
    assert one["b"].min() >= s["b"].min() - 1e-6 and one["b"].max() <= s["b"].max() + 1e-6
    assert torch.equal(ChipAugment(crop_scale=1.0)(s, np.random.default_rng(0))["b"], s["b"])


def test_config_mapping_and_bad_values():
    assert ChipAugment.from_dict({}) is None and ChipAugment.from_dict({"flip": False}) is None
    assert ChipAugment.from_dict({"rot90": True}) == ChipAugment(rot90=True)
    with pytest.raises(ValueError, match="unknown keys.*allowed"):
        ChipAugment.from_dict({"rotate": True})
    with pytest.raises(ValueError, match="crop_scale"):
        ChipAugment(crop_scale=0.0)


def test_dataset_transform_rotates_all_modalities_alike_and_keeps_the_channels(tiny_store):
    plain = ChipDataset(tiny_store, "train", channels="random", seed=3)
    aug = ChipDataset(
        tiny_store, "train", channels="random", seed=3, transform=ChipAugment(rot90=True)
    )
    for i in range(6):
        p, a = plain[i], aug[i]
        mods = [m for m in ("s2rgbm", "s1grdm", "gunw") if m in p]
        assert mods == [m for m in ("s2rgbm", "s1grdm", "gunw") if m in a]
        ks = {
            m: [k for k in range(4) if torch.equal(torch.rot90(p[m], k, dims=(-2, -1)), a[m])]
            for m in mods
        }
        common = set.intersection(*(set(v) for v in ks.values()))
        assert common, f"chip {i}: modalities were rotated differently {ks}"
    assert torch.equal(aug[2]["s2rgbm"], aug[2]["s2rgbm"])  # the same (seed, epoch, chip) view


def test_reconstruction_targets_turn_with_the_chip_and_refuse_crops():
    s = _sample()
    s["a_target"] = s["a"][:, ::8, ::8].clone()  # a 2 x 2 grid of the same image
    s["b_target"] = s["b"][:, ::8, ::8].clone()
    aug = ChipAugment(flip=True, rot90=True)
    for i in range(16):
        out = aug(s, np.random.default_rng(i))
        # the transformed target is the same symmetry as the transformed image
        k = [j for j, t in enumerate(_symmetries(s["b"])) if torch.equal(t, out["b"])][0]
        assert torch.equal(out["b_target"], _symmetries(s["b_target"])[k])
        assert torch.equal(out["a_target"], _symmetries(s["a_target"])[k])
    with pytest.raises(ConfigError, match="crop_scale cannot be combined"):
        ChipAugment(crop_scale=0.5)(s, np.random.default_rng(0))
