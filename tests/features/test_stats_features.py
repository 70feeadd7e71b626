"""Per-chip channel statistics and their EmbeddingTable."""

from __future__ import annotations

import numpy as np
import pytest

from eoclip.data.modalities import get_modality
from eoclip.data.store import ChipStore, StoreError
from eoclip.data.synthetic import WorldConfig, make_world
from eoclip.embeddings.table import embedding_matrix, read_embedding_table
from eoclip.features import (
    STATS,
    channel_stats,
    feature_names,
    quantized_percentiles,
    stats_features,
    stats_table,
    write_stats_table,
)
from eoclip.features import stats as stats_module

WORLD = WorldConfig(
    n_chips_per_aoi=30, chip_px=32, aois=("conus", "china"), seed=5, missing=(0.1, 0.1, 0.15)
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("stats") / "world"
    make_world(path, config=WORLD, progress=False, workers=1).close()
    return ChipStore.open(path)


def test_channel_stats_values_and_nan_handling():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    x[0, 1] = np.nan  # a missing channel
    st = channel_stats(x)
    assert st.shape == (2, 3, len(STATS)) and st.dtype == np.float32
    flat = x[1, 2].ravel()
    np.testing.assert_allclose(
        st[1, 2],
        [flat.mean(), flat.std(), np.percentile(flat, 10), np.percentile(flat, 90)],
        rtol=1e-5,
    )
    assert np.isnan(st[0, 1]).all() and np.isfinite(st[0, [0, 2]]).all()
    x[1, 0, 0, :4] = np.nan  # a few NaN pixels in a valid channel are ignored
    st = channel_stats(x)
    ok = x[1, 0][np.isfinite(x[1, 0])]
    np.testing.assert_allclose(st[1, 0, 0], ok.mean(), rtol=1e-5)
    assert np.isfinite(st[1]).all()


def test_feature_names():
    s2, gunw = get_modality("s2rgbm"), get_modality("gunw")
    assert len(feature_names(s2)) == 36 and feature_names(s2)[:2] == ["01_red_mean", "01_red_std"]
    assert feature_names(gunw) == ["all_mean", "all_std", "all_p10", "all_p90", "count"]


def test_stats_features_follow_the_store(world):
    feats = stats_features(world, progress=False, block_chips=7)
    assert set(feats) == {"s2rgbm", "s1grdm", "gunw"}
    for name, (x, present) in feats.items():
        valid = world.valid_mask(name)
        assert x.shape == (len(world), len(feature_names(world.modalities[name])))
        np.testing.assert_array_equal(present, valid.any(axis=1))
        assert np.isnan(x[~present]).all() and (~present).any()
        if name == "gunw":
            np.testing.assert_array_equal(x[present, 4], valid[present].sum(1))
            assert np.isfinite(x[present]).all()
        else:  # NaN exactly for the statistics of the chip's invalid channels
            nan_channels = np.isnan(x.reshape(len(x), -1, 4)).all(-1)
            np.testing.assert_array_equal(nan_channels[present], ~valid[present])
    # The block size does not change the numbers.
    again = stats_features(world, progress=False)
    for name in feats:
        np.testing.assert_array_equal(again[name][0], feats[name][0])


def test_stats_match_a_chip_read_through_the_store(world):
    pos = int(np.flatnonzero(world.valid_mask("s1grdm").all(1))[0])
    chip = world.read_chip(pos)["s1grdm"].data
    x, _ = stats_features(world, ["s1grdm"], progress=False)["s1grdm"]
    np.testing.assert_allclose(x[pos, 0], chip[0].mean(), rtol=1e-5)
    np.testing.assert_allclose(x[pos, 3], np.percentile(chip[0], 90), rtol=1e-5)


def test_stats_table_is_an_embedding_table(world, tmp_path):
    path = write_stats_table(world.url, tmp_path / "stats.parquet", progress=False)
    gdf, meta = read_embedding_table(path)
    assert meta["source"] == "stats" and meta["modalities"] == ["s2rgbm", "s1grdm", "gunw"]
    assert meta["dims"] == {"s2rgbm": 36, "s1grdm": 36, "gunw": 5}
    assert meta["feature_names"]["gunw"][-1] == "count"
    assert meta["nan_means_missing"] is True  # few-shot reports its NaN entries at INFO
    assert gdf.chip_id.tolist() == world.chip_ids and gdf.crs.to_epsg() == 4326
    for col in ("aoi", "split", "label_tree", "label_water", "checkpoint_hash"):
        assert col in gdf
    X, present = embedding_matrix(gdf, "gunw")
    assert X.shape == (len(world), 5)
    np.testing.assert_array_equal(present, world.valid_mask("gunw").any(1))
    chans = gdf.emb_s2rgbm_channels.map(list)
    assert chans.tolist() == [list(c) for c in world.index.s2rgbm_channels]


def test_bad_input_is_a_clear_error(world, tmp_path):
    with pytest.raises(KeyError, match="no modality 'optical'"):
        stats_features(world, ["optical"], progress=False)
    with pytest.raises(StoreError, match="not a ChipStore"):
        write_stats_table(tmp_path / "nowhere", tmp_path / "x.parquet")
    gdf, meta = stats_table(world, ["gunw"], progress=False)
    assert list(meta["feature_names"]) == ["gunw"] and "emb_s2rgbm" not in gdf


@pytest.mark.parametrize("px", [1, 4, 5, 7, 32])
@pytest.mark.parametrize("name", ["s2rgbm", "s1grdm", "gunw"])
def test_quantized_percentiles_are_numpys_bit_for_bit(name, px, monkeypatch):
    m = get_modality(name)
    rng = np.random.default_rng(px)
    info = np.iinfo(m.dtype)
    stored = rng.integers(info.min, info.max, (3, 5, px, px), endpoint=True).astype(m.dtype)
    stored[0, 0] = stored[0, 0, 0, 0]  # a constant channel
    stored[1, 1] = rng.integers(10, 13, (px, px))  # heavy ties
    want = np.percentile(m.decode(stored).reshape(3, 5, -1), [10, 90], axis=-1)
    got = quantized_percentiles(m, stored)
    assert got.dtype == want.dtype and got.shape == (2, 3, 5)
    np.testing.assert_array_equal(got, want)
    # narrow values (histograms) in small chunks of rows give the same bits
    monkeypatch.setattr(stats_module, "_CHUNK_CELLS", 3)
    narrow = (stored % 50).astype(m.dtype)
    want = np.percentile(m.decode(narrow).reshape(3, 5, -1), [10, 90], axis=-1)
    np.testing.assert_array_equal(quantized_percentiles(m, narrow), want)


def test_order_statistics_take_either_path():
    rng = np.random.default_rng(3)
    for low, high in ((0, 255), (-32768, 32767), (-5, 5)):  # histogram / partition / ties
        flat = rng.integers(low, high, (40, 64), endpoint=True).astype(np.int16)
        ks = np.array([0, 6, 7, 56, 63])
        want = np.sort(flat, axis=1)[:, ks].T
        np.testing.assert_array_equal(stats_module._order_statistics(flat, ks), want)


def test_features_do_not_depend_on_threads_blocks_or_the_fast_percentiles(world, monkeypatch):
    base = stats_features(world, progress=False, threads=1)
    monkeypatch.setattr(stats_module, "_BLOCK_BYTES", 3 * 32 * 32 * 4 * 9)  # 3-chip blocks
    calls = []
    block = stats_module._modality_block
    monkeypatch.setattr(
        stats_module, "_modality_block", lambda m, s, v: calls.append(len(s)) or block(m, s, v)
    )
    threaded = stats_features(world, progress=False, threads=3)
    assert set(calls) == {3} and len(calls) == len(world)  # 3 modalities in blocks of 3
    monkeypatch.setattr(stats_module, "quantized_percentiles_ok", lambda: False)
    slow = stats_features(world, progress=False, threads=2)  # np.percentile of decoded pixels
    for name, (x, present) in base.items():
        for other in (threaded, slow):
            np.testing.assert_array_equal(other[name][0], x)  # NaN in the same places too
            np.testing.assert_array_equal(other[name][1], present)


def test_the_fast_percentiles_pass_their_self_check():
    assert stats_module.quantized_percentiles_ok() is True
