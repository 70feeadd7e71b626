"""How good a search is: cross-modal same-chip hits, and approximate-vs-exact recall."""

from __future__ import annotations

import numpy as np

from eoclip.embeddings.table import read_vectors
from eoclip.search.exact import cosine_topk

__all__ = ["recall_at_k", "same_chip_hits"]


def same_chip_hits(
    table: str,
    modality: str,
    against: str,
    k: int = 10,
    max_queries: int | None = None,
    seed: int = 0,
    batch: int = 512,
    memory_mb: float = 256.0,
) -> dict:
    """How often a chip's own `against` vector is among the k nearest of its `modality` vector.

    Every chip holding both vectors is a query (or a seeded sample of `max_queries`); the
    gallery is every chip's `against` vector. With a shared space this rate is far above the
    chance rate k / gallery size.

    Returns:
        `{"modality", "against", "k", "queries", "gallery", "hit_rate", "chance", "lift"}`.

    Raises:
        ValueError: no chip holds both vectors.
    """
    Xq, pq_, _ = read_vectors(table, modality)
    G, pg, _ = read_vectors(table, against)
    rows = np.flatnonzero(pq_ & pg)
    if not len(rows):
        raise ValueError(f"{table}: no chip holds both a {modality} and a {against} vector")
    if max_queries is not None and len(rows) > max_queries:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_queries, replace=False))
    hits = 0
    for lo in range(0, len(rows), batch):
        r = rows[lo : lo + batch]
        idx, _ = cosine_topk(Xq[r], G, k, memory_mb=memory_mb)
        hits += int((idx == r[:, None]).any(axis=1).sum())
    rate, chance = hits / len(rows), min(1.0, k / int(pg.sum()))
    return {
        "modality": modality,
        "against": against,
        "k": k,
        "queries": len(rows),
        "gallery": int(pg.sum()),
        "hit_rate": rate,
        "chance": chance,
        "lift": rate / chance,
    }


def recall_at_k(exact: np.ndarray, approx: np.ndarray) -> float:
    """Mean share of each query's exact top-k (q, k) that the approximate top-k also holds."""
    k = exact.shape[1]
    return float(
        np.mean([len(set(e) & set(a[:k])) / k for e, a in zip(exact, approx, strict=True)])
    )
