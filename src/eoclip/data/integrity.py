"""Integrity on read: a chip's pixels come from bytes that exist and check out, or the read
fails with a ``StoreError`` naming the store, the array, the file and the chips.

zarr answers a read of a chunk or shard that is not there with the array's fill value, which
for a ChipStore is a plausible pixel (0). So before zarr reads, a ``CheckedArray`` asks which
chunks the read needs and whether they exist:

- a chunk is *needed* when it holds a valid channel of a committed chip (pixels: the chip's
  ``valid`` row; ``valid`` and ``names``: the chip's channels listed in the index, the commit
  record). Chunks of invalid channels may be absent: they decode to NaN whatever they hold.
- a sharded chunk *exists* when its shard file exists and the shard's index (read once per
  shard and process, its crc32c checked) gives it a byte range inside the file; an unsharded
  chunk when its file exists.

Bytes that do exist are vouched for by zarr's ``crc32c`` codec, which new stores put after the
compressor of every chunk (``CHUNK_CHECKSUM``); a checksum or decompression failure becomes a
``StoreError`` naming the chips whose chunks fail. New stores also write every chunk, even one
equal to the fill value (``WRITE_EMPTY_CHUNKS``), so in them "absent" only ever means damage.
Stores written before keep their codecs (no checksum) and still read; their chunks are
checked for existence the same way. ``valid_counts_mismatch`` cross-checks the ``valid``
array with the index, so a lost ``valid`` chunk is never read as "modality absent".
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import google_crc32c
import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ShardingCodec

from eoclip import fsio
from eoclip.data.shardread import EMPTY, ShardReader, whole_chips
from eoclip.errors import StoreError

__all__ = [
    "CHUNK_CHECKSUM",
    "FIX",
    "WRITE_EMPTY_CHUNKS",
    "ArrayLayout",
    "CheckedArray",
    "chip_list",
    "guarded",
    "has_checksum",
    "valid_counts_mismatch",
    "writable",
]

logger = logging.getLogger(__name__)

CHUNK_CHECKSUM = Crc32cCodec()  # appended to every new array's compressors
WRITE_EMPTY_CHUNKS = {"write_empty_chunks": True}  # every chunk written: absent = damage
FIX = (
    "restore the file from a copy of the store, or ingest these chips into a new store; "
    "ChipStore.verify() lists every damaged chip"
)


def writable(array: zarr.Array) -> zarr.Array:
    """The array configured to write chunks equal to the fill value too (see module doc)."""
    return array.with_config(WRITE_EMPTY_CHUNKS)


def has_checksum(array: zarr.Array) -> bool:
    """Whether the array's chunks carry a crc32c (inside the shards for a sharded array)."""
    codecs = array.metadata.codecs
    if codecs and isinstance(codecs[0], ShardingCodec):
        codecs = codecs[0].codecs
    return any(isinstance(c, Crc32cCodec) for c in codecs)


def chip_list(ids: list[str], limit: int = 8) -> str:
    """``a, b, c`` or ``a, b, ... (12 chips)`` for messages."""
    head = ", ".join(ids[:limit])
    return head if len(ids) <= limit else f"{head}, ... ({len(ids)} chips)"


class ShardDamage(Exception):
    """A shard file whose own chunk index cannot be trusted (message: what is wrong)."""


