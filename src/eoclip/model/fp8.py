"""Float8 matrix products in the towers' transformer blocks (torchao), for H100-class GPUs.

`to_float8(model)` swaps the linear layers of every tower's blocks (attention qkv and output
projection, MLP fc1 and fc2) for torchao's `Float8Linear` with dynamic tensorwise scaling:
inputs and weights are cast to e4m3 and gradients to e5m2 around each matrix product, which
then runs on the float8 tensor cores (twice the bf16 peak rate on an H100); accumulation,
weights, optimiser state and everything else (patch embedding, layer norms, attention,
the final projection, the loss) stay as they were. Parameter names do not change, so
checkpoints load into float8 and plain models alike, and `export_model` writes the same timm
weights.

Needs the optional dependency torchao (`pip install 'eoclip[fp8]'`) and, on a GPU, compute
capability 8.9 or more (H100, H200, L4, L40S, RTX 40xx). On a CPU the products are emulated
(2-3x slower than float32 for the `demo` towers): for checking numerics, not for speed.
`torch.compile` is what makes it fast on a GPU: it fuses the scaling and casts into the
neighbouring kernels.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from eoclip.errors import MissingDependencyError, ModelError

__all__ = ["FP8_INSTALL", "fp8_available", "require_fp8", "to_float8"]

FP8_INSTALL = "pip install 'eoclip[fp8]' (or pip install torchao)"
_MIN_CAPABILITY = (8, 9)  # float8 tensor cores: Ada and Hopper onwards


def fp8_available() -> bool:
    """Whether torchao, which provides the float8 linear layers, can be imported."""
    return importlib.util.find_spec("torchao") is not None


def require_fp8() -> None:
    """Raise `MissingDependencyError` naming the extra unless torchao can be imported (the
    settings' check, before any work; `to_float8` makes it too)."""
    if not fp8_available():
        raise MissingDependencyError(f"fp8 needs torchao, which is not installed: {FP8_INSTALL}")


def _eligible(module: nn.Module, fqn: str) -> bool:
    # torch._scaled_mm needs both weight dimensions divisible by 16
    return (
        isinstance(module, nn.Linear)
        and module.in_features % 16 == 0
        and module.out_features % 16 == 0
    )


def to_float8(model: nn.Module) -> int:
    """Swap the block linears of every tower of `model` for `Float8Linear`, in place.

    Call it after moving the model to its device and before `compile_towers` and DDP. The
    parameters stay the same objects, so an optimiser made before still holds them.

    Args:
        model: a `MultiTowerCLIP` (anything with a `towers` dict of `Tower`).

    Returns:
        The number of linear layers converted (4 per block and tower where the widths are
        multiples of 16; a layer whose widths are not stays as it was).

    Raises:
        MissingDependencyError: torchao is not installed.
        ModelError: the model is on a GPU without float8 tensor cores.
    """
    require_fp8()
    device = next(model.parameters()).device
    if device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        if capability < _MIN_CAPABILITY:
            raise ModelError(
                f"fp8 needs a GPU with compute capability >= 8.9 (H100, H200, L4, L40S); "
                f"{torch.cuda.get_device_name(device)} has {capability[0]}.{capability[1]}"
            )
    elif device.type != "cpu":
        raise ModelError(f"fp8 runs on CUDA GPUs (or emulated on the CPU), not on {device}")
    from torchao.float8 import convert_to_float8_training

    def count() -> int:  # by name: torchao does not export Float8Linear publicly
        return sum(type(m).__name__ == "Float8Linear" for m in model.modules())

    before = count()
    for tower in model.towers.values():
        convert_to_float8_training(tower.backbone.blocks, module_filter_fn=_eligible)
    return count() - before
