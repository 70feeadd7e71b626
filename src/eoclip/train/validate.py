"""Validation after an epoch: CLIP loss on the val split and cross-modal retrieval recall.

The val split is put in a fixed order (`val_batches`: by a hash of chip id and `val_seed`),
not the store's order, in which consecutive chips are geographic neighbours: those would make
each batch's negatives unusually hard and the loss depend on the ingest order. It is then cut
into batches of the GLOBAL batch size (batch_size x world_size), dealt round-robin to the
ranks; each rank scores whole batches with a local (non-gathering) loss, and the results are
gathered. So the validation loss does not
depend on the number of processes, only on the global batch, and its chance level is
log(n) of each batch and pair. Channels are chosen by the val dataset's fixed seed, the
same every epoch, so epochs are comparable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from eoclip.data.dataset import ChipDataset, collate_samples
from eoclip.distributed import DistEnv, all_gather_objects
from eoclip.model import MultiModalClipLoss
from eoclip.train.checkpoint import unwrap
from eoclip.train.config import PretrainConfig
from eoclip.train.metrics import clip_chance_loss, cross_modal_recall

__all__ = ["val_batches", "validate"]


def val_batches(chip_ids: Sequence[str], batch_size: int, seed: int) -> list[list[int]]:
    """Val dataset positions in batches, in an order set by the chip ids and `seed` alone.

    Chips are sorted by a seeded hash of their id, so a batch's negatives are chips from all
    over the split (not the geographic neighbours that consecutive store positions are) and the
    batches hold the same chips however the store was ingested.

    Args:
        chip_ids: (n,) the val dataset's chip ids, in dataset order.
        batch_size: the global batch size.
        seed: the run's `val_seed`.

    Returns:
        `ceil(n / batch_size)` lists of dataset positions (the last one may be shorter).
    """
    keys = [hashlib.blake2b(f"{seed}:{c}".encode(), digest_size=8).digest() for c in chip_ids]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


@torch.no_grad()
def validate(
    model: torch.nn.Module, val_ds: ChipDataset, config: PretrainConfig, env: DistEnv, autocast
) -> dict[str, Any]:
    """Score the model on the val split.

    Returns:
        {"val_loss": mean CLIP loss over full global batches (all batches if none is full),
         "val_chance_loss": the same for a uniform model (mean of log n),
         "val_pairs": {"a~b": loss}, "recall": `cross_modal_recall` over the first
         `recall_max_chips` val chips, "val_chips": n}; identical on every rank.
    """
    net = unwrap(model)
    was_training = net.training
    net.eval()
    global_bs = config.batch_size * env.world_size
    n = len(val_ds)
    ids = val_ds.store.index["chip_id"].to_numpy()[val_ds.positions]
    batches = val_batches(ids, global_bs, config.val_seed)
    mine = [j for j in range(len(batches)) if j % env.world_size == env.rank]
    loader = DataLoader(
        val_ds,
        batch_sampler=[batches[j] for j in mine],
        collate_fn=collate_samples,
        num_workers=config.num_workers,
    )
    loss_fn = MultiModalClipLoss(0, 1)
    keep = n if config.recall_max_chips is None else min(n, config.recall_max_chips)
    results = []
    for j, batch in zip(mine, loader, strict=True):
        batch = {k: v.to(env.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with autocast:
            out = net(batch)
        feats = {m: f.float() for m, f in out["features"].items()}
        losses = loss_fn(
            {
                "features": feats,
                "present": out["present"],
                "logit_scale": out["logit_scale"].float(),
            }
        )
        # recall is scored on the first `keep` chips of the seeded order
        rows = max(0, min(len(batches[j]), keep - j * global_bs))
        results.append(
            {
                "batch": j,
                "full": len(batches[j]) == global_bs,
                "loss": float(losses["loss"]) if losses["pairs"] else None,
                "chance": clip_chance_loss(out["present"]),
                "pairs": {k: float(v) for k, v in losses["pairs"].items()},
                "features": {m: f[:rows].cpu() for m, f in feats.items()},
                "present": {m: p[:rows].cpu() for m, p in out["present"].items()},
            }
        )
    gathered = sorted(
        (r for part in all_gather_objects(env, results) for r in part), key=lambda r: r["batch"]
    )
    net.train(was_training)
    return _combine(gathered, n)


def _combine(results: list[dict[str, Any]], n: int) -> dict[str, Any]:
    scored = [r for r in results if r["loss"] is not None]
    full = [r for r in scored if r["full"]]
    use = full or scored
    out: dict[str, Any] = {
        "val_chips": n,
        "val_loss": None,
        "val_chance_loss": None,
        "val_pairs": {},
    }
    if use:
        out["val_loss"] = sum(r["loss"] for r in use) / len(use)
        out["val_chance_loss"] = sum(r["chance"] for r in use) / len(use)
        names = sorted({k for r in use for k in r["pairs"]})
        out["val_pairs"] = {
            k: sum(r["pairs"][k] for r in use if k in r["pairs"])
            / sum(k in r["pairs"] for r in use)
            for k in names
        }
    with_rows = [r for r in results if next(iter(r["features"].values())).shape[0]]
    if with_rows:
        mods = list(with_rows[0]["features"])
        feats = {m: torch.cat([r["features"][m] for r in with_rows]) for m in mods}
        present = {m: torch.cat([r["present"][m] for r in with_rows]) for m in mods}
        out["recall"] = cross_modal_recall(feats, present)
    else:
        out["recall"] = {}
    return out
