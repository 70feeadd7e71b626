"""Chunked exact cosine top-k against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from eoclip.search.exact import block_rows, cosine_topk, normalize_rows


def test_chunked_topk_equals_brute_force_whatever_the_block():
    rng = np.random.default_rng(1)
    G = rng.normal(size=(1000, 16)).astype(np.float32)
    G[[3, 500]] = np.nan  # no vector: never returned
    Q = rng.normal(size=(5, 16))
    Gn = G / np.linalg.norm(G, axis=1, keepdims=True)
    ref = (Q / np.linalg.norm(Q, axis=1, keepdims=True)) @ np.nan_to_num(Gn, nan=0).T
    ref[:, [3, 500]] = -np.inf
    want = np.argsort(-ref, axis=1)[:, :7]
    for mb in (0.01, 1000):  # 256-row blocks, and one block
        idx, sim = cosine_topk(Q, G, 7, memory_mb=mb)
        np.testing.assert_array_equal(idx, want)
        np.testing.assert_allclose(sim, np.take_along_axis(ref, want, 1), atol=1e-6)
    assert block_rows(16, 5, 0.01) == 256


def test_self_match_is_first_at_distance_zero_and_exclusions():
    G = np.random.default_rng(2).normal(size=(50, 8)).astype(np.float32)
    idx, sim = cosine_topk(G[[10]], G, 3)
    assert idx[0, 0] == 10 and abs(1.0 - sim[0, 0]) < 1e-12
    excl = np.zeros(50, bool)
    excl[10] = True
    idx, _ = cosine_topk(G[[10]], G, 3, exclude=excl)
    assert 10 not in idx[0]
    idx, _ = cosine_topk(G[[10]], G[:2], 5)  # fewer usable rows than k
    assert idx.shape == (1, 2)


def test_bad_queries():
    G = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="missing, zero"):
        cosine_topk(np.zeros((1, 3)), G, 2)
    with pytest.raises(ValueError, match="dimensions"):
        cosine_topk(np.ones((1, 2)), G, 2)
    assert np.isnan(normalize_rows(np.array([[0.0, 0.0], [3.0, 4.0]]))[0]).all()
