"""Multi-tower CLIP model (paper section 4.1): one single-channel ViT per modality."""

from eoclip.errors import CheckpointError
from eoclip.model.clip import MultiTowerCLIP
from eoclip.model.config import ModelConfig, TowerConfig, list_models, load_model_config
from eoclip.model.factory import create_model
from eoclip.model.loss import MultiModalClipLoss, clip_pair_loss, gather_features
from eoclip.model.precision import autocast_for
from eoclip.model.pretrained import (
    export_model,
    from_pretrained,
    load_checkpoint,
    read_model_meta,
)
from eoclip.model.tower import Tower

__all__ = [
    "ModelConfig",
    "CheckpointError",
    "MultiModalClipLoss",
    "MultiTowerCLIP",
    "Tower",
    "TowerConfig",
    "autocast_for",
    "clip_pair_loss",
    "create_model",
    "export_model",
    "from_pretrained",
    "gather_features",
    "list_models",
    "load_checkpoint",
    "load_model_config",
    "read_model_meta",
]
