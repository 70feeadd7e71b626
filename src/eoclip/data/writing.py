"""The write path of a ChipStore: append, the reserve / write / commit steps of parallel
ingest, trimming, label updates and the index flush (mixed into `eoclip.data.store.ChipStore`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from eoclip import fsio
from eoclip.errors import StoreError

from .modalities import MAX_NAN_FRACTION, default_slot_names, encode_chips

__all__ = ["LABEL_COLUMNS", "REQUIRED_COLUMNS", "StoreWriting"]

LABEL_COLUMNS = ("label_tree", "label_built", "label_crop", "label_water")
REQUIRED_COLUMNS = ("chip_id", "geometry", "aoi", "split")


class StoreWriting:
    """Writing methods of `ChipStore` (they use its index, arrays and open mode)."""

    def _check_writable(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.url} is open read-only; use ChipStore.open(path, mode='a')")

    def append(
        self,
        index: pd.DataFrame,
        arrays: Mapping[str, np.ndarray],
        channel_names: Mapping[str, Sequence[Sequence[str]]] | None = None,
    ) -> None:
        """Add chips.

        Args:
            index: one row per chip with chip_id, geometry (EPSG:4326), aoi, split and optionally
                label_* columns (missing labels become NaN).
            arrays: per modality a float array (n, C, H, W) in physical units, NaN = missing. A
                modality left out, or an all-NaN chip, is absent for those chips.
            channel_names: per variable modality, for each chip the names of its C slots.
        """
        self._check_writable()
        n_new = len(index)
        channel_names = channel_names or {}
        unknown = set(arrays) - set(self.modalities)
        if unknown:
            raise KeyError(
                f"{self.url} has no modality {sorted(unknown)}; it has {list(self.modalities)}"
            )
        max_nan = self.meta.get("max_nan_fraction", MAX_NAN_FRACTION)
        encoded = {
            name: encode_chips(
                m,
                arrays.get(name),
                channel_names.get(name),
                n_new,
                self.chip_px,
                max_nan,
                where=f"append to {self.url}",
            )
            for name, m in self.modalities.items()
        }
        self.append_encoded(index, encoded)

    def append_encoded(self, index: pd.DataFrame, encoded: Mapping[str, tuple]) -> None:
        """Add chips already encoded for this store (e.g. in worker processes, which then
        send the stored dtypes, a quarter of the float32 bytes).

        Args:
            index: as for ``append``.
            encoded: per modality of the store, ``encode_chips``'s (stored, valid, names)
                with this store's chip size and ``max_nan_fraction``.
        """
        self._check_writable()
        n_new, start = len(index), len(self._index)
        missing = set(self.modalities) - set(encoded)
        if missing:
            raise KeyError(f"append_encoded to {self.url}: no encoding of {sorted(missing)}")
        self.reserve(start + n_new)
        for name, (stored, _, _) in encoded.items():
            self.arrays(name)["pixels"][start : start + n_new] = stored
        self.commit(
            index, {k: v[1] for k, v in encoded.items()}, {k: v[2] for k, v in encoded.items()}
        )

    def reserve(self, n: int) -> None:
        """Grow every array to at least ``n`` chips, so that pixels can be written at positions
        the index does not list yet (``eoclip.data.shardwriter.PixelWriter``); they count only once
        committed."""
        self._check_writable()
        for name in self.modalities:
            for arr in self.arrays(name).values():
                if arr.shape[0] < n:
                    arr.resize((n, *arr.shape[1:]))

    def trim(self) -> None:
        """Drop array rows beyond the index: pixels of an interrupted append, or positions
        reserved and never committed."""
        n = len(self._index)
        for name in self.modalities:
            for arr in self.arrays(name).values():
                if arr.shape[0] > n:
                    arr.resize((n, *arr.shape[1:]))

    def commit(
        self,
        index: pd.DataFrame,
        valid: Mapping[str, np.ndarray],
        slot_names: Mapping[str, np.ndarray],
    ) -> None:
        """Add index rows for chips whose pixels are already written at the next positions.

        The pixels of the ``n`` chips must already be at positions ``len(self)`` to
        ``len(self) + n - 1`` (``append``, or ``eoclip.data.shardwriter.PixelWriter`` after
        ``reserve``). This writes
        their channel validity and names and appends the rows; ``flush`` makes it durable.

        Args:
            index: n rows, as for ``append``.
            valid: per modality bool (n, C) from ``encode_chips``; a modality left out is
                absent for these chips.
            slot_names: per modality (n, C) slot names from ``encode_chips``.
        """
        self._check_writable()
        new = self._validate_new_rows(index)
        n_new, start = len(new), len(self._index)
        for name, m in self.modalities.items():
            arrs = self.arrays(name)
            if arrs["pixels"].shape[0] < start + n_new:
                raise StoreError(
                    f"{self.url}: commit of {n_new} chips at {start} but {name} pixels "
                    f"hold only {arrs['pixels'].shape[0]}; write them first"
                )
            ok = valid.get(name)
            ok = np.zeros((n_new, m.max_channels), bool) if ok is None else np.asarray(ok, bool)
            names = slot_names.get(name)
            if names is None:
                names = default_slot_names(m, n_new)
            if ok.shape != (n_new, m.max_channels) or np.shape(names) != ok.shape:
                raise ValueError(
                    f"commit to {self.url}: {name} validity/names of shape {ok.shape}, "
                    f"expected ({n_new}, {m.max_channels})"
                )
            arrs["valid"][start : start + n_new] = ok
            if m.variable:
                arrs["names"][start : start + n_new] = names
            new[f"{name}_channels"] = [
                [str(nm) for nm, v in zip(row_names, row_ok, strict=True) if v]
                for row_names, row_ok in zip(names, ok, strict=True)
            ]
            if name in self._valid:
                self._valid[name] = np.concatenate([self._valid[name], ok])
        self._counts, self._lists = {}, {}  # taken from the index again on the next read
        self._index = pd.concat([self._index, new], ignore_index=True)
        self._index = gpd.GeoDataFrame(self._index, geometry="geometry", crs="EPSG:4326")
        if self._positions is not None:  # extended, not rebuilt: ingest commits every shard
            self._positions.update((c, start + i) for i, c in enumerate(new["chip_id"]))
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def _validate_new_rows(self, index: pd.DataFrame) -> gpd.GeoDataFrame:
        missing = [c for c in REQUIRED_COLUMNS if c not in index.columns]
        if missing:
            raise ValueError(f"append to {self.url}: index lacks columns {missing}")
        new = gpd.GeoDataFrame(index.copy(), geometry="geometry")
        if new.crs is None:
            new = new.set_crs("EPSG:4326")
        elif not new.crs.equals("EPSG:4326"):
            new = new.to_crs("EPSG:4326")
        new = new.reset_index(drop=True)
        ids = new["chip_id"].astype(str)
        if self._positions is None:
            self._positions = {c: i for i, c in enumerate(self._index["chip_id"])}
        dup = ids[ids.duplicated()].tolist() + sorted(set(ids).intersection(self._positions))
        if dup:
            raise ValueError(f"append to {self.url}: duplicate chip ids {dup[:5]}")
        new["chip_id"] = ids
        for col in ("aoi", "split"):
            new[col] = new[col].astype(str)
        for col in LABEL_COLUMNS:
            new[col] = new[col].astype("float64") if col in new else np.nan
        keep = [*REQUIRED_COLUMNS, *LABEL_COLUMNS]
        return new[keep + [c for c in new.columns if c.startswith("label_") and c not in keep]]

    def update_labels(self, labels: pd.DataFrame) -> None:
        """Merge ``label_*`` columns of ``labels`` (keyed by chip_id) into the index."""
        self._check_writable()
        if "chip_id" not in labels:
            raise ValueError("update_labels needs a chip_id column")
        pos = [self.position(c) for c in labels["chip_id"].astype(str)]
        for col in [c for c in labels.columns if c.startswith("label_")]:
            if col not in self._index:
                self._index[col] = np.nan
            self._index.loc[pos, col] = labels[col].to_numpy(dtype="float64")
        self.flush()

    def flush(self) -> None:
        """Write the index (the commit record of every append so far)."""
        if self.mode == "a":
            idx = self._index
            # pandas reads text back as its `str` dtype, which pyarrow writes as large_string;
            # writing plain objects keeps the file byte-identical across reopen-and-append.
            idx = idx.assign(**{c: idx[c].astype(object) for c in ("chip_id", "aoi", "split")})
            fsio.write_parquet_atomic(self.fs, fsio.join(self.root, "index.parquet"), idx)
            self._pending = 0
