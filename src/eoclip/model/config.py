"""Model configurations: dataclasses, and the named variants stored as YAML files.

A variant is a file `src/eoclip/configs/models/<name>.yaml`; adding one is adding a file.
A user's own YAML file in the same format works wherever a variant name does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from eoclip.config import check_keys, read_mapping, resolve
from eoclip.errors import ConfigError

__all__ = [
    "MODELS_DIR",
    "ModelConfig",
    "TowerConfig",
    "list_models",
    "load_model_config",
]

MODELS_DIR = Path(__file__).resolve().parents[1] / "configs" / "models"

# CLIP (Radford et al. 2021, section 2.5): temperature initialised to 0.07, logits scale
# clipped at 100 "to prevent training instability".
_CLIP_INIT_LOGIT_SCALE = math.log(1 / 0.07)
_CLIP_MAX_LOGIT_SCALE = math.log(100)

_GLOBAL_POOLS = ("token", "avg")


@dataclass
class TowerConfig:
    """One single-channel ViT tower (the same shape is used for every modality)."""

    img_size: int = 64  # chip side in pixels the position embedding is built for
    patch_size: int = 8  # square patch side in pixels; img_size must be a multiple of it
    width: int = 64  # transformer width (timm's embed_dim)
    depth: int = 2  # number of transformer blocks
    heads: int = 2  # attention heads; width must be a multiple of it
    mlp_ratio: float = 4.0  # hidden size of each block's MLP, as a multiple of width
    global_pool: str = "token"  # "token" (class token, as CLIP/ViT-B) or "avg" (mean of patches)
    drop_path_rate: float = 0.0  # stochastic depth, 0 = off

    def validate(self, source: str = "tower config") -> None:
        """Raise ConfigError naming `source` if the numbers cannot build a ViT."""
        for name in ("img_size", "patch_size", "width", "depth", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{source}: {name} must be a positive integer, got {value!r}")
        if self.img_size % self.patch_size:
            raise ConfigError(
                f"{source}: img_size {self.img_size} is not a multiple of patch_size "
                f"{self.patch_size}"
            )
        if self.width % self.heads:
            raise ConfigError(
                f"{source}: width {self.width} is not a multiple of heads {self.heads}"
            )
        if self.global_pool not in _GLOBAL_POOLS:
            raise ConfigError(
                f"{source}: global_pool must be one of {_GLOBAL_POOLS}, got {self.global_pool!r}"
            )
        if self.mlp_ratio <= 0 or not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"{source}: mlp_ratio must be > 0 and drop_path_rate in [0, 1)")


@dataclass
class ModelConfig:
    """A multi-tower CLIP model: one `TowerConfig`-shaped tower per modality."""

    name: str = "custom"  # variant name (file stem), kept in checkpoints
    embed_dim: int = 64  # size of the shared embedding space every tower projects to
    modalities: tuple[str, ...] = ("s2rgbm", "s1grdm", "gunw")  # one tower each, in this order
    tower: TowerConfig = field(default_factory=TowerConfig)  # backbone shape of every tower
    init_logit_scale: float = _CLIP_INIT_LOGIT_SCALE  # log(1/temperature) at init, as CLIP
    max_logit_scale: float = _CLIP_MAX_LOGIT_SCALE  # log of the largest logit scale, as CLIP
    # modality -> target channels of its cross-channel reconstruction head (`eoclip.model.recon`);
    # empty = no heads (the paper's model). Set by pretraining with `recon_weight > 0`.
    recon_channels: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.tower, dict):
            self.tower = TowerConfig(**self.tower)
        if isinstance(self.modalities, str):
            self.modalities = (self.modalities,)
        self.modalities = tuple(self.modalities)
        self.recon_channels = dict(self.recon_channels or {})

    def validate(self, source: str | None = None) -> None:
        """Raise ConfigError naming `source` (default: the config name) on a bad value."""
        source = source or f"model config {self.name!r}"
        if not isinstance(self.embed_dim, int) or self.embed_dim < 1:
            raise ConfigError(f"{source}: embed_dim must be a positive integer")
        if not self.modalities:
            raise ConfigError(f"{source}: modalities must name at least one modality")
        if len(set(self.modalities)) != len(self.modalities):
            raise ConfigError(f"{source}: modalities repeat a name: {list(self.modalities)}")
        for mod in self.modalities:
            # "." is not allowed in a torch module name, "~" separates pair names in the loss.
            if not isinstance(mod, str) or not mod or "." in mod or "~" in mod:
                raise ConfigError(
                    f"{source}: bad modality name {mod!r} (non-empty, no '.' and no '~')"
                )
        for mod, n in self.recon_channels.items():
            if mod not in self.modalities or not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ConfigError(
                    f"{source}: recon_channels maps tower names to positive channel counts, "
                    f"got {mod!r}: {n!r} (towers: {list(self.modalities)})"
                )
        if self.max_logit_scale < self.init_logit_scale:
            raise ConfigError(f"{source}: init_logit_scale exceeds max_logit_scale")
        self.tower.validate(source)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples) for JSON/YAML; `from_dict` inverts it."""
        out = asdict(self)
        out["modalities"] = list(self.modalities)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model config") -> ModelConfig:
        """Build and validate a config, rejecting unknown keys with a message naming `source`."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
        check_keys(data, {f.name for f in fields(cls)}, source)
        tower = data.get("tower", {})
        if not isinstance(tower, dict):
            raise ConfigError(f"{source}: 'tower' must be a mapping")
        check_keys(tower, {f.name for f in fields(TowerConfig)}, f"{source} (tower)")
        config = cls(**{**data, "tower": TowerConfig(**tower)})
        config.validate(source)
        return config

    def with_overrides(self, **overrides: Any) -> ModelConfig:
        """Copy with fields replaced; tower fields (`depth`, `img_size`...) may be given flat."""
        model_keys = {f.name for f in fields(ModelConfig)} - {"tower"}
        tower_keys = {f.name for f in fields(TowerConfig)}
        check_keys(overrides, model_keys | tower_keys, "model overrides")
        tower = replace(self.tower, **{k: v for k, v in overrides.items() if k in tower_keys})
        config = replace(
            self, tower=tower, **{k: v for k, v in overrides.items() if k in model_keys}
        )
        config.validate()
        return config


def list_models() -> list[str]:
    """Names of the registered variants (YAML files in `configs/models/`), sorted."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    """Load a registered variant by name, or a user's YAML file by path.

    Args:
        name_or_path: a name from `list_models()` or a path to a YAML file.

    Returns:
        The validated `ModelConfig`.

    Raises:
        ValueError: unknown name (the message lists the registered ones) or a bad file.
    """
    path = resolve(name_or_path, MODELS_DIR, "model")
    data = read_mapping(path)
    data.setdefault("name", path.stem)
    return ModelConfig.from_dict(data, source=str(path))
