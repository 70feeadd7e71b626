"""Pretraining throughput: the real data loader against pre-loaded batches, and GPU MFU.

    .venv/bin/python bench/pretrain_throughput.py --store demo_out/world --model demo \
        --batch-size 128 --steps 10 --num-workers 2

1. Loader overhead (any device): the same training steps (forward, CLIP loss, backward,
   AdamW) timed twice in one run, once fed by the real `DataLoader` (ChipStore on disk,
   random channel per modality, `num_workers` workers) and once from batches already in
   memory. The ratio loader/in-memory is the slowdown the data pipeline causes (1.0 = none).
2. CUDA only (`--cuda-models vit-s,paper`): chips/s and model FLOPs utilisation in bf16
   autocast on random 448 px inputs; FLOPs of one step counted by
   `torch.utils.flop_counter.FlopCounterMode`, peak from `PEAK_BF16_TFLOPS` by GPU name.
   Skipped, and said so, without a GPU.
"""

from __future__ import annotations

import time

import torch
import typer
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

from eoclip.data.dataset import ChipDataset, collate_samples
from eoclip.data.store import ChipStore
from eoclip.model import MultiModalClipLoss, create_model

# Dense bf16 tensor-core peaks (vendor datasheets), matched as substrings of the device name.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 756.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "RTX 4090": 165.0,
}

console = Console()


def peak_tflops(name: str) -> float | None:
    """Dense bf16 peak of a GPU from its `torch.cuda.get_device_name()`; None if unknown."""
    for key, value in PEAK_BF16_TFLOPS.items():  # specific names are listed first
        if key in name:
            return value
    return None


def _step(model, loss_fn, opt, batch, device, autocast) -> None:
    batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
    with autocast:
        loss = loss_fn(model(batch))["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(batches, model, loss_fn, opt, device, autocast, warmup: int) -> tuple[float, int]:
    """Seconds for the batches after the first `warmup`, and the chips they held."""
    it = iter(batches)
    for _ in range(warmup):
        _step(model, loss_fn, opt, next(it), device, autocast)
    _sync(device)
    t0, chips = time.perf_counter(), 0
    for batch in it:
        _step(model, loss_fn, opt, batch, device, autocast)
        chips += len(batch["chip_id"])
    _sync(device)
    return time.perf_counter() - t0, chips


def loader_overhead(store: str, model_name: str, batch_size: int, steps: int, warmup: int,
                    num_workers: int, device: torch.device, bf16: bool) -> dict[str, float]:
    """Samples/s with the real loader and with in-memory batches (same steps, one run)."""
    s = ChipStore.open(store)
    ds = ChipDataset(s, "train", channels="random", seed=0)
    n = (warmup + steps) * batch_size
    if len(ds) < n:
        raise ValueError(f"{store}: {len(ds)} train chips < (warmup + steps) x batch = {n}")
    torch.manual_seed(0)
    model = create_model(model_name, modalities=list(s.modalities), img_size=s.chip_px).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = MultiModalClipLoss()
    use_bf16 = bf16 and device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n].tolist()

    def loader():
        return DataLoader(ds, batch_size=batch_size, sampler=order, drop_last=True,
                          collate_fn=collate_samples, num_workers=num_workers,
                          pin_memory=device.type == "cuda",
                          prefetch_factor=4 if num_workers else None)

    t0 = time.perf_counter()
    in_memory = list(loader())  # also the loader alone, workers' start included
    load_only = time.perf_counter() - t0
    mem_s, chips = _time_steps(in_memory, model, loss_fn, opt, device, autocast, warmup)
    real_s, chips_real = _time_steps(loader(), model, loss_fn, opt, device, autocast, warmup)
    assert chips == chips_real
    return {"in_memory": chips / mem_s, "loader": chips_real / real_s,
            "loader_alone": n / load_only, "ratio": real_s / mem_s, "chips": chips}


def gpu_mfu(model_name: str, batch_size: int, steps: int, img_size: int | None) -> dict[str, float]:
    """chips/s, achieved TFLOP/s and MFU of bf16 training steps on random inputs (CUDA)."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = create_model(model_name, img_size=img_size).to(device)
    size = model.config.tower.img_size
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    loss_fn = MultiModalClipLoss()
    batch = {"chip_id": [str(i) for i in range(batch_size)]}
    for m in model.modalities:
        batch[m] = torch.randn(batch_size, 1, size, size, device=device)
        batch[f"{m}_present"] = torch.ones(batch_size, dtype=torch.bool, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _step(model, loss_fn, opt, batch, device, autocast)
    flops = counter.get_total_flops()
    seconds, chips = _time_steps([batch] * (steps + 2), model, loss_fn, opt, device, autocast, 2)
    achieved = flops * steps / seconds / 1e12
    peak = peak_tflops(torch.cuda.get_device_name(device))
    return {"chips_per_s": chips / seconds, "tflops": achieved, "peak": peak or float("nan"),
            "mfu": achieved / peak if peak else float("nan"), "gflop_per_chip": flops / batch_size / 1e9}


def main(
    store: str = typer.Option(..., help="ChipStore with a train split (e.g. the demo world)."),
    model: str = typer.Option("demo", help="Model variant for the loader comparison."),
    batch_size: int = typer.Option(128, help="Chips per step."),
    steps: int = typer.Option(10, help="Timed steps (after --warmup)."),
    warmup: int = typer.Option(2, help="Untimed steps first."),
    num_workers: int = typer.Option(2, help="DataLoader workers."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    cuda_models: str = typer.Option("vit-s,paper", help="Models for the CUDA MFU table."),
    cuda_batch_size: int = typer.Option(32, help="Chips per step for the MFU table."),
    cuda_steps: int = typer.Option(10, help="Timed steps for the MFU table."),
) -> None:
    """Print the loader-overhead table and, on CUDA, the chips/s and MFU table."""
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    r = loader_overhead(store, model, batch_size, steps, warmup, num_workers, dev, bf16=True)
    table = Table(title=f"{model} on {dev} ({torch.get_num_threads()} threads), batch {batch_size}, "
                        f"{steps} timed steps, {num_workers} workers")
    for col in ("feed", "chips/s"):
        table.add_column(col)
    table.add_row("pre-loaded batches (in memory)", f"{r['in_memory']:.1f}")
    table.add_row("real DataLoader (ChipStore on disk)", f"{r['loader']:.1f}")
    table.add_row("DataLoader alone, no training", f"{r['loader_alone']:.1f}")
    table.add_row("[bold]loader overhead (time ratio loader / in-memory)[/bold]", f"{r['ratio']:.2f}x")
    console.print(table)
    if dev.type != "cuda":
        console.print("no CUDA device: chips/s and MFU for " + cuda_models + " skipped")
        return
    name = torch.cuda.get_device_name(dev)
    table = Table(title=f"bf16 training on {name} (random 448 px inputs, batch {cuda_batch_size})")
    for col in ("model", "chips/s", "GFLOP/chip", "TFLOP/s", "peak", "MFU"):
        table.add_column(col)
    for m in [x for x in cuda_models.split(",") if x]:
        g = gpu_mfu(m, cuda_batch_size, cuda_steps, None)
        table.add_row(m, f"{g['chips_per_s']:.1f}", f"{g['gflop_per_chip']:.1f}", f"{g['tflops']:.1f}",
                      f"{g['peak']:.0f}", f"{g['mfu']:.1%}")
        torch.cuda.empty_cache()
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
