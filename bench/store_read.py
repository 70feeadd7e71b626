"""Reading a ChipStore in blocks of whole chips: zarr-python against eoclip's shard reader.

    .venv/bin/python bench/store_read.py --store demo_out/world
    .venv/bin/python bench/store_read.py --store demo_out/world --block 256 --rounds 3

For each modality: seconds to read the whole store `--block` chips at a time (the store's shard
size by default, as pretraining, embedding and the channel statistics read it) through zarr
(`CheckedArray.array[lo:hi]`) and through the read-only store's `CheckedArray[lo:hi]`
(`eoclip.data.shardread`), best of `--rounds` (the second round reads from the page cache),
and a check that both give the same array.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from eoclip.data.store import ChipStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--block", type=int, default=None, help="chips per read (default: a shard)")
    ap.add_argument("--rounds", type=int, default=3)
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


if __name__ == "__main__":
    main()
