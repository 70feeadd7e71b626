"""Import another product's embeddings into an EmbeddingTable for the chips of a ChipStore.

Foreign embeddings (AlphaEarth, TESSERA, Clay, Major TOM, ...) come as

- **tables** (Parquet / GeoParquet): one vector per row, keyed by a chip id column, or by
  geometry (each row's centre is joined onto the chip polygon that contains it and the vectors
  of a chip are averaged); see `eoclip.embeddings.import_table`;
- **pixel-embedding rasters** (GeoTIFF/COG or zarr, one band per dimension, possibly int8
  with a scale): each chip's footprint is read in the raster's own CRS and its valid pixels are
  pooled; see `eoclip.embeddings.import_raster`.

The result is an ordinary EmbeddingTable: every chip of the store in store order, with its
`geometry`, `aoi`, `split` and `label_*` from the store index, one vector column
`emb_<modality>` (**null** where the product has nothing for the chip, never zeros) and
`<modality>_count` (how many foreign vectors or valid pixels fed it). The `eoclip` metadata
records `source` (the product name), `provenance` (files, product, version, pooling, the
options) and `source_hash`, a hash of the provenance that identifies the import the way
`checkpoint_hash` identifies an export, so few-shot results of two imports are never mixed.

Example:
    >>> cfg = ImportConfig(sources=("aef_2020.tif",), store="world", out="emb/aef.parquet",
    ...                    product="aef", version="2020", dequantize="aef")  # doctest: +SKIP
    >>> import_embeddings(cfg)                                               # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np

from eoclip.data.store import ChipStore, StoreError
from eoclip.embeddings.table import write_embedding_table
from eoclip.errors import EoclipError

__all__ = [
    "DEQUANTIZE",
    "KINDS",
    "POOLINGS",
    "ImportConfig",
    "ImportEmbeddingsError",
    "import_embeddings",
    "source_kind",
    "write_imported_table",
]

log = logging.getLogger(__name__)

KINDS = ("auto", "table", "raster")
POOLINGS = ("mean", "mean+std")
# "linear": value * scale + offset (the file's own scale/offset when none is given);
# "aef": AlphaEarth Foundations' int8 coding, sign(v) * (|v| / 127.5) ** 2.
DEQUANTIZE = ("linear", "aef")
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".zarr", ".jp2", ".img")
TABLE_SUFFIXES = (".parquet", ".geoparquet", ".pq")


class ImportEmbeddingsError(EoclipError, ValueError):
    """Foreign embeddings that cannot be imported (the message names the file and the fix)."""


@dataclass
class ImportConfig:
    """What `import_embeddings` reads and how it pools."""

    sources: tuple[str, ...]  # one table, or one or more rasters (tiles, possibly in many CRSs)
    store: str  # ChipStore whose chips get vectors
    out: str  # EmbeddingTable .parquet to write
    product: str  # product name: the table's `source` (e.g. "aef", "tessera", "clay")
    version: str | None = None  # product version / year, recorded in the provenance
    modality: str | None = None  # vector column emb_<modality>; default: the product name
    kind: str = "auto"  # auto (from the file names) | table | raster
    id_column: str | None = None  # table: chip id column; None: "chip_id" if present, else geometry
    vector_column: str | None = None  # table: list column, or prefix of one column per dimension
    pooling: str = "mean"  # raster: "mean", or "mean+std" (the two concatenated, 2 x bands)
    bands: tuple[int, ...] | None = None  # raster: 1-based bands to use (default: all)
    scale: float | None = None  # raster: stored value * scale + offset (default: the file's)
    offset: float | None = None
    dequantize: str = "linear"  # raster: "linear" | "aef"
    nodata: float | None = None  # raster: stored nodata value (default: the file's)
    variable: str | None = None  # zarr: the data variable (default: the only one)
    min_valid_fraction: float = 0.5  # raster: least share of the footprint with valid pixels
    part_chips: int = 512  # raster: chips per resumable part
    overwrite: bool = False  # replace `out` and parts of another import
    progress: bool = True

    def __post_init__(self) -> None:
        self.sources = tuple(
            str(s)
            for s in ([self.sources] if isinstance(self.sources, str | Path) else self.sources)
        )
        if self.bands is not None:
            self.bands = tuple(int(b) for b in self.bands)

    @property
    def modality_name(self) -> str:
        """Name of the vector column suffix: `modality`, else the product name made safe."""
        name = self.modality or re.sub(r"[^0-9a-zA-Z]+", "_", self.product).strip("_").lower()
        return name

    def validate(self) -> None:
        """Raise ImportEmbeddingsError naming the setting that cannot work."""
        if not self.sources:
            raise ImportEmbeddingsError("no source file given")
        if not self.product:
            raise ImportEmbeddingsError("product must name the embedding product (e.g. 'aef')")
        name = self.modality_name
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or name.endswith(
            ("_channels", "_count")
        ):
            raise ImportEmbeddingsError(
                f"modality name {name!r} must be letters, digits and '_' (not ending in "
                "_channels or _count); set modality explicitly"
            )
        if self.kind not in KINDS:
            raise ImportEmbeddingsError(f"kind {self.kind!r} is not one of {KINDS}")
        if self.pooling not in POOLINGS:
            raise ImportEmbeddingsError(f"pooling {self.pooling!r} is not one of {POOLINGS}")
        if self.dequantize not in DEQUANTIZE:
            raise ImportEmbeddingsError(
                f"dequantize {self.dequantize!r} is not one of {DEQUANTIZE}"
            )
        if not 0.0 <= self.min_valid_fraction <= 1.0:
            raise ImportEmbeddingsError(
                f"min_valid_fraction must be in [0, 1], got {self.min_valid_fraction}"
            )
        if self.part_chips < 1:
            raise ImportEmbeddingsError(f"part_chips must be >= 1, got {self.part_chips}")
        if not str(self.out).endswith(".parquet"):
            raise ImportEmbeddingsError(f"output {self.out!r} should be a .parquet file")


def source_kind(cfg: ImportConfig) -> str:
    """`table` or `raster`: the configured kind, or guessed from the first source's name."""
    if cfg.kind != "auto":
        return cfg.kind
    first = str(cfg.sources[0]).rstrip("/").lower()
    if first.endswith(TABLE_SUFFIXES):
        if len(cfg.sources) > 1:
            raise ImportEmbeddingsError(
                f"{len(cfg.sources)} tables given; import one table at a time"
            )
        return "table"
    if first.endswith(RASTER_SUFFIXES) or Path(first).is_dir():
        return "raster"
    raise ImportEmbeddingsError(
        f"{cfg.sources[0]}: cannot tell a table from a raster by its name; set kind to "
        "'table' or 'raster'"
    )


