"""Learning curves of pretraining: the same recipe at increasing budgets of optimiser steps.

Each budget is its own run with a complete schedule (warmup, then a cosine that ends at that
budget), not a checkpoint taken half-way through a longer run, so every point is what a user
would get by asking for that many steps. Steps, not minutes, are the budget axis: they do not
depend on how loaded the machine is; the CPU seconds each run took (this process and its
data-loader workers, `resource.getrusage`) are recorded beside them.

`train_budget` runs (or, when its record exists, reuses) one budget and returns a `BudgetRun`
with the validation CLIP loss and cross-modal recall of its best checkpoint; `embed_run`
exports the embeddings of a run with a channel policy, for `eoclip.train.selection`.
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from eoclip.fsio import write_text_atomic
from eoclip.train.config import PretrainConfig

__all__ = ["BudgetRun", "cpu_seconds", "embed_run", "train_budget"]

RECORD = "budget.json"


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class BudgetRun:
    """One point of a learning curve."""

    steps: int  # optimiser steps
    run_dir: str  # the run folder (its best/ checkpoint is the one embedded)
    # CPU seconds while the run lasted: this process and the child processes that ended meanwhile
    # (data-loader workers; also pooled workers of earlier jobs that exit then, so compare wall_s)
    cpu_s: float
    wall_s: float  # wall-clock seconds of the run
    load_avg: list[float]  # 1-minute load average at the start and at the end of the run
    val_loss: float | None  # validation CLIP loss of best/
    val_chance_loss: float | None  # its chance level (mean log n)
    recall: dict[str, dict[str, float]] = field(default_factory=dict)  # "a->b": r@1, chance@1, ...
    resumed: bool = False  # continued an interrupted run: cpu_s and wall_s cover the rest only

    @property
    def mean_recall1(self) -> float | None:
        """Mean recall@1 over the ordered modality pairs (None without validation)."""
        r1 = [v["r@1"] for v in self.recall.values()]
        return sum(r1) / len(r1) if r1 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, with the mean recall@1."""
        return {**asdict(self), "mean_recall1": self.mean_recall1}


def _best_summary(run_dir: Path) -> dict[str, Any]:
    meta_path = run_dir / "best" / "checkpoint.json"
    if not meta_path.is_file():
        return {}
    return json.loads(meta_path.read_text()).get("val") or {}


def train_budget(config: PretrainConfig, steps: int, out: str | Path) -> BudgetRun:
    """Pretrain `config` for exactly `steps` optimiser steps in `<out>/steps-<steps>`.

    A budget already trained (its `budget.json` exists) is not trained again: its record,
    with the CPU time measured then, is returned. An interrupted run resumes.

    Args:
        config: the recipe; `steps`, `out` and `name` are replaced, `max_steps` cleared.
        steps: the budget (>= 1).
        out: parent folder of the budget runs.

    Returns:
        The budget's `BudgetRun`.
    """
    from eoclip.train.loop import pretrain

    if steps < 1:
        raise ValueError(f"a budget is at least one optimiser step, got {steps}")
    cfg = replace(config, steps=int(steps), max_steps=None, out=str(out), name=f"steps-{steps:05d}")
    record = cfg.run_dir / RECORD
    if record.is_file():
        data = json.loads(record.read_text())
        data.pop("mean_recall1", None)
        return BudgetRun(**data)
    resumed = (cfg.run_dir / "last").is_dir()
    load0 = os.getloadavg()[0]
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    pretrain(cfg, resume=True)
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    val = _best_summary(cfg.run_dir)
    run = BudgetRun(
        steps=int(steps),
        run_dir=str(cfg.run_dir),
        cpu_s=round(cpu, 1),
        wall_s=round(wall, 1),
        load_avg=[load0, os.getloadavg()[0]],
        val_loss=val.get("val_loss"),
        val_chance_loss=val.get("val_chance_loss"),
        recall=val.get("recall") or {},
        resumed=resumed,
    )
    write_text_atomic(record, json.dumps(run.to_dict(), indent=2))
    return run


def embed_run(
    run_dir: str | Path,
    store: str,
    out: str | Path,
    channels: str = "stack",
    untrained: bool = False,
    seed: int = 0,
    batch_size: int = 512,
    progress: bool = False,
) -> str:
    """Export the embeddings of a run's best checkpoint (or an untrained model of its shape).

    Returns:
        The EmbeddingTable path (an up-to-date table is reused).
    """
    from eoclip.embeddings.export import EmbedConfig, embed_store

    return embed_store(
        EmbedConfig(
            checkpoint=str(Path(run_dir) / "best"),
            store=store,
            out=str(out),
            channels=channels,
            untrained=untrained,
            seed=seed,
            batch_size=batch_size,
            device="cpu",
            progress=progress,
        )
    )
