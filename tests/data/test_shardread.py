"""Whole-chip block reads decode shards themselves: the same arrays as zarr, the same errors."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from eoclip.data.shardread import ShardReader, whole_chips
from eoclip.data.store import ChipStore, StoreError

MODS = ["s2rgbm", "s1grdm", "gunw"]


def _store(tmp_path, factories, name: str, n: int = 23):
    make_rows, make_arrays = factories
    arrays, names = make_arrays(n, 8, seed=3)
    arrays["s2rgbm"][5] = np.nan  # a chip without s2: an all-fill chunk
    with ChipStore.create(tmp_path / name, MODS, chip_px=8, shard_chips=8) as store:
        store.append(make_rows(n), arrays, names)  # 3 shards, the last one partial (7 of 8)
    return tmp_path / name


BLOCKS = [(0, 23), (0, 8), (3, 5), (7, 9), (6, 17), (16, 23), (22, 23), (9, 9)]


@pytest.mark.parametrize("chunk", ["chip", "channel"])
def test_blocks_equal_zarrs_reads(tmp_path, factories, monkeypatch, chunk):
    if chunk == "channel":  # 448 px chips: one chunk per channel (shards of one channel)
        monkeypatch.setattr("eoclip.data.arrays.WHOLE_CHIP_CHUNK_BYTES", 0)
    store = ChipStore.open(_store(tmp_path, factories, chunk))
    for mod in MODS:
        pixels = store.arrays(mod)["pixels"]
        per_chunk = 1 if chunk == "channel" else pixels.shape[1]
        assert pixels._fast is not None and pixels.layout.inner[1] == per_chunk
        for lo, hi in BLOCKS:
            got, want = pixels[lo:hi], np.asarray(pixels.array[lo:hi])
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.asarray(pixels), np.asarray(pixels.array[:]))
        np.testing.assert_array_equal(pixels[20:99], np.asarray(pixels.array[20:]))  # clipped
        assert pixels[5:6, 0:2].shape == (1, 2, 8, 8)  # a channel range: zarr reads it
    assert store.read_chip(12)["s1grdm"].data.shape == (9, 8, 8)


@pytest.mark.parametrize("mode", ["r", "a"])  # "a": zarr reads each shard's span of rows
def test_take_gives_the_chosen_chips(tmp_path, factories, mode):
    path = _store(tmp_path, factories, mode)
    with ChipStore.open(path, mode=mode) as store:
        rng = np.random.default_rng(1)
        for mod in MODS:
            pixels = store.arrays(mod)["pixels"]
            whole = np.asarray(pixels.array[:])
            for rows in ([], [0], [22], [1, 2, 9, 15, 16, 22], np.sort(rng.choice(23, 11, False))):
                got = pixels.take(np.asarray(rows, dtype=np.int64))
                assert got.shape == (len(rows), *whole.shape[1:]) and got.dtype == whole.dtype
                np.testing.assert_array_equal(got, whole[np.asarray(rows, dtype=np.int64)])
            with pytest.raises(ValueError, match="sorted"):
                pixels.take(np.array([3, 1]))
            with pytest.raises(IndexError):
                pixels.take(np.array([5, 23]))


@pytest.mark.parametrize("chunk", ["chip", "channel"])
@pytest.mark.parametrize("mode", ["r", "a"])  # "a": zarr reads each pair
def test_take_slots_gives_each_chosen_image_in_order(tmp_path, factories, monkeypatch, chunk, mode):
    if chunk == "channel":
        monkeypatch.setattr("eoclip.data.arrays.WHOLE_CHIP_CHUNK_BYTES", 0)
    with ChipStore.open(_store(tmp_path, factories, chunk + mode), mode=mode) as store:
        rng = np.random.default_rng(2)
        for mod in MODS:
            pixels = store.arrays(mod)["pixels"]
            assert (pixels._fast is not None) == (mode == "r")
            whole = np.asarray(pixels.array[:])
            n, c = whole.shape[:2]
            # unsorted, repeated, across shards and channels, chip 5's all-fill s2 chunks
            rows = np.concatenate([rng.integers(0, n, 40), [5, 22, 0, 5]])
            slots = np.concatenate([rng.integers(0, c, 40), [0, c - 1, 0, 0]])
            got = pixels.take_slots(rows, slots)
            assert got.shape == (44, 8, 8) and got.dtype == whole.dtype
            np.testing.assert_array_equal(got, whole[rows, slots])
            assert pixels.take_slots([], []).shape == (0, 8, 8)
            with pytest.raises(IndexError):
                pixels.take_slots([1, 23], [0, 0])
            with pytest.raises(IndexError):
                pixels.take_slots([1], [c])
            with pytest.raises(ValueError, match="same length"):
                pixels.take_slots([1, 2], [0])
        np.testing.assert_array_equal(  # one channel of one chip, as the training loader reads
            store.read_channel(12, "s1grdm", 4), store.read_chip(12)["s1grdm"].data[4]
        )


def test_writable_stores_and_other_arrays_read_through_zarr(tmp_path, factories):
    path = _store(tmp_path, factories, "s")
    with ChipStore.open(path, mode="a") as store:  # shards may change under a writer
        assert store.arrays("s2rgbm")["pixels"]._fast is None
    store = ChipStore.open(path)
    assert store.arrays("s2rgbm")["valid"]._fast is None  # not sharded
    assert store.arrays("gunw")["names"]._fast is None  # strings
    layout = store.arrays("s1grdm")["pixels"].layout
    assert ShardReader.for_layout(layout, lambda key: None) is not None


def test_a_zstd_array_reads_through_zarr(tmp_path, factories):
    path = _store(tmp_path, factories, "z")
    group = zarr.open_group(str(path / "data.zarr"), mode="r+")
    old = group["s1grdm"]["pixels"]
    data = old[:]
    del group["s1grdm"]["pixels"]
    new = group["s1grdm"].create_array(
        "pixels", shape=data.shape, dtype=data.dtype, chunks=old.chunks, shards=old.shards
    )  # zarr's default codecs: zstd, no checksum
    new[:] = data
    pixels = ChipStore.open(path).arrays("s1grdm")["pixels"]
    assert pixels._fast is None
    np.testing.assert_array_equal(pixels[0:23], data)


def test_a_flipped_byte_fails_the_block_read_naming_the_chip(tmp_path, factories):
    path = _store(tmp_path, factories, "f")
    store = ChipStore.open(path)
    layout = store.arrays("s1grdm")["pixels"].layout
    index = layout.shard_index((1, 0))  # chips 8..15
    offset = int(index[3, 0]) + 10  # inside chip 11's compressed bytes
    shard = path / layout.file((1, 0))
    data = bytearray(shard.read_bytes())
    data[offset] ^= 0xFF
    shard.write_bytes(bytes(data))
    pixels = ChipStore.open(path).arrays("s1grdm")["pixels"]
    with pytest.raises(StoreError, match=r"fail to decode.*chip0011"):
        pixels[0:23]
    with pytest.raises(StoreError, match=r"fail to decode.*chip0011"):
        pixels.take(np.array([2, 11, 20]))
    with pytest.raises(StoreError, match=r"fail to decode.*chip0011"):
        pixels.take_slots(np.array([2, 11]), np.array([0, 3]))
    np.testing.assert_array_equal(  # another chip of the damaged shard still reads
        pixels.take_slots(np.array([10, 12]), np.array([3, 0])),
        np.stack([pixels.array[10, 3], pixels.array[12, 0]]),
    )
    want = np.stack([pixels.array[10], pixels.array[12]])  # chip 11 is not decoded
    np.testing.assert_array_equal(pixels.take(np.array([10, 12])), want)
    np.testing.assert_array_equal(pixels[0:8], np.asarray(pixels.array[0:8]))  # others read


def test_a_reader_fault_is_not_reported_as_damage(tmp_path, factories, monkeypatch):
    pixels = ChipStore.open(_store(tmp_path, factories, "b")).arrays("gunw")["pixels"]

    def broken(rows):
        raise TypeError("a bug in the reader")

    monkeypatch.setattr(pixels._fast, "take", broken)
    with pytest.raises(TypeError, match="a bug"):
        pixels[0:4]


def test_whole_chips():
    assert whole_chips(slice(2, 5))
    assert whole_chips((slice(None), slice(None)))
    assert whole_chips(Ellipsis)
    assert whole_chips((slice(3, None), Ellipsis))
    assert whole_chips(slice(8, 4))  # empty
    assert not whole_chips(slice(0, 10, 2))
    assert not whole_chips(3)
    assert not whole_chips((slice(0, 4), 1))
    assert not whole_chips((slice(0, 4), slice(0, 2)))
    assert not whole_chips(np.array([1, 2]))
