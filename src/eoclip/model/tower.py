"""One modality's encoder: a single-channel timm ViT and a linear projection.

The paper (section 4.1) feeds each tower ONE channel chosen at random per sample, so every
tower takes `in_chans=1` whatever the modality's channel count.
"""

from __future__ import annotations

import torch
from timm.models import VisionTransformer
from torch import nn

from eoclip.errors import ModelError
from eoclip.model.config import TowerConfig

__all__ = ["Tower"]


class Tower(nn.Module):
    """Single-channel ViT backbone followed by a projection to the shared embedding.

    Args:
        config: backbone shape.
        embed_dim: size of the shared embedding space.

    The forward runs in three stages that can be called separately:
    `forward_features` (tokens), `forward_pool` (one vector per image), `forward_head`
    (projection to `embed_dim`).
    """

    def __init__(self, config: TowerConfig, embed_dim: int) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.embed_dim = embed_dim
        self.backbone = VisionTransformer(
            img_size=config.img_size,
            patch_size=config.patch_size,
            in_chans=1,
            embed_dim=config.width,
            depth=config.depth,
            num_heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            num_classes=0,
            global_pool=config.global_pool,
            drop_path_rate=config.drop_path_rate,
            # Other chip sizes than img_size work: timm interpolates the position embedding.
            dynamic_img_size=True,
        )
        # No bias, as CLIP's projections: embeddings are L2-normalised afterwards anyway.
        self.proj = nn.Linear(config.width, embed_dim, bias=False)
        nn.init.normal_(self.proj.weight, std=config.width**-0.5)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens after the last block and norm.

        Args:
            x: Tensor of shape (B, 1, H, W), H and W multiples of the patch size.

        Returns:
            Tensor of shape (B, 1 + H*W/patch**2, width) (class token first).
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise ModelError(
                f"a tower takes tensors of shape (B, 1, H, W), got {tuple(x.shape)}; "
                "feed one channel per sample (ChipDataset(channels='random') or a named channel)"
            )
        return self.backbone.forward_features(x)

    def forward_pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pool tokens to one vector per image (class token or mean, then fc norm).

        Returns:
            Tensor of shape (B, width).
        """
        return self.backbone.forward_head(tokens, pre_logits=True)

    def forward_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Project pooled vectors to the shared space (not normalised).

        Returns:
            Tensor of shape (B, embed_dim).
        """
        return self.proj(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed images.

        Args:
            x: Tensor of shape (B, 1, H, W).

        Returns:
            Tensor of shape (B, embed_dim), not normalised.
        """
        return self.forward_head(self.forward_pool(self.forward_features(x)))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them."""
        self.backbone.set_grad_checkpointing(enable)
