"""The forward side of the embedding export: stored pixels of a chip range in, vectors out.

Reading (zarr, in a thread) overlaps with the model; pixels cross to the device in their
compact stored dtype and are normalised there; bf16 autocast on CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset

from eoclip.data.integrity import CheckedArray
from eoclip.data.modalities import Modality
from eoclip.data.store import ChipStore
from eoclip.embeddings.channels import select_channels, slot_names, stacks_channels
from eoclip.model import MultiTowerCLIP, autocast_for

__all__ = ["iter_part_tables", "model_input", "normalisation_stats", "reader_processes"]


def normalisation_stats(m: Modality, names: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image normalisation (mean, std), float32 of shape (k, 1, 1), from k channel names."""
    names = np.asarray(names, dtype=object).astype(str)
    kinds, inverse = np.unique(names, return_inverse=True)
    st = np.array([m.stats_for(k) for k in kinds], dtype=np.float32).reshape(-1, 2)[inverse.ravel()]
    return (
        torch.from_numpy(np.ascontiguousarray(st[:, 0])).reshape(-1, 1, 1),
        torch.from_numpy(np.ascontiguousarray(st[:, 1])).reshape(-1, 1, 1),
    )


def model_input(
    m: Modality, stored: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Stored pixels (k, H, W) to the tower input (k, 1, H, W), on the tensor's device.

    The same float32 operations in the same order as ``m.normalize(m.decode(x), names)``
    (bit-identical on the CPU), but run where the model is: only the compact stored dtype
    (uint8 / int16) crosses to the GPU, a quarter or half of the float32 bytes.
    """
    x = stored.float()
    if m.quantized:
        x = x * torch.tensor(m.scale, dtype=torch.float32) + torch.tensor(
            m.offset, dtype=torch.float32
        )
    x = (x - mean.to(x.device)) / std.to(x.device)
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)[:, None]


def _batches(images: list[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive batches of `batch_size` images from a list of (k_i, H, W) tensors."""
    start = np.cumsum([0] + [len(x) for x in images])
    for b in range(0, int(start[-1]), batch_size):
        e = min(b + batch_size, int(start[-1]))
        parts = [
            x[max(b - s, 0) : e - s]
            for x, s in zip(images, start[:-1], strict=True)
            if s < e and s + len(x) > b
        ]
        yield parts[0] if len(parts) == 1 else torch.cat(parts)


@torch.inference_mode()
def _embed_modality(
    model: MultiTowerCLIP,
    m: Modality,
    pieces: list[tuple],
    batch_size: int,
    bf16: bool,
    device: torch.device,
    bar,
    stack: bool = False,
) -> np.ndarray:
    """Vectors of one modality for a chip range: float32 (N, D) (or (N, C*D) with `stack`),
    NaN rows where no channel was selected.

    Args:
        pieces: consecutive sub-ranges of the range, each (chosen slots (n, C), slot names
            (n, C), the chosen images (k, H, W) in stored dtype, in `np.nonzero` order).
        stack: keep each slot's vector in its own block of D (a NaN block for a slot not
            chosen) instead of averaging the chip's vectors (the ``stack`` policy).

    Each piece's images cross to the device in one copy; batches of `batch_size` run across
    pieces; a chip's vectors are summed on the device (float64) and normalised once, so there
    is one device-to-host copy per range and the CPU is free to read ahead.
    """
    offsets = np.cumsum([0] + [len(p[0]) for p in pieces])
    n_slots = pieces[0][0].shape[1] if stack and pieces else 1
    # With `stack` every (chip, slot) is its own accumulator row: chip * C + slot.
    rows = np.concatenate(
        [
            (np.nonzero(sel)[0] + o) * n_slots + (np.nonzero(sel)[1] if stack else 0)
            for (sel, _, _), o in zip(pieces, offsets, strict=False)
        ]
    )
    mean, std = normalisation_stats(m, np.concatenate([names[sel] for sel, names, _ in pieces]))
    images = [px.to(device, non_blocking=True) for _, _, px in pieces]
    mean, std, rows = mean.to(device), std.to(device), torch.from_numpy(rows).to(device)
    acc = torch.zeros((offsets[-1] * n_slots, model.embed_dim), dtype=torch.float64, device=device)
    done = 0
    for x in _batches(images, batch_size):
        k = slice(done, done + len(x))
        x = model_input(m, x, mean[k], std[k])
        with autocast_for(device, bf16):
            emb = model.encode(m.name, x, normalize=True)
        acc.index_add_(0, rows[k], emb.double())
        done += len(x)
        bar.update(len(x))
    out = acc.cpu().numpy()
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)
    if stack:
        chosen = np.concatenate([p[0] for p in pieces]).reshape(-1)  # per (chip, slot)
        out[~chosen] = np.nan
        out = out.reshape(offsets[-1], -1)
        out[~np.isfinite(out).any(axis=1)] = np.nan
        return out.astype(np.float32)
    chosen = np.concatenate([p[0].sum(axis=1) for p in pieces])
    out[chosen == 0] = np.nan
    return out.astype(np.float32)


def _read_selected(pixels: CheckedArray, lo: int, hi: int, sel: np.ndarray) -> torch.Tensor:
    """The stored images (k, H, W) of chips [lo, hi) chosen by `sel` (N, C), in `np.nonzero`
    order: a block read when most slots are chosen, else only those chunks (with one channel
    per chip, a ninth of the bytes)."""
    rows, slots = np.nonzero(sel)
    if len(rows) > 0.5 * sel.size:
        return torch.from_numpy(np.asarray(pixels[lo:hi])[rows, slots])
    return torch.from_numpy(pixels.take_slots(lo + rows, slots))  # chunk by chunk


