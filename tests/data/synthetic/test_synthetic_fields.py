"""Land-cover fields: fractions, continuity across chips, AOI mixes, labels."""

from __future__ import annotations

import numpy as np
import pytest

from eoclip.data.synthetic.fields import (
    AOI_NAMES,
    COVERS,
    AoiFields,
    SmoothField,
    _smooth_on_chip,
    chip_labels,
    chip_rng,
    cover_fractions,
    get_profile,
)

SIZE = 4480.0


def _mean_fractions(aoi: str, n: int = 36, px: int = 32) -> np.ndarray:
    fields, profile = AoiFields.create(0, aoi), get_profile(aoi)
    out = [
        cover_fractions(
            fields,
            profile,
            (i % 6) * SIZE,
            (i // 6) * SIZE,
            SIZE,
            px,
            chip_rng(0, f"{aoi}_{i}", "cover"),
        )
        for i in range(n)
    ]
    return np.stack(out)


def test_fractions_are_a_partition_of_each_pixel():
    frac = _mean_fractions("conus", n=6)
    assert frac.shape == (6, len(COVERS), 32, 32)
    assert frac.dtype == np.float32
    assert frac.min() >= 0 and frac.max() <= 1
    np.testing.assert_allclose(frac.sum(1), 1.0, atol=1e-5)


def test_smooth_field_is_unit_variance_and_continuous_across_chips():
    field = SmoothField.random(np.random.default_rng(1))
    x = np.random.default_rng(2).uniform(0, 1e6, 20000)
    values = field(x, np.random.default_rng(3).uniform(0, 1e6, 20000))
    assert 0.6 < values.std() < 1.4 and abs(values.mean()) < 0.3
    west = _smooth_on_chip(field, 0.0, 0.0, SIZE, 64)
    east = _smooth_on_chip(field, SIZE, 0.0, SIZE, 64)
    north = _smooth_on_chip(field, 0.0, SIZE, SIZE, 64)
    # Neighbouring chips meet without a jump: the step across the seam is like any pixel step.
    step = np.abs(np.diff(west, axis=1)).max()
    assert np.abs(east[:, 0] - west[:, -1]).max() < 3 * step
    assert np.abs(north[-1] - west[0]).max() < 3 * step  # image row 0 is the north edge
    assert np.abs(north[0] - west[0]).max() > np.abs(north[-1] - west[0]).max()


def test_aoi_mixes_differ_as_in_the_real_regions():
    mean = {
        aoi: _mean_fractions(aoi).mean(axis=(0, 2, 3))
        for aoi in ("middle_east", "south_america", "pakistan_india", "china", "conus")
    }
    tree, crop, built, _, bare = range(5)
    assert mean["middle_east"][bare] > 0.5 > mean["south_america"][bare]
    assert mean["south_america"][tree] > 0.4 > 0.1 > mean["middle_east"][tree]
    assert mean["pakistan_india"][crop] == max(m[crop] for m in mean.values())
    assert mean["china"][built] == max(m[built] for m in mean.values())


def test_same_seed_same_chip_other_seed_other_chip():
    a = _mean_fractions("china", n=2)
    np.testing.assert_array_equal(a, _mean_fractions("china", n=2))
    other = cover_fractions(
        AoiFields.create(1, "china"),
        get_profile("china"),
        0,
        0,
        SIZE,
        32,
        chip_rng(1, "china_0", "cover"),
    )
    assert not np.allclose(other, a[0])


def test_labels_follow_the_label_products():
    frac = np.zeros((5, 10, 10), np.float32)
    frac[0] = 0.6  # tree
    frac[4] = 0.4  # bare
    frac[:, :2] = 0
    frac[3, :2] = 1.0  # two rows of open water
    lab = chip_labels(frac)
    assert lab["label_tree"] == pytest.approx(100 * 0.6 * 0.8)  # percent, as MOD44B
    assert lab["label_water"] == pytest.approx(0.2)  # fraction of water-dominated pixels
    assert lab["label_crop"] == 0.0 and lab["label_built"] == 0.0


def test_water_label_is_zero_for_many_chips_but_not_all():
    water = [chip_labels(f)["label_water"] for f in _mean_fractions("conus", n=36)]
    assert 0.2 < np.mean(np.array(water) == 0) < 0.9


def test_unknown_aoi_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown synthetic AOI 'atlantis'"):
        get_profile("atlantis")
    assert set(AOI_NAMES) == {"conus", "middle_east", "pakistan_india", "china", "south_america"}
