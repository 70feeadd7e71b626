"""Pretraining settings: one dataclass, loaded from a YAML file plus `key=value` overrides.

Named settings live in `src/eoclip/configs/pretrain/<name>.yaml` (`demo` for the synthetic
world); a user's own YAML file works wherever a name does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from eoclip.config import check_keys, merge, parse_overrides, read_mapping, resolve
from eoclip.errors import ConfigError
from eoclip.train.augment import ChipAugment

__all__ = [
    "PRETRAIN_CONFIGS_DIR",
    "PretrainConfig",
    "list_pretrain_configs",
    "load_pretrain_config",
    "parse_overrides",
]

PRETRAIN_CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs" / "pretrain"


@dataclass
class PretrainConfig:
    """Everything one pretraining run needs; the run folder keeps a copy as `config.yaml`."""

    store: str = ""  # ChipStore folder or fsspec URL with train and val splits
    model: str = "demo"  # model variant name (`eoclip.model.list_models()`) or YAML path
    model_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {depth: 2, embed_dim: 32}
    modalities: list[str] | None = None  # towers to train; None = every modality of the store
    img_size: int | None = None  # tower input size; None = the store's chip_px
    epochs: int = 10  # passes over the train split
    steps: int | None = None  # budget in optimiser steps instead of epochs: the schedule spans
    #   exactly these steps, the last epoch is cut short and still validated (learning curves)
    batch_size: int = 128  # chips per step PER PROCESS; the CLIP loss sees batch_size * world_size
    lr: float = 1e-3  # peak learning rate (AdamW), reached after warmup_steps
    weight_decay: float = 0.05  # AdamW decay of matrices only (not biases, norms, logit_scale)
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas (CLIP's 0.98 for stability)
    warmup_steps: int = 100  # linear warmup from 0 to lr
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float | None = 1.0  # max global gradient norm; None = no clipping
    augment: dict[str, Any] = field(default_factory=dict)  # same random view of every modality
    #   of a chip (`eoclip.train.augment.ChipAugment`): {flip: true, rot90: true, crop_scale: 0.5}
    recon_weight: float = 0.0  # weight of the cross-channel reconstruction term beside the CLIP
    #   loss (`eoclip.model.recon`: each tower's patch tokens predict every channel); 0 = off
    num_workers: int = 2  # DataLoader worker processes per training process
    seed: int = 0  # model init, data order and random channel choices
    val_seed: int = 12345  # fixed channel choice and batch order of the val split (every epoch)
    out: str = "runs"  # parent folder of run folders
    name: str = "pretrain"  # run folder name: <out>/<name>/{last,best,metrics.jsonl,config.yaml}
    eval_every: int = 1  # validate (and keep best/) every this many epochs; 0 = never
    recall_max_chips: int | None = 2000  # val chips used for retrieval recall; None = all
    log_every: int = 10  # write a metrics line every this many steps
    checkpoint_every: int | None = None  # also write last/ every this many steps
    max_steps: int | None = None  # stop after this many steps in all (tests, staged runs);
    #   the schedule still spans all epochs so a stopped run resumes onto the same curve
    bf16: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)
    compile: bool | str = False  # torch.compile the towers: true (inductor, GPU), backend or mode
    grad_checkpointing: bool = (
        False  # recompute block activations in backward: less memory, ~1/3 more compute
    )
    fp8: bool = False  # float8 matrix products in the towers' blocks (torchao; H100-class GPUs,
    #   emulated and slow on a CPU): `eoclip.model.fp8`
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda"
    progress: bool = True  # tqdm progress bar on rank 0

    def __post_init__(self) -> None:
        if self.modalities is not None:
            self.modalities = (
                [self.modalities] if isinstance(self.modalities, str) else list(self.modalities)
            )
        self.betas = tuple(self.betas)
        self.model_overrides = dict(self.model_overrides or {})
        self.augment = dict(self.augment or {})

    def validate(self) -> None:
        """Raise ConfigError naming the field and the fix for a value that cannot train."""
        positive = ("epochs", "batch_size", "log_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"pretrain config: {name} must be a positive integer, got {value!r}"
                )
        for name in ("warmup_steps", "num_workers", "eval_every", "seed", "val_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"pretrain config: {name} must be an integer >= 0, got {value!r}")
        for name in ("steps", "max_steps", "checkpoint_every", "recall_max_chips", "img_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"pretrain config: {name} must be a positive integer or null")
        for name in ("lr", "min_lr_ratio", "weight_decay", "grad_clip", "recon_weight"):
            value = getattr(self, name)
            # Overrides are read as YAML, so `weight_decay=abc` arrives as a string.
            if not (value is None and name == "grad_clip") and not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                raise ConfigError(f"pretrain config: {name} must be a number, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"pretrain config: lr must be a positive number, got {self.lr!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(
                f"pretrain config: min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}"
            )
        if self.weight_decay < 0 or (self.grad_clip is not None and self.grad_clip <= 0):
            raise ConfigError(
                "pretrain config: weight_decay must be >= 0 and grad_clip > 0 or null"
            )
        if not isinstance(self.device, str) or (
            self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:")
        ):
            raise ConfigError(
                f"pretrain config: device must be auto, cpu or cuda, got {self.device!r}"
            )
        if not isinstance(self.compile, bool | str) or self.compile in ("", "true", "false"):
            raise ConfigError(
                f"pretrain config: compile must be true, false, a torch.compile backend "
                f"name such as inductor or an inductor mode such as "
                f"max-autotune-no-cudagraphs, got {self.compile!r}"
            )
        if not isinstance(self.fp8, bool):
            raise ConfigError(f"pretrain config: fp8 must be true or false, got {self.fp8!r}")
        if self.fp8:
            from eoclip.model.fp8 import require_fp8

            require_fp8()
        aug = ChipAugment.from_dict(self.augment)  # raises on unknown keys or a bad crop_scale
        if self.recon_weight < 0:
            raise ConfigError(
                f"pretrain config: recon_weight must be >= 0, got {self.recon_weight}"
            )
        if self.recon_weight and aug is not None and aug.crop_scale not in (None, 1.0):
            raise ConfigError(
                "pretrain config: augment.crop_scale cannot be combined with recon_weight > 0 "
                "(the reconstruction targets are cell means of the uncropped chip)"
            )
        if not self.store:
            raise ConfigError(
                "pretrain config: no store given (set `store` in the YAML file or as an override)"
            )
        if not self.name or "/" in self.name:
            raise ConfigError(f"pretrain config: name must be a folder name, got {self.name!r}")

    @property
    def run_dir(self) -> Path:
        """`<out>/<name>`."""
        return Path(self.out) / self.name

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples) for JSON and YAML."""
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "pretrain config") -> PretrainConfig:
        """Build from a mapping, rejecting unknown keys with a message naming `source`."""
        check_keys(data, {f.name for f in fields(cls)}, source)
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:  # e.g. betas or model_overrides of another type
            raise ConfigError(f"{source}: a value has the wrong type ({err})") from err


def list_pretrain_configs() -> list[str]:
    """Names of the packaged pretraining settings (`configs/pretrain/*.yaml`)."""
    return sorted(p.stem for p in PRETRAIN_CONFIGS_DIR.glob("*.yaml"))


def load_pretrain_config(
    name_or_path: str | Path | None = "demo", overrides: dict[str, Any] | None = None
) -> PretrainConfig:
    """Load a named setting or a YAML file, then apply overrides (nested dicts merge).

    Args:
        name_or_path: a name from `list_pretrain_configs()`, a YAML path, or None (defaults).
        overrides: field -> value; `model_overrides` merges into the file's.

    Returns:
        The config (not yet validated: `store` may still be missing).

    Raises:
        ValueError: unknown name or path (listing the packaged ones), bad YAML, unknown keys.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if name_or_path is not None:
        path = resolve(name_or_path, PRETRAIN_CONFIGS_DIR, "pretrain config")
        data, source = read_mapping(path), str(path)
    data = merge(data, overrides)
    return PretrainConfig.from_dict(data, source=source)
