"""The zarr arrays of one modality in a ChipStore: shapes, chunks, shards and codecs.

Per modality (docs/design.md, "Contracts"): ``pixels`` (N, C, H, W) in the modality's compact
dtype, one chunk per (chip, channel) -- or per chip for small chips, ``chunk_channels`` --
inside shards of ``shard_chips`` chips; ``valid`` (N, C) bool; ``names`` (N, C) str for
variable modalities. Every chunk ends with a crc32c (``eoclip.data.integrity``).
"""

from __future__ import annotations

import numpy as np
from zarr.codecs import BloscCodec, ZstdCodec

from .integrity import CHUNK_CHECKSUM
from .modalities import Modality

__all__ = ["WHOLE_CHIP_CHUNK_BYTES", "chunk_channels", "create_arrays"]

WHOLE_CHIP_CHUNK_BYTES = 512 * 2**10  # a chip's channels in one chunk up to this size


def chunk_channels(m: Modality, chip_px: int) -> int:
    """Channels per zarr chunk: 1 (a random-channel read reads a ninth of the chip), or all
    of them when a chip's channels together take at most ``WHOLE_CHIP_CHUNK_BYTES``: zarr
    spends ~0.3 ms per chunk whatever its size, which dominates small chips (measured on
    64 px chips: a shard read 8x faster, a single-channel read as fast)."""
    whole = m.max_channels * chip_px * chip_px * np.dtype(m.dtype).itemsize
    return m.max_channels if whole <= WHOLE_CHIP_CHUNK_BYTES else 1


def create_arrays(group, m: Modality, chip_px: int, shard_chips: int) -> None:
    """Create the empty (0 chips) arrays of modality ``m`` in a subgroup of ``group``."""
    c = m.max_channels
    g = group.create_group(m.name)
    g.attrs.update({"channels": list(m.channels) if m.channels else None, "units": m.units})
    k = chunk_channels(m, chip_px)
    # lz4 with bit shuffling: 3-4x faster than zarr's default zstd on int16 dB, and smaller
    # (bench/ingest_throughput.py); stores made with zstd keep it (codecs are in the metadata).
    g.create_array(
        "pixels",
        shape=(0, c, chip_px, chip_px),
        dtype=m.dtype,
        fill_value=0,
        chunks=(1, k, chip_px, chip_px),
        shards=(shard_chips, k, chip_px, chip_px),
        # A crc32c after the compressor vouches for every chunk's bytes (eoclip.data.integrity).
        compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"), CHUNK_CHECKSUM],
        dimension_names=("chip", "channel", "y", "x"),
    )
    small = [ZstdCodec(level=0), CHUNK_CHECKSUM]  # zarr's default, plus the crc
    g.create_array(
        "valid",
        shape=(0, c),
        dtype="bool",
        fill_value=False,
        compressors=small,
        chunks=(max(shard_chips, 1024), c),
        dimension_names=("chip", "channel"),
    )
    if m.variable:
        g.create_array(
            "names",
            shape=(0, c),
            dtype=np.dtypes.StringDType(),
            fill_value="",
            compressors=small,
            chunks=(max(shard_chips, 1024), c),
            dimension_names=("chip", "channel"),
        )
