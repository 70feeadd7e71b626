"""EmbeddingTable: one GeoParquet row per chip with one embedding vector per modality.

Layout (readable with geopandas, pyarrow or duckdb, no eoclip needed):

- `chip_id`, `geometry` (EPSG:4326, GeoParquet WKB), `aoi`, `split`, `label_<task>` (float);
- `emb_<m>`: `fixed_size_list<float32>[D]` per modality `m`, **null** when the chip lacks `m`;
- `emb_<m>_channels`: `list<string>`, the channels that fed the vector (optional);
- `checkpoint_hash` (str, optional);
- file-level key-value metadata `eoclip` (JSON): `{"format": "eoclip-embeddings",
  "version": 1, "modalities": [...], "dim": D, "dims": {m: D}, "channel_policy": ...,
  "checkpoint_hash": ..., "source": "pretrained" | "untrained" | "stats", ...}`.

Files are written to a temporary name beside the target and renamed, so a reader never sees a
half-written table. Paths may be local or fsspec URLs (`s3://`, `memory://`, ...).
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import fsspec
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from eoclip.errors import EoclipError
from eoclip.fsio import atomic_write

__all__ = [
    "EMB_PREFIX",
    "META_KEY",
    "REQUIRED_COLUMNS",
    "EmbeddingTableError",
    "embedding_matrix",
    "embedding_modalities",
    "infer_meta",
    "read_embedding_table",
    "read_vectors",
    "table_identity",
    "write_embedding_table",
]

log = logging.getLogger(__name__)

EMB_PREFIX = "emb_"
META_KEY = "eoclip"
FORMAT = "eoclip-embeddings"
VERSION = 1
REQUIRED_COLUMNS = ("chip_id", "aoi", "split")
# Rows per Parquet row group: readers that want one AOI skip the groups without its chips
# (`eoclip.embeddings.reader`); 16 K rows x 768 float32 = 48 MB per column chunk.
ROW_GROUP_ROWS = 16_384


class EmbeddingTableError(EoclipError, ValueError):
    """A table that is not a valid EmbeddingTable (message names the file and the problem)."""


def embedding_modalities(gdf: pd.DataFrame) -> list[str]:
    """Modalities with an `emb_<m>` column, in column order.

    Uses `gdf.attrs["eoclip"]["modalities"]` when present (set by `read_embedding_table`).
    """
    meta = gdf.attrs.get(META_KEY) or {}
    if meta.get("modalities"):
        return [m for m in meta["modalities"] if f"{EMB_PREFIX}{m}" in gdf.columns]
    return [
        c[len(EMB_PREFIX) :]
        for c in gdf.columns
        if isinstance(c, str) and c.startswith(EMB_PREFIX) and not c.endswith("_channels")
    ]


def _vectors_to_arrow(
    values: pd.Series, column: str, dim_hint: int | None
) -> tuple[pa.FixedSizeListArray, int]:
    """Object column of vectors / None -> fixed-size list<float32> array with nulls."""
    present = np.array([_is_vector(v) for v in values], dtype=bool)
    dims = {len(np.asarray(v).ravel()) for v in values[present]}
    if len(dims) > 1:
        raise EmbeddingTableError(f"column {column!r} mixes vector lengths {sorted(dims)}")
    dim = dims.pop() if dims else dim_hint
    if not dim:
        raise EmbeddingTableError(
            f"column {column!r} holds no vector; give its length in meta['dims'] or meta['dim']"
        )
    flat = np.zeros((len(values), dim), dtype=np.float32)
    if present.any():
        flat[present] = np.stack([np.asarray(v, dtype=np.float32).ravel() for v in values[present]])
    mask = pa.array(~present) if not present.all() else None
    arr = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel(), pa.float32()), dim, mask=mask)
    return arr, dim


def _is_vector(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):  # pandas' missing marker in object columns
        return False
    return True


def _fs_and_path(path: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    return fs, fs_path


def write_embedding_table(
    gdf: gpd.GeoDataFrame, path: str | Path, meta: dict, row_group_size: int = ROW_GROUP_ROWS
) -> str:
    """Write an EmbeddingTable atomically (temporary name, then rename).

    Args:
        gdf: one row per chip with `chip_id`, `geometry`, `aoi`, `split`, optional `label_*`,
            and per modality `emb_<m>` holding a 1-D float vector of length D or None (absent).
        path: destination `.parquet`, local path or fsspec URL.
        meta: JSON-serialisable dict stored under the file metadata key `eoclip`; the keys
            `format`, `version`, `modalities`, `dims` and (when all modalities share it) `dim`
            are filled in. A modality with no vector at all takes its length from
            `meta["dims"][m]` or `meta["dim"]`.
        row_group_size: rows per Parquet row group.

    Returns:
        The path written, as a string.

    Raises:
        EmbeddingTableError: missing columns, no `emb_` columns, ragged vectors, an all-null
            modality of unknown length, meta that is not JSON.
    """
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise EmbeddingTableError(f"{path}: need a GeoDataFrame with a geometry column")
    missing = [c for c in REQUIRED_COLUMNS if c not in gdf.columns]
    if missing:
        raise EmbeddingTableError(f"{path}: missing required column(s) {missing}")
    mods = embedding_modalities(gdf)
    if not mods:
        raise EmbeddingTableError(f"{path}: no '{EMB_PREFIX}<modality>' columns to write")
    emb_cols = [f"{EMB_PREFIX}{m}" for m in mods]
    base = gdf.drop(columns=emb_cols).reset_index(drop=True)
    table = _geoparquet_table(base)
    dims = {}
    for m, col in zip(mods, emb_cols, strict=True):
        hint = (meta.get("dims") or {}).get(m, meta.get("dim"))
        arr, dims[m] = _vectors_to_arrow(gdf[col].reset_index(drop=True), col, hint)
        table = table.append_column(pa.field(col, arr.type, nullable=True), arr)
    full_meta = dict(meta)
    full_meta.update(format=FORMAT, version=VERSION, modalities=mods, dims=dims)
    if len(set(dims.values())) == 1:
        full_meta["dim"] = next(iter(dims.values()))
    try:
        meta_bytes = json.dumps(full_meta).encode()
    except TypeError as err:
        raise EmbeddingTableError(f"{path}: meta is not JSON-serialisable: {err}") from err
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: meta_bytes})
    with atomic_write(path, "wb") as f:
        pq.write_table(table, f, row_group_size=row_group_size)
    return str(path)


def read_embedding_table(path: str | Path) -> tuple[gpd.GeoDataFrame, dict]:
    """Read an EmbeddingTable.

    Returns:
        `(gdf, meta)`: `emb_<m>` columns hold float32 arrays of shape (D,) or None; `meta` is the
        `eoclip` metadata dict, also stored in `gdf.attrs["eoclip"]`.

    Raises:
        FileNotFoundError: no file at `path`.
        EmbeddingTableError: not Parquet, or no `eoclip` metadata (the message names the file).
    """
    fs, fs_path = _fs_and_path(path)
    if not fs.exists(fs_path):
        raise FileNotFoundError(f"EmbeddingTable not found: {path}")
    try:
        with fs.open(fs_path, "rb") as f:
            schema = pq.read_schema(f)
    except (pa.ArrowException, OSError) as err:
        raise EmbeddingTableError(f"{path}: not a readable Parquet file ({err})") from err
    raw = (schema.metadata or {}).get(META_KEY.encode())
    if b"geo" not in (schema.metadata or {}):
        raise EmbeddingTableError(
            f"{path}: missing GeoParquet 'geo' metadata; import another product's embeddings "
            "for a ChipStore's chips with eoclip.embeddings.import_embeddings"
        )
    with fs.open(fs_path, "rb") as f:
        gdf = gpd.read_parquet(f)
    meta = json.loads(raw) if raw is not None else infer_meta(gdf, path)
    for m in meta.get("modalities", []):
        col = f"{EMB_PREFIX}{m}"
        if col not in gdf.columns:
            raise EmbeddingTableError(f"{path}: metadata lists modality {m!r} but no {col!r}")
    gdf.attrs[META_KEY] = meta
    return gdf, meta


def read_vectors(path: str | Path, modality: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One modality's vectors straight from the Parquet columns (no Python object per row).

    Args:
        path: an EmbeddingTable (local path or fsspec URL).
        modality: `m` of the column `emb_<m>`.

    Returns:
        `(X, present, chip_ids)`: float32 (N, D) with NaN rows where the chip has no vector,
        bool (N,), and the chip ids (N,) as an object array.

    Raises:
        FileNotFoundError: no file; KeyError: no such column (lists the modalities).
    """
    fs, fs_path = _fs_and_path(path)
    if not fs.exists(fs_path):
        raise FileNotFoundError(f"EmbeddingTable not found: {path}")
    col = f"{EMB_PREFIX}{modality}"
    with fs.open(fs_path, "rb") as f:
        names = pq.read_schema(f).names
    if col not in names:
        mods = [
            c[len(EMB_PREFIX) :]
            for c in names
            if c.startswith(EMB_PREFIX) and not c.endswith("_channels")
        ]
        raise KeyError(f"{path} has no vectors of modality {modality!r}; it has {mods}")
    with fs.open(fs_path, "rb") as f:
        table = pq.read_table(f, columns=["chip_id", col])
    arr = table[col].combine_chunks()
    if isinstance(arr, pa.ChunkedArray):  # an empty table stays chunked
        arr = pa.concat_arrays(arr.chunks) if arr.num_chunks else pa.array([], arr.type)
    dim = arr.type.list_size if pa.types.is_fixed_size_list(arr.type) else None
    if dim is None:
        raise EmbeddingTableError(f"{path}: column {col!r} is not a fixed-size list of floats")
    # `.values` keeps the slots of null rows (`.flatten()` would drop them).
    values = arr.values.slice(arr.offset * dim, len(arr) * dim)
    X = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32)
    X = X.reshape(len(arr), dim).copy()
    present = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    X[~present] = np.nan
    return X, present, np.asarray(table["chip_id"].to_pylist(), dtype=object)


