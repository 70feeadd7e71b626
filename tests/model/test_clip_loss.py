"""MultiModalClipLoss on one process: values, absent samples, pair selection."""

import math

import pytest
import torch
import torch.nn.functional as F

from eoclip.model import MultiModalClipLoss, clip_pair_loss, gather_features


def softplus(x):
    return math.log(1 + math.exp(x))


def make_out(features, present, scale=2.0):
    return {
        "features": {
            m: torch.as_tensor(f, dtype=torch.float64).requires_grad_() for m, f in features.items()
        },
        "present": {m: torch.as_tensor(p, dtype=torch.bool) for m, p in present.items()},
        "logit_scale": torch.tensor(scale, dtype=torch.float64, requires_grad=True),
    }


def test_hand_computed_example():
    # a~b share rows 0 and 1; c shares one row with each, so its pairs are skipped.
    out = make_out(
        {
            "a": [[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]],  # row 2 absent: garbage must not matter
            "b": [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]],
            "c": [[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]],
        },
        {"a": [True, True, False], "b": [True, True, True], "c": [True, False, False]},
        scale=2.0,
    )
    # logits = 2 * [[1, 0.6], [0, 0.8]]; cross-entropy of each row/column against its diagonal
    a_to_b = (softplus(1.2 - 2.0) + softplus(0.0 - 1.6)) / 2
    b_to_a = (softplus(0.0 - 2.0) + softplus(1.2 - 1.6)) / 2
    expected = (a_to_b + b_to_a) / 2
    result = MultiModalClipLoss()(out)
    assert list(result["pairs"]) == ["a~b"]
    assert result["pairs"]["a~b"].item() == pytest.approx(expected, rel=1e-12)
    assert result["loss"].item() == pytest.approx(expected, rel=1e-12)


def test_loss_is_mean_over_pairs_in_model_order():
    gen = torch.Generator().manual_seed(0)
    feats = {
        m: F.normalize(torch.randn(6, 4, generator=gen, dtype=torch.float64), dim=-1) for m in "zya"
    }
    present = {m: torch.ones(6, dtype=torch.bool) for m in "zya"}
    out = make_out(feats, present, scale=5.0)
    result = MultiModalClipLoss()(out)
    assert list(result["pairs"]) == ["z~y", "z~a", "y~a"]  # dict order, not alphabetical
    for key, value in result["pairs"].items():
        a, b = key.split("~")
        assert value.item() == pytest.approx(
            clip_pair_loss(feats[a], feats[b], torch.tensor(5.0)).item()
        )
    assert result["loss"].item() == pytest.approx(
        sum(v.item() for v in result["pairs"].values()) / 3
    )


def test_perfect_alignment_low_loss_and_symmetric():
    eye = torch.eye(4, dtype=torch.float64)
    out = make_out({"a": eye, "b": eye}, {"a": [True] * 4, "b": [True] * 4}, scale=100.0)
    assert MultiModalClipLoss()(out)["loss"].item() < 1e-40
    gen = torch.Generator().manual_seed(1)
    a, b = (F.normalize(torch.randn(5, 3, generator=gen), dim=-1) for _ in range(2))
    assert torch.allclose(
        clip_pair_loss(a, b, torch.tensor(3.0)), clip_pair_loss(b, a, torch.tensor(3.0))
    )


def test_absent_samples_excluded():
    gen = torch.Generator().manual_seed(2)
    feats = {
        m: F.normalize(torch.randn(8, 5, generator=gen, dtype=torch.float64), dim=-1) for m in "abc"
    }
    present = {
        "a": torch.tensor([1, 1, 1, 0, 1, 1, 0, 1], dtype=torch.bool),
        "b": torch.tensor([1, 0, 1, 1, 1, 1, 1, 0], dtype=torch.bool),
        "c": torch.tensor([0, 1, 1, 1, 1, 0, 1, 1], dtype=torch.bool),
    }
    for m in feats:  # zero-filled like the model's output
        feats[m][~present[m]] = 0
    loss_fn = MultiModalClipLoss()
    base = loss_fn(make_out(feats, present))

    changed = {m: f.clone() for m, f in feats.items()}
    for m in changed:
        changed[m][~present[m]] = torch.randn(int((~present[m]).sum()), 5, dtype=torch.float64)
    assert loss_fn(make_out(changed, present))["loss"].item() == pytest.approx(
        base["loss"].item(), rel=1e-12
    )

    # equals the loss over the rows present in both, computed pair by pair
    expected = []
    for a, b in (("a", "b"), ("a", "c"), ("b", "c")):
        both = present[a] & present[b]
        expected.append(clip_pair_loss(feats[a][both], feats[b][both], torch.tensor(2.0)).item())
    assert base["loss"].item() == pytest.approx(sum(expected) / 3, rel=1e-12)

    # and a present row does matter
    moved = {m: f.clone() for m, f in feats.items()}
    moved["a"][0] = F.normalize(torch.ones(5, dtype=torch.float64), dim=0)
    assert loss_fn(make_out(moved, present))["loss"].item() != pytest.approx(base["loss"].item())

    # gradients never reach absent rows
    out = make_out(feats, present)
    loss_fn(out)["loss"].backward()
    for m in "abc":
        assert (out["features"][m].grad[~present[m]] == 0).all()
        assert (out["features"][m].grad[present[m]] != 0).any()


def test_no_pair_with_two_samples_gives_zero_with_grad():
    out = make_out(
        {"a": torch.eye(3), "b": torch.eye(3)},
        {"a": [True, False, False], "b": [True, True, True]},
    )
    result = MultiModalClipLoss()(out)
    assert result["pairs"] == {}
    assert result["loss"].item() == 0.0 and result["loss"].requires_grad
    result["loss"].backward()  # works, and touches nothing
    assert out["logit_scale"].grad.item() == 0.0
    assert all((f.grad == 0).all() for f in out["features"].values())


def test_single_modality_gives_zero():
    out = make_out({"a": torch.eye(3)}, {"a": [True] * 3})
    result = MultiModalClipLoss()(out)
    assert result["pairs"] == {} and result["loss"].item() == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        MultiModalClipLoss(rank=2, world_size=2)
    with pytest.raises(ValueError, match="rank"):
        MultiModalClipLoss(rank=0, world_size=0)
    out = make_out({"a": torch.eye(2), "b": torch.eye(2)}, {"a": [True, True]})
    with pytest.raises(ValueError, match="different modalities"):
        MultiModalClipLoss()(out)


def test_gather_features_single_process_is_identity():
    feats = {"a": torch.randn(3, 2)}
    present = {"a": torch.tensor([True, False, True])}
    all_f, all_p = gather_features(feats, present, rank=0, world_size=1)
    assert all_f["a"] is feats["a"] and all_p["a"] is present["a"]
