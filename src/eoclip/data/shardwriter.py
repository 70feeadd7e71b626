"""Writing chips' pixels into reserved positions of a ChipStore from any process.

Parallel ingest workers use ``PixelWriter``: each owns whole shards (positions
``[k * shard_chips, (k + 1) * shard_chips)``), so no two processes ever rewrite the same shard
file, and only the coordinating process commits (``ChipStore.reserve`` before,
``ChipStore.commit`` after): written pixels count once their index rows are committed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import zarr

from eoclip import fsio

from .integrity import writable
from .modalities import MAX_NAN_FRACTION, Modality, encode_chips
from .store import StoreError

__all__ = ["PixelWriter"]


class PixelWriter:
    """Writes chips' pixels at reserved positions of a store, and nothing else (see the module
    docstring). It reads ``store.json`` only, never the index.

    Args:
        url: The store (folder or fsspec URL), created beforehand; its arrays must already
            cover the positions written (``ChipStore.reserve``).
    """

    def __init__(self, url: str | os.PathLike):
        self.fs, self.root, self.url = fsio.resolve(url)
        try:
            self.meta = fsio.read_json(self.fs, fsio.join(self.root, "store.json"))
        except (FileNotFoundError, ValueError) as err:
            raise StoreError(f"{self.url}: no readable store.json ({err})") from err
        self.modalities = {
            name: Modality.from_dict(spec, source=f"{self.url}/store.json")
            for name, spec in self.meta["modalities"].items()
        }
        self.chip_px = int(self.meta["chip_px"])
        self.shard_chips = int(self.meta["shard_chips"])
        self.max_nan_fraction = float(self.meta.get("max_nan_fraction", MAX_NAN_FRACTION))
        group = zarr.open_group(fsio.zarr_store(fsio.join(self.url, "data.zarr"), False), mode="r+")
        # every chunk written, even one equal to the fill value: in a store, absent = damage
        self._pixels = {name: writable(group[name]["pixels"]) for name in self.modalities}

    def encode(self, modality: str, x: np.ndarray | None, names: Sequence[str] | None = None):
        """One chip of one modality to storage: see ``encode_chips`` (with n = 1, no chip axis).

        Returns:
            (stored (C, H, W) in the storage dtype, valid bool (C,), slot names (C,)).
        """
        m = self.modalities[modality]
        stored, valid, slots = encode_chips(
            m,
            None if x is None else x[None],
            None if names is None else [names],
            1,
            self.chip_px,
            self.max_nan_fraction,
            where=f"write to {self.url}",
        )
        return stored[0], valid[0], slots[0]

    def write(self, start: int, stored: Mapping[str, np.ndarray]) -> None:
        """Write (n, C, H, W) stored pixels per modality at positions ``start .. start + n - 1``.

        Raises:
            ValueError: The positions span two shards (two writers could then share one).
            StoreError: The positions were not reserved.
        """
        for name, block in stored.items():
            n = block.shape[0]
            if n == 0:
                continue
            if start // self.shard_chips != (start + n - 1) // self.shard_chips:
                raise ValueError(
                    f"write to {self.url}: positions {start}..{start + n - 1} span two "
                    f"shards of {self.shard_chips} chips"
                )
            arr = self._pixels[name]
            if arr.shape[0] < start + n:
                raise StoreError(
                    f"write to {self.url}: positions up to {start + n - 1} are not "
                    f"reserved ({name} holds {arr.shape[0]})"
                )
            arr[start : start + n] = block