def _file_record(path: str) -> dict:
    """Name, size and modification time of a source file or folder (cheap, no full read)."""
    p = Path(path)
    if p.is_dir():
        files = [f for f in p.rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        mtime = max((f.stat().st_mtime for f in files), default=0.0)
    elif p.is_file():
        size, mtime = p.stat().st_size, p.stat().st_mtime
    else:
        raise FileNotFoundError(f"embedding source not found: {path}")
    return {"path": os.path.abspath(path), "bytes": int(size), "mtime": round(float(mtime), 3)}


def provenance(cfg: ImportConfig, kind: str, details: dict) -> dict:
    """What was imported and how: files, product, version, pooling and the options used."""
    options = {
        k: v
        for k, v in asdict(cfg).items()
        if k
        not in (
            "sources",
            "store",
            "out",
            "overwrite",
            "progress",
            "product",
            "version",
            "part_chips",
        )
    }
    return {
        "product": cfg.product,
        "version": cfg.version,
        "kind": kind,
        "files": [_file_record(s) for s in cfg.sources],
        "pooling": details.pop("pooling"),
        "options": options,
        **details,
    }


def provenance_hash(prov: dict) -> str:
    """sha256 of the provenance (files with sizes and times, options): the import's identity."""
    return hashlib.sha256(json.dumps(prov, sort_keys=True, default=str).encode()).hexdigest()


def write_imported_table(
    store: ChipStore,
    vectors: np.ndarray,
    counts: np.ndarray,
    cfg: ImportConfig,
    prov: dict,
    extra_columns: dict | None = None,
) -> str:
    """Write the EmbeddingTable of an import.

    Args:
        store: the ChipStore whose chips are the rows (store order).
        vectors: float32 (N, D) with NaN rows where the chip got no vector.
        counts: int (N,) foreign vectors or valid pixels that fed each chip's vector.
        cfg: the import settings (output path, product, modality name).
        prov: `provenance(...)` of this import.
        extra_columns: more per-chip columns (e.g. `<modality>_valid_fraction`).

    Returns:
        The path written.
    """
    mod = cfg.modality_name
    idx = store.index
    keep = ["chip_id", "geometry", "aoi", "split", *[c for c in idx if str(c).startswith("label_")]]
    gdf = gpd.GeoDataFrame(idx[keep].copy(), geometry="geometry", crs=idx.crs)
    present = ~np.isnan(vectors).any(axis=1)
    gdf[f"emb_{mod}"] = [v if ok else None for v, ok in zip(vectors, present, strict=True)]
    gdf[f"{mod}_count"] = np.asarray(counts, dtype=np.int64)
    for name, values in (extra_columns or {}).items():
        gdf[name] = values
    meta = {
        "source": cfg.product,
        "product": cfg.product,
        "version": cfg.version,
        "modalities": [mod],
        "dim": int(vectors.shape[1]),
        "store": store.url,
        "provenance": prov,
        "source_hash": provenance_hash(prov),
        "checkpoint_hash": None,
        "chips_with_vector": int(present.sum()),
    }
    path = write_embedding_table(gdf, cfg.out, meta)
    log.info(
        "%s: %d of %d chips got a %s vector (%d-d)",
        path,
        int(present.sum()),
        len(gdf),
        cfg.product,
        vectors.shape[1],
    )
    return path


def import_embeddings(cfg: ImportConfig) -> str:
    """Import foreign embeddings for every chip of a store (see the module docstring).

    Returns:
        The path of the EmbeddingTable.

    Raises:
        ImportEmbeddingsError: bad settings, unreadable source, no vector column, no chip
            matched, an existing table of another import.
        FileNotFoundError: a source file is missing.
    """
    cfg.validate()
    for s in cfg.sources:
        if not Path(s).exists():
            raise FileNotFoundError(f"embedding source not found: {s}")
    if Path(cfg.out).exists() and not cfg.overwrite:
        raise ImportEmbeddingsError(f"{cfg.out} exists; choose another output or overwrite=True")
    try:
        store = ChipStore.open(cfg.store)
    except (StoreError, OSError) as err:
        raise ImportEmbeddingsError(f"cannot open store {cfg.store}: {err}") from err
    if len(store) == 0:
        raise ImportEmbeddingsError(f"store {store.url} holds no chips")
    kind = source_kind(cfg)
    if kind == "table":
        from eoclip.embeddings.import_table import import_table

        return import_table(store, cfg)
    from eoclip.embeddings.import_raster import import_raster

    return import_raster(store, cfg)
