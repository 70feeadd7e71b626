"""Blocks of whole chips read from a ChipStore's shards without zarr's per-chunk overhead.

zarr-python spends about 0.7 ms on every chunk it decodes, whatever its size: a 256-chip shard
of 64 px chips (one chunk per chip) takes 0.2 s to read through zarr, of which 17 ms are the
blosc decompression itself (README, Measurements). Pretraining, embedding and the channel
statistics read the store in such blocks (the demo reads it whole five times).

`ShardReader` reads the same bytes zarr would: the shard index (through the caller, which
checks its crc32c), one byte range per shard covering the chunks needed, each chunk's crc32c,
then blosc. It only takes arrays whose codecs are exactly the ones a ChipStore writes
(`sharding_indexed` around `bytes` (little-endian) -> `blosc` -> optional `crc32c`, shards
that split no pixel axis), selections of whole chips (`array[lo:hi]`, `take`) and lists of
single (chip, channel) images (`take_slots`: one chunk each, as pretraining and the export's
`random` channel policy read them); anything else is read by zarr as before. A chunk that
fails its checksum or does not decompress raises `ValueError`, which `CheckedArray` turns into
the same `StoreError` naming the chips as a failing zarr read; an absent chunk reads as the
fill value, as in zarr (`CheckedArray` refuses the read first when the chunk is needed).
"""

from __future__ import annotations

from collections.abc import Callable

import google_crc32c
import numcodecs.blosc
import numpy as np
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec

from eoclip import fsio

__all__ = ["EMPTY", "ShardReader", "whole_chips"]

EMPTY = 2**64 - 1  # zarr's shard index marks an absent chunk with (2^64-1, 2^64-1)


def whole_chips(sel) -> bool:
    """Whether the selection `sel` takes whole chips: a step-1 slice of chips (or everything),
    every other axis whole."""
    sel = sel if isinstance(sel, tuple) else (sel,)
    if not sel or (len(sel) == 1 and sel[0] is Ellipsis):
        return True
    first, rest = sel[0], sel[1:]
    if not isinstance(first, slice) or first.step not in (None, 1):
        return False
    return all(s is Ellipsis or (isinstance(s, slice) and s == slice(None)) for s in rest)


