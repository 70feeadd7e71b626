"""Zarr settings of the store's arrays."""

from __future__ import annotations

import numpy as np
import zarr

from eoclip.data.arrays import CODEC_BATCH, tune_zarr
from eoclip.data.store import ChipStore


def test_opening_a_store_batches_zarrs_codec_pipeline(tiny_store):
    path = tiny_store[0]
    with zarr.config.set({"codec_pipeline.batch_size": 1}):  # zarr's default
        store = ChipStore.open(path)
        pixels = np.asarray(store.arrays("s2rgbm")["pixels"][:])
        assert zarr.config.get("codec_pipeline.batch_size") == CODEC_BATCH
    # the batched pipeline reads the bytes zarr's one-chunk-at-a-time pipeline reads
    with zarr.config.set({"codec_pipeline.batch_size": 1}):
        one_by_one = zarr.open_array(path / "data.zarr" / "s2rgbm" / "pixels", mode="r")[:]
    assert pixels.shape[0] == 10
    np.testing.assert_array_equal(pixels, one_by_one)


def test_tune_zarr_keeps_a_batch_size_the_user_chose():
    with zarr.config.set({"codec_pipeline.batch_size": 4}):
        tune_zarr()
        assert zarr.config.get("codec_pipeline.batch_size") == 4
