"""Pretraining throughput: the real data loader against pre-loaded batches, and GPU MFU.

    .venv/bin/python bench/pretrain_throughput.py --store demo_out/world --model demo \
        --batch-size 128 --steps 10 --num-workers 2
    # on a GPU, with a 448 px store (e.g. eoclip world --chip-px 448):
    python bench/pretrain_throughput.py --store w448 --model paper --batch-size 64 \
        --num-workers 12 --compile --cuda-models vit-s,paper

1. Loader overhead (any device): the training step of `eoclip pretrain` (`train_step`:
   forward, CLIP loss, backward, clipping, AdamW) timed twice in one run, once fed by the real
   `DataLoader` (ChipStore on disk, random channel per modality, `num_workers` workers) and
   once from the same batches already in memory. The time ratio loader / in-memory is the
   slowdown the data pipeline causes (1.00 = none). On CUDA the table adds the MFU of both.
2. CUDA only (`--cuda-models vit-s,paper`): chips/s and model FLOPs utilisation in bf16
   autocast on random 448 px inputs, eager and `torch.compile`d. FLOPs of one step are
   counted by `torch.utils.flop_counter.FlopCounterMode` (matrix products and attention, as
   executed), the peak is the GPU's dense bf16 datasheet figure (`PEAK_BF16_TFLOPS`).
   `--cuda-fp8 off,on` adds float8 rows (`eoclip.model.fp8`, torchao): their FLOPs are
   counted on the bf16 model, so MFU stays model FLOPs over the bf16 peak for both.
"""

from __future__ import annotations

import time

import torch
import typer
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from eoclip.data.dataset import ChipDataset, collate_samples
from eoclip.data.store import ChipStore
from eoclip.model import MultiModalClipLoss, autocast_for, create_model
from eoclip.model.fp8 import to_float8
from eoclip.train.loop import train_step

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
GRAD_CLIP = 1.0  # as the packaged pretraining configs

console = Console(width=150)


def peak_tflops(name: str) -> float | None:
    """Dense bf16 peak of a GPU from its `torch.cuda.get_device_name()`; None if unknown."""
    for key, value in PEAK_BF16_TFLOPS.items():  # specific names are listed first
        if key in name:
            return value
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Trainer:
    """A model, its loss and optimiser, stepping like `eoclip pretrain` does."""

    def __init__(
        self,
        model_name: str,
        modalities,
        img_size: int | None,
        device: torch.device,
        compile_towers: bool,
        fp8: bool = False,
    ):
        torch.manual_seed(0)
        self.model = create_model(model_name, modalities=modalities, img_size=img_size).to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=device.type == "cuda")
        self.loss_fn = MultiModalClipLoss()
        self.device, self.autocast = device, autocast_for(device)
        self.compile_towers, self.fp8 = compile_towers, fp8

    def step(self, batch) -> None:
        train_step(self.model, self.loss_fn, self.opt, batch, self.device, self.autocast, GRAD_CLIP)

    def flops_per_chip(self, batch) -> float:
        """FLOPs of one training step on `batch` (eager, bf16), per chip.

        Then converts to float8 (with `fp8`) and compiles: the FLOPs stay the model's, so MFU
        compares float8 and bf16 steps on the same work (over the bf16 peak).
        """
        with FlopCounterMode(display=False) as counter:
            self.step(batch)
        if self.fp8:
            to_float8(self.model)
        if self.compile_towers:
            self.model.compile_towers(True)
        return counter.get_total_flops() / len(batch["chip_id"])

    def time(self, batches, warmup: int) -> tuple[float, int]:
        """Seconds for the batches after the first `warmup`, and the chips they held."""
        it = iter(batches)
        for _ in range(warmup):
            self.step(next(it))
        _sync(self.device)
        t0, chips = time.perf_counter(), 0
        for batch in it:
            self.step(batch)
            chips += len(batch["chip_id"])
        _sync(self.device)
        return time.perf_counter() - t0, chips


def loader_overhead(
    store: str,
    model_name: str,
    batch_size: int,
    steps: int,
    warmup: int,
    num_workers: int,
    device: torch.device,
    compile_towers: bool,
    fp8: bool = False,
    cache: bool | None = None,
) -> dict[str, float]:
    """Chips/s with the real loader and with in-memory batches (same steps, one run)."""
    s = ChipStore.open(store)
    ds = ChipDataset(s, "train", channels="random", seed=0, cache=cache)
    n = (warmup + steps) * batch_size
    trainer = _Trainer(model_name, list(s.modalities), s.chip_px, device, compile_towers, fp8)
    # A small store is cycled through (a repeated chip gets the same channel): every chip is
    # still read and decompressed by the workers, only its disk reads come from the page cache.
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).tolist()
    order = [perm[i % len(perm)] for i in range(n)]

    def loader():
        return DataLoader(
            ds,
            batch_size=batch_size,
            sampler=order,
            drop_last=True,
            collate_fn=collate_samples,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            prefetch_factor=4 if num_workers else None,
        )

    t0 = time.perf_counter()
    in_memory = list(loader())  # also the loader alone, workers' start included
    load_only = time.perf_counter() - t0
    if device.type == "cuda":
        in_memory = [
            {k: v.pin_memory() if torch.is_tensor(v) else v for k, v in b.items()}
            for b in in_memory
        ]
    flops = trainer.flops_per_chip(in_memory[0])
    mem_s, chips = trainer.time(in_memory, warmup)
    real_s, chips_real = trainer.time(loader(), warmup)
    assert chips == chips_real
    return {
        "in_memory": chips / mem_s,
        "loader": chips_real / real_s,
        "loader_alone": n / load_only,
        "ratio": real_s / mem_s,
        "chips": chips,
        "gflop_per_chip": flops / 1e9,
    }


