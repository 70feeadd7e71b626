"""Learning-curve budgets: exact step counts, recorded CPU time, reused on a rerun."""

from __future__ import annotations

import json

import numpy as np
import pytest
from train_helpers import tiny_config

from eoclip.embeddings.table import embedding_matrix, read_embedding_table
from eoclip.train import curve
from eoclip.train.curve import cpu_seconds, embed_run, train_budget
from eoclip.train.metrics import MetricsLog


def test_a_budget_trains_exactly_its_steps_and_is_reused(tiny_store, tmp_path, monkeypatch):
    config = tiny_config(tiny_store, tmp_path / "ignored", epochs=50, lr=5e-3, max_steps=1)
    t0 = cpu_seconds()
    run = train_budget(config, 4, tmp_path / "runs")  # 3 steps per epoch: 1 full + 1 cut epoch
    assert cpu_seconds() > t0 and run.cpu_s > 0 and run.wall_s > 0 and not run.resumed
    assert run.run_dir.endswith("steps-00004") and len(run.load_avg) == 2
    assert run.val_loss > 0 and run.val_chance_loss > 0
    assert len(run.recall) == 6 and 0 <= run.mean_recall1 <= 1
    records = MetricsLog(tmp_path / "runs" / "steps-00004" / "metrics.jsonl").read()
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]  # max_steps of the recipe is cleared
    assert train[-1]["lr"] == pytest.approx(5e-3 * 0.1)  # the schedule ends at this budget
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]  # the cut one too
    saved = json.loads((tmp_path / "runs" / "steps-00004" / "budget.json").read_text())
    assert saved["steps"] == 4 and saved["mean_recall1"] == pytest.approx(run.mean_recall1)

    def no_training(*a, **k):
        raise AssertionError("a finished budget was trained again")

    monkeypatch.setattr("eoclip.train.loop.pretrain", no_training)
    assert train_budget(config, 4, tmp_path / "runs") == run
    with pytest.raises(ValueError, match="at least one"):
        train_budget(config, 0, tmp_path / "runs")
    table = embed_run(run.run_dir, str(tiny_store), tmp_path / "emb.parquet", "stack")
    gdf, meta = read_embedding_table(table)
    assert meta["dims"]["s2rgbm"] == 9 * meta["embed_dim"]
    X, present = embedding_matrix(gdf, "gunw")
    assert X.shape[1] == meta["embed_dim"] and not present.all()
    assert np.isfinite(X[present]).all()
    assert curve.RECORD == "budget.json"
