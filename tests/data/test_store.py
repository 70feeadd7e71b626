import json

import numpy as np
import pytest

from eoclip.data.store import ChipStore, StoreError, UnknownChipError


def test_roundtrip_values_shapes_and_index(tiny_store):
    path, arrays, names = tiny_store
    store = ChipStore.open(path)
    assert len(store) == 10 and list(store.modalities) == ["s2rgbm", "s1grdm", "gunw"]
    chip = store.read_chip("chip0007")
    assert chip["s1grdm"].data.shape == (9, 8, 8)
    np.testing.assert_allclose(chip["s1grdm"].data, arrays["s1grdm"][7], atol=0.005 + 1e-6)
    np.testing.assert_allclose(chip["s2rgbm"].data, arrays["s2rgbm"][7], atol=0.3 / 255)
    assert chip["gunw"].names[:2] == names["gunw"][7] and chip["gunw"].valid.sum() == 2
    idx = store.index
    assert idx.crs.to_epsg() == 4326
    assert list(idx["gunw_channels"].iloc[7]) == names["gunw"][7]
    assert idx["label_tree"].iloc[9] == pytest.approx(80.0) and np.isnan(idx["label_crop"].iloc[0])


def test_missing_modality_and_clouds_are_explicit(tiny_store):
    store = ChipStore.open(tiny_store[0])
    assert "s2rgbm" not in store.read_chip("chip0002")  # absent, never zeros
    assert len(store.index["s2rgbm_channels"].iloc[2]) == 0
    chip1 = store.read_chip(1)["s2rgbm"]
    assert not chip1.valid[4] and np.isnan(chip1.data[4]).all() and chip1.valid.sum() == 8
    assert store.valid_mask("s2rgbm").shape == (10, 9)
    # the small NaN hole was filled, the channel stays valid
    assert np.isfinite(store.read_channel("chip0003", "s1grdm", 0)).all()


def test_read_channel_reads_one_channel(tiny_store):
    path, arrays, _ = tiny_store
    store = ChipStore.open(path)
    np.testing.assert_allclose(store.read_channel(5, "gunw", 0), arrays["gunw"][5, 0], atol=1 / 255)
    with pytest.raises(IndexError, match="slots"):
        store.read_channel(5, "gunw", 8)


def test_layout_is_sharded_and_compact(tiny_store):
    path = tiny_store[0]
    import zarr

    g = zarr.open_group(str(path / "data.zarr"), mode="r")
    pix = g["s2rgbm/pixels"]
    assert pix.dtype == np.uint8 and g["s1grdm/pixels"].dtype == np.int16
    # Small chips: one chunk per chip with all its channels (zarr's per-chunk cost dominates).
    assert pix.chunks == (1, 9, 8, 8) and pix.shards == (4, 9, 8, 8)
    # 10 chips in shards of 4 chips: 3 shard files, not 10 x 9 chunk files
    files = list((path / "data.zarr" / "s2rgbm" / "pixels" / "c").rglob("*"))
    assert len([f for f in files if f.is_file()]) == 3
    meta = json.loads((path / "store.json").read_text())
    assert meta["format"] == "eoclip-chipstore" and meta["chip_px"] == 8


def test_large_chips_get_one_chunk_per_channel(tmp_path):
    # 448 px: a random-channel read then decompresses a ninth of the chip.
    from eoclip.data.modalities import get_modality
    from eoclip.data.store import chunk_channels

    store = ChipStore.create(tmp_path / "s", ["s2rgbm", "s1grdm", "gunw"], chip_px=448)
    for name in store.modalities:
        pix = store.arrays(name)["pixels"]
        assert pix.chunks == (1, 1, 448, 448) and pix.shards == (256, 1, 448, 448)
    assert chunk_channels(get_modality("s1grdm"), 128) == 9  # 9 x 128^2 x int16 = 288 KiB
    assert chunk_channels(get_modality("s1grdm"), 256) == 1  # 1.1 MiB


def test_unknown_chip_and_bad_modality(tiny_store):
    store = ChipStore.open(tiny_store[0])
    with pytest.raises(UnknownChipError, match="chip9999"):
        store.read_chip("chip9999")
    with pytest.raises(UnknownChipError, match="out of range"):
        store.position(10)
    with pytest.raises(KeyError, match="landsat"):
        store.read_channel(0, "landsat", 0)


