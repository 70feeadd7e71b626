"""Cross-channel reconstruction: the masked loss, the heads and their place in the forward."""

from __future__ import annotations

import pytest
import torch

from eoclip.errors import ConfigError, ModelError
from eoclip.model import MultiModalClipLoss, create_model
from eoclip.model.recon import ReconHead, masked_mse

MODS = ("s2rgbm", "s1grdm", "gunw")


def test_masked_mse_ignores_unknown_targets():
    pred = torch.tensor([[[1.0, 2.0, 3.0]]])
    target = torch.tensor([[[0.0, float("nan"), 5.0]]])
    assert masked_mse(pred, target).item() == pytest.approx((1.0 + 4.0) / 2)
    nothing = torch.full_like(target, float("nan"))
    p = pred.clone().requires_grad_()
    loss = masked_mse(p, nothing)
    loss.backward()  # still in the graph, with a zero gradient
    assert loss.item() == 0.0 and torch.equal(p.grad, torch.zeros_like(p))


def test_head_reads_every_token():
    head = ReconHead(width=4, channels=3)
    assert head(torch.zeros(2, 5, 4)).shape == (2, 3, 5)


def _model(recon=None):
    torch.manual_seed(0)
    return create_model("demo", img_size=32, patch_size=8, recon_channels=recon or {})


def _batch(n=3, present=None, targets=True, channels=None):
    gen = torch.Generator().manual_seed(1)
    channels = channels or {"s2rgbm": 9, "s1grdm": 9, "gunw": 1}
    batch = {"chip_id": [f"c{i}" for i in range(n)]}
    for mod in MODS:
        mask = present[mod] if present else torch.ones(n, dtype=torch.bool)
        batch[mod] = torch.randn(n, 1, 32, 32, generator=gen)
        batch[f"{mod}_present"] = mask
        if targets:
            batch[f"{mod}_target"] = torch.randn(n, channels[mod], 4, 4, generator=gen)
    return batch


def test_forward_adds_a_loss_per_head_and_leaves_the_embeddings_alone():
    model = _model({"s2rgbm": 9, "s1grdm": 9, "gunw": 1})
    plain = _model()
    model.load_state_dict(plain.state_dict(), strict=False)  # same towers, extra heads
    batch = _batch()
    batch["s2rgbm_target"][0, 2] = float("nan")  # an invalid channel
    out = model(batch)
    assert set(out["recon"]) == set(MODS)
    assert all(torch.isfinite(v) and v > 0 for v in out["recon"].values())
    ref = plain({k: v for k, v in batch.items() if not k.endswith("_target")})
    assert "recon" not in ref
    for mod in MODS:
        torch.testing.assert_close(out["features"][mod], ref["features"][mod])
        torch.testing.assert_close(model.encode(mod, batch[mod]), ref["features"][mod])
    # The term is the head's prediction from the patch tokens, against the cell means.
    tower = model.towers["s1grdm"]
    tokens = tower.forward_features(batch["s1grdm"])[:, tower.backbone.num_prefix_tokens :]
    expect = masked_mse(model.recon["s1grdm"](tokens), batch["s1grdm_target"].flatten(2))
    torch.testing.assert_close(out["recon"]["s1grdm"], expect)


def test_loss_weights_the_term_and_every_head_gets_a_gradient_even_when_absent():
    model = _model({"s2rgbm": 9, "s1grdm": 9, "gunw": 1})
    present = {m: torch.ones(4, dtype=torch.bool) for m in MODS}
    present["gunw"] = torch.zeros(4, dtype=torch.bool)  # no coherence in this batch
    out = model(_batch(4, present))
    clip_only = MultiModalClipLoss()(out)["loss"]
    losses = MultiModalClipLoss(recon_weight=2.5)(out)
    recon = (out["recon"]["s2rgbm"] + out["recon"]["s1grdm"]) / 2
    assert set(out["recon"]) == {"s2rgbm", "s1grdm"}  # no term for the absent modality
    torch.testing.assert_close(losses["clip"], clip_only)
    torch.testing.assert_close(losses["recon"], recon)
    torch.testing.assert_close(losses["loss"], clip_only + 2.5 * recon)
    losses["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name  # DDP needs every parameter in the graph
    assert model.recon["s2rgbm"].linear.weight.grad.abs().sum() > 0
    assert model.recon["gunw"].linear.weight.grad.abs().sum() == 0
    # A batch without targets (e.g. fine-tuning on the CLIP loss alone) still touches the heads.
    model.zero_grad()
    batch = {k: v for k, v in _batch(4).items() if not k.endswith("_target")}
    out = model(batch)
    assert "recon" not in out
    MultiModalClipLoss(recon_weight=1.0)(out)["loss"].backward()
    assert all(p.grad is not None for p in model.recon.parameters())


def test_bad_targets_and_configs_are_named():
    model = _model({"s2rgbm": 9})
    batch = _batch(channels={"s2rgbm": 5, "s1grdm": 9, "gunw": 1})
    with pytest.raises(ModelError, match=r"reconstruction target of shape \(3, 5, 16\)"):
        model(batch)
    with pytest.raises(ConfigError, match="recon_channels"):
        _model({"s3": 2})
    with pytest.raises(ConfigError, match="recon_channels"):
        _model({"gunw": 0})


def test_heads_are_small():
    model = _model({"s2rgbm": 9, "s1grdm": 9, "gunw": 1})
    n_heads = sum(p.numel() for p in model.recon.parameters())
    width = model.config.tower.width
    assert n_heads == (width + 1) * 19
    assert n_heads < 0.01 * sum(p.numel() for p in model.parameters())
