"""What the accelerator itself can do, without the data pipeline: training-step and export MFU
of a model on pre-loaded random inputs, for several `torch.compile` settings.

    python bench/gpu_ceiling.py --model paper --train-batch 128 --export-batch 256 \
        --modes off,default,max-autotune-no-cudagraphs
    .venv/bin/python bench/gpu_ceiling.py --model demo --device cpu --modes off  # code check

`bench/pretrain_throughput.py` and `bench/embed_throughput.py` time the real pipelines (disk,
reader processes, host-to-device copies); this one times only the device work, so the gap
between the two says how much of the pipeline's MFU the loader costs, and the rows here are
the ceiling a faster loader could reach:

- train: one `eoclip pretrain` step (`train_step`: forward of every tower, CLIP loss,
  backward, clipping, fused AdamW) in bf16 autocast on a batch of random chips already on the
  device;
- export: one tower's forward under `torch.inference_mode` on a batch of random
  single-channel images already on the device, in bf16 autocast (what `eoclip embed` runs) and
  with the tower's weights cast to bf16 (no per-call weight casts; embeddings differ from
  autocast's in the last bf16 bits).

`--fp8 off,on` adds rows with the towers' block linears in float8 (`eoclip.model.fp8`,
torchao; H100-class GPUs, emulated on a CPU).

FLOPs are counted once per setting by `torch.utils.flop_counter.FlopCounterMode` (eager, on
the bf16 model also for float8 rows, so both count the same work), MFU
is achieved FLOP/s over the dense bf16 datasheet peak (`PEAK_BF16_TFLOPS` of
`bench/pretrain_throughput.py`). Each compile mode builds a fresh model; compilation and
`--warmup` steps are not timed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import typer
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))

from embed_throughput import _peak  # noqa: E402
from pretrain_throughput import _sync, _Trainer  # noqa: E402

from eoclip.model import autocast_for, create_model  # noqa: E402
from eoclip.model.fp8 import to_float8  # noqa: E402


def _compile_arg(mode: str) -> bool | str:
    return {"off": False, "on": True}.get(mode, mode)


def train_row(
    model: str, batch: int, mode: str, steps: int, warmup: int, device, fp8: bool = False
) -> dict:
    """chips/s and TFLOP/s of training steps on one pre-loaded batch."""
    trainer = _Trainer(model, None, None, device, _compile_arg(mode), fp8)
    size = trainer.model.config.tower.img_size
    data = {"chip_id": [str(i) for i in range(batch)]}
    for m in trainer.model.modalities:
        data[m] = torch.randn(batch, 1, size, size, device=device)
        data[f"{m}_present"] = torch.ones(batch, dtype=torch.bool, device=device)
    flops = trainer.flops_per_chip(data)  # eager bf16; then float8 (fp8) and compilation
    t0 = time.perf_counter()
    seconds, chips = trainer.time([data] * (warmup + steps), warmup)
    return {
        "job": "train, fp8" if fp8 else "train",
        "mode": mode,
        "batch": batch,
        "per_s": chips / seconds,
        "tflops": flops * chips / seconds / 1e12,
        "setup_s": time.perf_counter() - t0 - seconds,
    }


def export_row(
    model: str,
    batch: int,
    mode: str,
    weights: str,
    steps: int,
    warmup: int,
    device,
    fp8: bool = False,
) -> dict:
    """images/s and TFLOP/s of one tower's forward on a pre-loaded batch of images."""
    torch.manual_seed(0)
    net = create_model(model).to(device).eval()
    m = net.modalities[0]
    size = net.config.tower.img_size
    x = torch.randn(batch, 1, size, size, device=device)
    if weights == "bf16":
        net = net.to(torch.bfloat16)
        x = x.to(torch.bfloat16)
    context = (
        autocast_for(device) if weights == "autocast" else torch.autocast("cpu", enabled=False)
    )
    with torch.inference_mode(), context:
        with FlopCounterMode(display=False) as counter:
            net.encode(m, x)
        flops = counter.get_total_flops()  # of the bf16 model, float8 or not
        if fp8:
            to_float8(net)
        net.compile_towers(_compile_arg(mode))
        t0 = time.perf_counter()
        for _ in range(warmup):
            net.encode(m, x)
        _sync(device)
        t1 = time.perf_counter()
        for _ in range(steps):
            net.encode(m, x)
        _sync(device)
        seconds = time.perf_counter() - t1
    return {
        "job": f"export ({weights}{', fp8' if fp8 else ''})",
        "mode": mode,
        "batch": batch,
        "per_s": batch * steps / seconds,
        "tflops": flops * steps / seconds / 1e12,
        "setup_s": t1 - t0,
    }


def main(
    model: str = typer.Option("paper", help="Model variant (eoclip.model.list_models())."),
    train_batch: int = typer.Option(128, help="Chips per training step (0: no training rows)."),
    export_batch: int = typer.Option(256, help="Images per export forward (0: no export rows)."),
    modes: str = typer.Option(
        "off,default", help="torch.compile settings: off, default, max-autotune-no-cudagraphs."
    ),
    weights: str = typer.Option("autocast,bf16", help="Export precision: autocast and/or bf16."),
    fp8: str = typer.Option(
        "off", help="float8 block linears (eoclip.model.fp8, torchao): off, on or off,on."
    ),
    steps: int = typer.Option(10, help="Timed steps per row."),
    warmup: int = typer.Option(3, help="Untimed steps first (after compilation starts)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    peak = _peak(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device {name}, peak {peak or 'n/a'} TFLOP/s bf16, torch {torch.__version__}")
    cols = ("job", "compile", "batch", "per s", "TFLOP/s", "MFU", "setup s")
    print(" | ".join(f"{c:<{w}}" for c, w in zip(cols, (23, 26, 5, 6, 7, 6, 7), strict=True)))
    jobs = [("train", None)] if train_batch else []
    if export_batch:
        jobs += [("export", w) for w in weights.split(",") if w]
    settings = [(mode, f == "on") for f in fp8.split(",") if f for mode in modes.split(",") if mode]
    for mode, f8 in settings:
        for job, w in jobs:
            if job == "train":
                r = train_row(model, train_batch, mode, steps, warmup, dev, f8)
            else:
                r = export_row(model, export_batch, mode, w, steps, warmup, dev, f8)
            mfu = f"{r['tflops'] / peak:.1%}" if peak else "n/a"
            print(
                f"{r['job']:<23} | {r['mode']:<26} | {r['batch']:>5} | {r['per_s']:6.1f} | "
                f"{r['tflops']:7.1f} | {mfu:>6} | {r['setup_s']:.0f}",
                flush=True,
            )
            if dev.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    typer.run(main)
