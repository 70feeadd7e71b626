"""Validation metrics: cross-modal retrieval recall, chance levels, and the JSONL log."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from eoclip.fsio import write_text_atomic

__all__ = ["MetricsLog", "clip_chance_loss", "cross_modal_recall", "retrieval_recall"]


def retrieval_recall(
    query: torch.Tensor, gallery: torch.Tensor, ks: Sequence[int] = (1, 5)
) -> dict[int, float]:
    """Recall@k of retrieving row i of `gallery` with row i of `query` by cosine similarity.

    The rank of the true match is 1 + the number of gallery rows strictly more similar, so
    ties are resolved in the match's favour (a constant embedding scores recall 1; that is
    why the chance levels k/n are logged beside it).

    Args:
        query: Tensor of shape (N, D).
        gallery: Tensor of shape (N, D); row i is the match of query row i.
        ks: the k of recall@k.

    Returns:
        {k: fraction of queries whose match ranks <= k}, floats in [0, 1].

    Raises:
        ValueError: shapes differ, N == 0 or a k < 1.
    """
    if query.ndim != 2 or query.shape != gallery.shape or query.shape[0] == 0:
        raise ValueError(
            f"retrieval_recall: need two non-empty (N, D) tensors of the same shape, got "
            f"{tuple(query.shape)} and {tuple(gallery.shape)}"
        )
    if any(k < 1 for k in ks):
        raise ValueError(f"retrieval_recall: ks must be >= 1, got {list(ks)}")
    q = torch.nn.functional.normalize(query.double(), dim=1)
    g = torch.nn.functional.normalize(gallery.double(), dim=1)
    sim = q @ g.T  # (N, N)
    true = sim.diagonal().unsqueeze(1)
    rank = 1 + (sim > true).sum(dim=1)
    return {int(k): float((rank <= k).double().mean()) for k in ks}


def cross_modal_recall(
    features: dict[str, torch.Tensor],
    present: dict[str, torch.Tensor],
    ks: Sequence[int] = (1, 5),
) -> dict[str, dict[str, float]]:
    """Recall@k for every ordered pair of modalities, over the chips present in both.

    Args:
        features: modality -> Tensor (N, D), row i = chip i in every modality.
        present: modality -> BoolTensor (N,).
        ks: the k of recall@k.

    Returns:
        {"a->b": {"r@1": ..., "r@5": ..., "chance@1": 1/n, "chance@5": 5/n, "n": n}} for each
        ordered pair with at least 2 chips present in both (a retrieves among b).
    """
    if set(features) != set(present):
        raise ValueError(f"features {sorted(features)} and present {sorted(present)} differ")
    out: dict[str, dict[str, float]] = {}
    mods = list(features)
    for a in mods:
        for b in mods:
            if a == b:
                continue
            both = present[a].bool().cpu() & present[b].bool().cpu()
            n = int(both.sum())
            if n < 2:
                continue
            recall = retrieval_recall(features[a].cpu()[both], features[b].cpu()[both], ks)
            row: dict[str, float] = {"n": n}
            for k in ks:
                row[f"r@{k}"] = recall[k]
                row[f"chance@{k}"] = min(1.0, k / n)
            out[f"{a}->{b}"] = row
    return out


def clip_chance_loss(present: dict[str, torch.Tensor]) -> float | None:
    """The CLIP loss of an untrained (uniform) model on this batch: mean over pairs of log(n).

    n is the number of chips present in both modalities of a pair; pairs with n < 2 are
    skipped, as in `MultiModalClipLoss`. None if no pair remains.
    """
    mods = list(present)
    logs = []
    for i, a in enumerate(mods):
        for b in mods[i + 1 :]:
            n = int((present[a].bool().cpu() & present[b].bool().cpu()).sum())
            if n >= 2:
                logs.append(math.log(n))
    return sum(logs) / len(logs) if logs else None


class MetricsLog:
    """Append-only JSONL file, one JSON object per line; does nothing when `path` is None."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (floats rounded to 6 significant digits)."""
        if self.path is None:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(_round(record)) + "\n")

    def truncate(self, step: int, epoch: int) -> None:
        """Drop records past a resumed checkpoint: train lines after `step` and epoch lines
        after `epoch` (what a killed attempt logged before it died). Rewritten atomically."""
        if self.path is None or not self.path.exists():
            return
        records = self.read()
        keep = [
            r
            for r in records
            if not (
                (r.get("kind") == "train" and r.get("step", 0) > step)
                or (r.get("kind") == "epoch" and r.get("epoch", 0) > epoch)
            )
        ]
        if len(keep) < len(records):
            write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def read(self) -> list[dict[str, Any]]:
        """All records so far."""
        if self.path is None or not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value