def table_identity(meta: dict) -> str | None:
    """What identifies the vectors of a table: the checkpoint hash of an export, the
    `source_hash` of an imported product (`eoclip.embeddings.importing`), else None."""
    return meta.get("checkpoint_hash") or meta.get("source_hash")


def _geoparquet_table(gdf: gpd.GeoDataFrame) -> pa.Table:
    """Arrow table of `gdf` (geometry as WKB) carrying GeoParquet's "geo" metadata.

    Public geopandas API only: the metadata (CRS, encoding, version) is what geopandas itself
    writes for an empty frame of the same schema; the rows come from `to_wkb`. The geometry
    types are left open (`[]`, "any" in the GeoParquet spec).
    """
    buf = io.BytesIO()
    gdf.iloc[:0].to_parquet(buf, index=False)
    geo = pq.read_schema(pa.BufferReader(buf.getvalue())).metadata[b"geo"]
    table = pa.Table.from_pandas(pd.DataFrame(gdf.to_wkb()), preserve_index=False)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": geo})


def infer_meta(gdf: pd.DataFrame, path: str | Path) -> dict:
    """Metadata of a GeoParquet table in the EmbeddingTable layout written by another tool.

    Such a table is usable when it has the required columns and `emb_<m>` vector columns; its
    source is the file name. Anything else is refused with the way to import it. Only the
    column names of `gdf` are used (an empty frame with the file's columns will do).
    """
    mods = embedding_modalities(gdf)
    missing = [c for c in REQUIRED_COLUMNS if c not in gdf.columns]
    if missing or not mods:
        raise EmbeddingTableError(
            f"{path}: Parquet file has no '{META_KEY}' metadata and is not in the EmbeddingTable "
            f"layout (missing {missing or 'emb_<modality> columns'}); import it for a "
            "ChipStore's chips with eoclip.embeddings.import_embeddings"
        )
    log.warning(
        "%s has no '%s' metadata; reading modalities %s from its columns", path, META_KEY, mods
    )
    return {
        "format": FORMAT,
        "version": VERSION,
        "source": Path(str(path)).stem,
        "modalities": mods,
        "checkpoint_hash": None,
        "inferred": True,
    }


