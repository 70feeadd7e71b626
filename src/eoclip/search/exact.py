"""Exact cosine nearest neighbours by chunked matrix products, in bounded memory.

The gallery is walked in blocks of rows; each block is L2-normalised and multiplied with the
normalised queries in float64 (so a vector's similarity to itself is 1 to ~1e-16 and its
distance prints as 0), and a running top-k is kept. Memory is the block, its product with
the queries and the (q, k) result, whatever the gallery size: a 1 M x 768 table of float32
needs its 3 GB once, plus `memory_mb` of work space.
"""

from __future__ import annotations

import numpy as np

__all__ = ["block_rows", "cosine_topk", "normalize_rows"]


def normalize_rows(X: np.ndarray) -> np.ndarray:
    """float64 copy of X (n, D) with unit rows; zero or NaN rows become NaN."""
    X = np.asarray(X, dtype=np.float64)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = X / norm
    out[~(norm[:, 0] > 0) | ~np.isfinite(norm[:, 0])] = np.nan
    return out


def block_rows(dim: int, n_queries: int, memory_mb: float) -> int:
    """Gallery rows per block so that block + products stay within `memory_mb` (>= 256 rows)."""
    per_row = 8 * (dim + n_queries) + 4 * dim
    return max(256, int(memory_mb * 2**20 // per_row))


def _merge(best_s, best_i, s, offset, k):
    """Running top-k: (q, k) best so far + (q, b) new similarities -> (q, k)."""
    cand_s = np.concatenate([best_s, s], axis=1)
    cand_i = np.concatenate([best_i, np.arange(offset, offset + s.shape[1])[None].repeat(len(s), 0)],
                            axis=1)
    kk = min(k, cand_s.shape[1])
    part = np.argpartition(-cand_s, kk - 1, axis=1)[:, :kk]
    return np.take_along_axis(cand_s, part, 1), np.take_along_axis(cand_i, part, 1)


def cosine_topk(queries: np.ndarray, gallery: np.ndarray, k: int,
                exclude: np.ndarray | None = None, memory_mb: float = 256.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar gallery rows of each query.

    Args:
        queries: (q, D) vectors (any norm).
        gallery: (n, D) vectors; rows with a NaN (no vector) are never returned.
        k: neighbours per query.
        exclude: optional bool (n,) of gallery rows to leave out.
        memory_mb: work space per block of the gallery.

    Returns:
        `(index, similarity)`: int64 (q, k') and float64 (q, k'), best first, with
        k' = min(k, number of usable gallery rows).

    Raises:
        ValueError: dimensions differ, k < 1, or a query has no finite non-zero vector.
    """
    Q = normalize_rows(np.atleast_2d(queries))
    if Q.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries have {Q.shape[1]} dimensions, the gallery {gallery.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if np.isnan(Q).any():
        raise ValueError("a query vector is missing, zero or not finite")
    best_s = np.full((len(Q), 0), -np.inf)
    best_i = np.zeros((len(Q), 0), dtype=np.int64)
    step = block_rows(gallery.shape[1], len(Q), memory_mb)
    for lo in range(0, len(gallery), step):
        G = normalize_rows(gallery[lo: lo + step])
        s = Q @ np.nan_to_num(G).T
        bad = np.isnan(G).any(axis=1)
        if exclude is not None:
            bad |= exclude[lo: lo + step]
        s[:, bad] = -np.inf
        best_s, best_i = _merge(best_s, best_i, s, lo, k)
    order = np.argsort(-best_s, axis=1, kind="stable")
    best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
    usable = int(np.isfinite(best_s[0]).sum()) if len(best_s) else 0
    return best_i[:, :usable], best_s[:, :usable]
