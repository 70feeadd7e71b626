"""Multi-tower CLIP: one single-channel ViT tower per modality and a learnable temperature.

Paper section 4.1 / figure 3: each modality has its own encoder; the CLIP loss is computed
for every pair of modalities and averaged (see `eoclip.model.loss`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eoclip.errors import ModelError
from eoclip.model.config import ModelConfig
from eoclip.model.recon import ReconHead, masked_mse
from eoclip.model.tower import Tower

__all__ = ["INDUCTOR_MODES", "MultiTowerCLIP"]

# torch.compile modes of the inductor backend that `compile_towers` accepts by name
# (not the CUDA-graph modes: a tower sees another batch size whenever the number of chips that
# have its modality changes, and every new size would record another graph)
INDUCTOR_MODES = ("default", "max-autotune-no-cudagraphs")


class MultiTowerCLIP(nn.Module):
    """One `Tower` per modality in `config.modalities`, sharing an embedding space.

    Args:
        config: the model configuration (validated here).

    Attributes:
        towers: `nn.ModuleDict` modality -> `Tower`.
        logit_scale: learnable log of the logit scale (CLIP init log(1/0.07)); use
            `scale()` for the exp'd, clamped value.
        recon: `nn.ModuleDict` modality -> `ReconHead` for `config.recon_channels` (empty for
            the paper's model): pretraining's cross-channel reconstruction term.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.towers = nn.ModuleDict(
            {m: Tower(config.tower, config.embed_dim) for m in config.modalities}
        )
        self.logit_scale = nn.Parameter(torch.tensor(float(config.init_logit_scale)))
        self.recon = nn.ModuleDict(
            {m: ReconHead(config.tower.width, n) for m, n in config.recon_channels.items()}
        )

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names, in tower order (the order of loss pairs too)."""
        return tuple(self.config.modalities)

    @property
    def embed_dim(self) -> int:
        """Size D of the shared embedding space."""
        return self.config.embed_dim

    def scale(self) -> torch.Tensor:
        """exp(logit_scale) clamped at exp(max_logit_scale) (100, as CLIP); a 0-d tensor."""
        return self.logit_scale.clamp(max=self.config.max_logit_scale).exp()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Turn activation checkpointing on or off in every tower."""
        for tower in self.towers.values():
            tower.set_grad_checkpointing(enable)

    def compile_towers(self, backend: str | bool = True) -> None:
        """``torch.compile`` every tower in place (``nn.Module.compile``).

        The towers, not the whole model: the forward selects each modality's present rows, a
        data-dependent shape that would break the graph. The towers share one architecture,
        so they share the compiled code; a new batch size recompiles once, then runs with a
        dynamic batch dimension.

        Args:
            backend: ``True`` or ``"inductor"`` (fused kernels, for GPUs); an inductor mode
                (``"max-autotune-no-cudagraphs"``: also times candidate matrix-product
                kernels while compiling, minutes longer; see ``INDUCTOR_MODES``); or another
                ``torch.compile`` backend (``"aot_eager"`` traces without generating code: it
                checks that the model compiles, cheaply, on a CPU); ``False`` does nothing.
        """
        if backend is False:
            return
        name = "inductor" if backend is True else str(backend)
        kwargs = {"backend": "inductor", "mode": name} if name in INDUCTOR_MODES else {}
        for tower in self.towers.values():
            tower.compile(**(kwargs or {"backend": name}))

    def _tower(self, modality: str) -> Tower:
        if modality not in self.towers:
            raise ModelError(
                f"no tower for modality {modality!r}; this model has {list(self.modalities)}"
            )
        return self.towers[modality]

    def encode(self, modality: str, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Embed one modality's single-channel images.

        Args:
            modality: a name in `self.modalities`.
            x: Tensor of shape (B, 1, H, W) (normalised pixels, one channel per sample).
            normalize: L2-normalise the output rows.

        Returns:
            Tensor of shape (B, D).
        """
        tower = self._tower(modality)
        if x.ndim != 4 or x.shape[1] != 1:
            raise ModelError(
                f"modality {modality!r}: expected a tensor of shape (B, 1, H, W), got "
                f"{tuple(x.shape)}; towers take one channel per sample (use "
                "ChipDataset(channels='random') or select one channel)"
            )
        features = tower(x)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Embed every modality of a collated batch; absent rows are not computed.

        Args:
            batch: `collate_samples` output: `<mod>` Tensor (B, 1, H, W) and `<mod>_present`
                BoolTensor (B,) per modality. Keys of modalities without a tower are ignored;
                a model modality missing from the batch counts as absent for every row.
                With a reconstruction head, `<mod>_target` (B, C, g, g) (g x g = the tower's
                patch grid, NaN where unknown) adds that modality's term.

        Returns:
            {"features": {mod: Tensor (B, D), L2-normalised, zeros where absent},
             "present": {mod: BoolTensor (B,)}, "logit_scale": 0-d Tensor (exp'd, <= 100),
             and, only when some modality has a head and a target, "recon": {mod: 0-d
             Tensor} (masked MSE)}.
        """
        batch_size = _batch_size(batch, self.modalities)
        device = self.logit_scale.device
        features: dict[str, torch.Tensor] = {}
        present: dict[str, torch.Tensor] = {}
        recon: dict[str, torch.Tensor] = {}
        for mod in self.modalities:
            mask = _present_mask(batch, mod, batch_size)
            rows = mask.nonzero().squeeze(1)  # on the mask's device (usually the CPU)
            target = batch.get(f"{mod}_target") if mod in self.recon else None
            if rows.numel() == 0:
                out = self.logit_scale.new_zeros(batch_size, self.embed_dim)
                if torch.is_grad_enabled():
                    # DDP (find_unused_parameters=False) needs every parameter in the graph;
                    # on a rank whose batch lacks this modality it would fail at the next step
                    # ("Expected to have finished reduction..."): add 0 * parameters.
                    out = out + _zero_touch(self.towers[mod])
            else:
                x = batch[mod]
                # Select before moving: only present rows are transferred and computed.
                x = x[rows.to(x.device)].to(device)
                if target is None:
                    emb = self.encode(mod, x)
                else:
                    emb, recon[mod] = self._encode_recon(mod, x, target[rows.to(target.device)])
                out = emb.new_zeros(batch_size, self.embed_dim)
                out = out.index_copy(0, rows.to(device), emb)
            if mod in self.recon and mod not in recon and torch.is_grad_enabled():
                out = out + _zero_touch(self.recon[mod])  # an unused head, for DDP as above
            features[mod] = out
            present[mod] = mask.to(device)
        out = {"features": features, "present": present, "logit_scale": self.scale()}
        if recon:
            out["recon"] = recon
        return out

    def _encode_recon(
        self, mod: str, x: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised embeddings of (n, 1, H, W) and the reconstruction loss of (n, C, g, g)."""
        tower = self._tower(mod)
        tokens = tower.forward_features(x)  # raises on a shape other than (n, 1, H, W)
        emb = F.normalize(tower.forward_head(tower.forward_pool(tokens)), dim=-1)
        patches = tokens[:, tower.backbone.num_prefix_tokens :]
        head = self.recon[mod]
        target = target.to(x.device, non_blocking=True).flatten(2)
        if target.shape != (x.shape[0], head.channels, patches.shape[1]):
            raise ModelError(
                f"modality {mod!r}: reconstruction target of shape {tuple(target.shape)}, "
                f"expected ({x.shape[0]}, {head.channels}, {patches.shape[1]}) (channels x "
                "the tower's patch grid)"
            )
        return emb, masked_mse(head(patches), target)


def _batch_size(batch: dict[str, Any], modalities: tuple[str, ...]) -> int:
    for mod in modalities:
        for key in (f"{mod}_present", mod):
            if key in batch:
                return int(batch[key].shape[0])
    if "chip_id" in batch:
        return len(batch["chip_id"])
    raise ModelError(
        f"batch has none of the model's modalities {list(modalities)} (keys: {sorted(batch)})"
    )


def _present_mask(batch: dict[str, Any], mod: str, batch_size: int) -> torch.Tensor:
    """The `<mod>_present` mask, all-True if only `<mod>` is given, all-False if neither."""
    if mod not in batch:
        return torch.zeros(batch_size, dtype=torch.bool)
    x = batch[mod]
    mask = batch.get(f"{mod}_present")
    if mask is None:
        mask = torch.ones(x.shape[0], dtype=torch.bool)
    if mask.dtype != torch.bool or mask.shape != (batch_size,) or x.shape[0] != batch_size:
        raise ModelError(
            f"modality {mod!r}: expected {mod}_present BoolTensor of shape ({batch_size},) "
            f"and {mod} with {batch_size} rows, got {tuple(mask.shape)} {mask.dtype} and "
            f"{tuple(x.shape)}"
        )
    if x.ndim != 4 or x.shape[1] != 1:
        raise ModelError(
            f"modality {mod!r}: batch tensor has shape {tuple(x.shape)}, expected (B, 1, H, W); "
            "towers take one channel per sample (use ChipDataset(channels='random'))"
        )
    return mask


def _zero_touch(module: nn.Module) -> torch.Tensor:
    """A 0-d zero that depends on one element of every trainable parameter of `module`."""
    params = [p.reshape(-1)[0] for p in module.parameters() if p.requires_grad]
    if not params:
        return torch.zeros(())
    return torch.stack(params).sum() * 0.0
