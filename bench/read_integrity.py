"""Read cost of the ChipStore, to compare before and after the integrity checks on read.

    # a store written by the code on PYTHONPATH (a synthetic world, one AOI), then timings:
    PYTHONPATH=src .venv/bin/python bench/read_integrity.py --make /tmp/w_new --chips 1000
    # the same timings on an existing store (e.g. one written before checksums):
    PYTHONPATH=src .venv/bin/python bench/read_integrity.py --store /tmp/w_old

Run it once with the eoclip before the change on PYTHONPATH (a `git archive` of that commit)
and once with this one: it uses only the API both have. Each timing is the CPU time of this
process (reads come from the page cache after the first pass and are CPU-bound in zarr;
wall time on a shared machine mostly measures the other load), the best of ``--repeats``
passes, each pass on a freshly opened store, so per-shard work done once per process is
counted:

- ``read_chip``: every chip, all modalities, in a seeded random order (ms per chip);
- ``read_channel``: one random valid channel of one modality per chip (ms per read);
- ``loader``: ``ChipDataset(split=None, cache=False)`` items, the paper's random channel per
  modality, in one process (chips/s) -- what pretraining workers do on a large store;
- ``cache``: ``ChipDataset(cache=True)``'s up-front read of the whole store, a shard block at
  a time (s) -- what pretraining does on a small store and what `embed` reads per range;
- ``verify``: ``ChipStore.verify()`` (s), where the eoclip on PYTHONPATH has it.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import typer

from eoclip.data.dataset import ChipDataset
from eoclip.data.store import ChipStore

app = typer.Typer(add_completion=False)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def measure(path: str, repeats: int, seed: int = 0) -> dict:
    """Best-of-``repeats`` timings of the reads listed in the module docstring."""
    store = ChipStore.open(path)
    n, mods = len(store), list(store.modalities)
    order = np.random.default_rng(seed).permutation(n)
    picks = []
    for i, pos in enumerate(order):
        m = mods[i % len(mods)]
        ok = np.flatnonzero(store.valid_mask(m)[pos])
        if len(ok):
            picks.append((int(pos), m, int(ok[len(ok) // 2])))

    def chips():
        s = ChipStore.open(path)
        for pos in order:
            s.read_chip(int(pos))

    def channels():
        s = ChipStore.open(path)
        for pos, m, slot in picks:
            s.read_channel(pos, m, slot)

    def loader():
        ds = ChipDataset(ChipStore.open(path), split=None, cache=False, seed=seed)
        for i in range(len(ds)):
            ds[i]

    def cache():
        ChipDataset(ChipStore.open(path), split=None, cache=True)

    out = {
        "store": store.url,
        "chips": n,
        "chip_px": store.chip_px,
        "read_chip_ms": 1e3 * _best(chips, repeats) / n,
        "read_channel_ms": 1e3 * _best(channels, repeats) / len(picks),
        "loader_chips_per_s": n / _best(loader, repeats),
        "cache_s": _best(cache, repeats),
    }
    if hasattr(store, "verify"):
        out["verify_s"] = _best(lambda: ChipStore.open(path).verify(), 1)
    out["load_average"] = os.getloadavg()[0]
    return out


@app.command()
def main(
    store: str = typer.Option(None, help="an existing store to time"),
    make: str = typer.Option(None, help="write a synthetic world here first (one AOI)"),
    chips: int = typer.Option(1000, help="chips of the world --make writes"),
    chip_px: int = typer.Option(64, help="chip size of the world --make writes"),
    repeats: int = typer.Option(3, help="passes per timing; the best is kept"),
) -> None:
    if make:
        from eoclip.data.synthetic import make_world

        make_world(
            make,
            n_chips_per_aoi=chips,
            chip_px=chip_px,
            aois=["conus"],
            seed=0,
            overwrite=True,
            progress=False,
        )
        store = make
    if not store:
        raise typer.BadParameter("give --store or --make")
    typer.echo(json.dumps(measure(store, repeats), indent=2))


if __name__ == "__main__":
    app()
