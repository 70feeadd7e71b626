"""Pretraining of the multi-tower CLIP model (paper section 4.1): config, loop, checkpoints.

>>> from eoclip.train import load_pretrain_config, pretrain            # doctest: +SKIP
>>> result = pretrain(load_pretrain_config("demo", {"store": "demo_out/world"}))
>>> model, meta = load_checkpoint(result.best)
"""

from eoclip.errors import CheckpointError
from eoclip.model.pretrained import load_checkpoint  # loading is the model layer's job
from eoclip.train.checkpoint import find_resume_checkpoint, restore_training_state, save_checkpoint
from eoclip.train.config import (
    PretrainConfig,
    list_pretrain_configs,
    load_pretrain_config,
    parse_overrides,
)
from eoclip.train.loop import PretrainResult, make_optimizer, pretrain, train_order
from eoclip.train.metrics import clip_chance_loss, cross_modal_recall, retrieval_recall
from eoclip.train.schedule import lr_at

__all__ = [
    "CheckpointError",
    "PretrainConfig",
    "PretrainResult",
    "clip_chance_loss",
    "cross_modal_recall",
    "find_resume_checkpoint",
    "list_pretrain_configs",
    "load_checkpoint",
    "load_pretrain_config",
    "lr_at",
    "make_optimizer",
    "parse_overrides",
    "pretrain",
    "restore_training_state",
    "retrieval_recall",
    "save_checkpoint",
    "train_order",
]
