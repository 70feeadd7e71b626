"""Reading a ChipStore in blocks of whole chips: zarr-python against eoclip's shard reader.

    .venv/bin/python bench/store_read.py --store demo_out/world
    .venv/bin/python bench/store_read.py --store demo_out/world --block 256 --rounds 3

For each modality: seconds to read the whole store `--block` chips at a time (the store's shard
size by default, as pretraining, embedding and the channel statistics read it) through zarr
(`CheckedArray.array[lo:hi]`) and through the read-only store's `CheckedArray[lo:hi]`
(`eoclip.data.shardread`), best of `--rounds` (the second round reads from the page cache),
and a check that both give the same array. Then single (chip, channel) images at random
positions, as pretraining and the export's `random` policy read them: zarr's
`array[chip, channel]` against `CheckedArray.take_slots`; and pretraining's samples of the
store read chip by chip (`ChipDataset(cache=False)`, as a store too large to hold is read).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from eoclip.data.dataset import ChipDataset
from eoclip.data.store import ChipStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--block", type=int, default=None, help="chips per read (default: a shard)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=200, help="single images per modality")
    args = ap.parse_args()
    store = ChipStore.open(args.store)
    step, n = args.block or store.shard_chips, len(store)
    print(f"{n} chips of {store.chip_px} px, {step} chips per read")
    print("| modality | MB stored (decoded) | zarr s | shard reader s | speed-up | same |")
    print("|---|---|---|---|---|---|")
    for name in store.modalities:
        pixels = store.arrays(name)["pixels"]
        times = {"zarr": [], "eoclip": []}
        same = True
        for _ in range(args.rounds):
            for how in times:
                t0 = time.perf_counter()
                blocks = [
                    np.asarray(pixels.array[lo : lo + step])
                    if how == "zarr"
                    else pixels[lo : lo + step]
                    for lo in range(0, n, step)
                ]
                times[how].append(time.perf_counter() - t0)
                if how == "zarr":
                    want = blocks
                else:
                    same &= all(np.array_equal(a, b) for a, b in zip(want, blocks, strict=True))
        a, b = min(times["zarr"]), min(times["eoclip"])
        mb = sum(x.nbytes for x in want) / 1e6
        print(f"| {name} | {mb:.0f} | {a:.2f} | {b:.2f} | {a / b:.1f}x | {same} |")
    single_images(store, args.pairs, args.rounds)
    training_samples(store, args.rounds)


def single_images(store: ChipStore, pairs: int, rounds: int) -> None:
    """ms per (chip, channel) image: zarr's `array[chip, channel]` against `take_slots`."""
    print(f"\n{pairs} random (chip, channel) images per modality, ms per image (best of {rounds})")
    print("| modality | zarr ms | take_slots ms | speed-up | same |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name in store.modalities:
        pixels = store.arrays(name)["pixels"]
        rows = rng.integers(0, len(store), pairs)
        slots = rng.integers(0, pixels.shape[1], pairs)
        times = {"zarr": [], "eoclip": []}
        for _ in range(rounds):
            t0 = time.perf_counter()
            want = np.stack(
                [np.asarray(pixels.array[r, c]) for r, c in zip(rows, slots, strict=True)]
            )
            times["zarr"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = pixels.take_slots(rows, slots)
            times["eoclip"].append(time.perf_counter() - t0)
        a, b = min(times["zarr"]) / pairs * 1e3, min(times["eoclip"]) / pairs * 1e3
        print(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.1f}x | {np.array_equal(want, got)} |")


def training_samples(store: ChipStore, rounds: int) -> None:
    """Pretraining's samples (a random channel per modality) of a store read chip by chip,
    as one too large for the in-memory cache is (`ChipDataset(cache=False)`), one process."""
    ds = ChipDataset(store, "train", channels="random", seed=0, cache=False)
    best = float("inf")
    for epoch in range(rounds):
        ds.set_epoch(epoch)
        t0 = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        best = min(best, time.perf_counter() - t0)
    print(
        f"\ntraining samples, {len(ds)} train chips read chip by chip: {len(ds) / best:.1f} "
        f"chips/s in one process ({best / len(ds) * 1e3:.1f} ms per chip, best of {rounds})"
    )


if __name__ == "__main__":
    main()
