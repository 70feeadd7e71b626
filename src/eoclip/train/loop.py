"""Multi-tower CLIP pretraining (paper section 4.1): one loop, one process or many.

One process (CPU or one GPU):
    eoclip pretrain --config demo --store demo_out/world --out runs
Several processes on one machine (one per GPU, or CPU processes with gloo):
    torchrun --nproc_per_node=4 -m eoclip.train --config demo --store demo_out/world --out runs
Resume a stopped run (same --out and --name): add --resume.

Each step feeds every tower ONE random valid channel per chip (`ChipDataset(channels=
"random")`), computes the CLIP loss for each pair of modalities over the batch of all ranks
and takes an AdamW step; the learning rate is a pure function of the step. After each epoch
the validation split (fixed channel choice) gives the CLIP loss, which selects `best/`
(paper: "the validation split to select the best self supervised model according to the CLIP
loss"), and cross-modal retrieval recall. Rank 0 alone writes the run folder.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from timm.optim import param_groups_weight_decay
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from eoclip.data.dataset import ChipDataset, collate_samples
from eoclip.data.store import ChipStore
from eoclip.distributed import (
    DistEnv,
    barrier,
    cleanup_distributed,
    log0,
    print0,
    setup_distributed,
)
from eoclip.errors import ResumeMismatchError
from eoclip.fsio import write_text_atomic
from eoclip.lock import output_lock
from eoclip.model import MultiModalClipLoss, autocast_for, create_model
from eoclip.model.fp8 import to_float8
from eoclip.model.pretrained import read_model_meta
from eoclip.train.augment import ChipAugment
from eoclip.train.checkpoint import find_resume_checkpoint, restore_training_state, save_checkpoint
from eoclip.train.config import PretrainConfig
from eoclip.train.metrics import MetricsLog
from eoclip.train.schedule import lr_at
from eoclip.train.validate import validate

__all__ = [
    "PretrainResult",
    "make_optimizer",
    "pretrain",
    "run_length",
    "train_order",
    "train_step",
]

logger = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    """What a run produced (the same on every rank; only rank 0 wrote the files)."""

    run_dir: Path  # <out>/<name>
    last: Path  # last/ checkpoint
    best: Path | None  # best/ checkpoint by validation CLIP loss (None without validation)
    best_val_loss: float | None
    step: int  # optimiser steps done
    epoch: int  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per validated epoch
    wall_time_s: float = 0.0


def make_optimizer(model: torch.nn.Module, config: PretrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (timm's `param_groups_weight_decay`).

    Biases, norm weights, the logit scale (all < 2-d) and every tower's position embedding /
    class token (timm's `no_weight_decay` names, here under each tower's prefix) are not decayed.
    """
    skip = [
        n
        for n, _ in model.named_parameters()
        if n.endswith(("pos_embed", "cls_token", "reg_token"))
    ]
    groups = param_groups_weight_decay(model, config.weight_decay, no_weight_decay_list=skip)
    # decayed group first, as checkpoints written before used it (optimizer state by group)
    groups = sorted(groups, key=lambda g: g["weight_decay"] == 0)
    # One fused kernel for all parameters on a GPU (the update is the same as the loop's).
    fused = all(p.is_cuda for g in groups for p in g["params"]) and bool(groups)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=fused or None)


