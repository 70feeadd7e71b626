"""Cross-channel reconstruction: a self-supervised term beside the CLIP loss.

A tower sees ONE channel of its modality (paper, section 4.1), so nothing in the CLIP loss asks
it to keep what tells the channels apart (the colour of a field, the VV/VH ratio of a forest):
any channel of a chip is paired with the same other-modality embedding, which rewards features
that are the same in every channel. Channel statistics keep exactly that information, and beat
the CLIP embeddings on tasks such as cropland (README, *Pretraining recipe*).

The term added here is the "predict the other channels" task of split-brain and cross-channel
autoencoders (Zhang et al. 2017; SatMAE's and DOFA's spectral objectives are relatives): from
each patch token of the one channel it saw, a linear head predicts the mean of EVERY channel of
the modality over that patch (normalised like the tower's input), and the loss is the mean
squared error over the cells whose target is finite (no-data pixels and invalid channels are
left out, not zero-filled). For a modality whose channels are not fixed (GUNW date pairs, where
slot i is another pair on each chip) the target is one map: the mean over the chip's valid
channels.

The head is linear on purpose: what it can read out of a token, a forest can read out of the
pooled embedding too. `MultiTowerCLIP` owns the heads (`ModelConfig.recon_channels`); they are
used in pretraining only and never change `encode`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ReconHead", "masked_mse"]


class ReconHead(nn.Module):
    """Per-token linear read-out of every channel's mean over the token's patch.

    Args:
        width: the tower's token width.
        channels: target channels per cell.
    """

    def __init__(self, width: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.linear = nn.Linear(width, channels)

    def forward(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, width) patch tokens (prefix tokens removed) -> (B, channels, N)."""
        return self.linear(patch_tokens).transpose(1, 2)


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the finite entries of `target`; a graph-connected 0 if none.

    Args:
        pred: (B, C, N) predictions.
        target: (B, C, N) targets, NaN where unknown.
    """
    ok = torch.isfinite(target)
    diff = torch.where(ok, pred.float() - torch.nan_to_num(target.float()), 0.0)
    return (diff * diff).sum() / ok.sum().clamp(min=1)
