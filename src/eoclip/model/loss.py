"""Multimodal CLIP loss: symmetric InfoNCE for every pair of modalities, averaged.

Paper figure 3: "Similarity is measured for each pair of modalities and then averaged."
A pair only uses the chips present in BOTH of its modalities; zero-filled rows of absent
chips never enter a softmax.

Distributed training (one process per GPU under torchrun/DDP): every rank all-gathers the
features of all ranks (`gather_features`), computes the loss over the global batch, and
keeps gradients only through its own rows (as open_clip with `local_loss=False`,
`gather_with_grad=False`). On rank r, d loss / d (local features) is then the full gradient
of the global loss w.r.t. those rows, and DDP *averages* parameter gradients over ranks:
tower gradients would come out `1 / world_size` of the single-process ones while the
logit scale's (computed identically on every rank) would come out whole. To make DDP
training equal single-process training on the concatenated batch, `MultiModalClipLoss`
multiplies the gradient flowing into the local features by `world_size` (the loss value
is unchanged). Consequences, both tested: the loss value is the same on every rank and
equals the single-process loss; d loss / d (local features) is `world_size` times the
single-process gradient of those rows, and DDP-averaged parameter gradients equal the
single-process ones.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from eoclip.errors import ModelError

__all__ = ["MultiModalClipLoss", "clip_pair_loss", "gather_features"]


def gather_features(
    features: dict[str, torch.Tensor],
    present: dict[str, torch.Tensor],
    rank: int = 0,
    world_size: int = 1,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """All-gather features and presence masks of every rank, keeping grad on the local part.

    Ranks may hold different batch sizes: every rank's rows are padded to the largest
    with zero features marked absent, which the loss ignores. All ranks must pass the same
    modalities in the same order (a model's `forward` always returns all its modalities).

    Args:
        features: modality -> Tensor (B_r, D) of this rank.
        present: modality -> BoolTensor (B_r,) of this rank.
        rank: this process's rank.
        world_size: number of processes; 1 returns the inputs unchanged.

    Returns:
        (features, present) with Tensors (world_size * max_r B_r, D) and
        (world_size * max_r B_r,); rank r's rows start at r * max_r B_r and are the input
        tensors themselves (so gradients flow to them), the other ranks' are detached.
    """
    if world_size == 1:
        return dict(features), dict(present)
    mods = list(features)
    local_f = torch.stack([features[m] for m in mods], dim=1)  # (B_r, M, D)
    local_p = torch.stack([present[m].to(local_f.device) for m in mods], dim=1)  # (B_r, M)

    sizes = [torch.zeros(1, dtype=torch.long, device=local_f.device) for _ in range(world_size)]
    dist.all_gather(sizes, torch.tensor([local_f.shape[0]], device=local_f.device))
    pad = int(max(s.item() for s in sizes)) - local_f.shape[0]
    local_f = F.pad(local_f, (0, 0, 0, 0, 0, pad))
    local_p = F.pad(local_p.to(torch.uint8), (0, 0, 0, pad))  # gloo cannot gather bool

    with torch.no_grad():
        all_f = [torch.empty_like(local_f) for _ in range(world_size)]
        all_p = [torch.empty_like(local_p) for _ in range(world_size)]
        dist.all_gather(all_f, local_f.detach().contiguous())
        dist.all_gather(all_p, local_p.contiguous())
    all_f[rank] = local_f  # the local slot keeps its autograd history
    gathered_f = torch.cat(all_f)
    gathered_p = torch.cat(all_p).bool()
    return (
        {m: gathered_f[:, i] for i, m in enumerate(mods)},
        {m: gathered_p[:, i] for i, m in enumerate(mods)},
    )


def clip_pair_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between matching rows of `a` and `b` (CLIP's loss).

    Args:
        a: Tensor (N, D), L2-normalised.
        b: Tensor (N, D), L2-normalised; row i matches row i of `a`.
        logit_scale: 0-d Tensor, already exp'd.

    Returns:
        0-d Tensor: mean of the cross-entropies a->b and b->a.
    """
    logits = logit_scale * a @ b.T
    labels = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def _scale_grad(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Identity in forward; multiplies the gradient by `factor` in backward."""
    return x.detach() + factor * (x - x.detach())


class MultiModalClipLoss(nn.Module):
    """CLIP loss for every pair of modalities, over the chips present in both.

    Args:
        rank: this process's rank (0 without distributed training).
        world_size: number of processes; > 1 gathers features of all ranks (see module doc).
        recon_weight: weight of the cross-channel reconstruction term (`eoclip.model.recon`),
            the mean of `out["recon"]` over modalities, added to the CLIP loss; 0 = off.

    `forward(out)` takes `MultiTowerCLIP.forward`'s output and returns
    `{"loss": 0-d Tensor, "pairs": {"a~b": 0-d Tensor}}`; pairs are named and ordered by
    the modality order of `out["features"]` (the model's). A pair with fewer than 2 chips
    present in both modalities is skipped (a 1x1 softmax carries no signal); the loss is
    the mean over the remaining pairs. If none remains, the loss is a zero that still
    requires grad (so `backward()` and DDP work unchanged) and `pairs` is empty.
    Whatever the pairs, every input feature tensor and the logit scale are in the graph
    (with zero weight if unused), so DDP needs no `find_unused_parameters`.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, recon_weight: float = 0.0) -> None:
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ModelError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        self.rank = rank
        self.world_size = world_size
        self.recon_weight = float(recon_weight)

    def forward(self, out: dict[str, Any]) -> dict[str, Any]:
        """Compute the loss.

        Args:
            out: {"features": {mod: Tensor (B, D)}, "present": {mod: BoolTensor (B,)},
                "logit_scale": 0-d Tensor}.

        Returns:
            {"loss": 0-d Tensor, "pairs": {"a~b": 0-d Tensor}}, plus "clip" (the CLIP part)
            and "recon" (the mean reconstruction loss) when `out` has reconstruction terms.
        """
        features, present, scale = out["features"], out["present"], out["logit_scale"]
        if set(features) != set(present):
            raise ModelError(
                f"features {sorted(features)} and present {sorted(present)} name different "
                "modalities"
            )
        if self.world_size > 1:
            scaled = {m: _scale_grad(f, self.world_size) for m, f in features.items()}
            all_f, all_p = gather_features(scaled, present, self.rank, self.world_size)
        else:
            all_f, all_p = features, present

        mods = list(all_f)
        pairs: dict[str, torch.Tensor] = {}
        for i, a in enumerate(mods):
            for b in mods[i + 1 :]:
                both = all_p[a].to(all_f[a].device) & all_p[b].to(all_f[a].device)
                if int(both.sum()) >= 2:
                    pairs[f"{a}~{b}"] = clip_pair_loss(all_f[a][both], all_f[b][both], scale)

        # Zero-weight terms keep every feature tensor and the scale in the autograd graph.
        anchor = scale * 0.0 + sum((f.sum() * 0.0 for f in features.values()), scale.new_zeros(()))
        loss = torch.stack(list(pairs.values())).mean() + anchor if pairs else anchor
        if not out.get("recon"):
            return {"loss": loss, "pairs": pairs}
        recon = torch.stack([r.float() for r in out["recon"].values()]).mean()
        return {
            "loss": loss + self.recon_weight * recon,
            "pairs": pairs,
            "clip": loss,
            "recon": recon,
        }
