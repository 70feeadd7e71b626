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
import zarr
from torch.utils.data import DataLoader, Dataset

from eoclip.data.modalities import Modality
from eoclip.data.store import ChipStore
from eoclip.embeddings.channels import select_channels, slot_names
from eoclip.model import MultiTowerCLIP, autocast_for

__all__ = ["iter_part_tables", "model_input", "normalisation_stats", "reader_processes"]


def normalisation_stats(m: Modality, names: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image normalisation (mean, std), float32 of shape (k, 1, 1), from k channel names."""
    st = np.array([m.stats_for(str(n)) for n in names], dtype=np.float32).reshape(-1, 2, 1, 1)
    return torch.from_numpy(st[:, 0].copy()), torch.from_numpy(st[:, 1].copy())


def model_input(m: Modality, stored: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Stored pixels (k, H, W) to the tower input (k, 1, H, W), on the tensor's device.

    The same float32 operations in the same order as ``m.normalize(m.decode(x), names)``
    (bit-identical on the CPU), but run where the model is: only the compact stored dtype
    (uint8 / int16) crosses to the GPU, a quarter or half of the float32 bytes.
    """
    x = stored.float()
    if m.quantized:
        x = x * torch.tensor(m.scale, dtype=torch.float32) + torch.tensor(m.offset, dtype=torch.float32)
    x = (x - mean.to(x.device)) / std.to(x.device)
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)[:, None]


@torch.inference_mode()
def _embed_modality(model: MultiTowerCLIP, m: Modality, pieces: list[tuple], batch_size: int,
                    bf16: bool, device: torch.device, bar) -> np.ndarray:
    """Vectors of one modality for a chip range: float32 (N, D), NaN rows where none selected.

    Args:
        pieces: consecutive sub-ranges of the range, each (chosen slots (n, C), slot names
            (n, C), stored pixels (n, C, H, W)).

    Every selected (chip, channel) image goes through the tower in batches of `batch_size`
    (batches run across pieces); a chip's vectors are summed on the device (float64) and
    normalised once, so there is one device-to-host copy per range and the CPU prepares the
    next batch while the GPU computes.
    """
    offsets = np.cumsum([0] + [len(p[0]) for p in pieces])
    refs = [(k, r, s) for k, (sel, _, _) in enumerate(pieces) for r, s in zip(*np.nonzero(sel), strict=True)]
    acc = torch.zeros((offsets[-1], model.embed_dim), dtype=torch.float64, device=device)
    for b in range(0, len(refs), batch_size):
        chunk = np.array(refs[b : b + batch_size], dtype=np.int64).reshape(-1, 3)
        pix, names = [], []
        for k in np.unique(chunk[:, 0]):
            r, s = chunk[chunk[:, 0] == k, 1], chunk[chunk[:, 0] == k, 2]
            pix.append(pieces[k][2][r, s])
            names.append(pieces[k][1][r, s])
        x = torch.from_numpy(np.concatenate(pix))
        if device.type == "cuda":
            x = x.pin_memory()
        x = model_input(m, x.to(device, non_blocking=True), *normalisation_stats(m, np.concatenate(names)))
        with autocast_for(device, bf16):
            emb = model.encode(m.name, x, normalize=True)
        rows = torch.from_numpy(offsets[chunk[:, 0]] + chunk[:, 1])
        acc.index_add_(0, rows.to(device), emb.double())
        bar.update(len(chunk))
    out = acc.cpu().numpy()
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)
    chosen = np.concatenate([p[0].sum(axis=1) for p in pieces])
    out[chosen == 0] = np.nan
    return out.astype(np.float32)


def _read_pixels(pixels: zarr.Array, lo: int, hi: int, sel: np.ndarray) -> np.ndarray:
    """Stored pixels (N, C, H, W) of chips [lo, hi), read only where `sel` (N, C) needs them.

    With one channel per chip (random or fixed policy) only those chunks are read, a ninth of
    the bytes of the whole block; unselected slots stay 0.
    """
    if sel.sum() > 0.5 * sel.size:
        return np.asarray(pixels[lo:hi])
    out = np.zeros((hi - lo, *pixels.shape[1:]), dtype=pixels.dtype)
    for row, slot in zip(*np.nonzero(sel), strict=True):  # chunk by chunk: faster than an
        out[row, slot] = pixels[lo + row, slot]           # orthogonal selection in zarr 3
    return out


