"""Numeric precision of the model's forward: bf16 autocast on GPUs, float32 on CPUs."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["autocast_for"]


def autocast_for(
    device: torch.device | str, bf16: bool = True
) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA when `bf16`, else a null context.

    CPUs run in float32: bf16 matrix products are only faster there on chips with AMX, and
    float32 keeps CPU results bit-reproducible (tests, the demo).
    """
    if bf16 and torch.device(device).type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
