"""Executors: shared matrices, no copies of the evaluation matrix, identical results anywhere."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import eoclip.fewshot.fits as fits_mod
from eoclip.fewshot import FewshotConfig, FewshotError, make_executor, run_fewshot
from eoclip.fewshot.data import group_rows
from eoclip.fewshot.executor import FitExecutor, LocalProcesses, SharedMatrix, resolve
from eoclip.fewshot.fits import FitPlan, evaluate

SMALL_RF = ({"n_estimators": 8, "max_depth": 4}, {"n_estimators": 8, "max_depth": 2})


def _cfg(**kw) -> FewshotConfig:
    base = dict(
        train_sizes=(5, 20), repeats=2, grid=SMALL_RF, tasks=("tree", "water"), progress=False
    )
    return FewshotConfig(**{**base, **kw})


def test_make_executor_kinds():
    assert type(make_executor(1)) is FitExecutor
    with make_executor(2) as ex:
        assert isinstance(ex, LocalProcesses) and ex.n_workers == 2
    assert make_executor(-1).n_workers == os.cpu_count()


def test_shared_matrix_is_mapped_copy_on_write(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    stale = tmp_path / "eoclip-fewshot-999999999-abc"  # left by a killed run (no such pid)
    stale.mkdir()
    (stale / "matrix-00001.npy").write_bytes(b"x")
    alive = tmp_path / f"eoclip-fewshot-{os.getppid()}-abc"  # a live process's: kept
    alive.mkdir()
    with LocalProcesses(1, tmp_dir=str(tmp_path)) as ex:
        handle = ex.share(X)
        assert isinstance(handle, SharedMatrix) and os.path.exists(handle.path)
        M = resolve(handle)
        assert isinstance(M, np.memmap) and M.flags.writeable  # scikit-learn's fit needs it
        np.testing.assert_array_equal(M, X)
        M[0, 0] = 99  # a worker's write stays private to it
        assert np.load(handle.path)[0, 0] == 0
        ex.release(handle)
        assert not os.path.exists(handle.path)
        assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir()] == [alive.name]  # ours removed at the end


def test_fits_score_views_of_the_matrix(monkeypatch):
    """No copy of the test split (or of the whole train split) per fit."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)).astype(np.float32)
    labels = X[:, 0].astype(float)
    split = np.array(["train"] * 30 + ["val"] * 10 + ["test"] * 10)
    rows = group_rows(labels, split, seed=0)
    assert rows.test == slice(40, 50) and rows.train == slice(0, 30)
    seen = {}
    original = fits_mod.fit_predict

    def spy(head, params, seed, X_train, y_train, X_eval):
        seen["train"], seen["eval"] = X_train, X_eval
        return original(head, params, seed, X_train, y_train, X_eval)

    monkeypatch.setattr(fits_mod, "fit_predict", spy)
    X.flags.writeable = False  # as a matrix may arrive on a Dask worker
    row = evaluate(X, rows, FitPlan("rf", SMALL_RF[0], 10), "all", 30, 0, 1)
    assert np.shares_memory(seen["eval"], X) and np.shares_memory(seen["train"], X)
    assert row["n_train"] == 30 and 0.5 < row["accuracy"] <= 1
    evaluate(X, rows, FitPlan("rf", SMALL_RF[0], 10), "5", 5, 0, 1)
    assert seen["train"].shape == (5, 3) and np.shares_memory(seen["eval"], X)


def test_dask_cluster_matches_one_process(table):
    distributed = pytest.importorskip("distributed")
    cfg = _cfg(features=("s1", "concat"))
    serial = run_fewshot({"p": table}, cfg)
    # two in-process workers talking TCP on the loopback only (no other network)
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        on_dask = run_fewshot(
            {"p": table}, _cfg(features=("s1", "concat"), scheduler=cluster.scheduler_address)
        )
        with distributed.Client(cluster) as client:  # a Client works as well as an address
            again = run_fewshot({"p": table}, _cfg(features=("s1", "concat"), scheduler=client))
    pd.testing.assert_frame_equal(serial, on_dask)
    pd.testing.assert_frame_equal(serial, again)


def test_unreachable_scheduler_is_a_clear_error(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("eoclip.fewshot.executor.CONNECT_TIMEOUT", "1s")
    with pytest.raises(FewshotError, match="cannot connect to the Dask scheduler"):
        make_executor(1, scheduler="tcp://127.0.0.1:9")
