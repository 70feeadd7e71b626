"""The synthetic world as a ChipStore: contents, determinism, resumption, CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner
from world_helpers import SMALL

from eoclip.cli.conventions import EoclipGroup
from eoclip.cli.world import parse_aois, register
from eoclip.data.store import ChipStore, StoreError
from eoclip.data.synthetic import WorldConfig, make_world, world_grid


def _digest(root) -> dict[str, str]:
    """md5 of every file of the zarr arrays."""
    out = {}
    for dirpath, _, files in os.walk(os.path.join(root, "data.zarr")):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.md5(open(p, "rb").read()).hexdigest()
    return out


def _index(root) -> pd.DataFrame:
    idx = ChipStore.open(root).index
    return pd.DataFrame({c: idx[c].astype(str) if c == "geometry" else idx[c] for c in idx})


def assert_same_world(a, b):
    assert _digest(a) == _digest(b)
    pd.testing.assert_frame_equal(_index(a), _index(b), check_dtype=False)


def test_index_splits_and_labels(small_world):
    store = ChipStore.open(small_world)
    idx = store.index
    assert len(store) == 60 and store.chip_px == 32 and store.pixel_size_m == 140.0
    assert sorted(idx.aoi.unique()) == ["middle_east", "south_america"]
    assert set(idx.split) == {"train", "val", "test"}
    assert idx.label_tree.between(0, 100).all()
    for task in ("built", "crop", "water"):
        assert idx[f"label_{task}"].between(0, 1).all()
    assert (idx.label_water == 0).mean() > 0.2  # most chips hold no open water: ties at 0
    by_aoi = idx.groupby("aoi")
    assert by_aoi.label_tree.mean()["south_america"] > 3 * by_aoi.label_tree.mean()["middle_east"]


def test_chips_are_a_contiguous_block_per_aoi():
    grid = world_grid(SMALL)
    for _, g in grid.groupby("aoi"):
        extent = (g.col.max() - g.col.min() + 1) * (g.row.max() - g.row.min() + 1)
        assert len(g) == 30 and extent <= 42  # a compact ~6 x 5 block, not scattered chips


def test_modalities_shapes_ranges_and_gaps(small_world):
    store = ChipStore.open(small_world)
    absent = {m: 0 for m in store.modalities}
    partial = {m: 0 for m in store.modalities}
    for pos in range(len(store)):
        chip = store.read_chip(pos)
        for m in store.modalities:
            if m not in chip:
                absent[m] += 1
                continue
            a = chip[m]
            assert a.data.shape[1:] == (32, 32)
            partial[m] += int(not a.valid.all())
            x = a.data[a.valid]
            assert np.isfinite(x).all()
            lo, hi = {"s2rgbm": (0, 0.3), "s1grdm": (-50, 30), "gunw": (0, 1)}[m]
            assert lo <= x.min() and x.max() <= hi + 1e-6
        if "s1grdm" in chip:
            s1 = chip["s1grdm"]
            vv, vh, ratio = s1.data[0], s1.data[1], s1.data[2]
            if s1.valid[:3].all():  # the ratio is VV - VH up to the int16 hundredths of a dB
                assert np.abs(ratio - (vv - vh)).max() < 0.03
    assert all(n >= 1 for n in absent.values()), absent  # some chips lack a modality
    assert partial["s2rgbm"] >= 1  # heavy clouds invalidate a month
    assert partial["gunw"] >= 1  # unused gunw slots / gaps


def test_gunw_variable_pairs_follow_the_date_rule(small_world):
    store = ChipStore.open(small_world)
    counts = []
    for pos in range(len(store)):
        names = [n for n in store.channel_names("gunw", pos) if n]
        if not store.valid_mask("gunw")[pos].any():
            continue
        counts.append(len(names))
        for n in names:
            d2, d1 = (dt.datetime.strptime(s, "%Y%m%d").date() for s in n.split("_"))
            assert dt.date(2020, 1, 1) <= d2 <= dt.date(2020, 3, 31) and 0 < (d2 - d1).days <= 48
        assert list(store.index.gunw_channels[pos]) == [
            n
            for n, ok in zip(
                store.channel_names("gunw", pos), store.valid_mask("gunw")[pos], strict=True
            )
            if ok
        ]
    assert min(counts) >= 2 and max(counts) <= 8 and len(set(counts)) >= 4


def test_same_seed_same_bytes_other_seed_other_world(small_world, tmp_path):
    make_world(tmp_path / "again", config=SMALL, progress=False, workers=1, batch_chips=16)
    assert_same_world(small_world, tmp_path / "again")
    other = dataclasses.replace(SMALL, seed=4)
    make_world(tmp_path / "other", config=other, progress=False, workers=1)
    assert _digest(tmp_path / "other") != _digest(small_world)


def test_parallel_generation_gives_the_same_bytes(small_world, tmp_path):
    make_world(tmp_path / "par", config=SMALL, progress=False, workers=2, batch_chips=20)
    assert_same_world(small_world, tmp_path / "par")


def test_resume_after_an_interruption_gives_the_same_world(small_world, tmp_path):
    out = tmp_path / "resumed"
    store = make_world(out, config=SMALL, progress=False, workers=1, max_chips=17, batch_chips=7)
    assert len(store) == 17
    # A crash in the middle of an append: arrays written, index never committed.
    grid = world_grid(SMALL)
    store.flush_every = 10**6
    from eoclip.data.synthetic.world import _batch

    index, arrays, names = _batch(grid.iloc[17:30], SMALL)
    store.append(index, arrays, channel_names={"gunw": names})  # not flushed
    assert len(ChipStore.open(out)) == 17
    store = make_world(out, config=SMALL, progress=False, workers=1, batch_chips=11)
    assert len(store) == 60
    assert_same_world(small_world, out)
    # A finished world is returned as is.
    assert len(make_world(out, config=SMALL, progress=False)) == 60


def test_other_config_at_the_same_path_is_refused(small_world, tmp_path):
    out = tmp_path / "w"
    make_world(out, config=SMALL, progress=False, max_chips=5)
    with pytest.raises(StoreError, match="different config"):
        make_world(out, config=dataclasses.replace(SMALL, seed=9), progress=False)
    store = make_world(
        out, config=dataclasses.replace(SMALL, seed=9), progress=False, overwrite=True, max_chips=5
    )
    assert len(store) == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_chips_per_aoi": 0}, "n_chips_per_aoi"),
        ({"chip_px": 2}, "chip_px"),
        ({"aois": ("conus", "atlantis")}, "atlantis"),
        ({"aois": ()}, "at least one AOI"),
        ({"aois": ("conus", "conus")}, "duplicate"),
        ({"missing": (0.1, 2.0, 0.1)}, "missing"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WorldConfig(**kwargs)


def test_cli_world(tmp_path):
    app = typer.Typer(cls=EoclipGroup)  # the eoclip app's error handling
    register(app)
    app.callback()(lambda: None)
    out = tmp_path / "cli"
    args = [
        "world",
        "--out",
        str(out),
        "--chips-per-aoi",
        "6",
        "--chip-px",
        "16",
        "--aois",
        "conus, china",
        "--seed",
        "2",
        "--no-progress",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "12 chips" in result.output
    assert sorted(ChipStore.open(out).index.aoi.unique()) == ["china", "conus"]
    bad = CliRunner().invoke(app, [*args[:-3], "--aois", "conus,atlantis"])
    assert bad.exit_code == 1 and "atlantis" in bad.output
    assert parse_aois(" conus ,china,") == ("conus", "china") and parse_aois("") is None
