"""Foreign embedding tables (Parquet / GeoParquet) onto a ChipStore's chips.

Two ways to match rows to chips:

- **by id**: a column of chip ids (`chip_id` by default); rows with the same id are averaged,
  ids the store does not hold are counted and skipped;
- **by geometry** (GeoParquet, points or polygons in any CRS): each row's centre is joined
  onto the chip polygon that contains it and the vectors of a chip are averaged, e.g. the
  per-tile vectors of Clay or Major TOM embeddings, smaller than a chip. A centre that falls
  in no chip is counted and skipped.

Vectors are read from one list column (`embedding`, `embeddings`, `vector`, ...) or from one
numeric column per dimension sharing a prefix (`A00` ... `A63`, `dim_0` ... `dim_127`). A
row whose vector has a NaN is skipped and counted.
"""

from __future__ import annotations

import logging
import re
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from eoclip.data.store import ChipStore
from eoclip.embeddings.importing import (
    ImportConfig,
    ImportEmbeddingsError,
    provenance,
    write_imported_table,
)

__all__ = [
    "find_vector_columns",
    "import_table",
    "pool_by_geometry",
    "pool_by_id",
    "read_foreign_table",
    "vector_matrix",
]

log = logging.getLogger(__name__)

_DIM_COLUMN = re.compile(r"^(.*?)(\d+)$")


def read_foreign_table(path: str) -> pd.DataFrame:
    """A Parquet file as a GeoDataFrame when it is GeoParquet, else a plain DataFrame.

    Raises:
        ImportEmbeddingsError: not a readable Parquet file.
    """
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise ImportEmbeddingsError(f"{path}: not a readable Parquet file ({err})") from err
    try:
        if b"geo" in (schema.metadata or {}):
            return gpd.read_parquet(path)
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ImportEmbeddingsError(f"{path}: cannot read the table ({err})") from err


def _is_list_column(series: pd.Series) -> bool:
    if series.dtype != object or series.empty:
        return False
    first = series.dropna()
    return len(first) > 0 and isinstance(first.iloc[0], list | tuple | np.ndarray)


def find_vector_columns(df: pd.DataFrame, spec: str | None, path: str = "table") -> list[str]:
    """The column(s) that hold the vectors.

    Args:
        df: the foreign table.
        spec: a list column's name, a prefix of per-dimension columns (`A` for `A00..A63`),
            or None to detect: the only list column, else the only numbered column family.
        path: file name for messages.

    Returns:
        `[list_column]`, or the per-dimension columns in numeric order.

    Raises:
        ImportEmbeddingsError: nothing found, or several candidates (they are listed).
    """
    if spec is not None and spec in df.columns and _is_list_column(df[spec]):
        return [spec]
    families: dict[str, list[tuple[int, str]]] = {}
    for col in df.columns:
        m = _DIM_COLUMN.match(str(col))
        if m and pd.api.types.is_numeric_dtype(df[col]):
            families.setdefault(m.group(1), []).append((int(m.group(2)), str(col)))
    families = {k: sorted(v) for k, v in families.items() if len(v) >= 2}
    if spec is not None:
        if spec in families:
            return [c for _, c in families[spec]]
        raise ImportEmbeddingsError(
            f"{path}: no list column or numbered columns named {spec!r}; list columns: "
            f"{[c for c in df.columns if _is_list_column(df[c])]}, numbered column prefixes: "
            f"{sorted(families)}"
        )
    lists = [c for c in df.columns if _is_list_column(df[c])]
    if len(lists) == 1:
        return lists
    if not lists and len(families) == 1:
        return [c for _, c in next(iter(families.values()))]
    raise ImportEmbeddingsError(
        f"{path}: cannot tell which column holds the vectors (list columns {lists}, numbered "
        f"column prefixes {sorted(families)}); name it with vector_column"
    )


def vector_matrix(df: pd.DataFrame, columns: list[str], path: str = "table") -> np.ndarray:
    """float32 (N, D) vectors; a row with a missing vector or any NaN is all NaN.

    Raises:
        ImportEmbeddingsError: vectors of different lengths, or values that are not numbers.
    """
    if len(columns) > 1:
        out = np.array(df[columns].to_numpy(dtype=np.float32, na_value=np.nan))
        out[np.isnan(out).any(axis=1)] = np.nan
        return out
    values = df[columns[0]].to_numpy()
    lengths = {len(v) for v in values if v is not None and not _is_missing(v)}
    if len(lengths) != 1:
        raise ImportEmbeddingsError(
            f"{path}: column {columns[0]!r} holds vectors of lengths {sorted(lengths)[:5]}; "
            "every vector must have the same length"
        )
    dim = lengths.pop()
    out = np.full((len(values), dim), np.nan, dtype=np.float32)
    for i, v in enumerate(values):
        if v is not None and not _is_missing(v):
            try:
                out[i] = np.asarray(v, dtype=np.float32)
            except (TypeError, ValueError) as err:
                raise ImportEmbeddingsError(
                    f"{path}: row {i} of {columns[0]!r} is not a vector of numbers"
                ) from err
    out[np.isnan(out).any(axis=1)] = np.nan
    return out


def _is_missing(v) -> bool:
    return isinstance(v, float) and np.isnan(v)


