"""MultiTowerCLIP forward contract, over every registered variant."""

import contextlib
import math

import pytest
import torch

from eoclip.model import MultiTowerCLIP, Tower, create_model, list_models, load_model_config

MODS = ("s2rgbm", "s1grdm", "gunw")


def make_batch(batch_size, img_size, present=None, seed=0):
    """A `collate_samples`-shaped batch with one channel per modality."""
    gen = torch.Generator().manual_seed(seed)
    batch = {"chip_id": [f"c{i}" for i in range(batch_size)]}
    for j, mod in enumerate(MODS):
        mask = present[mod] if present else torch.ones(batch_size, dtype=torch.bool)
        x = torch.randn(batch_size, 1, img_size, img_size, generator=gen) + j
        batch[mod] = torch.where(mask[:, None, None, None], x, torch.zeros(()))
        batch[f"{mod}_valid"] = mask[:, None].clone()
        batch[f"{mod}_present"] = mask
    return batch


def small_demo(**overrides):
    torch.manual_seed(0)
    return create_model("demo", img_size=32, **overrides).eval()


@pytest.mark.parametrize("name", list_models())
def test_forward_shapes_every_variant(name):
    """Big variants run on `meta` (shapes only), the demo runs for real."""
    config = load_model_config(name)
    size, real = config.tower.img_size, name == "demo"
    mask = torch.tensor([True, False, True])
    present = {"s2rgbm": mask, "s1grdm": torch.ones(3, dtype=torch.bool), "gunw": ~mask}
    # On meta the batch stays on the CPU: the model moves the selected rows to its device.
    with torch.device("cpu" if real else "meta"):
        model = MultiTowerCLIP(config)
    batch = make_batch(3, size, present)
    out = model(batch)
    assert list(out["features"]) == list(MODS)
    for mod in MODS:
        assert out["features"][mod].shape == (3, config.embed_dim)
        assert out["present"][mod].shape == (3,)
    assert out["logit_scale"].shape == ()
    if real:
        for mod in MODS:
            assert torch.equal(out["present"][mod], present[mod])
            feats = out["features"][mod]
            assert torch.isfinite(feats).all()
            norms = feats.norm(dim=-1)
            assert torch.allclose(norms[present[mod]], torch.ones(()), atol=1e-5)
            assert torch.equal(norms[~present[mod]], torch.zeros(int((~present[mod]).sum())))