def _load_range(store: ChipStore, policies: dict[str, str], seed: int, lo: int, hi: int) -> dict:
    """I/O of a chip range, per modality: (chosen slots (N, C), slot names (N, C), images)."""
    loaded = {}
    for mod, policy in policies.items():
        valid = store.valid_mask(mod)[lo:hi]
        names = slot_names(store, mod, lo, hi)
        sel = select_channels(policy, valid, names, np.arange(lo, hi), seed, mod)
        loaded[mod] = (sel, names, _read_selected(store.arrays(mod)["pixels"], lo, hi, sel))
    return loaded


class _RangeReader(Dataset):
    """Chip sub-ranges read by DataLoader worker processes (zarr's reads are Python-bound:
    processes, not threads, make them parallel). Pixels travel as tensors, in shared memory."""

    def __init__(self, store: ChipStore, policies: dict[str, str], seed: int, ranges: list):
        self.store, self.policies, self.seed, self.ranges = store, policies, seed, ranges

    def __len__(self) -> int:
        return len(self.ranges)

    def __getitem__(self, i: int) -> dict:
        return _load_range(self.store, self.policies, self.seed, *self.ranges[i])


def reader_processes(requested: int | None, device: torch.device) -> int:
    """Reader processes to use: `requested`, or automatically 0 on a CPU (the model is the
    bottleneck there and would lose cores) and all cores but two (at most 16) on a GPU."""
    if requested is not None:
        return int(requested)
    return 0 if device.type == "cpu" else max(1, min(16, (os.cpu_count() or 2) - 2))


def _as_is(item):
    return item


def _read_ahead(
    store: ChipStore, policies: dict[str, str], seed: int, ranges: list, num_workers: int, pin: bool
) -> Iterator[dict]:
    """The loads of `ranges`, in order, read ahead by `num_workers` processes (0: one thread)."""
    if num_workers > 0:
        yield from DataLoader(
            _RangeReader(store, policies, seed, ranges),
            batch_size=None,
            num_workers=num_workers,
            prefetch_factor=2,
            collate_fn=_as_is,
            pin_memory=pin,
        )
        return

    def load(lo: int, hi: int) -> dict:
        loaded = _load_range(store, policies, seed, lo, hi)
        return {m: (s, n, px.pin_memory() if pin else px) for m, (s, n, px) in loaded.items()}

    with ThreadPoolExecutor(1) as reader:  # read range k + 1 while range k is embedded
        ahead = reader.submit(load, *ranges[0]) if ranges else None
        for k in range(len(ranges)):
            loaded = ahead.result()
            if k + 1 < len(ranges):
                ahead = reader.submit(load, *ranges[k + 1])
            yield loaded


def iter_part_tables(
    model: MultiTowerCLIP,
    store: ChipStore,
    policies: dict[str, str],
    bounds: list[tuple[int, int]],
    *,
    batch_size: int,
    seed: int,
    bf16: bool,
    device: torch.device,
    bar,
    num_workers: int = 0,
    read_chips: int = 32,
) -> Iterator[pa.Table]:
    """The embeddings of each chip range ``[lo, hi)`` of `bounds`, in order, as Arrow tables.

    Storage and the model work at the same time: each range is read in sub-ranges of
    `read_chips` chips by `num_workers` processes (or, with 0, by one thread, a range ahead).

    Args:
        model: the embedder (eval mode, on `device`).
        store: the ChipStore.
        policies: channel policy per modality (`parse_channel_policy`).
        bounds: chip position ranges.
        batch_size: single-channel images per forward pass.
        seed: root seed of the ``random`` channel choice.
        bf16: bfloat16 autocast on CUDA.
        device: where the model runs.
        bar: a tqdm bar, advanced by the images embedded.
        num_workers: reader processes (0: a reader thread in this process).
        read_chips: chips per read with reader processes (memory: about
            2 x num_workers x read_chips chips in flight, in stored dtypes).

    Yields:
        Tables with ``chip_id``, ``emb_<m>`` (null where no channel was chosen) and
        ``emb_<m>_channels`` per range.
    """
    step = read_chips if num_workers > 0 else max((hi - lo for lo, hi in bounds), default=1)
    subs = [[(a, min(a + step, hi)) for a in range(lo, hi, step)] for lo, hi in bounds]
    loads = _read_ahead(
        store,
        policies,
        seed,
        [s for part in subs for s in part],
        num_workers,
        device.type == "cuda",
    )
    for (lo, hi), part in zip(bounds, subs, strict=True):
        pieces = [next(loads) for _ in part]
        cols = {"chip_id": pa.array(store.index["chip_id"].iloc[lo:hi].astype(str).tolist())}
        for mod, policy in policies.items():
            mine = [p[mod] for p in pieces]
            stack = stacks_channels(policy, store.modalities[mod])
            vecs = _embed_modality(
                model, store.modalities[mod], mine, batch_size, bf16, device, bar, stack=stack
            )
            sel = np.concatenate([p[0] for p in mine])
            names = np.concatenate([p[1] for p in mine])
            empty = sel.sum(axis=1) == 0
            vecs[empty] = 0.0  # null rows; a stacked row keeps NaN blocks for missing channels
            flat = pa.array(vecs.ravel(), pa.float32())
            cols[f"emb_{mod}"] = pa.FixedSizeListArray.from_arrays(
                flat, vecs.shape[1], mask=pa.array(empty)
            )
            cols[f"emb_{mod}_channels"] = pa.array(
                [names[i][sel[i]].tolist() for i in range(len(sel))], pa.list_(pa.string())
            )
        yield pa.table(cols)