def _average(pos: np.ndarray, X: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the rows of X per chip position; NaN rows where no row landed."""
    sums = np.zeros((n, X.shape[1]), dtype=np.float64)
    counts = np.bincount(pos, minlength=n)
    np.add.at(sums, pos, X.astype(np.float64))
    out = np.full((n, X.shape[1]), np.nan, dtype=np.float32)
    hit = counts > 0
    out[hit] = (sums[hit] / counts[hit, None]).astype(np.float32)
    return out, counts


def pool_by_id(
    ids: np.ndarray, X: np.ndarray, store: ChipStore
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Vectors keyed by chip id -> one mean vector per store chip.

    Args:
        ids: (M,) chip ids of the foreign rows.
        X: float32 (M, D), NaN rows = no vector.
        store: the ChipStore.

    Returns:
        `(vectors (N, D) float32 with NaN rows, counts (N,), stats)`; `stats` counts the rows
        used, the rows without a vector and the ids the store does not hold.
    """
    lookup = {c: i for i, c in enumerate(store.chip_ids)}
    pos = np.array([lookup.get(str(c), -1) for c in ids], dtype=np.int64)
    ok = ~np.isnan(X).any(axis=1)
    unknown = int(((pos < 0) & ok).sum())
    use = (pos >= 0) & ok
    vectors, counts = _average(pos[use], X[use], len(store))
    return (
        vectors,
        counts,
        {
            "rows_used": int(use.sum()),
            "rows_without_vector": int((~ok).sum()),
            "rows_unknown_chip": unknown,
        },
    )


def _centres(gdf: gpd.GeoDataFrame) -> gpd.GeoSeries:
    """Row centres in EPSG:4326 (centroids computed in the table's own CRS)."""
    if gdf.crs is None:
        raise ImportEmbeddingsError("the table's geometry has no CRS; set it (e.g. EPSG:4326)")
    with warnings.catch_warnings():
        # Geographic centroids are off by metres for tile-sized polygons: far below a chip.
        warnings.filterwarnings("ignore", "Geometry is in a geographic CRS", UserWarning)
        centres = gdf.geometry.centroid
    return centres.to_crs("EPSG:4326")


def pool_by_geometry(
    gdf: gpd.GeoDataFrame, X: np.ndarray, store: ChipStore
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Vectors with geometries -> the mean of the vectors whose centre lies in each chip.

    Args:
        gdf: foreign rows with a geometry (any CRS).
        X: float32 (M, D) vectors of those rows, NaN rows = no vector.
        store: the ChipStore (chip polygons in EPSG:4326).

    Returns:
        `(vectors (N, D), counts (N,), stats)` as `pool_by_id`; a centre in no chip counts as
        `rows_outside_chips`.
    """
    ok = (
        ~np.isnan(X).any(axis=1)
        & ~gdf.geometry.is_empty.to_numpy()
        & gdf.geometry.notna().to_numpy()
    )
    centres = gpd.GeoDataFrame(
        {"row": np.flatnonzero(ok)}, geometry=_centres(gdf[ok]).to_numpy(), crs="EPSG:4326"
    )
    chips = gpd.GeoDataFrame(
        {"pos": np.arange(len(store))},
        geometry=store.index.geometry.to_numpy(),
        crs=store.index.crs,
    )
    joined = gpd.sjoin(centres, chips, how="inner", predicate="within")
    # A centre on the shared edge of two chips matches both: keep the first chip only.
    joined = joined[~joined["row"].duplicated()]
    rows, pos = joined["row"].to_numpy(), joined["pos"].to_numpy(dtype=np.int64)
    vectors, counts = _average(pos, X[rows], len(store))
    return (
        vectors,
        counts,
        {
            "rows_used": len(rows),
            "rows_without_vector": int((~ok).sum()),
            "rows_outside_chips": int(ok.sum()) - len(rows),
        },
    )


def import_table(store: ChipStore, cfg: ImportConfig) -> str:
    """Import one foreign table for the chips of `store` (see the module docstring).

    Returns:
        The path of the EmbeddingTable written.

    Raises:
        ImportEmbeddingsError: unreadable table, no vector column, no id column and no
            geometry, no row matching any chip.
    """
    path = cfg.sources[0]
    df = read_foreign_table(path)
    columns = find_vector_columns(df, cfg.vector_column, path)
    X = vector_matrix(df, columns, path)
    id_col = cfg.id_column or ("chip_id" if "chip_id" in df.columns else None)
    if id_col is not None:
        if id_col not in df.columns:
            raise ImportEmbeddingsError(
                f"{path}: no chip id column {id_col!r}; columns are {list(df.columns)[:20]}"
            )
        vectors, counts, stats = pool_by_id(df[id_col].astype(str).to_numpy(), X, store)
        how = {"join": "chip_id", "id_column": id_col}
    elif isinstance(df, gpd.GeoDataFrame):
        vectors, counts, stats = pool_by_geometry(df, X, store)
        how = {"join": "geometry (row centre within chip)", "table_crs": df.crs.to_string()}
    else:
        raise ImportEmbeddingsError(
            f"{path}: no 'chip_id' column and no GeoParquet geometry; name the chip id column "
            "with id_column, or give a GeoParquet table"
        )
    if stats["rows_used"] == 0:
        raise ImportEmbeddingsError(
            f"{path}: none of its {len(df)} rows matches a chip of {store.url} ({stats}); "
            "check the id column or the geometry's CRS and extent"
        )
    for key, n in stats.items():
        if key != "rows_used" and n:
            log.warning("%s: %d rows skipped (%s)", path, n, key.removeprefix("rows_"))
    vector_from = columns[0] if len(columns) == 1 else f"{columns[0]}..{columns[-1]}"
    prov = provenance(
        cfg,
        "table",
        {
            "pooling": "mean of the rows per chip",
            **how,
            "vector_columns": vector_from,
            "rows": len(df),
            **stats,
        },
    )
    return write_imported_table(store, vectors, counts, cfg, prov)
