"""ChipStore: co-registered chips of several modalities, on a local disk or any fsspec URL.

Layout (docs/design.md, "Contracts")::

    store/
      store.json      format, version, chip_px, pixel_size_m, the modality specs
      index.parquet   GeoParquet (EPSG:4326), one row per chip: chip_id, geometry, aoi, split,
                      label_* means, <mod>_channels (the chip's valid channel names)
      data.zarr/      zarr v3; per modality: pixels (N, C, H, W) compact dtype, one chunk per
                      (chip, channel) -- per chip for small chips, see `chunk_channels` --
                      inside shards of ``shard_chips`` chips; valid (N, C) bool;
                      names (N, C) str for variable modalities (per-chip slot names)

The index is the commit record: arrays may run ahead of it after an interrupted append, and
reopening with ``mode="a"`` trims them back, so an interrupted ingest resumes cleanly.

Example:
    >>> store = ChipStore.create("world", ["s2rgbm", "s1grdm"], chip_px=64)   # doctest: +SKIP
    >>> store.append(index_gdf, {"s2rgbm": s2, "s1grdm": s1}); store.close()  # doctest: +SKIP
    >>> store = ChipStore.open("world"); store.read_chip("conus_...")["s2rgbm"].data.shape
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import zarr

from eoclip import fsio
from eoclip.errors import EoclipError, StoreError

from . import integrity
from .arrays import chunk_channels, create_arrays, tune_zarr
from .modalities import MAX_NAN_FRACTION, Modality, get_modality
from .writing import LABEL_COLUMNS, StoreWriting

__all__ = [
    "ChipStore",
    "ChipArray",
    "StoreError",
    "UnknownChipError",
    "LABEL_COLUMNS",
    "chunk_channels",
]

FORMAT = "eoclip-chipstore"
VERSION = 1


class UnknownChipError(EoclipError, KeyError):
    """A chip id or position that the store does not hold."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclasses.dataclass
class ChipArray:
    """One chip of one modality.

    Attributes:
        data: float32 (C, H, W) in physical units; NaN in invalid channels.
        valid: bool (C,), which channels hold data.
        names: C channel names ('' for an unused slot of a variable modality).
    """

    data: np.ndarray
    valid: np.ndarray
    names: list[str]