def gpu_mfu(
    model_name: str, batch_size: int, steps: int, compile_towers: bool, fp8: bool = False
) -> dict[str, float]:
    """chips/s, GFLOP per chip and achieved TFLOP/s of bf16 training on random inputs (CUDA)."""
    device = torch.device("cuda")
    trainer = _Trainer(model_name, None, None, device, compile_towers, fp8)
    size = trainer.model.config.tower.img_size
    batch = {"chip_id": [str(i) for i in range(batch_size)]}
    for m in trainer.model.modalities:
        batch[m] = torch.randn(batch_size, 1, size, size, device=device)
        batch[f"{m}_present"] = torch.ones(batch_size, dtype=torch.bool, device=device)
    flops = trainer.flops_per_chip(batch)
    seconds, chips = trainer.time([batch] * (steps + 3), 3)
    return {
        "chips_per_s": chips / seconds,
        "gflop_per_chip": flops / 1e9,
        "tflops": flops * chips / seconds / 1e12,
        "memory_gb": torch.cuda.max_memory_allocated(device) / 1e9,
    }


def _mfu(tflops: float, peak: float | None) -> str:
    return f"{tflops / peak:.1%}" if peak else "n/a"


def main(
    store: str = typer.Option(..., help="ChipStore with a train split (e.g. the demo world)."),
    model: str = typer.Option("demo", help="Model variant for the loader comparison."),
    batch_size: int = typer.Option(128, help="Chips per step."),
    steps: int = typer.Option(10, help="Timed steps (after --warmup)."),
    warmup: int = typer.Option(2, help="Untimed steps first."),
    num_workers: int = typer.Option(2, help="DataLoader workers."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    compile: bool = typer.Option(False, help="torch.compile the towers in the loader comparison."),
    fp8: bool = typer.Option(False, help="float8 block linears in the loader comparison."),
    cache: str = typer.Option(
        "auto",
        help="Hold the split's pixels in memory: auto (if under 2 GiB, as eoclip pretrain), "
        "on, or off (read chip by chip, as a paper-scale store is read).",
    ),
    cuda_models: str = typer.Option("vit-s,paper", help="Models for the CUDA MFU table."),
    cuda_batch_size: int = typer.Option(64, help="Chips per step for the MFU table."),
    cuda_steps: int = typer.Option(10, help="Timed steps for the MFU table."),
    cuda_compile: str = typer.Option("off,on", help="torch.compile settings of the MFU table."),
    cuda_fp8: str = typer.Option("off", help="float8 block linears in the MFU table: off, on."),
) -> None:
    """Print the loader-overhead table and, on CUDA, the chips/s and MFU table."""
    dev = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else "cpu"
        if device == "auto"
        else device
    )
    peak = peak_tflops(torch.cuda.get_device_name(dev)) if dev.type == "cuda" else None
    held = {"auto": None, "on": True, "off": False}[cache]
    r = loader_overhead(
        store, model, batch_size, steps, warmup, num_workers, dev, compile, fp8, held
    )
    console.print(f"loader comparison: {r}")
    name = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    table = Table(
        title=f"{model} on {name}, batch {batch_size}, {steps} timed steps, "
        f"{num_workers} workers, compile {'on' if compile else 'off'}{', fp8' if fp8 else ''}, "
        f"cache {cache}"
    )
    for col in ("feed", "chips/s", "MFU"):
        table.add_column(col)
    for label, key in (
        ("pre-loaded batches (in memory)", "in_memory"),
        ("real DataLoader (ChipStore on disk)", "loader"),
    ):
        table.add_row(label, f"{r[key]:.1f}", _mfu(r[key] * r["gflop_per_chip"] / 1e3, peak))
    table.add_row("DataLoader alone, no training", f"{r['loader_alone']:.1f}", "")
    table.add_row(
        "[bold]loader overhead (time ratio loader / in-memory)[/bold]", f"{r['ratio']:.2f}x", ""
    )
    console.print(table)
    if dev.type != "cuda" or not cuda_models:
        if cuda_models:
            console.print("no CUDA device: chips/s and MFU for " + cuda_models + " skipped")
        return
    table = Table(
        title=f"bf16 training on {name} (random inputs at the model's size, "
        f"batch {cuda_batch_size}, peak {peak} TFLOP/s)"
    )
    for col in ("model", "compile", "fp8", "chips/s", "GFLOP/chip", "TFLOP/s", "MFU", "max mem GB"):
        table.add_column(col)
    settings = [
        (c, f)
        for f in [x for x in cuda_fp8.split(",") if x]
        for c in [x for x in cuda_compile.split(",") if x]
    ]
    for m in [x for x in cuda_models.split(",") if x]:
        for c, f in settings:
            torch.cuda.reset_peak_memory_stats()
            g = gpu_mfu(m, cuda_batch_size, cuda_steps, c == "on", f == "on")
            console.print(f"{m} compile {c} fp8 {f}: {g}")  # each row as soon as it is measured
            table.add_row(
                m,
                c,
                f,
                f"{g['chips_per_s']:.1f}",
                f"{g['gflop_per_chip']:.1f}",
                f"{g['tflops']:.1f}",
                _mfu(g["tflops"], peak),
                f"{g['memory_gb']:.1f}",
            )
            torch.cuda.empty_cache()
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