def _load_range(store: ChipStore, policies: dict[str, str], seed: int, lo: int, hi: int) -> dict:
    """I/O of a chip range, per modality: (chosen slots (N, C), slot names (N, C), pixels)."""
    loaded = {}
    for mod, policy in policies.items():
        valid = store.valid_mask(mod)[lo:hi]
        names = slot_names(store, mod, lo, hi)
        sel = select_channels(policy, valid, names, np.arange(lo, hi), seed, mod)
        loaded[mod] = (sel, names, _read_pixels(store.arrays(mod)["pixels"], lo, hi, sel))
    return loaded


class _RangeReader(Dataset):
    """Chip sub-ranges read by DataLoader worker processes (zarr's reads are Python-bound:
    processes, not threads, make them parallel). Pixels travel as tensors, in shared memory."""

    def __init__(self, store: ChipStore, policies: dict[str, str], seed: int, ranges: list):
        self.store, self.policies, self.seed, self.ranges = store, policies, seed, ranges

    def __len__(self) -> int:
        return len(self.ranges)

    def __getitem__(self, i: int) -> dict:
        loaded = _load_range(self.store, self.policies, self.seed, *self.ranges[i])
        return {m: (sel, names, torch.from_numpy(px)) for m, (sel, names, px) in loaded.items()}


def reader_processes(requested: int | None, device: torch.device) -> int:
    """Reader processes to use: `requested`, or automatically 0 on a CPU (the model is the
    bottleneck there and would lose cores) and all cores but two (at most 16) on a GPU."""
    if requested is not None:
        return int(requested)
    return 0 if device.type == "cpu" else max(1, min(16, (os.cpu_count() or 2) - 2))


def _as_is(item):
    return item


def _read_ahead(store: ChipStore, policies: dict[str, str], seed: int, ranges: list,
                num_workers: int) -> Iterator[dict]:
    """The loads of `ranges`, in order, read ahead by `num_workers` processes (0: one thread)."""
    if num_workers > 0:
        loader = DataLoader(_RangeReader(store, policies, seed, ranges), batch_size=None,
                            num_workers=num_workers, prefetch_factor=2, collate_fn=_as_is)
        for item in loader:
            yield {m: (sel, names, px.numpy()) for m, (sel, names, px) in item.items()}
        return
    with ThreadPoolExecutor(1) as reader:  # read range k + 1 while range k is embedded
        ahead = reader.submit(_load_range, store, policies, seed, *ranges[0]) if ranges else None
        for k in range(len(ranges)):
            loaded = ahead.result()
            if k + 1 < len(ranges):
                ahead = reader.submit(_load_range, store, policies, seed, *ranges[k + 1])
            yield loaded


def iter_part_tables(model: MultiTowerCLIP, store: ChipStore, policies: dict[str, str],
                     bounds: list[tuple[int, int]], *, batch_size: int, seed: int, bf16: bool,
                     device: torch.device, bar, num_workers: int = 0,
                     read_chips: int = 32) -> Iterator[pa.Table]:
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
    loads = _read_ahead(store, policies, seed, [s for part in subs for s in part], num_workers)
    for (lo, hi), part in zip(bounds, subs, strict=True):
        pieces = [next(loads) for _ in part]
        cols = {"chip_id": pa.array(store.index["chip_id"].iloc[lo:hi].astype(str).tolist())}
        for mod in policies:
            mine = [p[mod] for p in pieces]
            vecs = _embed_modality(model, store.modalities[mod], mine, batch_size, bf16, device, bar)
            sel = np.concatenate([p[0] for p in mine])
            names = np.concatenate([p[1] for p in mine])
            flat = pa.array(np.nan_to_num(vecs).ravel(), pa.float32())
            cols[f"emb_{mod}"] = pa.FixedSizeListArray.from_arrays(
                flat, model.embed_dim, mask=pa.array(sel.sum(axis=1) == 0))
            cols[f"emb_{mod}_channels"] = pa.array(
                [names[i][sel[i]].tolist() for i in range(len(sel))], pa.list_(pa.string()))
        yield pa.table(cols)
