"""Build a `MultiTowerCLIP` from a variant name, a YAML path or a `ModelConfig`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eoclip.model.clip import MultiTowerCLIP
from eoclip.model.config import ModelConfig, load_model_config

__all__ = ["create_model"]


def create_model(
    name: str | Path | ModelConfig,
    modalities: Sequence[str] | None = None,
    img_size: int | None = None,
    **overrides: Any,
) -> MultiTowerCLIP:
    """Create a randomly initialised model.

    Args:
        name: a variant from `list_models()`, a path to a YAML file, or a `ModelConfig`.
        modalities: tower names, replacing the config's (any number, in loss-pair order).
        img_size: chip side in pixels the position embeddings are built for.
        **overrides: any other `ModelConfig` field (`embed_dim`...) or `TowerConfig`
            field given flat (`depth=2`, `width=128`...).

    Returns:
        The model, on the current default device (build under `with torch.device("meta"):`
        to count parameters without allocating them).

    Raises:
        ValueError: unknown variant (listing the available ones) or bad override.
    """
    config = name if isinstance(name, ModelConfig) else load_model_config(name)
    if modalities is not None:
        overrides["modalities"] = tuple(modalities)
    if img_size is not None:
        overrides["img_size"] = img_size
    if overrides:
        config = config.with_overrides(**overrides)
    return MultiTowerCLIP(config)
