"""Checkpoints: a folder with the weights (safetensors), a JSON of metadata, the optimiser state.

```
<checkpoint>/
  model.safetensors   weights (readable without eoclip: safetensors.torch.load_file)
  checkpoint.json     format, model_config, modalities, img_size, embed_dim, step, epoch,
                      best_val_loss, weights_sha256, pretrain_config, store_fingerprint
  optimizer.pt        optimizer state, scheduler step, RNG states (torch, numpy, python, cuda),
                      data order state (epoch, batches done in it): what `resume` needs
```
A checkpoint is written to a temporary sibling folder and renamed into place, so `last/`
is either the old or the new checkpoint, never half of one. Loading a checkpoint is the model
layer's job (`eoclip.model.load_checkpoint`, `from_pretrained`): inference never imports this
module; training writes checkpoints and restores its own state from them.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_model
from torch import nn

from eoclip.errors import CheckpointError
from eoclip.model import MultiTowerCLIP
from eoclip.model.pretrained import load_weights, read_model_meta, weights_sha256

__all__ = [
    "CheckpointError",
    "find_resume_checkpoint",
    "restore_training_state",
    "save_checkpoint",
    "unwrap",
]

FORMAT = "eoclip-checkpoint"
VERSION = 1
WEIGHTS, META, OPTIM = "model.safetensors", "checkpoint.json", "optimizer.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP (or torch.compile) wrapper, else the model itself."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def rng_state() -> dict[str, Any]:
    """Every random generator a training step may touch."""
    # The legacy global numpy generator is what third-party code may draw from: save it too.
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    step: int,
    epoch: int,
    best_val_loss: float | None = None,
    pretrain_config: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    data_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (temporary sibling, then rename).

    Args:
        path: the checkpoint folder (replaced if it exists).
        model: a `MultiTowerCLIP`, possibly DDP-wrapped.
        step: optimiser steps done; epoch: epochs fully done when written at an epoch end,
            else the epoch in progress (see `data_state`).
        best_val_loss: best validation CLIP loss so far (None before any validation).
        pretrain_config: the run's `PretrainConfig.to_dict()`.
        optimizer: if given, `optimizer.pt` is written for `restore_training_state`.
        data_state: where the data order stands, e.g. {"epoch": 2, "batch_in_epoch": 5}.
        extra: more JSON-able metadata (e.g. the validation metrics).

    Returns:
        The checkpoint folder.
    """
    path = Path(path)
    net = unwrap(model)
    if not isinstance(net, MultiTowerCLIP):
        raise TypeError(f"save_checkpoint expects a MultiTowerCLIP, got {type(net).__name__}")
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        save_model(net, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "model_config": net.config.to_dict(),
            "modalities": list(net.modalities),
            "img_size": net.config.tower.img_size,
            "embed_dim": net.embed_dim,
            "step": int(step),
            "epoch": int(epoch),
            "best_val_loss": best_val_loss,
            "weights_sha256": weights_sha256(tmp / WEIGHTS),
            "pretrain_config": pretrain_config,
            "torch_version": torch.__version__,
            **(extra or {}),
        }
        (tmp / META).write_text(json.dumps(meta, indent=2, default=str))
        if optimizer is not None:
            torch.save(
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": {"step": int(step)},  # the lr is a pure function of the step
                    "rng": rng_state(),
                    "data": dict(data_state or {}),
                },
                tmp / OPTIM,
            )
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _replace_dir(src: Path, dst: Path) -> None:
    """Move folder `src` to `dst`; an existing `dst` is kept as `.old-<name>` until then."""
    old = dst.parent / f".old-{dst.name}"
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def restore_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Resume: load weights, optimiser and RNG states of a checkpoint into a running job.

    Returns:
        {"step", "epoch", "best_val_loss", "data": {...data order state...}, "meta": meta}.
    """
    path = Path(path)
    meta = read_model_meta(path)
    if not (path / OPTIM).is_file():
        raise CheckpointError(f"{path} has no {OPTIM}: it cannot be resumed (weights only)")
    load_weights(unwrap(model), path / WEIGHTS, map_location)
    try:
        state = torch.load(path / OPTIM, map_location=map_location, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        step = int(state["scheduler"]["step"])
    # An empty or truncated file raises EOFError or an unpickling error, a foreign one
    # KeyError/TypeError; all mean the same to the user: this state cannot be resumed.
    except (EOFError, RuntimeError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as err:
        raise CheckpointError(
            f"{path / OPTIM} is empty or damaged ({type(err).__name__}: {err}); resume from "
            "another checkpoint or start the run again without resuming"
        ) from err
    return {
        "step": step,
        "epoch": int(meta["epoch"]),
        "best_val_loss": meta.get("best_val_loss"),
        "data": state.get("data", {}),
        "meta": meta,
    }


def find_resume_checkpoint(run_dir: str | Path) -> Path | None:
    """`<run>/last`, or the `.old-last` a crash mid-rename left behind; None if neither."""
    run_dir = Path(run_dir)
    for name in ("last", ".old-last"):
        if (run_dir / name / META).is_file() and (run_dir / name / OPTIM).is_file():
            return run_dir / name
    return None
