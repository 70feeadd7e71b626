"""One tower of a model as a plain timm checkpoint.

A `Tower` is a timm `VisionTransformer` (`in_chans=1`, no classifier) followed by a linear
projection without bias. Saved for timm, the projection becomes the classifier `head` (bias
zero), so the timm model's output IS the tower's embedding before L2 normalisation:

    import json, timm
    spec = json.load(open("exported/timm/s2rgbm.json"))
    net = timm.create_model(spec["model_name"], pretrained=True,
                            pretrained_cfg_overlay=dict(file="exported/timm/s2rgbm.safetensors",
                                                        num_classes=spec["kwargs"]["num_classes"]),
                            **spec["kwargs"])
    # or: net = timm.create_model(spec["model_name"], **spec["kwargs"])
    #     net.load_state_dict(safetensors.torch.load_file("exported/timm/s2rgbm.safetensors"))
    z = torch.nn.functional.normalize(net(x), dim=-1)   # x: (B, 1, H, W) normalised pixels

`spec["model_name"]` is the registered timm ViT whose shape is then overridden by the
kwargs (patch size, width, depth, heads, image size), so no new architecture is registered.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save

from eoclip.fsio import atomic_write
from eoclip.model.clip import MultiTowerCLIP
from eoclip.model.config import TowerConfig

__all__ = ["TIMM_BASE_MODEL", "save_timm_tower", "timm_kwargs", "tower_state_dict"]

# Any registered ViT works as the name: every shape argument below overrides its defaults.
TIMM_BASE_MODEL = "vit_tiny_patch16_224"


def timm_kwargs(tower: TowerConfig, embed_dim: int) -> dict:
    """`timm.create_model` keyword arguments that rebuild a tower with its projection as head."""
    return {
        "img_size": tower.img_size,
        "patch_size": tower.patch_size,
        "in_chans": 1,
        "embed_dim": tower.width,
        "depth": tower.depth,
        "num_heads": tower.heads,
        "mlp_ratio": tower.mlp_ratio,
        "num_classes": embed_dim,
        "global_pool": tower.global_pool,
        "dynamic_img_size": True,
    }


def tower_state_dict(model: MultiTowerCLIP, modality: str) -> dict[str, torch.Tensor]:
    """The tower's backbone weights with `proj` as timm's `head` (bias zero), on the CPU."""
    tower = model.towers[modality]
    state = {
        k: v.detach().cpu().contiguous().clone()
        for k, v in tower.backbone.state_dict().items()
        if not k.startswith("head.")
    }
    weight = tower.proj.weight.detach().cpu().contiguous().clone()
    state["head.weight"] = weight
    state["head.bias"] = torch.zeros(weight.shape[0], dtype=weight.dtype)
    return state


def save_timm_tower(model: MultiTowerCLIP, modality: str, folder: str | Path) -> dict:
    """Write `<folder>/<modality>.safetensors` and `<modality>.json` (how to build it in timm).

    Returns:
        The JSON written: `{"file", "model_name", "kwargs", "pretrained_cfg_overlay"}`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = tower_state_dict(model, modality)
    weights = folder / f"{modality}.safetensors"
    with atomic_write(weights, "wb") as f:
        f.write(_safetensors_bytes(state))
    kwargs = timm_kwargs(model.config.tower, model.embed_dim)
    spec = {
        "file": f"timm/{weights.name}",
        "model_name": TIMM_BASE_MODEL,
        "kwargs": kwargs,
        "pretrained_cfg_overlay": {
            "num_classes": model.embed_dim,
            "input_size": [1, model.config.tower.img_size, model.config.tower.img_size],
        },
        "output": "the tower's embedding before L2 normalisation",
    }
    with atomic_write(folder / f"{modality}.json", "wb") as f:
        f.write(json.dumps(spec, indent=2).encode())
    return spec


def _safetensors_bytes(state: dict[str, torch.Tensor]) -> bytes:
    return save(state, metadata={"format": "pt"})  # timm reads "pt" safetensors
