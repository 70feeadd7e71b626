"""Rendering: physical ranges, cover physics, clouds, speckle, gunw date pairs."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from eoclip.data.synthetic.fields import get_profile
from eoclip.data.synthetic.render import gunw_pairs, render_gunw, render_s1, render_s2

TREE, CROP, BUILT, WATER, BARE = range(5)
PX = 32
GREEN = np.array([0.5, 0.6, 0.7])


def pure(cover: int, px: int = PX) -> np.ndarray:
    frac = np.zeros((5, px, px), np.float32)
    frac[cover] = 1.0
    return frac


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


CLEAR = dataclasses.replace(get_profile("conus"), cloudiness=0.0)


def test_s2_reflectance_per_cover():
    s2 = {c: render_s2(pure(c), CLEAR, GREEN, rng(), 140.0) for c in (TREE, WATER, BARE, BUILT)}
    for x in s2.values():
        assert x.shape == (9, PX, PX) and x.dtype == np.float32
        assert np.nanmin(x) >= 0.0 and np.nanmax(x) <= 0.3
        assert not np.isnan(x).any()  # no clouds in a cloud-free AOI
    brightness = {c: x.mean() for c, x in s2.items()}
    assert brightness[BARE] > brightness[BUILT] > brightness[TREE] > brightness[WATER] * 0.8
    red, green = s2[TREE][0].mean(), s2[TREE][1].mean()
    assert green > red  # vegetation: dark red, greener


def test_s2_clouds_are_nan_blobs_sometimes_whole_months():
    cloudy = dataclasses.replace(get_profile("south_america"), cloudiness=1.0)
    fractions = []
    for seed in range(30):
        x = render_s2(pure(CROP), cloudy, GREEN, rng(seed), 140.0)
        nan = np.isnan(x).reshape(3, 3, -1)
        assert (nan[:, 0] == nan[:, 1]).all()  # a cloud hides all three bands of its month
        fractions.extend(nan[:, 0].mean(-1))
    fractions = np.array(fractions)
    assert (fractions > 0.2).any()  # heavy clouds: the store invalidates that month
    assert ((fractions > 0) & (fractions < 0.2)).any()  # light clouds: holes the store fills


def test_s1_backscatter_physics_in_db():
    s1 = {c: render_s1(pure(c), CLEAR, GREEN, rng(1)) for c in (TREE, WATER, BARE, BUILT)}
    for x in s1.values():
        assert x.shape == (9, PX, PX)
        finite = x[np.isfinite(x)]
        assert finite.min() > -50 and finite.max() < 30
    vv = {c: np.nanmedian(x[0]) for c, x in s1.items()}
    vh = {c: np.nanmedian(x[1]) for c, x in s1.items()}
    assert vv[WATER] < -15 and vv[BUILT] > -8  # specular water, double-bounce buildings
    assert vh[TREE] > vh[BARE]  # volume scattering of canopies
    x = s1[BARE]
    np.testing.assert_allclose(x[2], x[0] - x[1], atol=1e-4)  # ratio channel is VV - VH (dB)


def test_s1_speckle_is_multiplicative_and_looks_control_it():
    few = render_s1(pure(BARE), CLEAR, GREEN, rng(2), looks=2.0)[0]
    many = render_s1(pure(BARE), CLEAR, GREEN, rng(2), looks=50.0)[0]
    assert few.std() > 2 * many.std()


def test_gunw_pairs_follow_the_paper_rule():
    counts = set()
    for seed in range(200):
        names = gunw_pairs(rng(seed))
        counts.add(len(names))
        assert names == sorted(names) and len(set(names)) == len(names)
        for name in names:
            d2, d1 = (dt.datetime.strptime(s, "%Y%m%d").date() for s in name.split("_"))
            assert dt.date(2020, 1, 1) <= d2 <= dt.date(2020, 3, 31)
            assert 0 < (d2 - d1).days <= 48 and (d2 - d1).days % 12 == 0
    assert counts == set(range(2, 9))


def test_gunw_coherence_by_cover_and_baseline():
    short, long_ = ["20200113_20200101"], ["20200214_20200101"]
    coh = {}
    for c in (TREE, WATER, BARE, BUILT):
        # The same seed for every cover: the same weather, so only the cover differs.
        x = np.stack([render_gunw(pure(c), CLEAR, GREEN, rng(s), short, 4480.0) for s in range(8)])
        assert x.shape == (8, 1, PX, PX) and np.nanmin(x) >= 0 and np.nanmax(x) <= 1
        coh[c] = np.nanmean(x, axis=(1, 2, 3))
    assert (coh[BUILT] > coh[BARE]).all() and (coh[BARE] > coh[TREE]).all()
    assert (coh[TREE] > coh[WATER]).all()
    assert coh[BARE].mean() > 0.45 > 0.25 > coh[TREE].mean()
    decays = [
        np.nanmean(render_gunw(pure(BARE), CLEAR, GREEN, rng(s), long_, 4480.0))
        < np.nanmean(render_gunw(pure(BARE), CLEAR, GREEN, rng(s), short, 4480.0))
        for s in range(5)
    ]
    assert all(decays)


def test_gunw_is_rendered_at_90m_and_upsampled():
    x = render_gunw(pure(CROP, 64), CLEAR, GREEN, rng(4), ["20200113_20200101"], 4480.0)[0]
    assert x.shape == (64, 64)
    # 4480 m / 90 m = 50 coarse pixels per side: blocky after nearest upsampling.
    assert len(np.unique(x[10])) <= 50
    assert (np.diff(x[10]) == 0).sum() >= 14


@pytest.mark.parametrize("aoi", ["conus", "middle_east"])
def test_mixed_pixels_render_finite_values(aoi):
    frac = np.full((5, PX, PX), 0.2, np.float32)
    profile = dataclasses.replace(get_profile(aoi), cloudiness=0.0)
    assert np.isfinite(render_s2(frac, profile, GREEN, rng(5), 140.0)).all()