class ChipStore(StoreWriting):
    """Chips of several modalities plus their index; see the module docstring for the layout."""

    def __init__(self, url: str, meta: dict, index: gpd.GeoDataFrame, mode: str):
        self.fs, self.root, self.url = fsio.resolve(url)
        self.meta = meta
        self.mode = mode
        self.modalities: dict[str, Modality] = {
            name: Modality.from_dict(spec, source=f"{self.url}/store.json")
            for name, spec in meta["modalities"].items()
        }
        self.chip_px = int(meta["chip_px"])
        self.pixel_size_m = float(meta["pixel_size_m"])
        self.shard_chips = int(meta["shard_chips"])
        self._index = index.reset_index(drop=True)
        self._positions: dict[str, int] | None = None
        self._valid: dict[str, np.ndarray] = {}
        self._counts: dict[str, np.ndarray] = {}
        self._lists: dict[str, np.ndarray] = {}  # per modality the index's channel lists
        self._group = None
        self._group_pid: int | None = None
        self._handles: dict[str, dict[str, zarr.Array]] = {}
        self._pending = 0
        self.flush_every = 20

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        modalities: Sequence[str | Modality],
        chip_px: int,
        pixel_size_m: float = 10.0,
        shard_chips: int = 256,
        overwrite: bool = False,
        max_nan_fraction: float = MAX_NAN_FRACTION,
    ) -> ChipStore:
        """Create an empty store at ``path`` (a folder or fsspec URL), open for appending."""
        if chip_px < 1 or shard_chips < 1:
            raise ValueError("chip_px and shard_chips must be positive")
        mods = [get_modality(m) for m in modalities]
        if not mods:
            raise ValueError("a ChipStore needs at least one modality")
        if len({m.name for m in mods}) != len(mods):
            raise ValueError(f"duplicate modality names in {[m.name for m in mods]}")
        fs, root, url = fsio.resolve(path)
        if fs.exists(root) and fs.ls(root):
            if not overwrite:
                raise StoreError(f"{url} already exists and is not empty (pass overwrite=True)")
            fs.rm(root, recursive=True)
        fs.makedirs(root, exist_ok=True)
        tune_zarr()
        group = zarr.open_group(fsio.zarr_store(fsio.join(url, "data.zarr"), False), mode="w")
        for m in mods:
            create_arrays(group, m, chip_px, shard_chips)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "chip_px": int(chip_px),
            "pixel_size_m": float(pixel_size_m),
            "shard_chips": int(shard_chips),
            "max_nan_fraction": float(max_nan_fraction),
            "modalities": {m.name: m.to_dict() for m in mods},
        }
        fsio.write_json_atomic(fs, fsio.join(root, "store.json"), meta)
        index = _empty_index(mods)
        fsio.write_parquet_atomic(fs, fsio.join(root, "index.parquet"), index)
        return cls(url, meta, index, mode="a")

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> ChipStore:
        """Open an existing store read-only (``mode="r"``) or to append (``mode="a"``)."""
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")
        fs, root, url = fsio.resolve(path)
        meta_path = fsio.join(root, "store.json")
        if not fs.exists(meta_path):
            raise StoreError(f"{url} is not a ChipStore: {meta_path} is missing")
        try:
            meta = fsio.read_json(fs, meta_path)
        except ValueError as err:
            raise StoreError(f"{url}: corrupt store.json ({err})") from err
        if meta.get("format") != FORMAT:
            raise StoreError(
                f"{url}: store.json is not an {FORMAT} (format={meta.get('format')!r})"
            )
        if meta.get("version", 0) > VERSION:
            raise StoreError(f"{url}: store version {meta['version']} is newer than this eoclip")
        index_path = fsio.join(root, "index.parquet")
        try:
            with fs.open(index_path, "rb") as f:
                index = gpd.read_parquet(io.BytesIO(f.read()))
        except FileNotFoundError as err:
            raise StoreError(f"{url}: index.parquet is missing") from err
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise StoreError(f"{url}: index.parquet is unreadable ({err})") from err
        store = cls(url, meta, index, mode=mode)
        store._check_arrays()
        return store

    def _check_arrays(self) -> None:
        n = len(self._index)
        for name in self.modalities:
            try:
                pix = self.arrays(name)["pixels"]
            except (KeyError, FileNotFoundError) as err:
                raise StoreError(
                    f"{self.url}: data.zarr has no arrays for modality {name}"
                ) from err
            if pix.shape[0] < n:
                raise StoreError(
                    f"{self.url}: {name} holds {pix.shape[0]} chips but the index lists {n}; "
                    "the store is corrupt"
                )
        if self.mode == "a":
            # An append was interrupted after writing pixels but before the index: drop them.
            self.trim()

    # -- zarr access (re-opened per process so DataLoader workers never share handles) ------
    def _zarr_group(self):
        if self._group is None or self._group_pid != os.getpid():
            store = fsio.zarr_store(fsio.join(self.url, "data.zarr"), read_only=self.mode == "r")
            tune_zarr()
            try:
                self._group = zarr.open_group(store, mode="r" if self.mode == "r" else "r+")
            except FileNotFoundError as err:
                raise StoreError(f"{self.url}: data.zarr is missing") from err
            self._group_pid = os.getpid()
            self._handles = {}
        return self._group

    def arrays(self, modality: str) -> dict[str, integrity.CheckedArray]:
        """The arrays of a modality (``pixels``, ``valid``, ``names`` if variable), for bulk
        reads: zarr arrays whose reads fail with ``StoreError`` on missing or corrupt chunks
        (``eoclip.data.integrity.CheckedArray``); handles are cached per process (each lookup
        reads metadata)."""
        self._modality(modality)
        group = self._zarr_group()
        if modality not in self._handles:
            g = group[modality]
            names = ["pixels", "valid"] + (["names"] if self.modalities[modality].variable else [])
            self._handles[modality] = {k: integrity.guarded(self, modality, k, g[k]) for k in names}
        return self._handles[modality]

    def channel_counts(self, modality: str, rows: np.ndarray | None = None) -> np.ndarray:
        """int (N,) (or for ``rows``): valid channels per chip according to the index (cached:
        the integrity checks ask on every read)."""
        if modality not in self._counts:
            lists = self._channel_lists(modality)
            self._counts[modality] = np.fromiter(map(len, lists), np.int64, len(lists))
        return self._counts[modality] if rows is None else self._counts[modality][rows]

    def _channel_lists(self, modality: str) -> np.ndarray:
        """object (N,): each chip's valid channel names from the index (cached: a pandas
        lookup per chip cost more than a training sample's pixels)."""
        if modality not in self._lists:
            self._lists[modality] = self._index[f"{modality}_channels"].to_numpy()
        return self._lists[modality]

    def verify(self, deep: bool = True, progress: bool = False):
        """Scan the whole store for missing or corrupt arrays, files and chunks.

        Args:
            deep: also decode every needed chunk (checksums); False checks existence only.
            progress: show a progress bar.

        Returns:
            An ``eoclip.data.verify.IntegrityReport`` (``.ok``, ``.problems``, ``.to_dict()``).
        """
        from .verify import verify_store

        return verify_store(self, deep=deep, progress=progress)

    def _modality(self, name: str) -> Modality:
        if name not in self.modalities:
            raise KeyError(f"{self.url} has no modality {name!r}; it has {list(self.modalities)}")
        return self.modalities[name]

    def close(self) -> None:
        """Flush and release; the store stays valid on disk."""
        self.flush()
        self._group = None

    def __enter__(self) -> ChipStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    @property
    def index(self) -> gpd.GeoDataFrame:
        """The chip index (a GeoDataFrame; do not modify it in place)."""
        return self._index

    @property
    def chip_ids(self) -> list[str]:
        return self._index["chip_id"].tolist()

    def fingerprint(self) -> str:
        """A sha256 of the store's content version: store.json (modalities, chip size) and the
        index's chip ids, splits and valid channels. Appending or re-ingesting changes it;
        outputs record it so that a rerun on another store is never taken as up to date."""
        h = hashlib.sha256(json.dumps(self.meta, sort_keys=True).encode())
        for col in ["chip_id", "split", *(f"{m}_channels" for m in self.modalities)]:
            values = self._index[col].tolist()
            if col.endswith("_channels"):  # lists or arrays, as read: compare their items
                values = [",".join(map(str, v)) for v in values]
            h.update(col.encode())
            h.update("\x1f".join(map(str, values)).encode())
        return h.hexdigest()

    def position(self, chip: str | int) -> int:
        """Row position of a chip id (or a checked integer position)."""
        if isinstance(chip, int | np.integer):
            if not 0 <= chip < len(self):
                raise UnknownChipError(
                    f"position {chip} out of range for {self.url} ({len(self)} chips)"
                )
            return int(chip)
        if self._positions is None:
            self._positions = {c: i for i, c in enumerate(self._index["chip_id"])}
        try:
            return self._positions[str(chip)]
        except KeyError:
            raise UnknownChipError(f"chip {chip!r} is not in {self.url}") from None

    def valid_mask(self, modality: str) -> np.ndarray:
        """bool (N, C): which channels of each chip hold data (cached).

        Raises:
            StoreError: the array disagrees with the index (a lost or damaged ``valid`` chunk
                would otherwise read as "modality absent").
        """
        if modality not in self._valid:
            valid = np.asarray(self.arrays(modality)["valid"][: len(self)])
            bad = integrity.valid_counts_mismatch(valid, self.channel_counts(modality))
            if len(bad):
                arr = self.arrays(modality)["valid"]
                raise StoreError(
                    f"{self.url}: {modality}/valid disagrees with index.parquet on the channels of "
                    f"chips {integrity.chip_list(self._index['chip_id'].to_numpy()[bad].tolist())} "
                    f"({arr.layout.file((int(bad[0]) // arr.chunks[0], 0))}). To fix: "
                    f"{integrity.FIX}"
                )
            self._valid[modality] = valid
        return self._valid[modality]

    def channel_names(self, modality: str, pos: int | None = None) -> list[str]:
        """Slot names of a modality: fixed names, or a chip's names for a variable modality."""
        m = self._modality(modality)
        if not m.variable:
            return list(m.channels)
        if pos is None:
            raise ValueError(f"{modality} is variable: channel names need a chip position")
        return [str(s) for s in self.arrays(modality)["names"][self.position(pos)]]

    def slot_name(self, modality: str, pos: int, slot: int) -> str:
        """Name of a VALID channel slot, from the index (no array read; hot path of training)."""
        m = self._modality(modality)
        valid = self.valid_mask(modality)[pos]
        if not valid[slot]:
            raise ValueError(f"{modality} slot {slot} of chip {pos} holds no data")
        if not m.variable:
            return m.channels[slot]
        return str(self._channel_lists(modality)[pos][int(valid[:slot].sum())])

    def read_chip(
        self, chip: str | int, modalities: Sequence[str] | None = None
    ) -> dict[str, ChipArray]:
        """All channels of one chip; modalities the chip lacks are left out."""
        pos = self.position(chip)
        out = {}
        for name in modalities or list(self.modalities):
            valid = self.valid_mask(name)[pos]
            if not valid.any():
                continue
            m = self.modalities[name]
            data = m.decode(np.asarray(self.arrays(name)["pixels"][pos]), valid)
            out[name] = ChipArray(data, valid.copy(), self.channel_names(name, pos))
        return out

    def read_channel(self, chip: str | int, modality: str, slot: int) -> np.ndarray:
        """One channel of one chip, float32 (H, W) physical; reads only that chunk."""
        pos = self.position(chip)
        m = self._modality(modality)
        if not 0 <= slot < m.max_channels:
            raise IndexError(f"{modality} has {m.max_channels} channel slots, not {slot}")
        valid = self.valid_mask(modality)[pos, slot]
        return m.decode(self.arrays(modality)["pixels"].take_slots([pos], [slot])[0], valid)

    def __iter__(self) -> Iterator[tuple[str, dict[str, ChipArray]]]:
        for pos, chip_id in enumerate(self.chip_ids):
            yield chip_id, self.read_chip(pos)

    def describe(self) -> dict:
        """Counts per AOI and split, per-modality presence and valid channels, bytes on disk."""
        idx = self._index
        mods = {}
        for name in self.modalities:
            v = self.valid_mask(name)
            present = v.any(axis=1)
            mods[name] = {
                "chips_present": int(present.sum()),
                "fraction_present": float(present.mean()) if len(v) else 0.0,
                "mean_valid_channels": float(v[present].sum(axis=1).mean())
                if present.any()
                else 0.0,
                "channel_slots": int(v.shape[1]),
            }
        try:
            size = int(self.fs.du(self.root))
        except Exception:  # some filesystems cannot sum sizes
            size = -1
        return {
            "url": self.url,
            "chips": len(idx),
            "chip_px": self.chip_px,
            "pixel_size_m": self.pixel_size_m,
            "chips_by_aoi_split": {
                f"{a}/{s}": int(n) for (a, s), n in idx.groupby(["aoi", "split"]).size().items()
            },
            "modalities": mods,
            "bytes_on_disk": size,
        }

    def __repr__(self) -> str:
        return f"ChipStore({self.url!r}, chips={len(self)}, modalities={list(self.modalities)})"


def _empty_index(mods: Sequence[Modality]) -> gpd.GeoDataFrame:
    cols: dict = {
        "chip_id": pd.Series([], dtype=object),
        "aoi": pd.Series([], dtype=object),
        "split": pd.Series([], dtype=object),
    }
    cols.update({c: pd.Series([], dtype="float64") for c in LABEL_COLUMNS})
    cols.update({f"{m.name}_channels": pd.Series([], dtype=object) for m in mods})
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs="EPSG:4326"), crs="EPSG:4326")
