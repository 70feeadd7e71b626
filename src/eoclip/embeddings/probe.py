"""Features from inside the towers, for finding where task information is lost.

`eoclip embed` hands the few-shot forest one vector per chip and modality: the tower's pooled
vector, projected to the shared space, L2-normalised, averaged over the chip's channels. Each
of those steps can throw away what a task needs. `probe_features` keeps the intermediate
results side by side so a probe (a forest or a linear model fitted on them) can tell which step
loses it:

- ``patch<k>``: the mean of the patch tokens after block k (1..depth), before the final norm;
- ``cls<k>``: the class token after block k;
- ``pooled``: what the tower pools (class token or mean of patches, after the final norm);
- ``proj``: the projected, L2-normalised embedding (what `eoclip embed` exports per channel).

and, for each, two ways of combining a chip's channels:

- ``mean``: the mean over the chip's valid channels (``proj`` re-normalised, as the ``mean``
  export policy);
- ``stack``: one block per channel slot in channel order, NaN for a missing channel (as the
  ``stack`` policy); modalities whose channels vary per chip (``gunw``) use ``mean``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from eoclip.data.dataset import ChipDataset
from eoclip.data.store import ChipStore
from eoclip.model import MultiTowerCLIP, Tower

__all__ = ["AGGREGATIONS", "layer_names", "probe_features", "tower_layers"]

AGGREGATIONS = ("mean", "stack")


def layer_names(depth: int) -> list[str]:
    """Feature names `tower_layers` returns for a tower of `depth` blocks, shallow to deep."""
    return [f"{kind}{k}" for k in range(1, depth + 1) for kind in ("patch", "cls")] + [
        "pooled",
        "proj",
    ]


@torch.inference_mode()
def tower_layers(tower: Tower, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every probed feature of a batch of single-channel images.

    Args:
        tower: a `Tower`.
        x: Tensor (B, 1, H, W) of normalised pixels.

    Returns:
        name -> Tensor (B, width) (``proj``: (B, embed_dim), L2-normalised), names in
        `layer_names(depth)` order.
    """
    vit = tower.backbone
    h = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
    prefix = vit.num_prefix_tokens
    out = {}
    for k, block in enumerate(vit.blocks, start=1):
        h = block(h)
        out[f"patch{k}"] = h[:, prefix:].mean(dim=1)
        out[f"cls{k}"] = h[:, 0] if prefix else h[:, prefix:].mean(dim=1)
    pooled = tower.forward_pool(vit.norm(h))
    out["pooled"] = pooled
    out["proj"] = F.normalize(tower.forward_head(pooled), dim=-1)
    return out


def _combine(
    vectors: torch.Tensor, slots: np.ndarray, n_slots: int, normalize: bool, stack: bool
) -> np.ndarray:
    """One chip's vector from its channels' vectors (k, D) at slot positions `slots` (k,)."""
    v = vectors.double().numpy()
    if stack:
        out = np.full((n_slots, v.shape[1]), np.nan)
        out[slots] = v
        return out.ravel()
    mean = v.mean(axis=0)
    if normalize:
        mean /= max(np.linalg.norm(mean), 1e-12)
    return mean


def probe_features(
    model: MultiTowerCLIP, store: ChipStore | str, batch_chips: int = 64, progress: bool = True
) -> tuple[list[str], dict[tuple[str, str, str], np.ndarray]]:
    """Probed features of every chip of a store (all channels of every modality).

    Args:
        model: the model (eval mode, CPU).
        store: the ChipStore (or its path).
        batch_chips: chips per forward batch.
        progress: show a progress bar.

    Returns:
        (chip ids in store order, {(layer, modality, aggregation): float32 (N, D)}) with NaN
        rows for chips that lack the modality; aggregations are `AGGREGATIONS`.
    """
    store = store if isinstance(store, ChipStore) else ChipStore.open(store)
    ds = ChipDataset(store, split=None, modalities=list(model.modalities), channels="all")
    names = layer_names(model.config.tower.depth)
    n = len(ds)
    rows: dict[tuple[str, str, str], list] = {}
    for lo in tqdm(range(0, n, batch_chips), desc="probe", disable=not progress):
        samples = [ds[i] for i in range(lo, min(lo + batch_chips, n))]
        for mod in model.modalities:
            spec = store.modalities[mod]
            images, owner, slots = [], [], []
            for j, s in enumerate(samples):
                if mod in s:
                    ok = np.flatnonzero(s[f"{mod}_valid"].numpy())
                    images.append(s[mod][ok])
                    owner += [j] * len(ok)
                    slots += ok.tolist()
            feats = tower_layers(model.towers[mod], torch.cat(images)[:, None]) if images else {}
            owner_a, slots_a = np.asarray(owner), np.asarray(slots)
            for name in names:
                for agg in AGGREGATIONS:
                    stack = agg == "stack" and not spec.variable
                    dim = model.embed_dim if name == "proj" else model.config.tower.width
                    dim *= spec.max_channels if stack else 1
                    block = np.full((len(samples), dim), np.nan)
                    for j in range(len(samples)):
                        mine = owner_a == j
                        if mine.any():
                            block[j] = _combine(
                                feats[name][torch.from_numpy(mine)],
                                slots_a[mine],
                                spec.max_channels,
                                name == "proj",
                                stack,
                            )
                    rows.setdefault((name, mod, agg), []).append(block.astype(np.float32))
    chip_ids = [str(c) for c in store.index["chip_id"]]
    return chip_ids, {k: np.concatenate(v) for k, v in rows.items()}
