"""Store integrity: damaged files make reads fail with StoreError, verify lists them, and
`eoclip describe --check` reports them (seeded tiny stores, damaged on purpose)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from eoclip.cli import app
from eoclip.data.dataset import ChipDataset
from eoclip.data.integrity import has_checksum
from eoclip.data.store import ChipStore, StoreError

SHARD1 = "data.zarr/s1grdm/pixels/c/1/0/0/0"  # channel (block) 0 of chips 4..7


def _flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {  # how -> (what to do to the store folder, array named, chip named)
    "deleted shard": (lambda root: (root / SHARD1).unlink(), "s1grdm/pixels", "chip0004"),
    "truncated shard": (lambda root: _truncate(root / SHARD1), "s1grdm/pixels", "chip0004"),
    # byte 5 lies in the shard's first chunk (zarr stores chunks in Morton order): chip0004
    "flipped bytes": (lambda root: _flip(root / SHARD1, 5), "s1grdm/pixels", "chip0004"),
    "deleted valid chunk": (
        lambda root: (root / "data.zarr/s1grdm/valid/c/0/0").unlink(),
        "s1grdm/valid",
        "chip0004",
    ),
}


@pytest.fixture
def layout_store(request, tiny_store, tmp_path, factories, monkeypatch):
    """The tiny store with one chunk per chip, or (rebuilt) one chunk per channel."""
    if request.param == "chip":
        return tiny_store[0]
    monkeypatch.setattr("eoclip.data.arrays.WHOLE_CHIP_CHUNK_BYTES", 0)
    make_rows, make_arrays = factories
    arrays, names = make_arrays(10, 8)
    arrays["s2rgbm"][2] = np.nan
    with ChipStore.create(
        tmp_path / "per_channel", ["s2rgbm", "s1grdm", "gunw"], chip_px=8, shard_chips=4
    ) as store:
        store.append(make_rows(10), arrays, names)
    assert zarr.open_array(str(tmp_path / "per_channel/data.zarr/s1grdm/pixels")).chunks[1] == 1
    return tmp_path / "per_channel"


def test_a_clean_store_verifies_clean(tiny_store):
    store = ChipStore.open(tiny_store[0])
    report = store.verify()
    assert report.ok and report.problems == [] and report.chips == 10 and report.deep
    assert all(report.checksums.values()) and "s1grdm/pixels" in report.checksums
    assert report.lines()[0].endswith("(13 files of 10 chips found and decoded)")
    res = CliRunner().invoke(app, ["describe", str(tiny_store[0]), "--check"])
    assert res.exit_code == 0 and "clean" in res.output
    res = CliRunner().invoke(app, ["describe", str(tiny_store[0]), "--check", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["ok"] is True


def test_every_chunk_is_written_so_absent_means_damage(tiny_store):
    """chip0002 has no s2rgbm: its all-fill chunk exists all the same."""
    store = ChipStore.open(tiny_store[0])
    pixels = store.arrays("s2rgbm")["pixels"]
    assert not store.valid_mask("s2rgbm")[2].any()
    assert pixels.presence((0, 0)).all() and pixels.presence((2, 0))[:2].all()


@pytest.mark.parametrize(
    "layout_store,how",
    [("chip", how) for how in DAMAGE]
    + [("channel", "deleted shard"), ("channel", "flipped bytes")],
    indirect=["layout_store"],
)
def test_damage_fails_reads_and_is_listed(layout_store, how):
    damage, array, chip = DAMAGE[how]
    damage(layout_store)
    store = ChipStore.open(layout_store)
    with pytest.raises(StoreError) as err:
        store.read_chip(chip)
    msg = str(err.value)
    assert array in msg and chip in msg and str(layout_store) in msg and "\n" not in msg
    if array.endswith("pixels"):
        assert SHARD1 in msg
        np.testing.assert_equal(store.read_chip("chip0001")["s1grdm"].valid, True)  # others read
        with pytest.raises(StoreError, match="chip0004"):
            store.read_channel("chip0004", "s1grdm", 0)
    report = ChipStore.open(layout_store).verify()
    assert not report.ok and chip in report.chips_affected()
    assert any(p.array == array and chip in p.chips for p in report.problems)
    if array.endswith("pixels"):  # the damaged shard, and only it
        assert [p.file for p in report.problems] == [SHARD1]
    res = CliRunner().invoke(app, ["describe", str(layout_store), "--check"])
    assert res.exit_code == 1 and chip in res.output and array in res.output
    res = CliRunner().invoke(app, ["describe", str(layout_store), "--check", "--json"])
    out = json.loads(res.output)
    assert res.exit_code == 1 and out["ok"] is False and chip in out["chips_affected"]


def test_a_truncated_shard_is_named_with_the_problem(tiny_store):
    _truncate(tiny_store[0] / SHARD1)
    with pytest.raises(StoreError, match="chunk index that fails its crc32c.*chip0005"):
        ChipStore.open(tiny_store[0]).read_chip(5)
    kinds = {p.kind for p in ChipStore.open(tiny_store[0]).verify().problems}
    assert kinds == {"corrupt"}


def test_a_rewritten_valid_mask_disagrees_with_the_index(tiny_store):
    """A valid chunk replaced by fill values (all False) is not read as "modality absent"."""
    group = zarr.open_group(str(tiny_store[0] / "data.zarr"), mode="r+")
    group["s2rgbm/valid"][3] = False
    store = ChipStore.open(tiny_store[0])
    with pytest.raises(StoreError, match=r"s2rgbm/valid disagrees with index.parquet.*chip0003"):
        store.read_chip("chip0000")
    [problem] = ChipStore.open(tiny_store[0]).verify().problems
    assert problem.kind == "mismatch" and problem.chips == ["chip0003"]
    assert problem.file == "data.zarr/s2rgbm/valid/c/0/0"


def test_variable_names_are_checked_against_the_index(tiny_store):
    group = zarr.open_group(str(tiny_store[0] / "data.zarr"), mode="r+")
    names = group["gunw/names"][:]
    (tiny_store[0] / "data.zarr/gunw/names/c/0/0").unlink()
    with pytest.raises(StoreError, match="gunw/names.*chip0000"):
        ChipStore.open(tiny_store[0]).read_chip("chip0000")
    names[4, 0] = "20200101_20191201"
    group["gunw/names"][:] = names
    [problem] = ChipStore.open(tiny_store[0]).verify().problems
    assert (
        problem.array == "gunw/names"
        and problem.kind == "mismatch"
        and problem.chips == ["chip0004"]
    )


def test_the_training_dataset_fails_on_damage(tiny_store):
    (tiny_store[0] / SHARD1).unlink()
    with pytest.raises(StoreError, match="s1grdm/pixels.*chip0004"):
        ChipDataset(tiny_store[0], split=None, cache=True)  # reads the split's shards up front
    ds = ChipDataset(tiny_store[0], split=None, cache=False, channels="all")
    assert ds[0]["s1grdm"].shape == (9, 8, 8)
    with pytest.raises(StoreError, match="chip0004"):
        ds[4]


def test_a_worker_error_keeps_its_one_line_message():
    """torch re-raises a DataLoader worker's error with the worker's traceback as message."""
    wrapped = (
        "Caught StoreError in DataLoader worker process 0.\nOriginal Traceback (most recent "
        'call last):\n  File "x.py", line 1\neoclip.errors.StoreError: /s: s1grdm/pixels: '
        "data.zarr/s1grdm/pixels/c/1/0/0/0 is missing; chips c001. To fix: ...\n"
    )
    assert str(StoreError(wrapped)) == (
        "/s: s1grdm/pixels: data.zarr/s1grdm/pixels/c/1/0/0/0 is missing; chips c001. To fix: ..."
    )


def _to_old_format(root) -> None:
    """Rewrite every array as stores before checksums were: no crc32c, empty chunks omitted."""
    group = zarr.open_group(str(root / "data.zarr"), mode="r+")
    for m in ("s2rgbm", "s1grdm", "gunw"):
        for key in ("pixels", "valid", "names") if m == "gunw" else ("pixels", "valid"):
            old = group[m][key]
            data, dims, fill = old[:], old.metadata.dimension_names, old.metadata.fill_value
            kw = {"shards": old.shards} if old.shards else {}
            del group[m][key]
            new = group[m].create_array(
                key,
                shape=data.shape,
                dtype=old.dtype,
                fill_value=fill,
                chunks=old.chunks,
                dimension_names=dims,
                **kw,
            )
            new[:] = data


def test_a_store_written_before_checksums_still_reads_and_verifies(tiny_store):
    path, arrays, _ = tiny_store
    _to_old_format(path)
    store = ChipStore.open(path)
    assert not has_checksum(store.arrays("s1grdm")["pixels"].array)
    np.testing.assert_allclose(store.read_chip(7)["s1grdm"].data, arrays["s1grdm"][7], atol=0.006)
    assert "s2rgbm" not in store.read_chip("chip0002")  # its all-zero chunk was never written
    report = store.verify()
    assert report.ok and not any(report.checksums.values())
    assert "without checksums (older store)" in report.lines()[0]
    (path / SHARD1).unlink()
    with pytest.raises(StoreError, match="s1grdm/pixels.*is missing.*chip0004"):
        ChipStore.open(path).read_chip("chip0004")


def test_appending_keeps_checks_consistent(tiny_store, factories):
    """Reads in append mode see chips committed since opening (no stale presence)."""
    make_rows, make_arrays = factories
    arrays, names = make_arrays(3, 8, seed=5)
    store = ChipStore.open(tiny_store[0], mode="a")
    store.read_chip(9)
    store.append(make_rows(3, 10), arrays, names)
    np.testing.assert_allclose(store.read_chip(11)["s1grdm"].data, arrays["s1grdm"][1], atol=0.006)
    store.close()
    assert ChipStore.open(tiny_store[0]).verify().ok
    os.remove(tiny_store[0] / "data.zarr/s1grdm/pixels/c/2/0/0/0")
    assert ChipStore.open(tiny_store[0]).verify().chips_affected() == [
        "chip0008",
        "chip0009",
        "chip0010",
        "chip0011",
    ]