class ShardReader:
    """Reads chosen chips (every channel), or chosen (chip, channel) images, of one sharded
    array (see the module docstring).

    Args:
        layout: the array's `eoclip.data.integrity.ArrayLayout`.
        shard_index: key -> the shard's (chunks, 2) uint64 index, or None for a missing file.
    """

    def __init__(self, layout, shard_index: Callable[[tuple[int, int]], np.ndarray | None]):
        self.layout, self.shard_index = layout, shard_index
        array = layout.array
        self.shape, self.outer, self.inner = array.shape, layout.outer, layout.inner
        self.dtype = np.dtype(array.dtype)
        self.fill = array.metadata.fill_value
        self.checksum = isinstance(layout.sharding.codecs[-1], Crc32cCodec)

    @classmethod
    def for_layout(cls, layout, shard_index) -> ShardReader | None:
        """A reader when the array's codecs are the ones it decodes, else None (zarr reads)."""
        sharding, array = layout.sharding, layout.array
        if sharding is None or array.ndim < 2 or np.dtype(array.dtype).kind not in "biuf":
            return None
        codecs = list(sharding.codecs)
        if codecs and isinstance(codecs[-1], Crc32cCodec):
            codecs = codecs[:-1]
        if len(codecs) != 2 or not isinstance(codecs[1], BloscCodec):
            return None
        serializer = codecs[0]
        if not isinstance(serializer, BytesCodec) or (
            np.dtype(array.dtype).itemsize > 1
            and getattr(serializer.endian, "value", None) != "little"
        ):
            return None
        pixels = tuple(array.shape[2:])  # shards and chunks must hold whole images
        if tuple(layout.outer[2:]) != pixels or tuple(layout.inner[2:]) != pixels:
            return None
        return cls(layout, shard_index)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Chips at the sorted, distinct positions `rows`, every channel; only their chunks
        are decoded (a split of a store: its chips, not the whole shards)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        s0, s1 = self.outer[0], self.outer[1]
        blocks = rows // s0
        for b in np.unique(blocks).tolist():
            lo, hi = np.searchsorted(blocks, b), np.searchsorted(blocks, b, side="right")
            for j in range(-(-self.shape[1] // s1)):
                c0, c1 = j * s1, min((j + 1) * s1, self.shape[1])
                self._shard(b, j, rows[lo:hi], c0, c1, out[lo:hi, c0:c1])
        return out

    def take_slots(self, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """The single-channel images (k, H, W) of the pairs (rows[i], slots[i]), in that order:
        one chunk read and decoded per pair (the shard file opened once for its pairs), where
        zarr spends 3-4 ms per 448 px chunk."""
        rows, slots = np.asarray(rows, dtype=np.int64), np.asarray(slots, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[2:]), dtype=self.dtype)
        (s0, s1), (k0, k1) = self.outer[:2], self.inner[:2]
        keys = np.stack([rows // s0, slots // s1], axis=1)
        little = self.dtype.newbyteorder("<")
        for key in np.unique(keys, axis=0).tolist():
            mine = np.flatnonzero((keys[:, 0] == key[0]) & (keys[:, 1] == key[1]))
            index = self.shard_index(tuple(key))
            if index is None:
                out[mine] = self.fill
                continue
            grid = index.reshape(s0 // k0, s1 // k1, 2)
            r, c = rows[mine] - key[0] * s0, slots[mine] - key[1] * s1
            where = grid[r // k0, c // k1]
            order = np.argsort(where[:, 0], kind="stable")  # forward through the file
            path = fsio.join(self.layout.root, self.layout.file(tuple(key)))
            with self.layout.fs.open(path, "rb") as f:
                for i in order.tolist():
                    off, size = (int(v) for v in where[i])
                    if off == EMPTY:
                        out[mine[i]] = self.fill
                        continue
                    f.seek(off)
                    chunk = np.frombuffer(self._decode(f.read(size)), dtype=little)
                    out[mine[i]] = chunk.reshape(self.inner)[r[i] % k0, c[i] % k1]
        return out

    def _shard(self, b: int, j: int, rows: np.ndarray, c0: int, c1: int, out: np.ndarray) -> None:
        """Fill `out` (the sorted array rows `rows`, channels c0:c1) from shard (b, j)."""
        index = self.shard_index((b, j))
        if index is None:
            out[...] = self.fill
            return
        k0, k1 = self.inner[0], self.inner[1]
        per = (self.outer[0] // k0, self.outer[1] // k1)
        local = rows - b * self.outer[0]
        chunk_of = local // k0  # sorted, as rows are
        chunks = np.unique(chunk_of)
        n_chan = -(-(c1 - c0) // k1)
        grid = index.reshape(per[0], per[1], 2)[chunks, :n_chan]
        present = grid[..., 0] != EMPTY
        if not present.all():
            out[...] = self.fill
        if not present.any():
            return
        start = int(grid[..., 0][present].min())
        end = int((grid[..., 0] + grid[..., 1])[present].max())
        path = fsio.join(self.layout.root, self.layout.file((b, j)))
        with self.layout.fs.open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start)
        little = self.dtype.newbyteorder("<")
        for ci, cj in zip(*np.nonzero(present), strict=True):
            off, size = int(grid[ci, cj, 0]) - start, int(grid[ci, cj, 1])
            chunk = np.frombuffer(self._decode(data[off : off + size]), dtype=little)
            chunk = chunk.reshape(self.inner)  # edge chunks are stored padded
            c = int(chunks[ci])
            lo, hi = np.searchsorted(chunk_of, c), np.searchsorted(chunk_of, c, side="right")
            ch = cj * k1  # first channel of the chunk within c0:c1
            n = min(k1, c1 - c0 - ch)
            out[lo:hi, ch : ch + n] = chunk[local[lo:hi] - c * k0, :n]

    def _decode(self, raw: bytes) -> bytes:
        if self.checksum:
            raw, stored = raw[:-4], bytes(raw[-4:])
            if np.uint32(google_crc32c.value(raw)).tobytes() != stored:
                raise ValueError("a chunk fails its crc32c checksum")
        try:
            return numcodecs.blosc.decompress(raw)
        except Exception as err:  # noqa: BLE001 - blosc raises RuntimeError or ValueError
            raise ValueError(f"a chunk does not decompress ({err})") from err
