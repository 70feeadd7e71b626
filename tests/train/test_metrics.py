"""Retrieval recall and chance levels as pure functions of embedding matrices."""

from __future__ import annotations

import math

import pytest
import torch

from eoclip.train import clip_chance_loss, cross_modal_recall, retrieval_recall
from eoclip.train.metrics import MetricsLog


def test_perfect_and_shuffled_retrieval():
    x = torch.eye(6)
    assert retrieval_recall(x, x, ks=(1, 5)) == {1: 1.0, 5: 1.0}
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    # Each query's match is shifted by one: the true row ranks 2nd.
    assert retrieval_recall(x, x[perm], ks=(1, 2)) == {1: 0.0, 2: 1.0}
    # Ties count in the match's favour: a constant embedding scores 1 (hence logged chance).
    assert retrieval_recall(torch.ones(4, 3), torch.ones(4, 3))[1] == 1.0
    # Anti-aligned matches rank last among 6 (the other 5 score 0 > -1).
    r = retrieval_recall(x, -x, ks=(1, 5, 6))
    assert r == {1: 0.0, 5: 0.0, 6: 1.0}


def test_recall_counts_rank_of_true_match():
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    g = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    # q0 -> g0 best (rank 1); q1 -> g1 ranks 3rd; q2 -> g2 ranks 2nd.
    assert retrieval_recall(q, g, ks=(1, 2, 3)) == pytest.approx({1: 1 / 3, 2: 2 / 3, 3: 1.0})


def test_random_embeddings_are_near_chance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 16, generator=g), torch.randn(500, 16, generator=g)
    r = retrieval_recall(a, b)
    assert r[1] < 0.02 and r[5] < 0.04


def test_cross_modal_recall_uses_chips_present_in_both():
    f = torch.eye(5)
    feats = {"a": f, "b": f.clone(), "c": torch.zeros(5, 5)}
    present = {
        "a": torch.ones(5, dtype=torch.bool),
        "b": torch.tensor([1, 1, 1, 0, 0]).bool(),
        "c": torch.tensor([1, 0, 0, 0, 0]).bool(),
    }
    out = cross_modal_recall(feats, present)
    assert set(out) == {"a->b", "b->a"}  # pairs with c have < 2 common chips
    assert out["a->b"] == {"n": 3, "r@1": 1.0, "chance@1": 1 / 3, "r@5": 1.0, "chance@5": 1.0}


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        retrieval_recall(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="same shape"):
        retrieval_recall(torch.zeros(0, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="ks"):
        retrieval_recall(torch.eye(2), torch.eye(2), ks=(0,))
    with pytest.raises(ValueError, match="differ"):
        cross_modal_recall({"a": torch.eye(2)}, {"b": torch.ones(2, dtype=torch.bool)})


def test_clip_chance_loss_is_mean_log_n():
    p = {
        "a": torch.ones(8, dtype=torch.bool),
        "b": torch.ones(8, dtype=torch.bool),
        "c": torch.tensor([1, 1, 1, 1, 0, 0, 0, 0]).bool(),
    }
    assert clip_chance_loss(p) == pytest.approx((math.log(8) + 2 * math.log(4)) / 3)
    assert (
        clip_chance_loss(
            {"a": torch.ones(1, dtype=torch.bool), "b": torch.ones(1, dtype=torch.bool)}
        )
        is None
    )


def test_metrics_log_appends_json_lines(tmp_path):
    log = MetricsLog(tmp_path / "sub" / "m.jsonl")
    log.write({"step": 1, "loss": 1.23456789, "bad": float("nan")})
    log.write({"step": 2, "pairs": {"a~b": 0.5}})
    assert log.read() == [
        {"step": 1, "loss": 1.23457, "bad": None},
        {"step": 2, "pairs": {"a~b": 0.5}},
    ]
    MetricsLog(None).write({"step": 3})  # non-zero ranks: no file