def test_open_missing_or_corrupt_store(tmp_path, tiny_store):
    with pytest.raises(StoreError, match="store.json is missing"):
        ChipStore.open(tmp_path / "nowhere")
    path = tiny_store[0]
    (path / "index.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(StoreError, match="index.parquet is unreadable"):
        ChipStore.open(path)
    (path / "store.json").write_text("{not json")
    with pytest.raises(StoreError, match="corrupt store.json"):
        ChipStore.open(path)


def test_read_only_and_duplicate_ids(tiny_store, factories):
    make_rows, make_arrays = factories
    path = tiny_store[0]
    arrays, names = make_arrays(2, 8)
    with pytest.raises(StoreError, match="read-only"):
        ChipStore.open(path).append(make_rows(2, 20), arrays, names)
    store = ChipStore.open(path, mode="a")
    with pytest.raises(ValueError, match="duplicate chip ids"):
        store.append(make_rows(2, 8), arrays, names)
    with pytest.raises(ValueError, match="shape"):
        store.append(make_rows(2, 20), {"s2rgbm": np.zeros((2, 9, 4, 4))}, names)
    with pytest.raises(ValueError, match="channel_names"):
        store.append(make_rows(2, 20), arrays)


def test_create_refuses_to_overwrite(tiny_store):
    with pytest.raises(StoreError, match="already exists"):
        ChipStore.create(tiny_store[0], ["s2rgbm"], chip_px=8)
    store = ChipStore.create(tiny_store[0], ["s2rgbm"], chip_px=8, overwrite=True)
    assert len(store) == 0


def test_interrupted_append_is_trimmed_on_resume(tiny_store, factories):
    make_rows, make_arrays = factories
    path = tiny_store[0]
    store = ChipStore.open(path, mode="a")
    store.flush_every = 100  # the index is not rewritten: as if killed after the pixels
    arrays, names = make_arrays(3, 8, seed=5)
    store.append(make_rows(3, 10), arrays, names)
    assert len(ChipStore.open(path)) == 10  # readers only see committed chips
    resumed = ChipStore.open(path, mode="a")
    assert len(resumed) == 10 and resumed.arrays("s2rgbm")["pixels"].shape[0] == 10
    resumed.append(make_rows(3, 10), arrays, names)
    resumed.close()
    again = ChipStore.open(path)
    assert len(again) == 13 and again.read_chip("chip0012")["s1grdm"].data.shape == (9, 8, 8)


def test_update_labels_and_describe(tiny_store):
    import pandas as pd

    store = ChipStore.open(tiny_store[0], mode="a")
    store.update_labels(
        pd.DataFrame({"chip_id": ["chip0001", "chip0004"], "label_crop": [0.25, 0.5]})
    )
    idx = ChipStore.open(tiny_store[0]).index
    assert idx.set_index("chip_id").loc["chip0004", "label_crop"] == 0.5
    with pytest.raises(KeyError, match="chip0999"):
        store.update_labels(pd.DataFrame({"chip_id": ["chip0999"], "label_crop": [1.0]}))
    info = store.describe()
    assert info["chips"] == 10 and info["modalities"]["s2rgbm"]["chips_present"] == 9
    assert info["modalities"]["gunw"]["mean_valid_channels"] == pytest.approx(1.9)
    assert sum(info["chips_by_aoi_split"].values()) == 10 and info["bytes_on_disk"] > 0


def test_memory_url_store(factories):
    make_rows, make_arrays = factories
    arrays, names = make_arrays(5, 8)
    url = "memory://eoclip-test/store"
    with ChipStore.create(url, ["s1grdm", "gunw"], chip_px=8, overwrite=True) as store:
        store.append(make_rows(5), {k: arrays[k] for k in ("s1grdm", "gunw")}, names)
    store = ChipStore.open(url)
    assert len(store) == 5 and store.url == url
    np.testing.assert_allclose(
        store.read_channel(4, "s1grdm", 3), arrays["s1grdm"][4, 3], atol=0.006
    )
    assert [cid for cid, _ in store] == [f"chip{i:04d}" for i in range(5)]


def test_slot_name_matches_the_stored_names_for_valid_slots(tiny_store):
    store = ChipStore.open(tiny_store[0])
    for pos in range(len(store)):
        for mod in ("s2rgbm", "gunw"):
            valid = store.valid_mask(mod)[pos]
            names = store.channel_names(mod, pos)
            for slot in np.flatnonzero(valid):
                assert store.slot_name(mod, pos, int(slot)) == names[slot]
    with pytest.raises(ValueError, match="holds no data"):
        store.slot_name("s2rgbm", 1, 4)  # the clouded channel


def test_slot_names_of_chips_appended_after_a_lookup(tiny_store, factories):
    """The cached channel lists follow the index: a chip committed later has its names."""
    make_rows, make_arrays = factories
    arrays, names = make_arrays(3, 8, seed=5)
    with ChipStore.open(tiny_store[0], mode="a") as store:
        assert store.slot_name("gunw", 0, 0) == names["gunw"][0][0]  # fills the cache
        store.append(make_rows(3, 10), arrays, names)
        for i in range(3):
            assert store.slot_name("gunw", 10 + i, i) == names["gunw"][i][i]
        assert store.channel_counts("gunw")[10:].tolist() == [1, 2, 3]


def test_fingerprint_follows_the_content_version(tiny_store):
    import geopandas as gpd
    import shapely

    path = tiny_store[0]
    first = ChipStore.open(path).fingerprint()
    assert len(first) == 64 and ChipStore.open(path).fingerprint() == first  # reading: same
    store = ChipStore.open(path, mode="a")
    rows = gpd.GeoDataFrame(
        {"chip_id": ["new0"], "aoi": ["conus"], "split": ["train"]},
        geometry=[shapely.box(9, 0, 9.04, 0.04)],
        crs="EPSG:4326",
    )
    store.append(
        rows,
        {
            "s2rgbm": np.full((1, 9, 8, 8), 0.1, np.float32),
            "gunw": np.full((1, 1, 8, 8), 0.5, np.float32),
        },
        channel_names={"gunw": [["20200312_20200217"]]},
    )
    store.close()
    assert ChipStore.open(path).fingerprint() != first  # two more chips: another version


def test_pixel_writer_writes_reserved_shards_and_commit_adds_rows(tmp_path, factories):
    """The parallel-ingest path: reserve, write whole shards from another handle, commit."""
    from eoclip.data.shardwriter import PixelWriter

    make_rows, make_arrays = factories
    arrays, names = make_arrays(6, 8, seed=3)
    store = ChipStore.create(tmp_path / "s", ["s2rgbm", "s1grdm", "gunw"], chip_px=8, shard_chips=4)
    store.reserve(6)
    writer = PixelWriter(tmp_path / "s")
    enc = {
        m: [
            writer.encode(m, arrays[m][i], names["gunw"][i] if m == "gunw" else None)
            for i in range(6)
        ]
        for m in writer.modalities
    }
    block = {m: np.stack([e[0] for e in enc[m]]) for m in enc}
    writer.write(4, {m: b[4:] for m, b in block.items()})  # shard 1 first: order does not matter
    writer.write(0, {m: b[:4] for m, b in block.items()})
    with pytest.raises(ValueError, match="span two shards"):
        writer.write(2, {m: b[:4] for m, b in block.items()})
    with pytest.raises(StoreError, match="not reserved"):
        writer.write(8, {m: b[:1] for m, b in block.items()})
    valid = {m: np.stack([e[1] for e in enc[m]]) for m in enc}
    slots = {m: np.stack([e[2] for e in enc[m]]) for m in enc}
    assert len(ChipStore.open(tmp_path / "s")) == 0  # written, not committed
    with pytest.raises(UnknownChipError):
        store.position("chip0001")
    store.commit(
        make_rows(2), {m: v[:2] for m, v in valid.items()}, {m: v[:2] for m, v in slots.items()}
    )
    store.commit(
        make_rows(4, 2), {m: v[2:] for m, v in valid.items()}, {m: v[2:] for m, v in slots.items()}
    )
    assert store.position("chip0005") == 5 and store.position("chip0001") == 1
    store.close()
    again = ChipStore.open(tmp_path / "s")
    np.testing.assert_allclose(
        again.read_chip("chip0005")["s1grdm"].data, arrays["s1grdm"][5], atol=0.006
    )
    assert again.read_chip("chip0004")["gunw"].names[:1] == names["gunw"][4][:1]


def test_uncommitted_reservation_is_trimmed(tmp_path, factories):
    make_rows, make_arrays = factories
    arrays, names = make_arrays(2, 8)
    store = ChipStore.create(tmp_path / "s", ["s2rgbm", "s1grdm", "gunw"], chip_px=8, shard_chips=4)
    store.append(make_rows(2), arrays, names)
    store.reserve(300)  # an ingest that was killed after reserving
    store.flush()
    assert store.arrays("s2rgbm")["pixels"].shape[0] == 300
    resumed = ChipStore.open(tmp_path / "s", mode="a")
    assert len(resumed) == 2 and resumed.arrays("s2rgbm")["valid"].shape[0] == 2
    with pytest.raises(StoreError, match="write them first"):
        resumed.commit(make_rows(2, 2), {}, {})


def test_store_written_with_zstd_still_opens(tmp_path, factories):
    """Stores made before the lz4 default (zarr's zstd) read as before: codecs are metadata."""
    import zarr
    from zarr.codecs import ZstdCodec

    make_rows, make_arrays = factories
    arrays, names = make_arrays(3, 8, seed=4)
    store = ChipStore.create(tmp_path / "s", ["s2rgbm", "s1grdm", "gunw"], chip_px=8, shard_chips=4)
    store.append(make_rows(3), arrays, names)
    store.close()
    group = zarr.open_group(str(tmp_path / "s" / "data.zarr"), mode="r+")
    for m in ("s2rgbm", "s1grdm", "gunw"):
        old = group[m]["pixels"]
        data, dims = old[:], old.metadata.dimension_names
        del group[m]["pixels"]
        new = group[m].create_array(
            "pixels",
            shape=data.shape,
            dtype=data.dtype,
            fill_value=0,
            chunks=(1, 1, 8, 8),
            shards=(4, 1, 8, 8),
            compressors=ZstdCodec(level=0),
            dimension_names=dims,
        )
        new[:] = data
    again = ChipStore.open(tmp_path / "s")
    assert again.arrays("s1grdm")["pixels"].compressors[0].__class__.__name__ == "ZstdCodec"
    np.testing.assert_allclose(again.read_chip(2)["s1grdm"].data, arrays["s1grdm"][2], atol=0.006)


def test_append_encoded_equals_append(tmp_path, factories):
    """Chips encoded elsewhere (the synthetic world's workers) are stored as append stores them."""
    from eoclip.data.modalities import MAX_NAN_FRACTION, encode_chips

    make_rows, make_arrays = factories
    arrays, names = make_arrays(6, 8, seed=2)
    mods = ["s2rgbm", "s1grdm", "gunw"]
    with ChipStore.create(tmp_path / "a", mods, chip_px=8, shard_chips=4) as a:
        a.append(make_rows(6), arrays, names)
    with ChipStore.create(tmp_path / "b", mods, chip_px=8, shard_chips=4) as b:
        encoded = {
            m: encode_chips(mod, arrays[m], names.get(m), 6, 8, MAX_NAN_FRACTION)
            for m, mod in b.modalities.items()
        }
        with pytest.raises(KeyError, match="gunw"):
            b.append_encoded(make_rows(6), {m: encoded[m] for m in ("s2rgbm", "s1grdm")})
        assert len(b) == 0
        b.append_encoded(make_rows(6), encoded)
    a, b = ChipStore.open(tmp_path / "a"), ChipStore.open(tmp_path / "b")
    assert a.index.drop(columns="geometry").equals(b.index.drop(columns="geometry"))
    for m in mods:
        np.testing.assert_array_equal(a.arrays(m)["pixels"][:], b.arrays(m)["pixels"][:])
        np.testing.assert_array_equal(a.valid_mask(m), b.valid_mask(m))
    assert a.read_chip(4)["gunw"].names == b.read_chip(4)["gunw"].names
