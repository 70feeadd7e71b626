"""Piecewise reading of an EmbeddingTable: small columns first, then one AOI's vectors at a time.

A paper-scale table (845 K chips x 3 x 768 float32) is 7.8 GB; the few-shot evaluation and the
t-SNE maps need one AOI and one feature set at a time. `TableReader` reads

- the *index* (`chip_id`, `aoi`, `split`, `label_*`): a few bytes per chip, all rows;
- a *scan*: one pass over the vector columns in record batches that keeps, per modality, a bool
  per chip (vector present, all finite, any finite) and a content fingerprint, never the
  vectors;
- the *vectors* of chosen rows of one modality, written straight into a caller's matrix (a
  column block of it for `concat`), again in record batches (pyarrow column projection, and
  only the row groups that hold the rows asked for).

Peak memory is the output matrix plus one record batch, whatever the number of AOIs or sources
in the file. An in-memory frame (tests, notebooks) is served through the same interface.

Vectors holding NaN or inf are counted by the scan so callers can report them. NaN entries
can be legitimate (the channel-statistics baseline has NaN for a channel a chip lacks), so
`read_vectors` either keeps such a vector with its inf entries turned into NaN (a forest
treats NaN as a missing value) or, for methods that cannot take NaN, drops it (a NaN row).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from eoclip.embeddings.table import (
    EMB_PREFIX,
    META_KEY,
    REQUIRED_COLUMNS,
    EmbeddingTableError,
    embedding_matrix,
    embedding_modalities,
    infer_meta,
)

__all__ = ["BATCH_ROWS", "TableReader", "TableScan", "open_tables"]

log = logging.getLogger(__name__)

BATCH_ROWS = 1024  # rows per record batch: 1024 x 2304 float32 = 9 MB in flight
READ_BUFFER = 4 << 20  # bytes read at a time from a column chunk


@dataclass
class TableScan:
    """What one pass over a table's vectors found.

    Attributes:
        valid: modality -> bool (N,), True where the chip has a vector without NaN or inf.
        nonfinite: modality -> bool (N,), True where the vector exists but holds NaN or inf.
        usable: modality -> bool (N,), True where the vector holds at least one finite value.
        fingerprint: content hashes, `{"rows": N, "chips": hex, "label_<t>": hex,
            "emb_<m>": hex}`, independent of file layout, compression and modification time.
    """

    valid: dict[str, np.ndarray]
    nonfinite: dict[str, np.ndarray]
    usable: dict[str, np.ndarray]
    fingerprint: dict = field(default_factory=dict)


class TableReader:
    """An EmbeddingTable opened for piecewise reads (a local/fsspec path or an in-memory frame).

    Args:
        table: path or URL of an EmbeddingTable, or a frame as `read_embedding_table` returns.
        name: how messages call the table (defaults to the path).

    Raises:
        FileNotFoundError: no file at the path.
        EmbeddingTableError: not Parquet, no `eoclip` metadata, or required columns missing.
    """

    def __init__(self, table: str | Path | pd.DataFrame, name: str | None = None) -> None:
        self._frame: pd.DataFrame | None = None
        self.path: str | None = None
        if isinstance(table, pd.DataFrame):
            self._frame = table.reset_index(drop=True)
            self.meta = dict(table.attrs.get(META_KEY) or {})
            columns = list(table.columns)
            self.modalities = embedding_modalities(table)
            self.num_rows = len(table)
        elif isinstance(table, str | Path):
            self.path = str(table)
            self._fs, self._fs_path = fsspec.core.url_to_fs(self.path)
            if not self._fs.exists(self._fs_path):
                raise FileNotFoundError(f"EmbeddingTable not found: {self.path}")
            pf = self._open()
            raw = (pf.schema_arrow.metadata or {}).get(META_KEY.encode())
            columns = list(pf.schema_arrow.names)
            # a table in the EmbeddingTable layout written by another tool: read from its columns
            self.meta = (
                json.loads(raw)
                if raw is not None
                else infer_meta(pd.DataFrame(columns=columns), self.path)
            )
            self.num_rows = pf.metadata.num_rows
            self._group_rows = np.array(
                [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
            )
            mods = self.meta.get("modalities") or [
                c[len(EMB_PREFIX) :]
                for c in columns
                if c.startswith(EMB_PREFIX) and not c.endswith("_channels")
            ]
            self.modalities = [m for m in mods if f"{EMB_PREFIX}{m}" in columns]
        else:
            raise EmbeddingTableError(f"expected a path or a DataFrame, got {type(table).__name__}")
        self.name = name or self.path or "in-memory table"
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise EmbeddingTableError(f"{self.name}: missing column(s) {missing}")
        self.columns = columns
        self.label_columns = [c for c in columns if str(c).startswith("label_")]
        self.dims = {m: int((self.meta.get("dims") or {}).get(m, 0)) for m in self.modalities}

    def _open(self) -> pq.ParquetFile:
        try:
            # no pre-buffering and a small read buffer: a column chunk (16 K rows x 2304 float32
            # is 150 MB) is read a few MB at a time, not whole
            return pq.ParquetFile(
                self._fs.open(self._fs_path, "rb"), pre_buffer=False, buffer_size=READ_BUFFER
            )
        except (pa.ArrowException, OSError) as err:
            raise EmbeddingTableError(f"{self.path}: not a readable Parquet file ({err})") from err

    @property
    def checkpoint_hash(self) -> str | None:
        """What identifies the table's vectors: an export's checkpoint hash, an imported
        product's source hash (`table_identity`), None for tables without either."""
        from eoclip.embeddings.table import table_identity

        return table_identity(self.meta)

    def index(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The small per-chip columns of every row (no vectors, no geometry).

        Args:
            columns: which columns; default `chip_id`, `aoi`, `split` and every `label_*`.

        Returns:
            Frame of N rows in file order (row i is table row i).
        """
        cols = list(columns or [*REQUIRED_COLUMNS, *self.label_columns])
        if self._frame is not None:
            return pd.DataFrame(self._frame[cols]).reset_index(drop=True)
        try:
            pf = self._open()
            return pf.read(columns=cols).to_pandas()
        except (pa.ArrowException, OSError) as err:
            raise EmbeddingTableError(f"{self.path}: cannot read columns {cols} ({err})") from err

    def _batches(self, columns: list[str], row_groups: list[int] | None = None):
        """(first row, RecordBatch) of the file's columns, in order."""
        pf = self._open()
        groups = list(range(len(self._group_rows))) if row_groups is None else row_groups
        starts = np.concatenate([[0], np.cumsum(self._group_rows)])
        for g in groups:  # one row group at a time, so the batch positions are known
            pos = int(starts[g])
            try:
                for batch in pf.iter_batches(BATCH_ROWS, row_groups=[g], columns=columns):
                    yield pos, batch
                    pos += batch.num_rows
            except (pa.ArrowException, OSError) as err:
                raise EmbeddingTableError(f"{self.path}: cannot read {columns} ({err})") from err

    def _frame_batches(self, columns: list[str]):
        for start in range(0, self.num_rows, BATCH_ROWS * 16):
            yield start, self._frame.iloc[start : start + BATCH_ROWS * 16][columns]

    def scan(self) -> TableScan:
        """One pass over every vector column: validity, NaN/inf vectors and a fingerprint."""
        valid = {m: np.zeros(self.num_rows, dtype=bool) for m in self.modalities}
        bad = {m: np.zeros(self.num_rows, dtype=bool) for m in self.modalities}
        usable = {m: np.zeros(self.num_rows, dtype=bool) for m in self.modalities}
        small = [*REQUIRED_COLUMNS, *self.label_columns]
        hashers = {c: hashlib.blake2b(digest_size=16) for c in ["chips", *self.label_columns]}
        presence = {m: hashlib.blake2b(digest_size=16) for m in valid}
        values = {m: hashlib.blake2b(digest_size=16) for m in valid}
        idx = self.index(small)
        for c in ("chip_id", "aoi", "split"):
            hashers["chips"].update(json.dumps(idx[c].astype(str).tolist()).encode())
        for c in self.label_columns:
            hashers[c].update(np.ascontiguousarray(idx[c].to_numpy(np.float64)).tobytes())
        del idx
        for m in self.modalities:
            for start, present, vecs in self._vector_batches(m):
                rows = start + np.flatnonzero(present)
                # two streams, so the digest does not depend on where batches start
                presence[m].update(present.tobytes())
                values[m].update(np.ascontiguousarray(vecs).tobytes())
                finite = np.isfinite(vecs)
                valid[m][rows[finite.all(axis=1)]] = True
                bad[m][rows[~finite.all(axis=1)]] = True
                usable[m][rows[finite.any(axis=1)]] = True
        pa.default_memory_pool().release_unused()  # give the batches' buffers back
        fingerprint = {"rows": int(self.num_rows)}
        fingerprint.update({k: h.hexdigest() for k, h in hashers.items()})
        for m in self.modalities:
            fingerprint[f"{EMB_PREFIX}{m}"] = presence[m].hexdigest()[:16] + values[m].hexdigest()
        return TableScan(valid=valid, nonfinite=bad, usable=usable, fingerprint=fingerprint)

    def _vector_batches(self, modality: str, row_groups: list[int] | None = None):
        """(first row, present bool (b,), float32 vectors (n_present, D)) per record batch."""
        col = f"{EMB_PREFIX}{modality}"
        if self._frame is not None:
            for start, part in self._frame_batches([col]):
                X, present = embedding_matrix(part, modality)
                self._check_dim(modality, X.shape[1])
                yield start, present, X[present]
            return
        for start, batch in self._batches([col], row_groups):
            arr = batch.column(0)
            if not (
                pa.types.is_list(arr.type)
                or pa.types.is_large_list(arr.type)
                or pa.types.is_fixed_size_list(arr.type)
            ):
                raise EmbeddingTableError(f"{self.path}: column {col!r} is {arr.type}, not a list")
            present = arr.is_valid().to_numpy(zero_copy_only=False)
            flat = arr.flatten()
            n = int(present.sum())
            dim = len(flat) // n if n else self.dims.get(modality, 0)
            if n and (
                len(flat) != n * dim
                or (
                    not pa.types.is_fixed_size_list(arr.type)
                    and (pc.min(pc.list_value_length(arr)).as_py() != dim)
                )
            ):
                raise EmbeddingTableError(f"{self.path}: column {col!r} mixes vector lengths")
            self._check_dim(modality, dim)
            vecs = flat.cast(pa.float32()).to_numpy(zero_copy_only=False).reshape(n, dim)
            yield start, present, vecs

    def _check_dim(self, modality: str, dim: int) -> None:
        if not dim:
            return
        if self.dims.get(modality, 0) not in (0, dim):
            raise EmbeddingTableError(
                f"{self.name}: emb_{modality} holds {dim}-d vectors, its metadata says "
                f"{self.dims[modality]}"
            )
        self.dims[modality] = dim

    def dim(self, modality: str) -> int:
        """Vector length of `modality` (reads one batch if the metadata does not say)."""
        if not self.dims.get(modality):
            for _, _, vecs in self._vector_batches(modality):
                if len(vecs):
                    break
        if not self.dims.get(modality):
            raise EmbeddingTableError(f"{self.name}: emb_{modality} holds no vector")
        return self.dims[modality]

    def read_vectors(
        self, modality: str, rows: np.ndarray, out: np.ndarray, nonfinite: str = "keep"
    ) -> int:
        """Write the vectors of table rows `rows` of one modality into `out`.

        Args:
            modality: modality name (column `emb_<modality>`).
            rows: int (n,) table row positions, any order, no repeats.
            out: float32 (n, D) destination; row i receives the vector of table row `rows[i]`,
                or NaN where that chip lacks the modality.
            nonfinite: a vector holding NaN or inf is kept with its inf entries set to NaN
                ("keep", for heads that take missing values) or replaced by NaN ("drop").

        Returns:
            How many of the rows had a vector with NaN or inf.
        """
        if nonfinite not in ("keep", "drop"):
            raise ValueError(f"nonfinite must be 'keep' or 'drop', got {nonfinite!r}")
        rows = np.asarray(rows, dtype=np.int64)
        out[:] = np.nan
        if len(rows) == 0:
            return 0
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        groups = None
        if self._frame is None:
            ends = np.cumsum(self._group_rows)
            groups = sorted(set(np.searchsorted(ends, sorted_rows, side="right").tolist()))
        n_bad = 0
        for start, present, vecs in self._vector_batches(modality, groups):
            lo = np.searchsorted(sorted_rows, start)
            hi = np.searchsorted(sorted_rows, start + len(present))
            if hi == lo:
                continue
            local = sorted_rows[lo:hi] - start
            # position of each present row among the batch's vectors
            slot = np.cumsum(present) - 1
            keep = present[local]
            dest = order[lo:hi][keep]
            block = vecs[slot[local[keep]]]
            finite = np.isfinite(block)
            ok = finite.all(axis=1)
            n_bad += int((~ok).sum())
            if nonfinite == "keep":
                block[~finite] = np.nan  # inf -> NaN: a missing value to the forest
                out[dest] = block
            else:
                out[dest[ok]] = block[ok]
        pa.default_memory_pool().release_unused()
        return n_bad


def open_tables(tables: dict[str, object]) -> dict[str, TableReader]:
    """Open EmbeddingTables keyed by source name ("pretrained", "stats", ...) for piecewise reads.

    Args:
        tables: source name -> path/URL of an EmbeddingTable, or an in-memory frame.

    Returns:
        source name -> `TableReader` (only the metadata is read here).

    Raises:
        EmbeddingTableError: no tables, something that is not a table, missing columns.
        FileNotFoundError: a path that does not exist.
    """
    if not tables:
        raise EmbeddingTableError("no EmbeddingTables given")
    out = {}
    for name, table in tables.items():
        if not isinstance(table, str | Path | pd.DataFrame):
            raise EmbeddingTableError(
                f"source {name!r}: expected a path or a DataFrame, got {table!r}"
            )
        where = table if isinstance(table, str | Path) else "in-memory frame"
        out[name] = TableReader(table, name=f"source {name!r} ({where})")
    return out
