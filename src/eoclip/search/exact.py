"""Exact cosine nearest neighbours by chunked matrix products, in bounded memory.

The gallery is walked in blocks of rows; each block is multiplied with the normalised queries
in float32 (one BLAS call) and divided by its row norms, the best `k + 16` rows of the block
are rescored in float64 (so a vector's similarity to itself is 1 to ~1e-16 and its distance
prints as 0), and a running top-k is kept. Memory is the block, its product with the queries
and the (q, k) result, whatever the gallery size: a 1 M x 768 table of float32 needs its 3 GB
once, plus `memory_mb` of work space.
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
    """Gallery rows per block so that block copies + products stay within `memory_mb`."""
    per_row = 4 * (2 * dim + n_queries) + 8 * n_queries
    return max(256, int(memory_mb * 2**20 // per_row))


def _merge(best_s, best_i, s, idx, k):
    """Running top-k: (q, k) best so far + (q, c) candidates with gallery rows idx (q, c)."""
    cand_s = np.concatenate([best_s, s], axis=1)
    cand_i = np.concatenate([best_i, idx], axis=1)
    kk = min(k, cand_s.shape[1])
    part = np.argpartition(-cand_s, kk - 1, axis=1)[:, :kk]
    return np.take_along_axis(cand_s, part, 1), np.take_along_axis(cand_i, part, 1)


def _block_candidates(Q32, Q64, block, lo, k, exclude):
    """Top candidates of one gallery block: ranked in float32, rescored exactly in float64."""
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))  # NaN for a row without a vector
    bad = ~(norms > 0) | ~np.isfinite(norms)
    if exclude is not None:
        bad |= exclude[lo : lo + len(block)]
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (Q32 @ block.T) / norms  # (q, b) float32, one BLAS call
    s[:, bad] = -np.inf
    # float32 ranks to ~1e-7; a margin of extra candidates makes the exact rescoring safe.
    c = min(k + 16, s.shape[1])
    cand = np.argpartition(-s, c - 1, axis=1)[:, :c]
    rows = block[cand].astype(np.float64)  # (q, c, D)
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = np.einsum("qcd,qd->qc", rows, Q64) / np.linalg.norm(rows, axis=2)
    exact[bad[cand]] = -np.inf
    return exact, cand + lo


def cosine_topk(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    memory_mb: float = 256.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar gallery rows of each query.

    Each gallery block is ranked with one float32 matrix product, and its best candidates are
    rescored in float64 (a vector's similarity to itself is 1 to ~1e-16, so its distance is 0).

    Args:
        queries: (q, D) vectors (any norm).
        gallery: (n, D) float vectors; rows with a NaN or zero norm (no vector) never return.
        k: neighbours per query.
        exclude: optional bool (n,) of gallery rows to leave out.
        memory_mb: work space per block of the gallery.

    Returns:
        `(index, similarity)`: int64 (q, k') and float64 (q, k'), best first, with
        k' = min(k, number of usable gallery rows).

    Raises:
        ValueError: dimensions differ, k < 1, or a query has no finite non-zero vector.
    """
    Q64 = normalize_rows(np.atleast_2d(queries))
    if Q64.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries have {Q64.shape[1]} dimensions, the gallery {gallery.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if np.isnan(Q64).any():
        raise ValueError("a query vector is missing, zero or not finite")
    Q32 = Q64.astype(np.float32)
    best_s = np.full((len(Q64), 0), -np.inf)
    best_i = np.zeros((len(Q64), 0), dtype=np.int64)
    step = block_rows(gallery.shape[1], len(Q64), memory_mb)
    for lo in range(0, len(gallery), step):
        block = np.asarray(gallery[lo : lo + step], dtype=np.float32)
        s, idx = _block_candidates(Q32, Q64, block, lo, k, exclude)
        best_s, best_i = _merge(best_s, best_i, s, idx, k)
    order = np.argsort(-best_s, axis=1, kind="stable")
    best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
    usable = int(np.isfinite(best_s[0]).sum()) if len(best_s) else 0
    return best_i[:, :usable], best_s[:, :usable]
