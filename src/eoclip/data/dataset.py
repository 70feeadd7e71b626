"""A split of a ChipStore as torch samples, and the collate function that batches them.

A sample (docs/design.md) is ``{"chip_id": str, "<mod>": FloatTensor[C, H, W], "<mod>_valid":
BoolTensor[C]}``; a modality the chip lacks is absent from the dict. With the paper's channel
policy ``random`` each modality contributes ONE valid channel chosen afresh per sample and epoch
(so a step reads one ninth of a chip's bytes); ``all`` gives every slot; a channel name or slot
number gives that channel only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .store import ChipStore

__all__ = ["CACHE_BYTES", "ChipDataset", "CollatedBatch", "collate_samples"]

CACHE_BYTES = 2 * 2**30  # a split's stored pixels up to this size are held in memory by default


class CollatedBatch(dict):
    """A batch already in `collate_samples` form (`ChipDataset.__getitems__`); collate passes it."""


class ChipDataset(Dataset):
    """Chips of one split (or all) of a store.

    Args:
        store: an open ChipStore (or its path).
        split: ``train``, ``val``, ``test``, or None for every chip.
        modalities: which modalities to yield (default: all of the store's).
        channels: ``random``, ``all``, a channel name, or a slot number.
        seed: with ``set_epoch``, fixes the random channel choices: the same (seed, epoch, chip)
            always picks the same channel, in any worker and on any rank.
        aoi: restrict to one AOI (or a list of AOIs).
        cache: hold the split's stored pixels in memory (read once, a shard at a time):
            ``None`` (default) does so when they take at most ``CACHE_BYTES``, as for the
            synthetic demo world, where per-chunk read costs would otherwise dominate
            training on a CPU. Worker processes share the cache (fork).
        targets: None, or g: each sample also holds ``<mod>_target`` (C, g, g), every channel's
            normalised mean over a g x g grid of cells (NaN for an invalid channel; one map, the
            mean of the valid channels, for a modality whose channels are not fixed): the
            cross-channel reconstruction targets of pretraining (`eoclip.model.recon`), with g
            the tower's patch grid. The chip side must be a multiple of g.
        transform: ``f(sample, rng) -> sample`` applied last (e.g. the same random view of
            every modality, `eoclip.train.augment.ChipAugment`); `rng` is the sample's own
            generator, seeded by (seed, epoch, chip), after the channel choice.
    """

    def __init__(
        self,
        store: ChipStore | str,
        split: str | None = "train",
        modalities: Sequence[str] | None = None,
        channels: str | int = "random",
        seed: int = 0,
        aoi: str | Sequence[str] | None = None,
        cache: bool | None = None,
        transform: Callable[[dict, np.random.Generator], dict] | None = None,
        targets: int | None = None,
    ):
        self.store = store if isinstance(store, ChipStore) else ChipStore.open(store)
        self.modalities = list(modalities or self.store.modalities)
        for m in self.modalities:
            if m not in self.store.modalities:
                raise KeyError(
                    f"{self.store.url} has no modality {m!r}; it has {list(self.store.modalities)}"
                )
        self.channels = channels
        self.transform = transform
        if targets is not None and (targets < 1 or self.store.chip_px % targets):
            raise ValueError(
                f"targets: a grid of {targets} cells per side does not divide the "
                f"{self.store.chip_px} px chips"
            )
        self.targets = targets
        self.seed = int(seed)
        self.epoch = 0
        idx = self.store.index
        keep = np.ones(len(idx), dtype=bool)
        if split is not None:
            known = set(idx["split"])
            if split not in known and len(idx):
                raise ValueError(
                    f"split {split!r} not in {self.store.url} (it has {sorted(known)})"
                )
            keep &= (idx["split"] == split).to_numpy()
        if aoi is not None:
            aois = [aoi] if isinstance(aoi, str) else list(aoi)
            keep &= idx["aoi"].isin(aois).to_numpy()
        self.positions = np.flatnonzero(keep)
        self._valid = {m: self.store.valid_mask(m) for m in self.modalities}
        self._chip_ids = idx["chip_id"].to_numpy()  # a pandas lookup per sample costs more
        if cache is None:
            cache = self.cache_bytes() <= CACHE_BYTES
        self._pixels = self._load_pixels() if cache else None

    def cache_bytes(self) -> int:
        """Bytes the split's stored pixels take (what ``cache=True`` holds in memory)."""
        per_chip = sum(
            m.max_channels * np.dtype(m.dtype).itemsize
            for m in (self.store.modalities[n] for n in self.modalities)
        )
        return len(self.positions) * per_chip * self.store.chip_px**2

    def _load_pixels(self) -> dict[str, np.ndarray]:
        """Stored pixels of the split's chips per modality (only their chunks are decoded)."""
        return {
            name: self.store.arrays(name)["pixels"].take(self.positions) for name in self.modalities
        }

    def set_epoch(self, epoch: int) -> None:
        """Choose new random channels (call once per epoch, like DistributedSampler.set_epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict:
        pos = int(self.positions[i])
        sample: dict = {"chip_id": self._chip_ids[pos]}
        rng = np.random.default_rng([self.seed, self.epoch, pos])
        for name in self.modalities:
            valid = self._valid[name][pos]
            if not valid.any():
                continue
            slot = self._choose_slot(name, pos, valid, rng)
            if slot is None:
                continue
            m = self.store.modalities[name]
            if slot == "all":
                if self._pixels is None:
                    chip = self.store.read_chip(pos, [name])[name]
                    x, names, ok = chip.data, chip.names, chip.valid
                else:
                    x, ok = m.decode(self._pixels[name][i], valid), valid.copy()
                    names = self.store.channel_names(name, pos)
            else:
                if self._pixels is None:
                    x = self.store.read_channel(pos, name, slot)[None]
                else:
                    x = m.decode(self._pixels[name][i, slot], valid[slot])[None]
                names, ok = [self.store.slot_name(name, pos, slot)], np.ones(1, dtype=bool)
            sample[name] = torch.from_numpy(m.normalize(x, names))
            sample[f"{name}_valid"] = torch.from_numpy(np.asarray(ok, dtype=bool))
            if self.targets is not None:
                sample[f"{name}_target"] = torch.from_numpy(self._target(name, i, pos, valid))
        return sample if self.transform is None else self.transform(sample, rng)

    def __getitems__(self, indices: Sequence[int]) -> list[dict] | CollatedBatch:
        """A batch for the DataLoader (torch calls this instead of one `__getitem__` per index).

        With the training set-up (the `random` policy, pixels held in memory, no transform, no
        targets) the batch is built at once: the same seeded channel draws as `__getitem__`,
        then one gather, decode and normalisation per modality. The result equals
        `collate_samples([self[i] for i in indices])` exactly (tested) at a fraction of the
        cost. Otherwise the samples, one by one.
        """
        if self.channels != "random" or self._pixels is None or self.transform or self.targets:
            return [self[i] for i in indices]
        b, px = len(indices), self.store.chip_px
        local = np.asarray(indices, dtype=np.int64)
        pos = self.positions[local]
        chosen = {name: np.full(b, -1, dtype=np.int64) for name in self.modalities}
        first: dict[str, int] = {}  # collate's modality order: by first sample that has it
        for k, p in enumerate(pos):
            rng = np.random.default_rng([self.seed, self.epoch, int(p)])
            for name in self.modalities:
                valid = self._valid[name][p]
                if valid.any():  # the draws of __getitem__, in its order
                    chosen[name][k] = self._choose_slot(name, int(p), valid, rng)
                    first.setdefault(name, k)
        batch = CollatedBatch(chip_id=list(self._chip_ids[pos]))
        for name in sorted(first, key=lambda n: (first[n], self.modalities.index(n))):
            m = self.store.modalities[name]
            rows = np.flatnonzero(chosen[name] >= 0)
            slot = chosen[name][rows]
            names = [
                self.store.slot_name(name, int(p), int(c))
                for p, c in zip(pos[rows], slot, strict=True)
            ]  # one image per row: normalize takes the rows as channels
            x = m.normalize(m.decode(self._pixels[name][local[rows], slot]), names)
            out = torch.zeros((b, 1, px, px), dtype=torch.float32)
            out[torch.from_numpy(rows), 0] = torch.from_numpy(x)
            present = torch.zeros(b, dtype=torch.bool)
            present[torch.from_numpy(rows)] = True
            batch[name], batch[f"{name}_valid"] = out, present[:, None].clone()
            batch[f"{name}_present"] = present
        return batch

    def _target(self, name: str, i: int, pos: int, valid: np.ndarray) -> np.ndarray:
        """(C, g, g) float32 cell means of every normalised channel, NaN where invalid."""
        m = self.store.modalities[name]
        if self._pixels is None:
            chip = self.store.read_chip(pos, [name])[name]
            x, names, ok = chip.data, chip.names, np.asarray(chip.valid, dtype=bool)
        else:
            x, ok = m.decode(self._pixels[name][i], valid), valid
            names = (
                [self.store.slot_name(name, pos, s) if v else "" for s, v in enumerate(ok)]
                if m.variable
                else m.channels
            )
        x = m.normalize(x, names)
        if m.variable:
            x = x[ok].mean(axis=0, keepdims=True)
        else:
            x[~ok] = np.nan
        g = self.targets
        c, h, w = x.shape
        return x.reshape(c, g, h // g, g, w // g).mean(axis=(2, 4), dtype=np.float32)

    def _choose_slot(self, name: str, pos: int, valid: np.ndarray, rng: np.random.Generator):
        ch = self.channels
        if ch == "random":
            slots = np.flatnonzero(valid)
            # what rng.choice(slots) draws (the same integer from the same stream), 6x cheaper
            return int(slots[rng.integers(len(slots))])
        if ch == "all":
            return "all"
        if isinstance(ch, int | np.integer):
            slot = int(ch)
        else:
            m = self.store.modalities[name]
            if m.variable:  # a date pair: look among the chip's valid channels (index only)
                names = list(self.store.index[f"{name}_channels"].iat[pos])  # valid slots, in order
                return int(np.flatnonzero(valid)[names.index(ch)]) if ch in names else None
            if ch not in m.channels:
                return None
            slot = m.channels.index(ch)
        if slot >= len(valid):
            raise IndexError(f"{name} has {len(valid)} channel slots; slot {slot} does not exist")
        return slot if valid[slot] else None


def collate_samples(samples: Sequence[dict]) -> dict:
    """Batch samples whose modalities and channel counts differ.

    Returns:
        ``{"chip_id": list[str], "<mod>": Tensor[B, C, H, W], "<mod>_valid": Bool[B, C],
        "<mod>_present": Bool[B]}`` for every modality present in at least one sample; absent
        samples and padded channels are zeros with ``valid``/``present`` False; and
        ``"<mod>_target": Tensor[B, C, g, g]`` (NaN for samples without one) where samples
        carry reconstruction targets.
    """
    if isinstance(samples, CollatedBatch):
        return dict(samples)
    if not samples:
        raise ValueError("collate_samples got an empty batch")
    batch: dict = {"chip_id": [s["chip_id"] for s in samples]}
    mods = list(dict.fromkeys(k for s in samples for k in s if f"{k}_valid" in s))
    for m in mods:  # reconstruction targets: NaN (no target) where a sample lacks them
        have = [s[f"{m}_target"] for s in samples if f"{m}_target" in s]
        if have:
            t = torch.full((len(samples), *have[0].shape), float("nan"))
            for i, s in enumerate(samples):
                if f"{m}_target" in s:
                    t[i] = s[f"{m}_target"]
            batch[f"{m}_target"] = t
    b = len(samples)
    for m in mods:
        shapes = [s[m].shape for s in samples if m in s]
        c = max(sh[0] for sh in shapes)
        h, w = shapes[0][1:]
        if any(sh[1:] != (h, w) for sh in shapes):
            raise ValueError(f"collate_samples: {m} chips have different sizes {set(shapes)}")
        x = torch.zeros((b, c, h, w), dtype=torch.float32)
        valid = torch.zeros((b, c), dtype=torch.bool)
        present = torch.zeros(b, dtype=torch.bool)
        for i, s in enumerate(samples):
            if m in s:
                k = s[m].shape[0]
                x[i, :k] = s[m]
                valid[i, :k] = s[f"{m}_valid"]
                present[i] = True
        batch[m], batch[f"{m}_valid"], batch[f"{m}_present"] = x, valid, present
    return batch
