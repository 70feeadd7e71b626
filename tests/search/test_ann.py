"""The FAISS HNSW index: same neighbours as exact search on an easy table, cached on disk."""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import make_table

from eoclip.search import SearchConfig, recall_at_k, search_table
from eoclip.search.ann import AnnIndex
from eoclip.search.exact import cosine_topk

pytest.importorskip("faiss")


def test_hnsw_recall_against_exact():
    rng = np.random.default_rng(3)
    G = rng.normal(size=(2000, 16)).astype(np.float32)
    G[7] = np.nan
    Q = rng.normal(size=(20, 16))
    exact, _ = cosine_topk(Q, G, 10)
    index = AnnIndex.build(G, ef_search=128)
    approx, sim = index.search(Q, 10)
    assert 7 not in index.rows and approx.shape == (20, 10)
    assert recall_at_k(exact, approx) >= 0.95
    assert (np.diff(sim, axis=1) <= 1e-6).all()


def test_hnsw_search_and_cache(tmp_path):
    path, _, _ = make_table(tmp_path / "emb.parquet")
    cfg = SearchConfig(table=path, chips=("c005",), k=5, method="hnsw", index_cache="auto")
    res = search_table(cfg)
    exact = search_table(SearchConfig(table=path, chips=("c005",), k=5))
    assert list(res["chip_id"]) == list(exact["chip_id"])
    cache = tmp_path / "emb.parquet.s2rgbm.faiss"
    assert cache.is_file() and (tmp_path / "emb.parquet.s2rgbm.faiss.json").is_file()
    stamp = cache.stat().st_mtime_ns
    assert list(search_table(cfg)["chip_id"]) == list(exact["chip_id"])
    assert cache.stat().st_mtime_ns == stamp  # reused, not rebuilt
    make_table(tmp_path / "emb.parquet")  # a new version of the table: the cache is stale
    search_table(cfg)
    assert cache.stat().st_mtime_ns != stamp
