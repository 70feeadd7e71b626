"""Embedding-export throughput per channel policy, on the CPU and (with CUDA) a GPU in bf16.

    .venv/bin/python bench/embed_throughput.py --store demo_out/world --model demo
    # on a GPU, with a 448 px store (e.g. eoclip world --chip-px 448):
    python bench/embed_throughput.py --store w448 --model paper --compile off,on

Runs the export pipeline of `eoclip embed` (`iter_part_tables`: zarr reads in a thread,
compact pixels to the device, normalisation there, tower forward, per-chip pooling) over the
store's chips with a randomly initialised model of the given variant (throughput does not
depend on the weights), for each channel policy: `mean` (every valid channel, about 23
images per chip on the paper's data), `random` (the paper's one channel per modality, 3
images) and a fixed channel. The first part is run once untimed (warm-up, compilation).
Prints chips/s, images/s, the model FLOPs utilisation on CUDA (FLOPs of a tower forward
counted by `torch.utils.flop_counter.FlopCounterMode`) and the projected hours for the
paper's 845 K chips at the measured rate.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import typer
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from eoclip.data.store import ChipStore
from eoclip.embeddings.channels import count_images, parse_channel_policy
from eoclip.embeddings.compute import iter_part_tables, reader_processes
from eoclip.model import autocast_for, create_model
from eoclip.model.fp8 import to_float8

sys.path.insert(0, str(Path(__file__).parent))

from pretrain_throughput import PEAK_BF16_TFLOPS  # noqa: E402

PAPER_CHIPS = 845_000  # paper, section 3: 5 AOIs

console = Console(width=150)


def _peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


@torch.inference_mode()
def flops_per_image(model, size: int, device: torch.device, bf16: bool) -> float:
    """FLOPs of one single-channel image through a tower (all towers share the shape)."""
    x = torch.randn(8, 1, size, size, device=device)
    with FlopCounterMode(display=False) as counter, autocast_for(device, bf16):
        model.encode(model.modalities[0], x)
    return counter.get_total_flops() / 8


def time_policy(
    model,
    store: ChipStore,
    policy: str,
    chips: int,
    part: int,
    batch_size: int,
    device: torch.device,
    bf16: bool,
    num_workers: int,
    passes: int,
) -> dict[str, float]:
    """Chips/s and images/s of the export pipeline over the first `chips` chips, `passes` times
    (one pipeline: the reader processes start once, as in an export of passes x chips)."""
    policies = parse_channel_policy(policy, store, list(model.modalities))
    bounds = [(lo, min(lo + part, chips)) for lo in range(0, chips, part)] * passes
    kwargs = dict(
        batch_size=batch_size,
        seed=0,
        bf16=bf16,
        device=device,
        bar=tqdm(disable=True),
        num_workers=num_workers,
    )
    for _ in iter_part_tables(model, store, policies, bounds[:1], **kwargs):  # warm-up
        pass
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in iter_part_tables(model, store, policies, bounds, **kwargs):
        pass
    seconds = time.perf_counter() - t0  # each part ends with a device-to-host copy: synced
    images = sum(count_images(store, policies, lo, hi - lo) for lo, hi in bounds)
    return {
        "chips_per_s": chips * passes / seconds,
        "images_per_s": images / seconds,
        "images_per_chip": images / chips / passes,
    }


def main(
    store: str = typer.Option(..., help="ChipStore to read (its chip size sets the model's)."),
    model: str = typer.Option("demo", help="Model variant (eoclip.model.list_models())."),
    policies: str = typer.Option(
        "mean;random;s2rgbm=01_red,s1grdm=01_vv,gunw=random",
        help="Channel policies to time, separated by ';' (a fixed channel per modality as "
        "mod=channel,...; gunw's date pairs differ per chip, so it stays random there).",
    ),
    max_chips: int = typer.Option(0, help="Chips to embed (0 = the whole store)."),
    batch_size: int = typer.Option(256, help="Images per forward pass."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    compile: str = typer.Option("off", help="torch.compile settings to time: off, on or off,on."),
    bf16: bool = typer.Option(True, help="bf16 autocast on CUDA."),
    fp8: bool = typer.Option(
        False, help="float8 block linears (eoclip.model.fp8; FLOPs counted on the bf16 model)."
    ),
    num_workers: int = typer.Option(-1, help="Reader processes (-1: eoclip embed's default)."),
    passes: int = typer.Option(
        1,
        help="Passes over the chips (a small store as a larger one; "
        "its reads then come from the page cache, decompression still runs).",
    ),
) -> None:
    """Print chips/s, images/s, MFU and projected hours per channel policy."""
    dev = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else "cpu"
        if device == "auto"
        else device
    )
    s = ChipStore.open(store)
    chips = min(len(s), max_chips) if max_chips else len(s)
    peak = _peak(dev)
    workers = reader_processes(None if num_workers < 0 else num_workers, dev)
    name = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    table = Table(
        title=f"export of {passes} x {chips} chips of {s.chip_px} px, model {model}, {name}, "
        f"batch {batch_size} images, {'bf16' if bf16 and peak else 'float32'}"
        f"{' + fp8 linears' if fp8 else ''}, "
        f"{workers} reader processes"
    )
    for col in (
        "policy",
        "compile",
        "images/chip",
        "chips/s",
        "images/s",
        "TFLOP/s",
        "MFU",
        "h for 845K chips",
    ):
        table.add_column(col)
    for c in [x for x in compile.split(",") if x]:
        torch.manual_seed(0)
        net = create_model(model, modalities=list(s.modalities), img_size=s.chip_px).to(dev).eval()
        flops = flops_per_image(net, s.chip_px, dev, bf16)
        if fp8:
            to_float8(net)
        net.compile_towers(c == "on")
        for policy in [x for x in policies.split(";") if x]:
            r = time_policy(
                net, s, policy, chips, s.shard_chips, batch_size, dev, bf16, workers, passes
            )
            tflops = r["images_per_s"] * flops / 1e12
            console.print(f"{policy} compile {c}: {r}, {tflops:.1f} TFLOP/s")
            table.add_row(
                policy,
                c,
                f"{r['images_per_chip']:.1f}",
                f"{r['chips_per_s']:.1f}",
                f"{r['images_per_s']:.0f}",
                f"{tflops:.2f}",
                f"{tflops / peak:.1%}" if peak else "n/a",
                f"{PAPER_CHIPS / r['chips_per_s'] / 3600:.1f}",
            )
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
