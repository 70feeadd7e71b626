"""How well each modality's `normalize` constants centre and scale a store's pixels.

For every channel of every modality, over the chips of one split: the mean and the standard
deviation of the valid pixels after the modality's normalisation (what a tower sees). Values
near 0 and 1 mean the constants fit the data (the patch embedding sees the values as they are).

    python bench/input_normalisation.py --store demo_out/world [--split train]
"""

from __future__ import annotations

import argparse

import numpy as np

from eoclip.data.store import ChipStore


def channel_moments(store: ChipStore, name: str, split: str) -> list[tuple[str, float, float]]:
    """(channel kind, normalised mean, normalised std) per channel slot with valid pixels."""
    m = store.modalities[name]
    pos = np.flatnonzero((store.index["split"] == split).to_numpy())
    x = m.decode(store.arrays(name)["pixels"].take(pos), store.valid_mask(name)[pos])
    rows = []
    for c in range(x.shape[1]):
        v = x[:, c][np.isfinite(x[:, c])]
        if v.size:
            channel = m.channels[c] if m.channels else f"slot {c}"
            mean, std = m.stats_for(m.channels[c] if m.channels else "")
            rows.append((channel, float((v.mean() - mean) / std), float(v.std() / std)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="ChipStore folder")
    ap.add_argument("--split", default="train")
    args = ap.parse_args()
    store = ChipStore.open(args.store)
    for name in store.modalities:
        rows = channel_moments(store, name, args.split)
        text = ", ".join(f"{c} {mu:+.2f}/{sd:.2f}" for c, mu, sd in rows)
        print(f"{name} (normalised mean/std): {text}")


if __name__ == "__main__":
    main()