def embedding_matrix(gdf: pd.DataFrame, modality: str) -> tuple[np.ndarray, np.ndarray]:
    """Stack one modality's vectors into a matrix.

    Args:
        gdf: an EmbeddingTable frame (from `read_embedding_table` or in memory).
        modality: modality name `m` (column `emb_<m>`).

    Returns:
        `(X, present)`: float32 array of shape (N, D) with NaN rows where the chip lacks the
        modality, and a bool array of shape (N,) that is True where the vector exists.

    Raises:
        KeyError: no `emb_<modality>` column (lists the available modalities).
    """
    col = f"{EMB_PREFIX}{modality}"
    if col not in gdf.columns:
        raise KeyError(
            f"no embedding column {col!r}; available modalities: {embedding_modalities(gdf)}"
        )
    values = gdf[col].to_numpy()
    present = np.array([_is_vector(v) for v in values], dtype=bool)
    dims = (gdf.attrs.get(META_KEY) or {}).get("dims", {})
    if present.any():
        stacked = np.stack([np.asarray(v, dtype=np.float32).ravel() for v in values[present]])
        dim = stacked.shape[1]
    else:
        stacked, dim = None, int(dims.get(modality, 0))
    X = np.full((len(values), dim), np.nan, dtype=np.float32)
    if stacked is not None:
        X[present] = stacked
    return X, present