@pytest.mark.parametrize("name", ["demo", "vit-ti"])
def test_grad_checkpointing_same_output_and_grads(name):
    torch.manual_seed(0)
    model = create_model(name, img_size=32, depth=2, modalities=("s2rgbm",)).train()
    x = torch.randn(4, 1, 32, 32)

    def run():
        model.zero_grad()
        y = model.encode("s2rgbm", x)
        (y * torch.arange(y.shape[1])).sum().backward()
        return y.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    y0, g0 = run()
    model.set_grad_checkpointing(True)
    assert all(t.backbone.grad_checkpointing for t in model.towers.values())
    y1, g1 = run()
    assert torch.isfinite(y0).all()
    assert torch.allclose(y0, y1, atol=1e-6)
    assert len(g0) == len(g1) == len(list(model.parameters())) - 1  # all but logit_scale
    for a, b in zip(g0, g1, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_absent_rows_are_zero_and_not_computed():
    model = small_demo()
    present = {
        "s2rgbm": torch.tensor([True, False, True, False, True]),
        "s1grdm": torch.tensor([False, False, False, False, True]),
        "gunw": torch.zeros(5, dtype=torch.bool),
    }
    batch = make_batch(5, 32, present)
    for mod in MODS:  # absent pixels poisoned: if they were computed, NaN would show
        batch[mod][~present[mod]] = float("nan")
    seen = {}
    for mod, tower in model.towers.items():
        tower.backbone.patch_embed.register_forward_pre_hook(
            lambda _m, args, mod=mod: seen.setdefault(mod, []).append(args[0].shape[0])
        )
    with torch.no_grad():
        out = model(batch)
    assert seen == {"s2rgbm": [3], "s1grdm": [1]}  # gunw tower never ran
    for mod in MODS:
        feats = out["features"][mod]
        assert torch.isfinite(feats).all()
        assert (feats[~present[mod]] == 0).all()
        # a present row's embedding does not depend on which other rows are present
        for i in present[mod].nonzero().squeeze(1).tolist():
            alone = model.encode(mod, batch[mod][i : i + 1])
            assert torch.allclose(feats[i], alone[0], atol=1e-5)


def test_missing_modality_key_and_ddp_anchor():
    """A modality absent from the whole batch gives zeros, and all parameters still get grads."""
    model = small_demo().train()
    batch = make_batch(4, 32)
    for key in ("gunw", "gunw_valid", "gunw_present"):
        del batch[key]
    batch["extra"] = torch.randn(4, 9, 32, 32)  # modality without a tower: ignored
    out = model(batch)
    assert not out["present"]["gunw"].any()
    assert torch.equal(out["features"]["gunw"], torch.zeros(4, model.embed_dim))
    sum(f.sum() for f in out["features"].values()).add(out["logit_scale"]).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all((p.grad == 0).all() for p in model.towers["gunw"].parameters())


def test_multichannel_and_bad_input_rejected():
    model = small_demo()
    batch = make_batch(2, 32)
    batch["s2rgbm"] = torch.randn(2, 9, 32, 32)
    with pytest.raises(ValueError, match=r"'s2rgbm'.*\(2, 9, 32, 32\).*one channel"):
        model(batch)
    with pytest.raises(ValueError, match="one channel"):
        model.encode("s1grdm", torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"no tower for modality 'optical'.*s2rgbm"):
        model.encode("optical", torch.randn(2, 1, 32, 32))
    batch = make_batch(2, 32)
    batch["gunw_present"] = torch.tensor([1, 0])
    with pytest.raises(ValueError, match="gunw_present BoolTensor"):
        model(batch)
    with pytest.raises(ValueError, match="none of the model's modalities"):
        model({"other": torch.zeros(1)})


def test_logit_scale_init_and_clamp():
    model = small_demo()
    assert math.isclose(model.logit_scale.item(), math.log(1 / 0.07), rel_tol=1e-6)
    assert math.isclose(model.scale().item(), 1 / 0.07, rel_tol=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(7.0)  # exp(7) ~ 1097
    assert model.scale().item() == pytest.approx(100.0)
    with torch.no_grad():
        out = model(make_batch(2, 32))
    assert out["logit_scale"].item() == pytest.approx(100.0)


def test_encode_normalize_and_other_sizes():
    model = small_demo()
    x = torch.randn(3, 1, 48, 48)  # built for 32 px: timm interpolates position embeddings
    with torch.no_grad():
        raw = model.encode("gunw", x, normalize=False)
        unit = model.encode("gunw", x)
    assert raw.shape == (3, model.embed_dim)
    assert torch.allclose(unit, raw / raw.norm(dim=-1, keepdim=True), atol=1e-6)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(3))


def test_tower_stages_compose():
    torch.manual_seed(0)
    tower = Tower(load_model_config("demo").tower, embed_dim=16).eval()
    x = torch.randn(2, 1, 64, 64)
    tokens = tower.forward_features(x)
    assert tokens.shape == (2, 1 + 64, 96)  # class token + (64 / 8) ** 2 patches
    pooled = tower.forward_pool(tokens)
    assert pooled.shape == (2, 96)
    assert torch.equal(tower.forward_head(pooled), tower(x))


def test_towers_use_fused_attention_and_compile_in_place():
    from eoclip.model import autocast_for

    model = create_model(
        "demo", img_size=16, patch_size=8, width=32, depth=1, heads=2, embed_dim=16
    )
    # timm routes attention through F.scaled_dot_product_attention (flash/efficient kernels on
    # GPUs).
    attn = [m for m in model.modules() if hasattr(m, "fused_attn")]
    assert attn and all(m.fused_attn for m in attn)
    x = torch.randn(3, 1, 16, 16)
    before = model.encode("s2rgbm", x)
    keys = set(model.state_dict())
    model.compile_towers("aot_eager")
    torch.testing.assert_close(model.encode("s2rgbm", x), before)
    assert set(model.state_dict()) == keys
    assert isinstance(autocast_for("cpu"), contextlib.nullcontext)
    assert isinstance(autocast_for("cuda", bf16=False), contextlib.nullcontext)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (True, {"backend": "inductor"}),
        ("inductor", {"backend": "inductor"}),
        ("aot_eager", {"backend": "aot_eager"}),
        (
            "max-autotune-no-cudagraphs",
            {"backend": "inductor", "mode": "max-autotune-no-cudagraphs"},
        ),
        ("default", {"backend": "inductor", "mode": "default"}),
    ],
)
def test_compile_towers_takes_a_backend_or_an_inductor_mode(monkeypatch, setting, expected):
    model = create_model(
        "demo", img_size=16, patch_size=8, width=32, depth=1, heads=2, embed_dim=16
    )
    calls = []
    for tower in model.towers.values():
        monkeypatch.setattr(tower, "compile", lambda **kw: calls.append(kw))
    model.compile_towers(setting)
    assert calls == [expected] * len(model.towers)
    calls.clear()
    model.compile_towers(False)
    assert calls == []
