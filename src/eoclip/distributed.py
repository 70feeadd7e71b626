"""One process or many: DDP is detected from torchrun's environment variables.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE (and MASTER_ADDR/MASTER_PORT); without them
the run is a single process. CPU runs use the gloo backend, CUDA runs nccl, one GPU per
process (`cuda:<LOCAL_RANK>`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistEnv",
    "all_gather_objects",
    "barrier",
    "cleanup_distributed",
    "log0",
    "print0",
    "setup_distributed",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: its rank, the number of processes, its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def ddp(self) -> bool:
        """True when running under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def master(self) -> bool:
        """Rank 0: the only process that writes files and prints."""
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistEnv:
    """Read torchrun's environment, initialise the process group if needed, pick the device."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for but CUDA is not available")
    ddp = int(os.environ.get("RANK", -1)) != -1 and int(os.environ.get("WORLD_SIZE", 1)) > 1
    if not ddp:
        dev = device if device.startswith("cuda:") else "cuda" if use_cuda else "cpu"
        return DistEnv(device=torch.device(dev))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ["WORLD_SIZE"])
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size, device=dev)


def cleanup_distributed(env: DistEnv) -> None:
    """Destroy the process group set up by `setup_distributed`."""
    if env.ddp and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op in a single process)."""
    if env.ddp:
        dist.barrier()


def all_gather_objects(env: DistEnv, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (`[obj]` in a single process)."""
    if not env.ddp:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def print0(*args: Any, **kwargs: Any) -> None:
    """print on rank 0 only (RANK from the environment, so it works before setup)."""
    if int(os.environ.get("RANK", 0)) == 0:
        print(*args, **kwargs, flush=True)


def log0(log: logging.Logger, level: int, msg: str, *args: Any) -> None:
    """`log.log(level, msg, *args)` on rank 0 only, so a diagnostic appears once per job."""
    if int(os.environ.get("RANK", 0)) == 0:
        log.log(level, msg, *args)