def train_step(
    model: torch.nn.Module,
    loss_fn: MultiModalClipLoss,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    device: torch.device,
    autocast,
    grad_clip: float | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One optimiser step on a collated batch (the loop's step; benchmarks time this too).

    Args:
        model: the model, possibly DDP-wrapped.
        loss_fn: the CLIP loss.
        optimizer: its optimiser (the learning rate is already set).
        batch: `collate_samples` output, on any device (moved here, non-blocking).
        device: the model's device.
        autocast: a context manager (bf16 autocast on CUDA, a null context elsewhere).
        grad_clip: max global gradient norm, or None.

    Returns:
        (model output, losses) of the step, before the update.
    """
    with autocast:
        out = model(_to_device(batch, device))
        losses = loss_fn(out)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return out, losses


def train_order(n: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """Dataset indices rank `rank` visits in `epoch`: a seeded shuffle, dealt round-robin.

    This is `DistributedSampler(shuffle=True, drop_last=True)`'s order, so batch k of rank r
    holds positions r, r + W, r + 2W, ... of global batch k's slice of the permutation.
    """
    sampler = DistributedSampler(
        range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return list(sampler)


def pretrain(config: PretrainConfig, resume: bool = False) -> PretrainResult:
    """Train a `MultiTowerCLIP` on a ChipStore; see the module docstring.

    Args:
        config: the run's settings (validated here).
        resume: continue `<out>/<name>/last` if it exists (else start fresh). Without it an
            existing run folder with checkpoints is an error, never overwritten.

    Returns:
        A `PretrainResult`.
    """
    config.validate()
    env = setup_distributed(config.device)
    try:
        with output_lock(config.run_dir, enabled=env.master):
            return _pretrain(config, env, resume)
    finally:
        cleanup_distributed(env)


def _pretrain(config: PretrainConfig, env: DistEnv, resume: bool) -> PretrainResult:
    t0 = time.time()
    store = ChipStore.open(config.store)
    mods = config.modalities or list(store.modalities)
    recon = {}
    if config.recon_weight:  # every channel of a fixed modality; one mean map of a variable one
        recon = {
            m: 1 if store.modalities[m].variable else store.modalities[m].max_channels for m in mods
        }
    torch.manual_seed(config.seed)  # same initial weights on every rank
    model = create_model(
        config.model,
        modalities=mods,
        img_size=config.img_size or store.chip_px,
        **{"recon_channels": recon, **config.model_overrides},
    ).to(env.device)
    if config.fp8:
        print0(f"fp8: {to_float8(model)} linear layers compute in float8 (torchao)")
    patch = model.config.tower.patch_size
    if recon and store.chip_px % patch:
        raise ValueError(
            f"recon_weight needs chips whose side ({store.chip_px} px) is a multiple of the "
            f"patch size ({patch})"
        )
    train_ds = ChipDataset(
        store,
        "train",
        mods,
        channels="random",
        seed=config.seed,
        transform=ChipAugment.from_dict(config.augment),
        targets=store.chip_px // patch if recon else None,
    )
    val_ds = _val_dataset(store, mods, config)
    steps_per_epoch = len(train_ds) // env.world_size // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"{config.store}: {len(train_ds)} train chips cannot fill one batch of "
            f"{config.batch_size} x {env.world_size} processes; lower batch_size"
        )
    total_steps, n_epochs = run_length(config, steps_per_epoch)

    model.set_grad_checkpointing(config.grad_checkpointing)
    optimizer = make_optimizer(model, config)
    run_dir = config.run_dir
    if env.master:  # temporary checkpoint folders of a killed run (we hold the lock)
        for leftover in run_dir.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    fingerprint = store.fingerprint()
    step, epoch, skip, best = _start_or_resume(
        run_dir, resume, model, optimizer, env, config, fingerprint
    )

    log = MetricsLog(run_dir / "metrics.jsonl" if env.master else None)
    log.truncate(step, epoch)  # a killed attempt's lines past the checkpoint
    if env.master:
        write_text_atomic(
            run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False)
        )
    model.compile_towers(config.compile)  # after restoring: compiled modules keep their keys
    ddp_model = (
        DDP(model, device_ids=[env.local_rank] if env.device.type == "cuda" else None)
        if env.ddp
        else model
    )
    loss_fn = MultiModalClipLoss(env.rank, env.world_size, config.recon_weight)
    n_params = sum(p.numel() for p in model.parameters())
    print0(
        f"{n_params / 1e6:.2f} M parameters, {len(train_ds)} train chips, {env.world_size} "
        f"process(es) x batch {config.batch_size}, {steps_per_epoch} steps/epoch, device "
        f"{env.device}"
    )

    def checkpoint(path: Path, at_epoch: int, in_epoch: int, extra: dict | None = None) -> None:
        if env.master:
            save_checkpoint(
                path,
                model,
                step=step,
                epoch=at_epoch,
                best_val_loss=best,
                pretrain_config=config.to_dict(),
                optimizer=optimizer,
                data_state={
                    "epoch": at_epoch,
                    "batch_in_epoch": in_epoch,
                    "world_size": env.world_size,
                    "batch_size": config.batch_size,
                },
                extra={"store_fingerprint": fingerprint, **(extra or {})},
            )
        barrier(env)

    history: list[dict[str, Any]] = []
    autocast = autocast_for(env.device, config.bf16)
    stopped = False
    while epoch < n_epochs and not stopped:
        # Batches of this epoch: all of them, but the last epoch of a `steps` budget is cut.
        epoch_len = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        train_ds.set_epoch(epoch)
        order = train_order(len(train_ds), epoch, config.seed, env.rank, env.world_size)
        loader = _loader(train_ds, order[skip * config.batch_size :], config, env)
        ddp_model.train()
        bar = tqdm(
            loader,
            total=epoch_len,
            initial=skip,
            desc=f"epoch {epoch + 1}/{n_epochs}",
            disable=not (env.master and config.progress),
            dynamic_ncols=True,
        )
        loss_sum, n_sum, t_epoch = torch.zeros((), device=env.device), 0, time.time()
        for i, batch in enumerate(bar, start=skip):
            lr = lr_at(step, config.lr, config.warmup_steps, total_steps, config.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            out, losses = train_step(
                ddp_model, loss_fn, optimizer, batch, env.device, autocast, config.grad_clip
            )
            step += 1
            loss_sum, n_sum = loss_sum + losses["loss"].detach().float(), n_sum + 1
            if step % config.log_every == 0 or step == 1:
                rec = {
                    "kind": "train",
                    "step": step,
                    "epoch": epoch,
                    "loss": losses["loss"].item(),
                    "pairs": {k: v.item() for k, v in losses["pairs"].items()},
                    **{k: losses[k].item() for k in ("clip", "recon") if k in losses},
                    "lr": lr,
                    "logit_scale": out["logit_scale"].item(),
                    "chips_per_s": n_sum
                    * config.batch_size
                    * env.world_size
                    / (time.time() - t_epoch),
                }
                log.write(rec)
                bar.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{lr:.2e}")
            done = i + 1 == epoch_len
            if config.max_steps is not None and step >= config.max_steps:
                stopped = True
            if stopped or (config.checkpoint_every and step % config.checkpoint_every == 0):
                checkpoint(run_dir / "last", epoch + done, 0 if done else i + 1)
            if stopped or done:
                break
        bar.close()
        if stopped and not done:
            break
        skip, epoch = 0, epoch + 1
        train_loss = (loss_sum / max(n_sum, 1)).item()
        record = {
            "kind": "epoch",
            "epoch": epoch,
            "step": step,
            "train_loss": train_loss,
            "lr": lr,
            "time_s": time.time() - t0,
        }
        if (
            val_ds is not None
            and config.eval_every
            and (epoch % config.eval_every == 0 or epoch == n_epochs)
        ):
            record.update(validate(model, val_ds, config, env, autocast))
            if record["val_loss"] is not None and (best is None or record["val_loss"] < best):
                best = record["val_loss"]
                checkpoint(run_dir / "best", epoch, 0, extra={"val": _summary(record)})
        history.append(record)
        log.write(record)
        print0(_epoch_line(record))
        checkpoint(run_dir / "last", epoch, 0, extra={"val": _summary(record)})

    best_dir = run_dir / "best" if best is not None else None
    return PretrainResult(
        run_dir, run_dir / "last", best_dir, best, step, epoch, history, time.time() - t0
    )


def run_length(config: PretrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(optimiser steps, epochs) of a run: `steps` when given (the last epoch cut short),
    else `epochs` full passes."""
    if config.steps is not None:
        return config.steps, math.ceil(config.steps / steps_per_epoch)
    return steps_per_epoch * config.epochs, config.epochs


# Settings a resumed run may change: they do not change what the checkpoint was trained on
# (`epochs` or `steps` extends the run; its cosine schedule then spans the new length).
RESUMABLE_CHANGES = (
    "epochs",
    "steps",
    "max_steps",
    "log_every",
    "checkpoint_every",
    "eval_every",
    "num_workers",
    "device",
    "progress",
    "compile",
    "grad_checkpointing",
    "recall_max_chips",
)


def _start_or_resume(
    run_dir: Path,
    resume: bool,
    model,
    optimizer,
    env: DistEnv,
    config: PretrainConfig,
    fingerprint: str,
):
    """(step, epoch, batches done in that epoch, best val loss) to start from.

    Raises:
        FileExistsError: a run is there and `resume` is False.
        ResumeMismatchError: the run was trained on another store, or with settings outside
            `RESUMABLE_CHANGES` that differ (each named with its old and new value).
    """
    ckpt = find_resume_checkpoint(run_dir)
    if ckpt is None:
        if resume:
            log0(
                logger,
                logging.WARNING,
                "nothing to resume in %s (no checkpoint); starting a new run",
                run_dir,
            )
        return 0, 0, 0, None
    if not resume:
        raise FileExistsError(
            f"{run_dir} already holds a run ({ckpt.name}/); resume it (resume=True, the CLI's "
            "--resume) or choose another run name or output folder"
        )
    _check_resumable(ckpt, config, fingerprint)
    state = restore_training_state(ckpt, model, optimizer, map_location=env.device)
    data = state["data"]
    layout = (data.get("world_size", env.world_size), data.get("batch_size", config.batch_size))
    if data.get("batch_in_epoch") and layout != (env.world_size, config.batch_size):
        raise ResumeMismatchError(
            f"{ckpt} stopped mid-epoch with {layout[0]} process(es) x batch {layout[1]}; resume "
            f"it with the same (not {env.world_size} x {config.batch_size}) so the data order "
            "matches"
        )
    epoch, skip = data.get("epoch", state["epoch"]), data.get("batch_in_epoch", 0)
    log0(
        logger,
        logging.INFO,
        "resuming %s at step %d (epoch %d, batch %d)",
        ckpt,
        state["step"],
        epoch,
        skip,
    )
    return state["step"], epoch, skip, state["best_val_loss"]


def _check_resumable(ckpt: Path, config: PretrainConfig, fingerprint: str) -> None:
    meta = read_model_meta(ckpt, verify=False)
    old = meta.get("pretrain_config") or {}
    new = config.to_dict()
    changed = {
        k: (old[k], new[k])
        for k in new
        if k in old and k not in RESUMABLE_CHANGES and old[k] != new[k]
    }
    changed.pop("store", None)  # the same store under another path is fine: compared below
    if meta.get("store_fingerprint") not in (None, fingerprint):
        changed["store content"] = (
            f"{old.get('store')} (fingerprint {meta['store_fingerprint'][:12]})",
            f"{config.store} ({fingerprint[:12]})",
        )
    if changed:
        diff = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ResumeMismatchError(
            f"{ckpt} was trained with other settings ({diff}); resume with the run's own "
            f"settings (only {', '.join(RESUMABLE_CHANGES)} may change) or start a new run "
            "under another name"
        )


def _val_dataset(store: ChipStore, mods: list[str], config: PretrainConfig) -> ChipDataset | None:
    # Never set_epoch: the val channel choice stays that of (val_seed, epoch 0) for comparability.
    if not (store.index["split"] == "val").any():
        log0(
            logger,
            logging.WARNING,
            "%s has no val split; no validation and no best/ checkpoint",
            config.store,
        )
        return None
    return ChipDataset(store, "val", mods, channels="random", seed=config.val_seed)


def _loader(ds: ChipDataset, order: list[int], config: PretrainConfig, env: DistEnv) -> DataLoader:
    return DataLoader(
        ds,
        batch_size=config.batch_size,
        sampler=order,
        drop_last=True,
        collate_fn=collate_samples,
        num_workers=config.num_workers,
        pin_memory=env.device.type == "cuda",
        prefetch_factor=4 if config.num_workers else None,
    )


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k.startswith("val_") or k == "recall"}


def _epoch_line(r: dict[str, Any]) -> str:
    line = f"epoch {r['epoch']} step {r['step']}: train loss {r['train_loss']:.4f}"
    if r.get("val_loss") is not None:
        line += f", val loss {r['val_loss']:.4f} (chance {r['val_chance_loss']:.4f})"
        r1 = [v["r@1"] for v in r.get("recall", {}).values()]
        if r1:
            chance = min(v["chance@1"] for v in r["recall"].values())
            line += f", mean recall@1 {sum(r1) / len(r1):.3f} (chance {chance:.4f})"
    return line if math.isfinite(r["train_loss"]) else line + " [NaN loss]"
