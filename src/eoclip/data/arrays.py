"""The zarr arrays of one modality in a ChipStore: shapes, chunks, shards and codecs.

Per modality (docs/design.md, "Contracts"): ``pixels`` (N, C, H, W) in the modality's compact
dtype, one chunk per (chip, channel) -- or per chip for small chips, ``chunk_channels`` --
inside shards of ``shard_chips`` chips; ``valid`` (N, C) bool; ``names`` (N, C) str for
variable modalities. Every chunk ends with a crc32c (``eoclip.data.integrity``).
"""

from __future__ import annotations

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from .integrity import CHUNK_CHECKSUM
from .modalities import Modality

__all__ = ["CODEC_BATCH", "WHOLE_CHIP_CHUNK_BYTES", "chunk_channels", "create_arrays", "tune_zarr"]

WHOLE_CHIP_CHUNK_BYTES = 512 * 2**10  # a chip's channels in one chunk up to this size
CODEC_BATCH = 16  # chunks zarr's codec pipeline encodes or decodes together (zarr's default: 1)


def tune_zarr() -> None:
    """Let zarr's codec pipeline handle ``CODEC_BATCH`` chunks per step instead of one.

    A store has one chunk per chip (or per chip and channel), so a shard is hundreds of
    chunks; zarr's per-chunk overhead, not the codec, dominates bulk reads and writes. Measured
    on 512 chips of 9 x 64 x 64 uint8 in 256-chip shards (lz4 + bit shuffle + crc32c, best of
    3): write 0.71-0.88 -> 0.51 ms per chunk, read 0.41-0.48 -> 0.28-0.34 ms. At most
    ``CODEC_BATCH`` chunks (<= 16 x 512 KB) are in flight. A value the user set (zarr config or
    ``ZARR_CODEC_PIPELINE__BATCH_SIZE``) is kept; only zarr's default of 1 is raised.
    """
    if zarr.config.get("codec_pipeline.batch_size") == 1:
        zarr.config.set({"codec_pipeline.batch_size": CODEC_BATCH})


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
