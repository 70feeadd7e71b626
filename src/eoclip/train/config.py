"""Pretraining settings: one dataclass, loaded from a YAML file plus `key=value` overrides.

Named settings live in `src/eoclip/configs/pretrain/<name>.yaml` (`demo` for the synthetic
world); a user's own YAML file works wherever a name does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

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
    num_workers: int = 2  # DataLoader worker processes per training process
    seed: int = 0  # model init, data order and random channel choices
    val_seed: int = 12345  # fixed channel choice of the val split (same every epoch)
    out: str = "runs"  # parent folder of run folders
    name: str = "pretrain"  # run folder name: <out>/<name>/{last,best,metrics.jsonl,config.yaml}
    eval_every: int = 1  # validate (and keep best/) every this many epochs; 0 = never
    recall_max_chips: int | None = 2000  # val chips used for retrieval recall; None = all
    log_every: int = 10  # write a metrics line every this many steps
    checkpoint_every: int | None = None  # also write last/ every this many steps
    max_steps: int | None = None  # stop after this many steps in all (tests, staged runs);
    #   the schedule still spans all epochs so a stopped run resumes onto the same curve
    bf16: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)
    compile: bool | str = False  # torch.compile the towers: true (inductor, GPUs) or a backend name
    grad_checkpointing: bool = False  # recompute block activations in backward: less memory, ~1/3 more compute
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda"
    progress: bool = True  # tqdm progress bar on rank 0

    def __post_init__(self) -> None:
        if self.modalities is not None:
            self.modalities = [self.modalities] if isinstance(self.modalities, str) else list(
                self.modalities
            )
        self.betas = tuple(self.betas)
        self.model_overrides = dict(self.model_overrides or {})
        self.augment = dict(self.augment or {})

    def validate(self) -> None:
        """Raise ValueError naming the field and the fix for a value that cannot train."""
        positive = ("epochs", "batch_size", "log_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"pretrain config: {name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "num_workers", "eval_every", "seed", "val_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"pretrain config: {name} must be an integer >= 0, got {value!r}")
        for name in ("steps", "max_steps", "checkpoint_every", "recall_max_chips", "img_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"pretrain config: {name} must be a positive integer or null")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"pretrain config: lr must be a positive number, got {self.lr!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"pretrain config: min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.weight_decay < 0 or (self.grad_clip is not None and self.grad_clip <= 0):
            raise ValueError("pretrain config: weight_decay must be >= 0 and grad_clip > 0 or null")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"pretrain config: device must be auto, cpu or cuda, got {self.device!r}")
        if not isinstance(self.compile, bool | str) or self.compile in ("", "true", "false"):
            raise ValueError(f"pretrain config: compile must be true, false or a torch.compile "
                             f"backend name such as inductor, got {self.compile!r}")
        ChipAugment.from_dict(self.augment)  # raises on unknown keys or a bad crop_scale
        if not self.store:
            raise ValueError("pretrain config: no store given (set `store:` or pass --store DIR)")
        if not self.name or "/" in self.name:
            raise ValueError(f"pretrain config: name must be a folder name, got {self.name!r}")

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
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping, got {type(data).__name__}")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"{source}: unknown keys {unknown}; allowed: {sorted(allowed)}")
        return cls(**data)


def list_pretrain_configs() -> list[str]:
    """Names of the packaged pretraining settings (`configs/pretrain/*.yaml`)."""
    return sorted(p.stem for p in PRETRAIN_CONFIGS_DIR.glob("*.yaml"))


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`["epochs=3", "model_overrides.depth=2"]` -> {"epochs": 3, "model_overrides": {"depth": 2}}.

    Values are parsed as YAML (`3` an int, `null` None, `[a, b]` a list, `1e-3` a float).
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not key=value (e.g. --set epochs=3)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ValueError(f"override {item!r}: value is not valid YAML ({err})") from err
        if isinstance(value, str) and _is_float(value):
            value = float(value)  # YAML 1.1 reads `1e-3` as a string
        *parents, leaf = key.strip().split(".")
        target = out
        for p in parents:
            target = target.setdefault(p, {})
            if not isinstance(target, dict):
                raise ValueError(f"override {item!r}: {p} is not a mapping")
        target[leaf] = value
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
        name = str(name_or_path)
        named = PRETRAIN_CONFIGS_DIR / f"{name}.yaml"
        path = named if name in list_pretrain_configs() else Path(name).expanduser()
        if not path.is_file():
            raise ValueError(
                f"pretrain config {name!r}: no such file; packaged ones: {list_pretrain_configs()}"
            )
        source = str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return PretrainConfig.from_dict(data, source=source)