class ArrayLayout:
    """Where the chunks of one store array live: shard (or chunk) files and, inside a shard,
    which chunk holds which (chip, channel).

    Args:
        fs: the store's filesystem.
        root: the store's path on ``fs``.
        array: the zarr array (axis 0 chips, axis 1 channels, other axes one chunk).
        path: the array's path in ``data.zarr`` (``s1grdm/pixels``).
    """

    def __init__(self, fs, root: str, array: zarr.Array, path: str):
        self.fs, self.root, self.array, self.path = fs, root, array, path
        self.outer = tuple(array.metadata.chunk_grid.chunk_shape)  # shard shape, or chunk shape
        codec = array.metadata.codecs[0] if array.metadata.codecs else None
        self.sharding = codec if isinstance(codec, ShardingCodec) else None
        self.inner = tuple(codec.chunk_shape) if self.sharding else self.outer
        self.per_shard = tuple(o // i for o, i in zip(self.outer, self.inner, strict=True))
        self.chunk_channels = self.inner[1] if len(self.inner) > 1 else 1

    def file(self, key: tuple[int, int]) -> str:
        """Path of the shard (or chunk) file at grid position ``key`` = (chip block, channel
        block), relative to the store root (``data.zarr/s1grdm/pixels/c/1/0/0/0``)."""
        full = key[: len(self.outer)] + (0,) * (len(self.outer) - len(key))
        return f"data.zarr/{self.path}/{self.array.metadata.encode_chunk_key(full)}"

    def key(self, row: np.ndarray, chan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shard grid positions of (row, first channel of the chunk) pairs."""
        return row // self.outer[0], (chan // self.outer[1] if len(self.outer) > 1 else chan * 0)

    def slot(self, row: np.ndarray, chan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions inside the shard's chunk grid (chip, channel) of those pairs."""
        r = (row % self.outer[0]) // self.inner[0]
        c = (chan % self.outer[1]) // self.inner[1] if len(self.outer) > 1 else chan * 0
        return r, c

    def presence(self, key: tuple[int, int]) -> np.ndarray | None:
        """bool (chips, channel chunks) of a shard's chunks that exist; None if the file is
        missing.

        Raises:
            ShardDamage: the shard's index is truncated, fails its crc32c or points outside
                the file (a truncated or overwritten shard).
        """
        if self.sharding is None:
            path = fsio.join(self.root, self.file(key))
            return np.ones((1, 1), bool) if self.fs.exists(path) else None
        return present_chunks(self.shard_index(key), self.per_shard)

    def shard_index(self, key: tuple[int, int]) -> np.ndarray | None:
        """uint64 (chunks, 2): (offset, length) of each chunk in the shard file at ``key``
        (``2**64 - 1`` twice for an absent chunk); None if the file is missing. Sharded
        arrays only.

        Raises:
            ShardDamage: as ``presence``.
        """
        path = fsio.join(self.root, self.file(key))
        n = int(np.prod(self.per_shard))
        crc = any(isinstance(c, Crc32cCodec) for c in self.sharding.index_codecs)
        size = 16 * n + (4 if crc else 0)
        try:
            with self.fs.open(path, "rb") as f:
                total = f.size
                if total < size:
                    raise ShardDamage(
                        f"is {total} bytes, shorter than its chunk index ({size} bytes): truncated"
                    )
                at_end = self.sharding.index_location.value == "end"
                f.seek(total - size if at_end else 0)
                raw = f.read(size)
        except FileNotFoundError:
            return None
        if crc and np.uint32(google_crc32c.value(raw[:-4])).tobytes() != raw[-4:]:
            raise ShardDamage("has a chunk index that fails its crc32c: truncated or overwritten")
        index = np.frombuffer(raw[: 16 * n], "<u8").reshape(n, 2)
        present = index[:, 0] != EMPTY
        data_end = total - size if at_end else total
        if (index[present, 0] + index[present, 1] > data_end).any():
            raise ShardDamage("has chunk byte ranges beyond its end: truncated")
        return index

    def damaged(self, key: tuple[int, int], what: str, chips: str = "") -> StoreError:
        """A StoreError about the file at ``key`` (message: array, file, problem, chips, fix)."""
        on = f"; chips {chips}" if chips else ""
        return StoreError(f"{self.path}: {self.file(key)} {what}{on}. To fix: {FIX}")


def present_chunks(index: np.ndarray | None, per_shard: tuple[int, ...]) -> np.ndarray | None:
    """bool (chips, channel chunks) of the chunks a shard index lists (None: no shard)."""
    if index is None:
        return None
    shape = per_shard[:2] if len(per_shard) > 1 else (per_shard[0], 1)
    return (index[:, 0] != EMPTY).reshape(per_shard).reshape(shape)


class CheckedArray:
    """A zarr array whose reads (``array[sel]``) first check that the chunks they need exist
    and turn zarr's decode errors into ``StoreError``; anything else (``shape``, ``resize``,
    writes) goes to the zarr array. Use ``array[...]`` selections (integers and slices on the
    chip and channel axes); ``.array`` is the unchecked zarr array.

    Args:
        array: the zarr array.
        layout_args: (fs, root, path in data.zarr) for ``ArrayLayout``.
        needed: ``needed(rows, chunk_first_channels, channels_per_chunk)`` -> bool (len(rows),
            len(chunks)): which chunks of those committed chips must exist.
        chip_ids: position -> chip id, for messages.
        n_committed: how many chips the index lists (later positions are not checked).
        url: the store, for messages.
        cache: remember each shard's presence (read-only stores; the shards do not change).
    """

    def __init__(
        self,
        array: zarr.Array,
        layout_args: tuple,
        needed: Callable,
        chip_ids: Callable[[np.ndarray], list[str]],
        n_committed: Callable[[], int],
        url: str,
        cache: bool,
    ):
        self.array = array
        self.layout = ArrayLayout(layout_args[0], layout_args[1], array, layout_args[2])
        self._needed, self._ids, self._n, self.url = needed, chip_ids, n_committed, url
        self._cache: dict[tuple[int, int], np.ndarray | None] | None = {} if cache else None
        self._clean: dict[tuple[int, int], bool] = {}
        # read-only stores: blocks of whole chips skip zarr's ~0.7 ms per chunk (shardread)
        self._fast = ShardReader.for_layout(self.layout, self.shard_index) if cache else None

    def __getattr__(self, name: str):
        return getattr(self.array, name)

    def __setitem__(self, sel, value) -> None:
        self.array[sel] = value
        if self._cache is not None:
            self._cache.clear()
        self._clean.clear()

    def __array__(self, dtype=None, copy=None):
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, sel):
        rows, c_lo, c_hi = _rows_and_channels(sel, self.array.shape)
        self.check(rows, c_lo, c_hi)
        if self._fast is not None and whole_chips(sel):
            return self._fast_take(rows, c_lo, c_hi)  # whole chips of a read-only store
        try:
            return self.array[sel]
        except IndexError:
            raise
        except Exception as err:  # zarr: checksum ValueError, blosc/zstd RuntimeError, ...
            raise self._read_failed(rows, c_lo, c_hi, err) from err

    def _fast_take(self, rows: np.ndarray, c_lo: int, c_hi: int) -> np.ndarray:
        """``ShardReader.take`` of checked rows; damaged bytes (its ValueError) become the
        StoreError of a failing zarr read, a fault of the reader itself propagates."""
        try:
            return self._fast.take(rows)
        except ValueError as err:
            raise self._read_failed(rows, c_lo, c_hi, err) from err

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The chips at the sorted, distinct positions ``rows`` (every channel): what
        ``array[lo:hi][rows - lo]`` gives, decoding only their chunks in a read-only store
        (zarr reads each shard's span of them otherwise)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) > 1 and (np.diff(rows) <= 0).any():
            raise ValueError("take() needs sorted, distinct chip positions")
        if len(rows) and not 0 <= rows[0] <= rows[-1] < self.array.shape[0]:
            raise IndexError(f"chip positions outside 0..{self.array.shape[0] - 1}")
        if self._fast is None:
            s0 = self.layout.outer[0]
            parts = []
            for b in np.unique(rows // s0).tolist():
                mine = rows[rows // s0 == b]
                parts.append(np.asarray(self[int(mine[0]) : int(mine[-1]) + 1])[mine - mine[0]])
            if parts:
                return np.concatenate(parts)
            return np.zeros((0, *self.array.shape[1:]), self.array.dtype)
        c_hi = self.array.shape[1] if self.array.ndim > 1 else 1
        self.check(rows, 0, c_hi)
        return self._fast_take(rows, 0, c_hi)

    def take_slots(self, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """The images (k, H, W) of the (chip, channel) pairs ``(rows[i], slots[i])``, in order:
        ``np.stack([array[r, c] for r, c in zip(rows, slots)])``, decoding one chunk per pair in
        a read-only store (zarr's per-chunk overhead is 3-4 ms at 448 px)."""
        rows, slots = np.asarray(rows, dtype=np.int64), np.asarray(slots, dtype=np.int64)
        shape = self.array.shape
        if rows.shape != slots.shape or rows.ndim != 1:
            raise ValueError("take_slots() needs two 1-d arrays of the same length")
        if len(rows) and not (
            0 <= rows.min() <= rows.max() < shape[0] and 0 <= slots.min() <= slots.max() < shape[1]
        ):
            raise IndexError(f"(chip, channel) pairs outside the array's {shape[:2]}")
        if self._fast is None:  # zarr, one image at a time (each read checks what it needs)
            out = np.empty((len(rows), *shape[2:]), dtype=self.array.dtype)
            for i, (r, c) in enumerate(zip(rows.tolist(), slots.tolist(), strict=True)):
                out[i] = self[r, c]
            return out
        for c in np.unique(slots).tolist():  # what each image needs, channel by channel
            self.check(np.unique(rows[slots == c]), c, c + 1)
        try:
            return self._fast.take_slots(rows, slots)
        except ValueError as err:
            lo, hi = int(slots.min()), int(slots.max()) + 1
            raise self._read_failed(np.unique(rows), lo, hi, err) from err

    def presence(self, key: tuple[int, int]) -> np.ndarray | None:
        """``ArrayLayout.presence``, from the cached shard index when the store is read-only."""
        if self._cache is None or self.layout.sharding is None:
            return self.layout.presence(key)
        return present_chunks(self.shard_index(key), self.layout.per_shard)

    def shard_index(self, key: tuple[int, int]) -> np.ndarray | None:
        """``ArrayLayout.shard_index``, cached per shard when the store is read-only."""
        if self._cache is None:
            return self.layout.shard_index(key)
        if key not in self._cache:
            self._cache[key] = self.layout.shard_index(key)
        return self._cache[key]

    def check(self, rows: np.ndarray, c_lo: int, c_hi: int) -> None:
        """Raise ``StoreError`` unless every chunk needed by the chips at ``rows`` (channels
        ``c_lo:c_hi``) exists."""
        n = self._n()
        rows = rows[rows < n]
        if not len(rows) or c_hi <= c_lo:
            return
        if self._cache is not None:  # read-only: each shard is judged whole, once
            o0, o1 = self.layout.outer[0], self.layout.outer[1] if len(self.layout.outer) > 1 else 1
            blocks = range(c_lo // o1, (c_hi - 1) // o1 + 1)
            if all(self._intact((i, j), n) for i in set((rows // o0).tolist()) for j in blocks):
                return
        k = self.layout.chunk_channels
        firsts = np.arange(c_lo // k * k, c_hi, k)
        need = self._needed(rows, firsts, k)
        rr, cc = np.nonzero(need)
        if not len(rr):
            return
        r, c = rows[rr], firsts[cc]
        k0, k1 = self.layout.key(r, c)
        for key in sorted(set(zip(k0.tolist(), k1.tolist(), strict=True))):
            mine = (k0 == key[0]) & (k1 == key[1])
            missing, what = self.missing(key, r[mine], c[mine])
            if len(missing):
                chips = chip_list(self._ids(np.unique(missing)))
                raise StoreError(f"{self.url}: {self.layout.damaged(key, what, chips)}") from None

    def _intact(self, key: tuple[int, int], n: int) -> bool:
        """Whether every chunk needed by the committed chips of shard ``key`` exists (cached)."""
        if key not in self._clean:
            o0, k = self.layout.outer[0], self.layout.chunk_channels
            rows = np.arange(key[0] * o0, min((key[0] + 1) * o0, n))
            o1 = self.layout.outer[1] if len(self.layout.outer) > 1 else 1
            firsts = np.arange(key[1] * o1, min((key[1] + 1) * o1, self.array.shape[1]), k)
            rr, cc = np.nonzero(self._needed(rows, firsts, k)) if len(rows) else ((), ())
            self._clean[key] = (
                not len(self.missing(key, rows[rr], firsts[cc])[0]) if len(rr) else True
            )
        return self._clean[key]

    def missing(self, key: tuple[int, int], r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, str]:
        """Which of the (chip, chunk) pairs ``r, c`` in shard ``key`` lack bytes, and why."""
        try:
            present = self.presence(key)
        except ShardDamage as err:
            return r, str(err)
        if present is None:
            return r, "is missing"
        s0, s1 = self.layout.slot(r, c)
        return r[~present[s0, s1]], "lacks the chunks"

    def _read_failed(self, rows: np.ndarray, c_lo: int, c_hi: int, err: Exception) -> StoreError:
        """The chips whose chunks fail to decode (each chunk read alone), as one StoreError
        naming the first failing file."""
        k = self.layout.chunk_channels
        bad, first = [], None
        for r in rows[:4096].tolist():  # the error path only: a shard at most
            for f in range(c_lo // k * k, max(c_hi, c_lo + 1), k):
                try:
                    self.array[(r, slice(f, f + k)) if self.array.ndim > 1 else r]
                except Exception:
                    bad.append(r)
                    first = first or self.layout.key(np.asarray([r]), np.asarray([f]))
        if first is None:  # the whole read failed, no single chunk: name the first one
            bad, first = rows[:1].tolist(), self.layout.key(rows[:1], np.asarray([c_lo]))
        logger.debug("zarr read of %s failed", self.layout.path, exc_info=err)
        what = f"holds chunks that fail to decode ({type(err).__name__}: {err})"
        key = (int(first[0][0]), int(first[1][0]))
        ids = chip_list(self._ids(np.unique(np.asarray(bad, dtype=np.int64))))
        return StoreError(f"{self.url}: {self.layout.damaged(key, what, ids)}")


def guarded(store, modality: str, key: str, array: zarr.Array) -> CheckedArray:
    """A ChipStore's array ``<modality>/<key>`` as a ``CheckedArray``: pixel chunks that hold a
    valid channel must exist; ``valid``/``names`` chunks of chips the index gives channels."""
    if store.mode == "a":
        array = writable(array)
    if key == "pixels":

        def needed(rows, firsts, k):
            valid = store.valid_mask(modality)[rows]
            return np.stack([valid[:, f : f + k].any(axis=1) for f in firsts], axis=1)
    else:

        def needed(rows, firsts, k):
            counts = store.channel_counts(modality, rows)
            return np.repeat((counts > 0)[:, None], len(firsts), axis=1)

    def chip_ids(pos: np.ndarray) -> list[str]:
        return store.index["chip_id"].to_numpy()[pos].tolist()

    return CheckedArray(
        array,
        (store.fs, store.root, f"{modality}/{key}"),
        needed,
        chip_ids,
        lambda: len(store),
        store.url,
        cache=store.mode == "r",
    )


def _rows_and_channels(sel, shape: tuple[int, ...]) -> tuple[np.ndarray, int, int]:
    """Chip positions (int array) and the channel range [lo, hi) that a selection touches."""
    sel = sel if isinstance(sel, tuple) else (sel,)
    if any(s is Ellipsis for s in sel):  # only the whole-array form `[...]` is used
        sel = ()
    rows = _axis(sel[0] if sel else slice(None), shape[0])
    if len(shape) < 2:
        return rows, 0, 1
    chans = _axis(sel[1] if len(sel) > 1 else slice(None), shape[1])
    return (rows, 0, 0) if not len(chans) else (rows, int(chans.min()), int(chans.max()) + 1)


def _axis(s, n: int) -> np.ndarray:
    if isinstance(s, int | np.integer):
        return np.asarray([range(n)[int(s)]], dtype=np.int64)  # IndexError as numpy would
    if isinstance(s, slice):
        r = range(n)[s]
        return np.arange(r.start, r.stop, r.step, dtype=np.int64)
    return np.arange(n, dtype=np.int64)[np.asarray(s)].ravel()


def valid_counts_mismatch(valid: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Positions whose number of valid channels differs from the index's count.

    Args:
        valid: bool (N, C) as read from the ``valid`` array.
        counts: int (N,) channels per chip listed in the index (``<modality>_channels``).
    """
    n = min(len(valid), len(counts))
    bad = np.flatnonzero(valid[:n].sum(axis=1) != counts[:n])
    return np.concatenate([bad, np.arange(n, max(len(valid), len(counts)))])
