"""Approximate (FAISS HNSW) against exact cosine search: recall@k and query time.

    python bench/search_ann.py --synthetic 200000 --dim 64            # clustered unit vectors
    python bench/search_ann.py --table demo_out/embeddings/pretrained.parquet --modality s2rgbm
    python bench/search_ann.py --synthetic 200000 --dim 64 --hnswlib   # also time hnswlib
    python bench/search_ann.py --synthetic 1000000 --dim 768 --exact-only

Prints the exact search time per query (`eoclip.search.cosine_topk`, one query at a time, as
`eoclip search` runs), the HNSW build time, and for each efSearch the recall@k of the
approximate top-k against the exact one and the time per query. Run it on a quiet machine
(or note the load average next to the numbers).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from eoclip.embeddings.table import read_vectors
from eoclip.search import cosine_topk, recall_at_k
from eoclip.search.ann import AnnIndex


def synthetic(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 2000 random centres with a spread like a learned space's."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2000, dim))
    X = centres[rng.integers(0, len(centres), n)] + 1.0 * rng.normal(size=(n, dim))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table")
    ap.add_argument("--modality")
    ap.add_argument("--synthetic", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--ef", default="16,32,64,128")
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--hnswlib", action="store_true", help="also measure hnswlib")
    ap.add_argument("--exact-only", action="store_true", help="time exact search only")
    args = ap.parse_args()
    if args.table:
        X, present, _ = read_vectors(args.table, args.modality)
        X = X[present]
        source = f"{args.table} ({args.modality})"
    else:
        X, source = synthetic(args.synthetic, args.dim), "synthetic clustered unit vectors"
    rng = np.random.default_rng(1)
    Q = X[rng.choice(len(X), args.queries, replace=False)]
    Q = Q + 0.1 * rng.normal(size=Q.shape).astype(np.float32)  # near, not on, a gallery vector
    print(
        f"{source}: {len(X)} vectors x {X.shape[1]}, {args.queries} queries, k={args.k}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    t = time.perf_counter()
    exact = np.vstack([cosine_topk(q[None], X, args.k)[0] for q in Q])
    print(
        f"exact (blocked matrix product): {1e3 * (time.perf_counter() - t) / len(Q):.1f} ms/query"
    )
    if args.exact_only:
        return
    t = time.perf_counter()
    index = AnnIndex.build(X, m=args.m, ef_construction=args.ef_construction)
    print(
        f"faiss HNSW M={args.m} efConstruction={args.ef_construction}: "
        f"build {time.perf_counter() - t:.1f} s"
    )
    for ef in [int(e) for e in args.ef.split(",")]:
        index.ef_search = ef
        t = time.perf_counter()
        approx = np.vstack([index.search(q[None], args.k)[0] for q in Q])
        ms = 1e3 * (time.perf_counter() - t) / len(Q)
        print(
            f"  efSearch={ef:4d}: recall@{args.k} {recall_at_k(exact, approx):.4f}, {ms:.3f} "
            "ms/query"
        )
    if args.hnswlib:
        import hnswlib

        t = time.perf_counter()
        p = hnswlib.Index(space="ip", dim=X.shape[1])
        p.init_index(max_elements=len(X), M=args.m, ef_construction=args.ef_construction)
        p.add_items(X)
        print(
            f"hnswlib M={args.m} ef_construction={args.ef_construction}: "
            f"build {time.perf_counter() - t:.1f} s"
        )
        Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
        for ef in [int(e) for e in args.ef.split(",")]:
            p.set_ef(max(ef, args.k))
            t = time.perf_counter()
            approx = np.vstack([p.knn_query(q[None], args.k)[0] for q in Qn])
            ms = 1e3 * (time.perf_counter() - t) / len(Q)
            print(
                f"  ef={ef:4d}: recall@{args.k} {recall_at_k(exact, approx):.4f}, {ms:.3f} ms/query"
            )


if __name__ == "__main__":
    main()
