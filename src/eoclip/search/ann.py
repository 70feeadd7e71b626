"""Approximate cosine search with a FAISS HNSW index (optional extra `eoclip[ann]`).

FAISS (`faiss-cpu`) was chosen over hnswlib after measuring both with `bench/search_ann.py`
(README, "Measurements"): with the same graph (M 32, efConstruction 100) their recall@10 and
query times matched within noise, and neither built consistently faster on the shared 2-core
machine. FAISS ships wheels for every platform and is actively released (hnswlib's last
release, 0.8.0 of Dec 2023, is a source package that needs a C++ compiler), and it offers
compressed indexes (IVF-PQ) for tables that do not fit in memory as float32. FAISS is
imported only when an approximate search is asked.

The index holds the L2-normalised float32 vectors of the gallery rows that have one, with
inner-product metric (= cosine). It can be cached beside the table: `<table>.<modality>.faiss`
plus a JSON of what it was built from; a cache of another table version is rebuilt.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eoclip.errors import MissingDependencyError
from eoclip.fsio import atomic_write, write_text_atomic
from eoclip.search.exact import normalize_rows

__all__ = ["AnnIndex", "faiss_module"]

log = logging.getLogger(__name__)


def faiss_module():
    """The `faiss` module, or a MissingDependencyError saying how to install it."""
    try:
        import faiss
    except ImportError as err:
        raise MissingDependencyError(
            "approximate search needs FAISS: pip install 'eoclip[ann]' (or faiss-cpu)"
        ) from err
    return faiss


@dataclass
class AnnIndex:
    """An HNSW graph over the usable rows of a gallery.

    Attributes:
        index: the faiss index (inner product on unit vectors).
        rows: int64 (m,) gallery row of each indexed vector.
        m: graph degree; ef_construction: build-time beam; ef_search: query-time beam.
    """

    index: object
    rows: np.ndarray
    m: int = 32
    ef_construction: int = 100
    ef_search: int = 128

    @classmethod
    def build(
        cls, gallery: np.ndarray, m: int = 32, ef_construction: int = 100, ef_search: int = 128
    ) -> AnnIndex:
        """Index the rows of `gallery` (n, D) that hold a vector (NaN rows are skipped)."""
        faiss = faiss_module()
        G = normalize_rows(gallery)
        rows = np.flatnonzero(~np.isnan(G).any(axis=1))
        index = faiss.IndexHNSWFlat(G.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(np.ascontiguousarray(G[rows], dtype=np.float32))
        return cls(index, rows.astype(np.int64), m, ef_construction, ef_search)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`(index into the gallery (q, k'), cosine similarity (q, k'))`, best first."""
        self.index.hnsw.efSearch = max(self.ef_search, k)
        Q = np.ascontiguousarray(normalize_rows(np.atleast_2d(queries)), dtype=np.float32)
        sims, ids = self.index.search(Q, min(k, len(self.rows)))
        ok = ids[0] >= 0
        return self.rows[ids[:, ok]], sims[:, ok].astype(np.float64)

    def save(self, path: str | Path, source: dict) -> None:
        """Write the index and a sidecar JSON naming what it was built from (atomically)."""
        faiss = faiss_module()
        path = Path(path)
        data = faiss.serialize_index(self.index)
        with atomic_write(path, "wb") as f:
            f.write(data.tobytes())
        with atomic_write(path.with_suffix(path.suffix + ".rows.npy"), "wb") as f:
            np.save(f, self.rows)
        params = {"m": self.m, "ef_construction": self.ef_construction}
        write_text_atomic(
            path.with_suffix(path.suffix + ".json"),
            json.dumps({"source": source, "params": params}, indent=2),
        )

    @classmethod
    def load(
        cls, path: str | Path, source: dict, m: int, ef_construction: int, ef_search: int
    ) -> AnnIndex | None:
        """A cached index built from `source` with these parameters, else None."""
        path = Path(path)
        side = path.with_suffix(path.suffix + ".json")
        rows = path.with_suffix(path.suffix + ".rows.npy")
        if not (path.is_file() and side.is_file() and rows.is_file()):
            return None
        info = json.loads(side.read_text())
        if info != {"source": source, "params": {"m": m, "ef_construction": ef_construction}}:
            log.info("%s was built from another table or settings; rebuilding", path)
            return None
        faiss = faiss_module()
        index = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
        return cls(index, np.load(rows), m, ef_construction, ef_search)
