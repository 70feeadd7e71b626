"""Float8 block linears (torchao), emulated on the CPU: what is converted, numerics, errors."""

from __future__ import annotations

import pytest
import torch

from eoclip.errors import MissingDependencyError, ModelError
from eoclip.model import create_model
from eoclip.model import fp8 as fp8_mod
from eoclip.model.fp8 import to_float8

pytest.importorskip("torchao")  # a dev dependency: present wherever `make test` installs


def _model(**kw):
    torch.manual_seed(0)
    return create_model("demo", img_size=32, patch_size=8, recon_channels={"gunw": 2}, **kw)


def _kinds(model) -> dict[str, str]:
    return {name: type(m).__name__ for name, m in model.named_modules()}


def test_only_the_block_linears_become_float8_and_names_stay():
    model = _model()
    keys = list(model.state_dict())
    params = [id(p) for p in model.parameters()]
    assert to_float8(model) == 3 * 3 * 4  # towers x blocks x (qkv, proj, fc1, fc2)
    kinds = _kinds(model)
    converted = {n for n, k in kinds.items() if k == "Float8Linear"}
    assert converted == {
        f"towers.{m}.backbone.blocks.{b}.{layer}"
        for m in model.modalities
        for b in range(3)
        for layer in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
    }
    # The patch embedding, the projection to the shared space and the heads stay as they were.
    assert kinds["towers.s2rgbm.proj"] == "Linear"
    assert kinds["towers.s2rgbm.backbone.patch_embed.proj"] == "Conv2d"
    assert all(k != "Float8Linear" for n, k in kinds.items() if n.startswith("recon"))
    # Same parameter objects and names: checkpoints load either way, optimisers keep working.
    assert list(model.state_dict()) == keys and [id(p) for p in model.parameters()] == params
    plain = _model()
    plain.load_state_dict(model.state_dict())
    assert to_float8(model) == 0  # converting twice changes nothing


def test_widths_not_divisible_by_16_stay_in_bf16():
    model = _model(width=40, heads=2)  # qkv 40 -> 120, fc1 40 -> 160: 40 is not a multiple of 16
    assert to_float8(model) == 0


def test_float8_forward_and_backward_are_close_to_float32():
    model = _model().eval()
    x = torch.randn(16, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model.encode("s2rgbm", x)
    to_float8(model)
    with torch.inference_mode():
        got = model.encode("s2rgbm", x)
    cos = torch.nn.functional.cosine_similarity(ref, got)
    # e4m3 keeps 3 mantissa bits: close, not equal
    assert cos.min() > 0.99 and not torch.equal(ref, got)
    model.train()
    model.encode("s2rgbm", x).square().sum().backward()
    grads = {n: p.grad for n, p in model.towers["s2rgbm"].named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["backbone.blocks.0.mlp.fc1.weight"].abs().sum() > 0


def test_missing_torchao_and_wrong_devices_are_named(monkeypatch):
    model = _model()
    monkeypatch.setattr(fp8_mod, "fp8_available", lambda: False)
    with pytest.raises(MissingDependencyError, match=r"eoclip\[fp8\]"):
        to_float8(model)
    # the settings say so before any work
    from eoclip.embeddings.export import EmbedConfig
    from eoclip.train.config import PretrainConfig

    with pytest.raises(MissingDependencyError, match=r"eoclip\[fp8\]"):
        PretrainConfig(store="s", fp8=True).validate()
    with pytest.raises(MissingDependencyError, match=r"eoclip\[fp8\]"):
        EmbedConfig(checkpoint="c", store="s", out="e.parquet", fp8=True).validate()
    PretrainConfig(store="s").validate()  # without fp8, nothing is asked of torchao
    monkeypatch.undo()
    with torch.device("meta"):
        meta = create_model("demo", img_size=32)
    with pytest.raises(ModelError, match="not on meta"):
        to_float8(meta)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_without_float8_tensor_cores_is_refused():
    model = _model().cuda()
    if torch.cuda.get_device_capability() >= (8, 9):
        assert to_float8(model) == 36
    else:
        with pytest.raises(ModelError, match="compute capability"):
            to_float8(model)
