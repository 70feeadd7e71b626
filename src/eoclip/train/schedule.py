"""Learning-rate schedule: linear warmup then cosine decay, a pure function of the step."""

from __future__ import annotations

import math

__all__ = ["lr_at"]


def lr_at(
    step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> float:
    """Learning rate for optimiser step `step` (0-based).

    Warmup: `base_lr * (step + 1) / warmup_steps` for the first `warmup_steps` steps (so the
    first step is not wasted at lr 0). Then a half cosine from `base_lr` at step
    `warmup_steps` to `base_lr * min_lr_ratio` at step `total_steps - 1`; later steps stay
    at the floor.

    Raises:
        ValueError: negative step or warmup, non-positive total_steps, ratio outside [0, 1].
    """
    if step < 0 or warmup_steps < 0 or total_steps < 1:
        raise ValueError(
            f"lr_at: need step >= 0, warmup_steps >= 0, total_steps >= 1; got {step}, "
            f"{warmup_steps}, {total_steps}"
        )
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"lr_at: min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - 1 - warmup_steps
    if decay_steps <= 0:
        return base_lr
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    floor = base_lr * min_lr_ratio
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
